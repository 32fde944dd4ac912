"""asr: a BiLSTM-CTC speech recognition toolkit."""

__version__ = "0.1.0"


def transcribe(model, audio, **options) -> dict:
    """Transcribe `audio` (a file path, or mono float samples at the model's rate) with `model`
    (an `asr export` folder, a checkpoint path, or an `asr.transcription.Recognizer`).

    Returns whisper's result shape: {"text", "segments": [{"id", "start", "end", "text",
    "words": [{"word", "start", "end", "probability"}]}], "language", "duration"} and
    "unrecognized": the speech segments that gave no words. Options: max_segment_seconds,
    vad ("energy", "silero", "auto"), batch_seconds (see asr.transcription.TranscribeOptions).
    """
    from asr.transcription import transcribe as _transcribe

    return _transcribe(model, audio, **options)
