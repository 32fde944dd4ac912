"""Synthetic speech corpora made offline with espeak-ng: `prepare_*` functions that
write 16 kHz wavs and JSONL manifests and skip work already done."""

from asr.corpora.digits import prepare_digits
from asr.corpora.synth import prepare_synth

__all__ = ["prepare_digits", "prepare_synth"]
