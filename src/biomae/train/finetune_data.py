"""Labelled data for fine-tuning: recordings with their events, a train / validation split, and
deterministic micro-batches of windows.

Three sources give the same :class:`LabeledRecording` items: a folder of audio files, each with
one Raven table beside it (:func:`find_labeled`), a ``biomae annotate`` folder reviewed with
``biomae review`` (:func:`review_labeled`: its fully reviewed recordings, rejected detections as
hard negatives), or the fully annotated recordings of a ``biomae data`` catalog
(:func:`catalog_labeled`). :func:`split_labeled` splits them by a stable
hash of each recording (or group of recordings sharing an individual), and
:class:`LabeledWindows` draws training windows from one side, placed around events with
probability ``positive_fraction`` (and, in recordings with hard negatives, half the other windows
around a rejected detection). Event times are seconds from the start of their recording.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from biomae.audio import AUDIO_SUFFIXES


@dataclass(frozen=True)
class LabeledRecording:
    """A recording (``biomae.train.data.Recording``), its events (seconds from its start; the
    ``recording`` column is ``name``) and ``name``, its path relative to the data folder."""

    recording: Any
    events: pd.DataFrame
    name: str
    individuals: frozenset[str] = frozenset()
    negatives: tuple[tuple[float, float], ...] = ()  # (start_s, end_s) spans known to hold no call


HARD_NEGATIVE_FRACTION = 0.5  # of the windows not placed on an event, when hard negatives exist


def is_review_folder(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` is the output folder of ``biomae annotate`` (reviewed or not)."""
    root = Path(data_dir)
    return all((root / name).is_file() for name in ("summary.csv", "events.parquet", "run.json"))


def review_labeled(out_dir: str | Path) -> tuple[list[LabeledRecording], list[str]]:
    """The fully reviewed recordings of a ``biomae annotate`` folder (every detection accepted,
    corrected or rejected in ``biomae review``; see :mod:`biomae.review.results`): positives are
    the accepted detections with their corrected boundaries and labels and the calls the reviewer
    drew; rejected detections are hard negatives (``negatives``); the rest of a fully reviewed
    recording holds no call. Recordings with an unreviewed detection are left out.

    Returns:
        ``(items, left_out)``: ``left_out`` names the recordings not fully reviewed.

    Raises:
        ValueError: no recording is fully reviewed yet.
    """
    from biomae.annotations import validate_events
    from biomae.review.results import reviewed_recordings
    from biomae.train.data import find_recordings

    reviewed, left_out = reviewed_recordings(out_dir)
    if not reviewed:
        raise ValueError(
            f"--data {out_dir}: no fully reviewed recording (every detection accepted or "
            f"rejected) among {len(left_out)}; review some with `biomae review {out_dir}`"
        )
    items = []
    for row, rec in zip(reviewed, find_recordings([r["path"] for r in reviewed]), strict=True):
        validate_events(row["events"], duration_s=rec.duration_s, where=f"{out_dir}/review.csv")
        negatives = tuple(zip(row["negatives"]["start_s"], row["negatives"]["end_s"], strict=True))
        individuals = frozenset(row["events"]["individual"]) - {""}
        items.append(LabeledRecording(rec, row["events"], row["key"], individuals, negatives))
    return items, left_out


def find_labeled(data_dir: str | Path) -> list[LabeledRecording]:
    """Every audio file under ``data_dir`` with its Raven table beside it
    (``<stem>.selections.txt`` or ``<stem>.Table.1.selections.txt``; an empty table = no events);
    for a ``biomae annotate`` folder, its fully reviewed recordings (:func:`review_labeled`).

    Raises:
        FileNotFoundError: no audio under ``data_dir``, or an audio file without a table (named).
    """
    from biomae.annotations import read_annotations, validate_events
    from biomae.train.data import find_recordings

    root = Path(data_dir)
    if is_review_folder(root):
        items, left_out = review_labeled(root)
        if left_out:
            print(
                f"finetune: {len(left_out)} recording(s) of {root} not fully reviewed, left out, "
                f"e.g. {left_out[0]}",
                flush=True,
            )
        return items
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"--data {root}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    items = []
    for rec in find_recordings([str(p) for p in paths]):
        path = Path(rec.path)
        tables = [
            path.with_name(path.stem + s) for s in (".selections.txt", ".Table.1.selections.txt")
        ]
        table = next((t for t in tables if t.is_file()), None)
        if table is None:
            raise FileNotFoundError(
                f"{path}: no Raven table beside it (looked for {tables[0].name}); every recording "
                "under --data needs one (an empty table for a recording without events)"
            )
        name = path.relative_to(root.resolve()).as_posix()
        events = read_annotations(table, "raven").assign(recording=name)
        validate_events(events, duration_s=rec.duration_s, where=str(table))
        individuals = frozenset(events["individual"]) - {""}
        items.append(LabeledRecording(rec, events.reset_index(drop=True), name, individuals))
    return items


def catalog_labeled(
    catalog: str, datasets: list[str], prepared_rate: int | None = None
) -> tuple[list[LabeledRecording], list[str]]:
    """The fully annotated recordings of a catalog (``datasets`` empty = all) with their events;
    with ``prepared_rate``, the recordings prepared at that rate (int16) carry their stored file.

    Returns:
        ``(items, left_out)``: ``left_out`` names the recordings not annotated over their whole
        duration (their unannotated parts cannot serve as negatives); the caller reports them.
    """
    from biomae.datasets.catalog import Catalog
    from biomae.train.data import Recording, prepared_files

    cat = Catalog(catalog)
    recordings, events = cat.recordings(), cat.events()
    if datasets:
        unknown = sorted(set(datasets) - set(recordings["dataset"]))
        if unknown:
            raise ValueError(f"catalog {catalog}: no dataset(s) {unknown}")
        recordings = recordings[recordings["dataset"].isin(datasets)]
    stored = prepared_files(cat, recordings, prepared_rate)
    items, left_out = [], []
    by_id = dict(tuple(events.groupby("recording_id")))
    for row, prepared in zip(recordings.itertuples(), stored, strict=True):
        spans = json.loads(row.regions) if row.regions else []
        if not (len(spans) == 1 and spans[0][0] <= 1e-3 and spans[0][1] >= row.duration_s - 1e-3):
            left_out.append(row.path)
            continue
        rec = Recording(str(row.path), int(row.sample_rate), int(row.n_samples), prepared)
        table = by_id.get(row.recording_id, events.iloc[:0]).assign(recording=row.path)
        individuals = (frozenset(table["individual"]) | {row.individual or ""}) - {""}
        items.append(LabeledRecording(rec, table.reset_index(drop=True), row.path, individuals))
    if not items:
        raise ValueError(f"catalog {catalog}: no fully annotated recording in {datasets or 'it'}")
    return items, left_out


def split_labeled(
    items: list[LabeledRecording], val_fraction: float, by: str = "recording"
) -> tuple[list[LabeledRecording], list[LabeledRecording]]:
    """Train / validation split by a stable hash of each group's name: a group is one recording, or
    (``by="individual"``) the recordings linked by a shared ``individual``. Both sides non-empty."""
    import hashlib

    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    if by == "individual":
        first_seen: dict[str, int] = {}
        for i, item in enumerate(items):
            for individual in item.individuals:
                j = first_seen.setdefault(individual, i)
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(root(i), []).append(i)
    if len(groups) < 2:
        raise ValueError(
            f"need >= 2 groups ({by}) for a train / validation split, got {len(groups)}"
        )

    def unit(members: list[int]) -> float:
        key = "|".join(sorted(items[i].name for i in members))
        return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64

    ranked = sorted(groups.values(), key=unit)
    n_val = min(max(1, sum(unit(g) < val_fraction for g in ranked)), len(ranked) - 1)
    val = sorted(i for g in ranked[:n_val] for i in g)
    train = sorted(i for g in ranked[n_val:] for i in g)
    return [items[i] for i in train], [items[i] for i in val]


class LabeledWindows:
    """Deterministic micro-batches of windows: batch ``index`` draws from
    ``default_rng([seed, index])``. With probability ``positive_fraction`` a window is placed around
    a random event (uniformly, so the event lies inside when it fits), else uniformly in a recording
    drawn by duration (such a window may run up to half its length past the end of the recording,
    zero-padded, so that the model learns that padding holds nothing). ``pairs=True`` gives two
    independently placed windows per event (rows ``2k``, ``2k + 1``: the views of SupCon).
    Items: ``{"audio": (B, n_samples), "offsets_s": [B], "items": [B] LabeledRecording,
    "labels": [B] event label or None}``."""

    def __init__(
        self, items, n_samples, sample_rate, batch_size, seed, positive_fraction, pairs=False
    ):
        self.items, self.n_samples, self.sample_rate = items, n_samples, sample_rate
        self.batch_size, self.seed = batch_size, seed
        self.positive_fraction = 1.0 if pairs else positive_fraction
        self.pairs = pairs
        self.events = [(i, r) for i, item in enumerate(items) for r in range(len(item.events))]
        self.negatives = [(i, span) for i, item in enumerate(items) for span in item.negatives]
        if pairs and not self.events:
            raise ValueError("LabeledWindows: pairs of views need events; the split has none")
        durations = np.array([it.recording.duration_s for it in items])
        self.weights = durations / durations.sum()

    def _window(self, rng, item, start_s: float) -> tuple[np.ndarray, float]:
        from biomae.train.data import read_window

        rec = item.recording
        window_s = self.n_samples / self.sample_rate
        latest = max(0, rec.n_frames - math.ceil(window_s * rec.sample_rate / 2))
        start = min(max(round(start_s * rec.sample_rate), 0), latest)
        return read_window(rec, start, self.n_samples, self.sample_rate), start / rec.sample_rate

    def batch(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        window_s = self.n_samples / self.sample_rate
        audio = np.empty((self.batch_size, self.n_samples), dtype=np.float32)  # (B, n)
        offsets, items, labels = [], [], []
        event = None
        for row in range(self.batch_size):
            if self.pairs and row % 2:
                pass  # second view of the same event
            elif self.events and rng.random() < self.positive_fraction:
                event = self.events[int(rng.integers(len(self.events)))]
            else:
                event = None
            hard = None
            if event is None and self.negatives and rng.random() < HARD_NEGATIVE_FRACTION:
                hard = self.negatives[int(rng.integers(len(self.negatives)))]
            if hard is not None:  # a rejected detection, centred: the model learns it is no call
                item = self.items[hard[0]]
                start_s = (hard[1][0] + hard[1][1]) / 2 - window_s / 2
            elif event is None:
                item = self.items[int(rng.choice(len(self.items), p=self.weights))]
                # may run half a window past the end: padded windows are seen in training too
                start_s = rng.uniform(0, max(0.0, item.recording.duration_s - window_s / 2))
            else:
                item = self.items[event[0]]
                ev = item.events.iloc[event[1]]
                slack = window_s - (ev.end_s - ev.start_s)
                start_s = ev.start_s - rng.uniform(0, slack if slack > 0 else window_s / 2)
            audio[row], offset_s = self._window(rng, item, start_s)
            offsets.append(offset_s)
            items.append(item)
            labels.append(None if event is None else item.events.label.iloc[event[1]])
        return {
            "audio": torch.from_numpy(audio),
            "offsets_s": offsets,
            "items": items,
            "labels": labels,
        }
