"""Model and training configurations (no torch here, so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

SIZES = {  # name -> (layers, hidden units per direction)
    "tiny": (2, 160),
    "small": (3, 256),
    "medium": (4, 512),
    "large": (5, 1024),
}


@dataclass
class ModelConfig:
    vocab_size: int
    sample_rate: int = 16000
    n_mels: int = 80
    cmvn: str = "global"  # "global", or "utterance": each utterance's own mean removed first
    subsampling: str = "stack"  # "stack" (frame stacking) or "conv" (2-layer Conv2d)
    subsampling_factor: int = 2  # 2 for characters, 4 for subword units
    num_layers: int = 3
    hidden_size: int = 256  # per direction
    rnn_type: str = "lstm"  # "lstm" or "gru"
    bidirectional: bool = True
    dropout: float = 0.1
    conv_channels: int = 32
    freq_mask: int = 27
    n_freq_masks: int = 2
    time_mask: int = 40
    n_time_masks: int = 2

    @classmethod
    def from_size(cls, size: str, vocab_size: int, **overrides) -> ModelConfig:
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
        layers, hidden = SIZES[size]
        return cls(**{"vocab_size": vocab_size, "num_layers": layers, "hidden_size": hidden,
                      **overrides})

    @classmethod
    def from_dict(cls, state: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    train_manifest: str
    dev_manifest: str
    exp_dir: str
    size: str = "small"
    model_overrides: dict = field(default_factory=dict)  # ModelConfig fields, e.g. {"dropout": 0.2}
    epochs: int = 30
    max_batch_seconds: float = 300.0
    lr: float = 2e-3
    warmup_steps: int = 300
    weight_decay: float = 1e-2
    clip_norm: float = 5.0
    patience: int = 5  # epochs without dev WER improvement before stopping
    seed: int = 0
    device: str = "auto"
    num_workers: int = 2
    cmvn_utterances: int = 500
    resume: bool = False
    save_every_steps: int = 0  # also write step-K.pt every this many steps (0: epoch ends only)
    max_steps: int = 0  # stop after this global step, e.g. at a job's time limit (0: no limit);
    #                     the LR schedule is unchanged, so --resume carries on exactly
    keep_checkpoints: int = 3  # epoch-N.pt and step-K.pt files kept, of each kind
    max_skipped_steps: int = 20  # stop after this many steps in a row skipped for a non-finite
    #                              loss or gradient (the model has diverged)
    log_interval: int = 50  # steps between loss reports (TensorBoard, progress bar, log)
    preflight: bool = True  # on GPU, run the largest possible batch once before training
    init_from: str = ""  # start from this checkpoint's weights and CMVN (fine-tuning); fresh optimizer
    tokenizer: str = "chars"  # "chars", or "sentencepiece" pieces learnt from the training text
    vocab_size: int = 256  # sentencepiece pieces
    piece_type: str = "unigram"  # sentencepiece's "unigram" or "bpe"
    augment: str = ""  # on-the-fly waveform augmentation, e.g. "speed=0.5,noise=0.4" (asr.augment)
