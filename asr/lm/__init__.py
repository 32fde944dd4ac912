"""Word n-gram language models: an ARPA builder (modified Kneser-Ney), reader and tensor LM."""

from asr.lm.arpa import BOS, EOS, UNK, Arpa, read_arpa
from asr.lm.build import build_arpa
from asr.lm.ngram import NgramLM

__all__ = ["BOS", "EOS", "UNK", "Arpa", "NgramLM", "build_arpa", "read_arpa"]
