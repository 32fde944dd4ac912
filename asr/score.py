"""WER/CER scoring with sclite's word alignment, and its report (text, markdown, JSON).

Both sides go through a named normaliser (`asr.text.NORMALIZERS`: none, basic, english),
are split on whitespace and aligned word by word with NIST sclite's costs and tie-breaking
(`asr.align`), so the counts of correct words, substitutions, deletions and insertions
equal sclite's on the same words. CER aligns the re-joined words character by character
the same way, so the single space between two words counts as one character. All pairs
are aligned in one call of the compiled aligner. No torch here, so scoring stays light.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from asr.align import (
    CORRECT,
    DELETION,
    INSERTION,
    OP_NAMES,
    SUBSTITUTION,
    align_chars,
    align_words,
    split_ops,
)
from asr.significance import bootstrap_interval
from asr.transcripts import read_transcripts  # noqa: F401 (part of this module's API)

LENGTH_BUCKETS = [(0, 0), (1, 4), (5, 9), (10, 19), (20, 39), (40, None)]  # reference words


@dataclass
class UttAlignment:
    """One utterance: its words on both sides and the ops aligning them (asr.align codes)."""

    id: str
    speaker: str
    ref_words: list[str]
    hyp_words: list[str]
    ops: np.ndarray  # (n_ops,) int8
    counts: np.ndarray  # (4,) correct words, substitutions, deletions, insertions

    substitutions = property(lambda self: int(self.counts[SUBSTITUTION]))
    deletions = property(lambda self: int(self.counts[DELETION]))
    insertions = property(lambda self: int(self.counts[INSERTION]))
    errors = property(lambda self: int(self.counts[1:].sum()))

    @cached_property
    def rows(self) -> tuple[str, str, str]:
        """sclite-style REF, HYP and mark rows of equal length: correct words lower-case,
        errors upper-case, `*` where one side has no word, S/D/I under each error."""
        refs, hyps, marks = [], [], []
        r = h = 0
        for op in self.ops.tolist():
            ref = self.ref_words[r] if op != INSERTION else ""
            hyp = self.hyp_words[h] if op != DELETION else ""
            r, h = r + (op != INSERTION), h + (op != DELETION)
            if op != CORRECT:
                ref, hyp = ref.upper(), hyp.upper()
            width = max(len(ref), len(hyp))
            refs.append((ref or "*" * width).ljust(width))
            hyps.append((hyp or "*" * width).ljust(width))
            marks.append(("" if op == CORRECT else OP_NAMES[op]).ljust(width))
        return " ".join(refs), " ".join(hyps), " ".join(marks)

    ref = property(lambda self: self.rows[0])
    hyp = property(lambda self: self.rows[1])
    marks = property(lambda self: self.rows[2])

    def to_dict(self) -> dict:
        return {"id": self.id, "speaker": self.speaker, "ref_words": len(self.ref_words),
                "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, "ref": self.ref, "hyp": self.hyp, "marks": self.marks}


@dataclass
class ScoreReport:
    """Corpus counts, ids that did not pair up, per-utterance alignments (reference order)
    and counters of substitution pairs, deleted and inserted words."""

    n_utts: int
    ref_words: int
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    sentence_errors: int
    ref_chars: int
    char_hits: int
    char_substitutions: int
    char_deletions: int
    char_insertions: int
    missing: list[str]  # in REF, not in HYP: scored as empty hypotheses
    extra: list[str]  # in HYP, not in REF: ignored
    utterances: list[UttAlignment]
    confusions: Counter  # (ref word, hyp word) -> count
    deleted: Counter
    inserted: Counter
    normalization: str = "custom"
    seed: int = 0  # of the bootstrap
    extras: dict = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words

    @property
    def cer(self) -> float:
        return (self.char_substitutions + self.char_deletions + self.char_insertions) / self.ref_chars

    @property
    def ser(self) -> float:
        return self.sentence_errors / self.n_utts

    def per_utterance(self) -> tuple[np.ndarray, np.ndarray]:
        """(errors (N,), reference words (N,)) per utterance."""
        counts = np.stack([u.counts for u in self.utterances])  # (N, 4) correct, S, D, I
        return counts[:, 1:].sum(1), counts[:, [0, 1, 2]].sum(1)  # ref words = C + S + D

    @cached_property
    def wer_interval(self) -> tuple[float, float]:
        """95% bootstrap confidence interval of the WER, resampling utterances."""
        return bootstrap_interval(*self.per_utterance(), seed=self.seed)

    def _groups(self, key: Callable[[UttAlignment], str], order: list[str] | None = None) -> list[dict]:
        groups: dict[str, list[int]] = {}
        for u in self.utterances:
            g = groups.setdefault(key(u), [0, 0, 0, 0, 0, 0])  # utts, words, S, D, I, sentence errors
            for i, value in enumerate((1, len(u.ref_words), u.substitutions, u.deletions, u.insertions,
                                       u.errors > 0)):
                g[i] += value
        rows = []
        for name in order or sorted(groups):
            if name in groups:
                n, words, s, d, i, sent = groups[name]
                rows.append({"group": name, "utterances": n, "ref_words": words, "substitutions": s,
                             "deletions": d, "insertions": i,
                             "wer": (s + d + i) / words if words else None, "ser": sent / n})
        return rows

    def by_speaker(self) -> list[dict]:
        return self._groups(lambda u: u.speaker)

    def by_length(self) -> list[dict]:
        """WER by reference length in words (LENGTH_BUCKETS)."""
        names = [_bucket_name(lo, hi) for lo, hi in LENGTH_BUCKETS]
        return self._groups(lambda u: _bucket_name(*_bucket(len(u.ref_words))), names)

    def to_dict(self, top_n: int = 10, alignments: bool = True) -> dict:
        """JSON-able report; rates are fractions (0.1 = 10%), not percentages."""
        names = ("n_utts ref_words hits substitutions deletions insertions sentence_errors "
                 "ref_chars char_hits char_substitutions char_deletions char_insertions").split()
        lo, hi = self.wer_interval
        out = {
            "wer": self.wer, "wer_95ci": [lo, hi], "cer": self.cer, "ser": self.ser,
            "normalization": self.normalization, "bootstrap_seed": self.seed,
            **{name: getattr(self, name) for name in names},
            "missing": list(self.missing), "extra": list(self.extra),
            "top_confusions": [{"ref": r, "hyp": h, "count": c}
                               for (r, h), c in self.confusions.most_common(top_n)],
            "top_deletions": [{"word": w, "count": c} for w, c in self.deleted.most_common(top_n)],
            "top_insertions": [{"word": w, "count": c} for w, c in self.inserted.most_common(top_n)],
            "by_speaker": self.by_speaker(), "by_length": self.by_length(),
        }
        if alignments:
            out["utterances"] = [u.to_dict() for u in self.utterances]
        return out


def _bucket(n: int) -> tuple[int, int | None]:
    return next((lo, hi) for lo, hi in LENGTH_BUCKETS if n >= lo and (hi is None or n <= hi))


def _bucket_name(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else str(lo) if lo == hi else f"{lo}-{hi}"


def score(refs: Mapping[str, str], hyps: Mapping[str, str],
          normalize: Callable[[str], str] | None = None, speakers: Mapping[str, str] | None = None,
          normalization: str | None = None, seed: int = 0) -> ScoreReport:
    """Score hypotheses against references paired by id, after `normalize` (None: as is).

    Ids missing from `hyps` are scored as empty hypotheses; ids only in `hyps` are ignored;
    both are listed in the report. `speakers` maps ids to speakers (default: the id up to
    its last '-', asr.transcripts.speaker_of).
    Raises ValueError if the references hold no words after normalisation (WER undefined).
    """
    norm = normalize or str
    ids = list(refs)
    ref_w = [norm(refs[i]).split() for i in ids]
    hyp_w = [norm(hyps.get(i, "")).split() for i in ids]
    ref_words = sum(map(len, ref_w))
    if ref_words == 0:
        raise ValueError(f"no reference words to score ({len(ids)} references, all empty after "
                         "normalisation); check that REF is the reference file and not empty")
    speakers = speakers or {}
    ops, n_ops = align_words(ref_w, hyp_w)
    pair = np.repeat(np.arange(len(ids)), n_ops)  # (M,) the pair of each op
    counts = np.bincount(pair * 4 + ops, minlength=4 * len(ids)).reshape(len(ids), 4)  # (N, 4)
    utts = [UttAlignment(uid, speakers.get(uid) or uid.rsplit("-", 1)[0], r, h, o, c) for uid, r, h, o, c
            in zip(ids, ref_w, hyp_w, split_ops(ops, n_ops), counts, strict=True)]
    # the words behind each op: positions in the concatenated ref and hyp word lists
    ref_pos = np.cumsum(ops != INSERTION) - 1  # (M,)
    hyp_pos = np.cumsum(ops != DELETION) - 1
    ref_flat = [w for words in ref_w for w in words]
    hyp_flat = [w for words in hyp_w for w in words]
    confusions = Counter((ref_flat[r], hyp_flat[h]) for r, h in
                         zip(ref_pos[ops == SUBSTITUTION].tolist(), hyp_pos[ops == SUBSTITUTION].tolist()))
    deleted = Counter(ref_flat[r] for r in ref_pos[ops == DELETION].tolist())
    inserted = Counter(hyp_flat[h] for h in hyp_pos[ops == INSERTION].tolist())
    totals = counts.sum(0)  # (4,)
    ref_s, hyp_s = [" ".join(w) for w in ref_w], [" ".join(w) for w in hyp_w]
    char_ops, _ = align_chars(ref_s, hyp_s)
    chars = np.bincount(char_ops, minlength=4)  # (4,)
    return ScoreReport(
        n_utts=len(ids), ref_words=ref_words, hits=int(totals[CORRECT]),
        substitutions=int(totals[SUBSTITUTION]), deletions=int(totals[DELETION]),
        insertions=int(totals[INSERTION]), sentence_errors=int((counts[:, 1:].sum(1) > 0).sum()),
        ref_chars=sum(map(len, ref_s)), char_hits=int(chars[CORRECT]),
        char_substitutions=int(chars[SUBSTITUTION]), char_deletions=int(chars[DELETION]),
        char_insertions=int(chars[INSERTION]),
        missing=[i for i in ids if i not in hyps], extra=[i for i in hyps if i not in refs],
        utterances=utts, confusions=confusions, deleted=deleted, inserted=inserted,
        normalization=normalization or ("none" if normalize is None else "custom"), seed=seed)


def _id_list(ids: list[str], limit: int = 10) -> str:
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return "  " + " ".join(ids[:limit]) + more


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def format_report(report: ScoreReport, max_alignments: int | None = 20, top_n: int = 10) -> str:
    """Human-readable report: sclite-like summary table, WER with its confidence interval,
    pairing problems, top confusions, WER by speaker and by length, then alignments of the
    utterances with errors (`max_alignments` None: all)."""
    r = report
    counts = (r.hits, r.substitutions, r.deletions, r.insertions, r.errors)
    pct = [f"{100 * c / r.ref_words:6.2f}" for c in counts] + [f"{100 * r.ser:6.2f}"]
    lo, hi = r.wer_interval
    lines = [
        f"{'':7}{'#snt':>7}{'#wrd':>8} |" + "".join(
            f"{h:>7}" for h in ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")),
        f"{'count':7}{r.n_utts:>7}{r.ref_words:>8} |"
        + "".join(f"{c:>7}" for c in (*counts, r.sentence_errors)),
        f"{'%':7}{'':15} |" + "".join(f"{p:>7}" for p in pct),
        "",
        f"WER {100 * r.wer:.2f}% ({r.errors} / {r.ref_words} words; 95% CI {100 * lo:.2f}-{100 * hi:.2f}, "
        f"bootstrap over utterances)   CER {100 * r.cer:.2f}% "
        f"({r.char_substitutions + r.char_deletions + r.char_insertions} / {r.ref_chars} characters, "
        f"spaces included)   normalisation: {r.normalization}",
    ]
    if r.missing:
        lines += [f"\nMissing from HYP: {len(r.missing)} ids (scored as empty, all deletions):",
                  _id_list(r.missing)]
    if r.extra:
        lines += [f"\nExtra in HYP: {len(r.extra)} ids not in REF (ignored):", _id_list(r.extra)]
    sections = [("Top substitutions (ref -> hyp)",
                 [(c, f"{a} -> {b}") for (a, b), c in r.confusions.most_common(top_n)]),
                ("Top deletions", [(c, w) for w, c in r.deleted.most_common(top_n)]),
                ("Top insertions", [(c, w) for w, c in r.inserted.most_common(top_n)])]
    for title, rows in sections:
        if rows:
            lines += [f"\n{title}:"] + [f"{c:7d}  {what}" for c, what in rows]
    for title, rows in (("WER by speaker", r.by_speaker()), ("WER by reference length (words)",
                                                             r.by_length())):
        width = max(len(g["group"]) for g in rows)
        lines += [f"\n{title}:", f"  {'':{width}} {'#snt':>6} {'#wrd':>7} {'WER %':>7} {'S.Err %':>8}"]
        lines += [f"  {g['group']:{width}} {g['utterances']:>6} {g['ref_words']:>7} {_pct(g['wer']):>7} "
                  f"{_pct(g['ser']):>8}" for g in rows]

    bad = [u for u in r.utterances if u.errors]
    shown = bad if max_alignments is None else bad[:max_alignments]
    if shown:
        lines.append(f"\nAlignments of utterances with errors ({len(shown)} of {len(bad)}):")
    for u in shown:
        lines += [f"\n{u.id}  S={u.substitutions} D={u.deletions} I={u.insertions}"
                  f"  ({len(u.ref_words)} ref words)",
                  f"REF: {u.ref}".rstrip(), f"HYP: {u.hyp}".rstrip(), f"     {u.marks}".rstrip()]
    return "\n".join(lines)


def format_markdown(report: ScoreReport, top_n: int = 10) -> str:
    """The summary, top substitutions and WER by speaker and length as markdown tables."""
    r = report
    lo, hi = r.wer_interval
    lines = ["| utterances | words | WER % (95% CI) | CER % | SER % | Corr | Sub | Del | Ins |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
             f"| {r.n_utts} | {r.ref_words} | {_pct(r.wer)} ({_pct(lo)}-{_pct(hi)}) | {_pct(r.cer)} | "
             f"{_pct(r.ser)} | {r.hits} | {r.substitutions} | {r.deletions} | {r.insertions} |",
             "", f"Normalisation: {r.normalization}. Missing hypotheses: {len(r.missing)} (scored as "
             f"deletions); extra: {len(r.extra)} (ignored)."]
    if r.confusions:
        lines += ["", "| ref | hyp | count |", "|---|---|--:|"]
        lines += [f"| {a} | {b} | {c} |" for (a, b), c in r.confusions.most_common(top_n)]
    for title, rows in (("speaker", r.by_speaker()), ("reference words", r.by_length())):
        lines += ["", f"| {title} | utterances | words | WER % | SER % |", "|---|--:|--:|--:|--:|"]
        lines += [f"| {g['group']} | {g['utterances']} | {g['ref_words']} | {_pct(g['wer'])} | "
                  f"{_pct(g['ser'])} |" for g in rows]
    return "\n".join(lines)
