"""WER/CER scoring on top of jiwer, with an sclite-style text report.

Both sides are normalised, split on whitespace and re-joined with single spaces before
scoring. CER is computed on that re-joined string, so the single space between two words
counts as one character (as in ``jiwer.process_characters``): a word merged with its
neighbour costs one character deletion. No torch here, so scoring stays light.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jiwer

_JSONL_FIX = 'each line must be one JSON object like {"id": "utt1", "text": "some words"}'


def _parse_jsonl(line: str) -> tuple[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg}); {_JSONL_FIX}") from None
    if not (isinstance(obj, dict) and isinstance(obj.get("id"), str)
            and isinstance(obj.get("text"), str)):
        raise ValueError(f'needs string "id" and "text" fields; {_JSONL_FIX}')
    return obj["id"], obj["text"]


def _parse_kaldi(line: str) -> tuple[str, str]:
    if line.lstrip().startswith("{"):
        raise ValueError("JSON line in a Kaldi text file; use one format per file")
    uid, *text = line.split(maxsplit=1)
    return uid, text[0] if text else ""


def read_transcripts(path: str | Path) -> dict[str, str]:
    """Read ``{id: text}`` from a JSONL file (``{"id", "text", ...}`` per line) or a Kaldi
    ``text`` file (``utt-id words...``; an id alone means an empty transcript).

    The format is JSONL when the first non-blank line starts with ``{``. Blank lines are
    skipped. A malformed line or a duplicate id raises ValueError naming ``file:line``.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next((ln.lstrip() for ln in lines if ln.strip()), "")
    parse = _parse_jsonl if first.startswith("{") else _parse_kaldi
    texts: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            uid, text = parse(line)
        except ValueError as e:
            raise ValueError(f"{path}:{n}: {e}") from None
        if uid in line_of:
            raise ValueError(f"{path}:{n}: duplicate id {uid!r} (first on line {line_of[uid]});"
                             " ids must be unique, remove or rename one of them")
        line_of[uid] = n
        texts[uid] = text
    return texts


@dataclass
class UttAlignment:
    """One utterance's word alignment as sclite-style rows of equal length: correct words
    lower-case, errors upper-case, ``*`` where one side has no word, S/D/I marks below."""

    id: str
    ref: str
    hyp: str
    marks: str
    ref_words: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


@dataclass
class ScoreReport:
    """Corpus-level word and character error counts, ids that did not pair up, per-utterance
    alignments (in reference order) and counters of substitutions, deletions, insertions."""

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

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words

    @property
    def cer(self) -> float:
        errors = self.char_substitutions + self.char_deletions + self.char_insertions
        return errors / self.ref_chars

    @property
    def ser(self) -> float:
        return self.sentence_errors / self.n_utts

    def to_dict(self, top_n: int = 10) -> dict:
        """JSON-able summary; rates are fractions (0.1 = 10%), not percentages."""
        names = ("n_utts ref_words hits substitutions deletions insertions sentence_errors "
                 "ref_chars char_hits char_substitutions char_deletions char_insertions").split()
        return {
            "wer": self.wer, "cer": self.cer, "ser": self.ser,
            **{name: getattr(self, name) for name in names},
            "missing": list(self.missing), "extra": list(self.extra),
            "top_confusions": [{"ref": r, "hyp": h, "count": c}
                               for (r, h), c in self.confusions.most_common(top_n)],
            "top_deletions": [{"word": w, "count": c} for w, c in self.deleted.most_common(top_n)],
            "top_insertions": [{"word": w, "count": c}
                               for w, c in self.inserted.most_common(top_n)],
        }


def _word_ops(chunks, ref: list[str], hyp: list[str]) -> list[tuple[str, str, str]]:
    """jiwer chunks -> (op, ref word, hyp word) with op in C/S/D/I and '' for no word."""
    ops = []
    for c in chunks:
        r, h = ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx]
        if c.type == "equal":
            ops += [("C", a, b) for a, b in zip(r, h, strict=True)]
        elif c.type == "substitute":
            ops += [("S", a, b) for a, b in zip(r, h, strict=True)]
        elif c.type == "delete":
            ops += [("D", a, "") for a in r]
        else:
            ops += [("I", "", b) for b in h]
    return ops


def _rows(ops: list[tuple[str, str, str]]) -> tuple[str, str, str]:
    """sclite-style REF, HYP and mark rows, column by column."""
    ref_row, hyp_row, mark_row = [], [], []
    for op, r, h in ops:
        if op != "C":
            r, h = r.upper(), h.upper()
        width = max(len(r), len(h))
        ref_row.append((r or "*" * width).ljust(width))
        hyp_row.append((h or "*" * width).ljust(width))
        mark_row.append(("" if op == "C" else op).ljust(width))
    return " ".join(ref_row), " ".join(hyp_row), " ".join(mark_row)


def score(refs: Mapping[str, str], hyps: Mapping[str, str],
          normalize: Callable[[str], str] | None = None) -> ScoreReport:
    """Score hypotheses against references paired by id, after ``normalize`` (None: as is).

    Ids missing from ``hyps`` are scored as empty hypotheses; ids only in ``hyps`` are
    ignored. Both are listed in the report. Raises ValueError if the references hold no
    words after normalisation (WER undefined).
    """
    norm = normalize or str
    ids = list(refs)
    ref_w = [norm(refs[i]).split() for i in ids]
    hyp_w = [norm(hyps.get(i, "")).split() for i in ids]
    ref_words = sum(map(len, ref_w))
    if ref_words == 0:
        raise ValueError(f"no reference words to score ({len(ids)} references, all empty after "
                         "normalisation); check that REF is the reference file and not empty")
    # One batched jiwer call per level; references that are empty are handled here instead
    # (jiwer rejects them in some versions): all their hypothesis words are insertions.
    scored = [k for k, w in enumerate(ref_w) if w]
    ref_s = [" ".join(ref_w[k]) for k in scored]
    hyp_s = [" ".join(hyp_w[k]) for k in scored]
    chunks = dict(zip(scored, jiwer.process_words(ref_s, hyp_s).alignments, strict=True))
    chars = jiwer.process_characters(ref_s, hyp_s)
    unscored_chars = sum(len(" ".join(hyp_w[k])) for k in range(len(ids)) if not ref_w[k])

    utts, confusions, deleted, inserted = [], Counter(), Counter(), Counter()
    for k, uid in enumerate(ids):
        if k in chunks:
            ops = _word_ops(chunks[k], ref_w[k], hyp_w[k])
        else:  # empty reference
            ops = [("I", "", h) for h in hyp_w[k]]
        n = Counter(op for op, _, _ in ops)
        confusions.update((r, h) for op, r, h in ops if op == "S")
        deleted.update(r for op, r, _ in ops if op == "D")
        inserted.update(h for op, _, h in ops if op == "I")
        utts.append(UttAlignment(uid, *_rows(ops), len(ref_w[k]), n["S"], n["D"], n["I"]))

    return ScoreReport(
        n_utts=len(ids), ref_words=ref_words,
        hits=sum(u.ref_words - u.substitutions - u.deletions for u in utts),
        substitutions=sum(u.substitutions for u in utts),
        deletions=sum(u.deletions for u in utts),
        insertions=sum(u.insertions for u in utts),
        sentence_errors=sum(u.errors > 0 for u in utts),
        ref_chars=sum(map(len, ref_s)), char_hits=chars.hits,
        char_substitutions=chars.substitutions, char_deletions=chars.deletions,
        char_insertions=chars.insertions + unscored_chars,
        missing=[i for i in ids if i not in hyps], extra=[i for i in hyps if i not in refs],
        utterances=utts, confusions=confusions, deleted=deleted, inserted=inserted,
    )


def _id_list(ids: list[str], limit: int = 10) -> str:
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return "  " + " ".join(ids[:limit]) + more


def format_report(report: ScoreReport, max_alignments: int | None = 20, top_n: int = 10) -> str:
    """Human-readable report: sclite-like summary table, pairing problems, top confusions,
    then alignments of the utterances with errors (``max_alignments`` None: all)."""
    r = report
    counts = (r.hits, r.substitutions, r.deletions, r.insertions, r.errors)
    pct = [f"{100 * c / r.ref_words:6.2f}" for c in counts] + [f"{100 * r.ser:6.2f}"]
    lines = [
        f"{'':7}{'#snt':>7}{'#wrd':>8} |" + "".join(
            f"{h:>7}" for h in ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")),
        f"{'count':7}{r.n_utts:>7}{r.ref_words:>8} |"
        + "".join(f"{c:>7}" for c in (*counts, r.sentence_errors)),
        f"{'%':7}{'':15} |" + "".join(f"{p:>7}" for p in pct),
        "",
        f"WER {100 * r.wer:.2f}% ({r.errors} / {r.ref_words} words)   "
        f"CER {100 * r.cer:.2f}% ({r.char_substitutions + r.char_deletions + r.char_insertions}"
        f" / {r.ref_chars} characters, spaces included)",
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

    bad = [u for u in r.utterances if u.errors]
    shown = bad if max_alignments is None else bad[:max_alignments]
    if shown:
        lines.append(f"\nAlignments of utterances with errors ({len(shown)} of {len(bad)}):")
    for u in shown:
        lines += [f"\n{u.id}  S={u.substitutions} D={u.deletions} I={u.insertions}"
                  f"  ({u.ref_words} ref words)",
                  f"REF: {u.ref}".rstrip(), f"HYP: {u.hyp}".rstrip(), f"     {u.marks}".rstrip()]
    return "\n".join(lines)
