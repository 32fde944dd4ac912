"""asr: a BiLSTM-CTC speech recognition toolkit."""

__version__ = "0.1.0"
