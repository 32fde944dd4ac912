"""JSONL manifests, the dataset, the duration-bucketed batch sampler and collation.

A manifest line is `{"id", "audio_filepath", "duration", "text", "speaker"}`: a
superset of NeMo's manifest, so NeMo manifests load as they are.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from asr.atomic import write_text
from asr.audio import AudioError, load_audio
from asr.text import CharTokenizer, normalize
from asr.textfiles import iter_lines

log = logging.getLogger(__name__)
REQUIRED_KEYS = ("audio_filepath", "duration", "text")
MAX_UTTERANCE_SECONDS = 600.0  # longer files are skipped (named): `asr transcribe` cuts them at pauses


def read_manifest(path: str | Path) -> list[dict]:
    """Read a JSONL manifest; relative audio paths resolve against the manifest's folder.
    A malformed line, or an id given twice, raises ValueError naming `path:line`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found; run the recipe's data stage first")
    entries, first_line = [], {}
    for line_no, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        entry = _manifest_entry(line, where)
        entry.setdefault("id", Path(entry["audio_filepath"]).stem)
        entry.setdefault("speaker", "unknown")
        if (first := first_line.get(entry["id"])) is not None:
            raise ValueError(f"{where}: duplicate id {entry['id']!r} (first on line {first}); ids must be "
                             "unique: remove or rename one (a line without an id takes its audio file's "
                             "name)")
        first_line[entry["id"]] = line_no
        audio = Path(entry["audio_filepath"])
        entry["audio_filepath"] = str(audio if audio.is_absolute() else path.parent / audio)
        entries.append(entry)
    return entries


def _manifest_entry(line: str, where: str) -> dict:
    """One manifest line as a dict, its fields checked; errors start with `where`."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err}); each line must be one JSON object") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: a JSON {type(entry).__name__}, not an object; each line must be "
                         f"one JSON object with {', '.join(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}; "
                         f"every line needs {', '.join(REQUIRED_KEYS)}")
    duration = entry["duration"]
    if not isinstance(entry["text"], str) or isinstance(duration, bool) or \
            not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration < 0:
        raise ValueError(f"{where}: \"text\" must be a string and \"duration\" a number of seconds >= 0")
    if not isinstance(entry["audio_filepath"], str) or not entry["audio_filepath"]:
        raise ValueError(f"{where}: \"audio_filepath\" must be a path (a string); fix the line")
    if "id" in entry and not isinstance(entry["id"], str):
        raise ValueError(f"{where}: \"id\" must be a string; fix the line")
    return entry


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write rows as JSONL atomically: readers never see a partial file."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_manifest(path: str | Path, rows: list[dict]) -> None:
    """Write manifest rows atomically. Audio inside the manifest's folder is stored relative
    to it, so that a moved or copied data folder still works; audio elsewhere, absolute."""
    folder = Path(path).resolve().parent

    def stored(audio: str) -> str:
        audio = Path(audio).resolve()
        return str(audio.relative_to(folder)) if audio.is_relative_to(folder) else str(audio)

    write_jsonl(path, [{**row, "audio_filepath": stored(row["audio_filepath"])} for row in rows])


def combine_manifests(out: str | Path, inputs: list[str | Path]) -> int:
    """Write the rows of `inputs` into the manifest `out` (paths made relative to it); ids must
    be unique across them. Returns the row count."""
    rows, source = [], {}
    for path in inputs:
        for row in read_manifest(path):
            if row["id"] in source:
                raise ValueError(f"{path}: id {row['id']!r} is also in {source[row['id']]}; "
                                 "combine manifests whose ids differ")
            source[row["id"]] = path
            rows.append(row)
    write_manifest(out, rows)
    return len(rows)


def ctc_min_frames(tokens: list[int]) -> int:
    """Frames CTC needs for a label sequence: one per token plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    return len(tokens) + repeats


def _tidy(tokens: list[int], separator: int | None) -> list[int]:
    """`tokens` without word separators at the ends or twice in a row, which characters the
    tokenizer skipped leave behind ("a жук b" -> "a b"; "жук" -> nothing)."""
    tidy: list[int] = []
    for token in tokens:
        if token != separator or tidy and tidy[-1] != separator:
            tidy.append(token)
    return tidy[:-1] if tidy and tidy[-1] == separator else tidy


class SpeechDataset(Dataset):
    """Utterances of a manifest with their token ids.

    Items are (id, wave (S,), tokens (L,)); an unreadable file, or one longer than
    `max_seconds` (whatever the manifest says), gives (id, None, error message) so that batch
    jobs can record it and go on.
    """

    def __init__(self, entries: list[dict], tokenizer: CharTokenizer, sample_rate: int,
                 source: str = "manifest", max_seconds: float | None = MAX_UTTERANCE_SECONDS):
        self.entries = entries
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds
        separator = tokenizer.vocab.index(" ") if " " in tokenizer.vocab else None
        self.tokens = [_tidy(tokenizer.encode(normalize(e["text"])), separator) for e in entries]
        tokenizer.report_oov(source)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def durations(self) -> list[float]:
        return [float(e["duration"]) for e in self.entries]

    def filter_infeasible(self, output_frames: Callable[[int], int], source: str,
                          batch_seconds: float | None = None) -> None:
        """Drop utterances CTC cannot align (empty targets, more labels than output frames),
        those longer than `max_seconds` (they would not load) and those longer than
        `batch_seconds` (no batch could hold them); a warning names each."""
        keep, empty, too_short, too_long, over_batch = [], [], [], [], []
        for i, (e, toks) in enumerate(zip(self.entries, self.tokens)):
            if not toks:
                empty.append(e["id"])
            elif self.max_seconds is not None and e["duration"] > self.max_seconds:
                too_long.append(e["id"])
            elif batch_seconds is not None and e["duration"] > batch_seconds:
                over_batch.append(e["id"])
            elif ctc_min_frames(toks) > output_frames(round(e["duration"] * self.sample_rate)):
                too_short.append(e["id"])
            else:
                keep.append(i)
        dropped = {"without a letter the tokenizer can spell (empty, punctuation, emoji)": empty,
                   "with more labels than frames after subsampling (lower the subsampling factor)": too_short,
                   f"longer than {self.max_seconds} s": too_long,
                   f"longer than a batch holds ({batch_seconds} s; raise --max-batch-seconds to keep "
                   "them)": over_batch}
        if len(keep) < len(self.entries):
            log.warning("%s: dropped %d of %d utterances that CTC cannot align or that are too long: %s",
                        source, len(self.entries) - len(keep), len(self.entries),
                        "; ".join(f"{len(ids)} {why}: {', '.join(ids)}"
                                  for why, ids in dropped.items() if ids))
        self.entries = [self.entries[i] for i in keep]
        self.tokens = [self.tokens[i] for i in keep]

    def __getitem__(self, index: int):
        entry = self.entries[index]
        try:
            wave = load_audio(entry["audio_filepath"], self.sample_rate, self.max_seconds)
        except AudioError as err:
            return entry["id"], None, str(err)
        return entry["id"], wave, torch.tensor(self.tokens[index], dtype=torch.long)


def collate(items):
    """Pad a list of (id, wave, tokens) into a batch dict; unreadable items go to "failed"."""
    failed = [(utt_id, error) for utt_id, wave, error in items if wave is None]
    items = [item for item in items if item[1] is not None]
    if not items:
        return {"failed": failed, "ids": []}
    ids, waves, tokens = zip(*items)
    wave_lens = torch.tensor([len(w) for w in waves])
    token_lens = torch.tensor([len(t) for t in tokens])
    return {
        "failed": failed,  # [(id, error message)]
        "ids": list(ids),
        "waves": torch.nn.utils.rnn.pad_sequence(waves, batch_first=True),  # (B, S)
        "wave_lens": wave_lens,  # (B,)
        "tokens": torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True),  # (B, L)
        "token_lens": token_lens,  # (B,)
    }


def report_failures(batch: dict) -> bool:
    """Log the batch's unreadable files; True when it still holds utterances to use."""
    for utt_id, error in batch["failed"]:
        log.warning("skipping %s: %s", utt_id, error)
    return bool(batch["ids"])


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length utterances whose padded audio stays under a seconds budget.

    Utterances are sorted by duration and cut greedily into global batches where
    `batch_size * longest_duration <= max_batch_seconds * num_replicas`. With `shuffle`,
    batch order (and, slightly, bucket boundaries) changes each epoch, reproducibly from
    `seed`. Under data parallelism every rank builds the same global batches and takes its
    own share (`rank::num_replicas` of the batch, longest first), so `max_batch_seconds`
    is the budget per process and a run on N processes sees the same global batches as
    one process with N times the budget. `set_epoch(epoch, start_batch)` resumes mid-epoch.
    """

    def __init__(self, durations: list[float], max_batch_seconds: float, shuffle: bool = True,
                 seed: int = 0, num_replicas: int = 1, rank: int = 0, tag_epoch: bool = False):
        if max(durations, default=0) > max_batch_seconds:
            raise ValueError(f"an utterance lasts {max(durations):.1f} s, longer than "
                             f"--max-batch-seconds {max_batch_seconds}; raise the budget")
        self.durations = durations
        self.max_batch_seconds = max_batch_seconds
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start_batch = 0
        self.tag_epoch = tag_epoch  # yield (index, epoch) pairs, for AugmentedDataset

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's batch order; skip its first `start_batch` batches (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def global_batches(self) -> list[list[int]]:
        """The epoch's batches over all ranks, from `start_batch` on."""
        rng = random.Random(self.seed * 100_003 + self.epoch)
        # jitter durations by up to 5% so equal-length utterances mix across epochs
        keys = [d * (1 + 0.05 * rng.random()) if self.shuffle else d for d in self.durations]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        budget = self.max_batch_seconds * self.num_replicas
        batches, batch, longest = [], [], 0.0
        for i in order:
            longest_if_added = max(longest, self.durations[i])
            if batch and longest_if_added * (len(batch) + 1) > budget:
                batches.append(batch)
                batch, longest_if_added = [], self.durations[i]
            batch.append(i)
            longest = longest_if_added
        if batch:
            batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches[self.start_batch:]

    def shard(self, batch: list[int]) -> list[int]:
        """This rank's part of a global batch, longest first (packing then needs no sort);
        empty when the batch has fewer utterances than there are ranks."""
        longest_first = sorted(batch, key=self.durations.__getitem__, reverse=True)
        return longest_first[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list]:
        for batch in self.global_batches():
            shard = self.shard(batch)
            yield [(i, self.epoch) for i in shard] if self.tag_epoch else shard

    def __len__(self) -> int:
        return len(self.global_batches())


class AugmentedDataset(Dataset):
    """A training dataset whose audio is augmented on the fly. Items are asked for as
    (index, epoch) (a BucketBatchSampler with tag_epoch=True) and drawn from a generator
    seeded by (seed, epoch, index): the same in every worker and process, and after a
    resume, while each epoch hears every utterance differently."""

    def __init__(self, dataset: SpeechDataset, augmenter: Callable, seed: int):
        self.dataset = dataset
        self.augmenter = augmenter
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        utt_id, wave, tokens = self.dataset[index]
        if wave is not None:
            wave = self.augmenter(wave, np.random.default_rng([self.seed, epoch, index]))
        return utt_id, wave, tokens
