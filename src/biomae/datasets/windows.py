"""Fixed-length training windows from catalog recordings: labelled (:class:`WindowDataset`) and
unlabeled (:class:`UnlabeledStream`), plus :func:`collate_windows`.

Conventions:

- A window is ``window_samples = round(window_s * sample_rate)`` samples at the target rate; its
  start is an integer sample offset at that rate (``start_s = start_sample / sample_rate``).
- Labelled windows lie inside the recording's annotated regions (catalog column ``regions``), so a
  partially annotated file only yields windows where every sound was boxed. A region shorter than
  the window gives one window at the region's start whose samples past the region (or past the end
  of the file) are zero; ``n_valid`` says how many leading samples are real audio.
- Events inside a window are returned with times relative to the window start, clipped to the
  window (and to its region), with ``kept_fraction`` = clipped duration / original duration (1 for
  zero-length events).
- Each epoch has a fixed plan of windows drawn from ``seed`` and the epoch (:meth:`set_epoch`);
  every torchrun rank and every DataLoader worker takes a disjoint share (plan entries ``i`` with
  ``i % (world_size * n_workers) == rank * n_workers + worker_id``), so the union over ranks and
  workers is exactly the plan.
- Recordings prepared at the target rate (:mod:`biomae.datasets.prepared`, ``biomae data
  prepare``) are memory-mapped: a window is a slice of the stored samples, nothing is decoded.
  The others are read as follows.
- Audio is read span by span (``biomae.audio.load`` at the file's rate, then resampled), except for
  files up to ``cache_file_max_s`` long, which are decoded once per worker and kept in an LRU cache
  bounded by ``cache_bytes`` (per worker). Under :class:`WindowLoader` the files are instead
  decoded once, by the first worker that needs one (the others wait for it), into one
  shared-memory cache of at most ``cache_bytes``
  (:class:`~biomae.datasets.window_source.SharedCache`), while batches flow; each worker also
  decodes its coming files in a background thread.
- Audio is kept (cache) and moved between processes as ``transport_dtype``: ``"float32"``, or
  ``"int16"`` = ``round(x * 32768)`` clipped to [-32768, 32767], i.e. 16-bit quantisation at decode
  time (half the bytes; items and :class:`~biomae.datasets.window_batches.WindowLoader` batches
  still hold float32 ``int16 / 32768``).
- :class:`~biomae.datasets.window_batches.WindowLoader` is the fast path for training: it builds
  whole batches in the DataLoader workers, in reusable shared-memory buffers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from biomae.annotations import EVENT_COLUMNS
from biomae.datasets.prepared import PreparedAudio
from biomae.datasets.window_batches import WindowLoader, collate_windows, events_frame
from biomae.datasets.window_source import _WindowSource, to_float32, to_transport

__all__ = [
    "UnlabeledStream",
    "WindowConfig",
    "WindowDataset",
    "WindowLoader",
    "collate_windows",
    "events_frame",
    "to_float32",
    "to_transport",
]
_TRANSPORT = ("float32", "int16")


@dataclass(frozen=True)
class WindowConfig:
    """How windows are drawn.

    Attributes:
        window_s: window length in seconds.
        sample_rate: target rate in Hz (audio is resampled to it).
        positive_fraction: share of windows that contain (part of) an event; the rest contain none.
            ``None`` draws windows uniformly over the annotated regions instead.
        windows_per_epoch: plan length; ``None`` = annotated duration / ``window_s`` (at least 1).
        annotations: which recording annotation statuses to draw from.
        cache_file_max_s: files up to this duration are decoded whole and cached (0 disables).
        cache_bytes: LRU cache size per worker, in bytes.
        seed: seed of every epoch's plan.
        events_as: ``"frame"`` gives each window's events as a DataFrame; ``"columns"`` as a dict
            of NumPy arrays with the same columns (10x cheaper to build and to pass between
            DataLoader workers; :func:`events_frame` turns it into the DataFrame).
        transport_dtype: ``"float32"`` or ``"int16"`` (16-bit quantised, see module docstring):
            the dtype of the decoded-audio cache and of the audio moved out of DataLoader workers.
    """

    window_s: float = 10.0
    sample_rate: int = 16000
    positive_fraction: float | None = 0.5
    windows_per_epoch: int | None = None
    annotations: tuple[str, ...] = ("full",)
    cache_file_max_s: float = 600.0
    cache_bytes: int = 1 << 30
    seed: int = 0
    events_as: str = "frame"
    transport_dtype: str = "float32"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"window_s must be > 0, got {self.window_s}")
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {self.sample_rate}")
        if self.positive_fraction is not None and not 0 <= self.positive_fraction <= 1:
            raise ValueError(f"positive_fraction must lie in [0, 1], got {self.positive_fraction}")
        if self.windows_per_epoch is not None and self.windows_per_epoch < 1:
            raise ValueError(f"windows_per_epoch must be >= 1, got {self.windows_per_epoch}")
        if self.cache_file_max_s < 0 or self.cache_bytes < 0:
            raise ValueError("cache_file_max_s and cache_bytes must be >= 0")
        if self.events_as not in ("frame", "columns"):
            raise ValueError(f"events_as must be 'frame' or 'columns', got {self.events_as!r}")
        if self.transport_dtype not in _TRANSPORT:
            raise ValueError(
                f"transport_dtype must be 'float32' or 'int16', got {self.transport_dtype!r}"
            )

    @property
    def window_samples(self) -> int:
        """Window length in samples at ``sample_rate``."""
        return round(self.window_s * self.sample_rate)


def _ranges(rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(region, lo, hi)`` rows as three int64 arrays (each (N,))."""
    if not rows:
        return (np.array([], dtype=np.int64),) * 3
    region, lo, hi = zip(*rows, strict=True)
    return tuple(np.array(c, dtype=np.int64) for c in (region, lo, hi))


def _parse_regions(text: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in json.loads(text)] if text else []


class WindowDataset(_WindowSource):
    """Labelled windows with the events inside them (see module docstring).

    Each item is a dict: ``audio`` (window_samples,) float32 tensor, ``events`` (DataFrame, the
    canonical event columns + ``kept_fraction``, times relative to the window start),
    ``recording_id``, ``start_sample`` (target rate), ``sample_rate``, ``n_valid``.

    Inside a DataLoader worker, ``audio`` is a view of the worker's decoded-audio cache (it is
    copied on its way out: collated into shared memory, or pickled), which saves a 640-KB copy per
    10-s window; a custom ``collate_fn`` must therefore not edit items in place. In the main
    process every item is a copy.

    Args:
        recordings: catalog recordings (``recording_id, path, sample_rate, n_samples, annotation,
            regions``), e.g. ``Catalog(dir).query("SELECT * FROM recordings WHERE ...")``.
        events: catalog events of those recordings (``recording_id`` + canonical columns).
        config: see :class:`WindowConfig`.
        rank, world_size: this process's share; default from ``torch.distributed`` if initialized.
        prepared: a :class:`~biomae.datasets.prepared.PreparedAudio` store at ``config``'s rate
            (``Catalog.prepared_audio``): the recordings stored there are memory-mapped instead of
            decoded (``recordings`` must then carry the catalog's ``checksum`` column).

    Raises:
        ValueError: no annotated region to draw from, or positives / negatives requested where
            none exist (the message names the numbers).
    """

    def __init__(
        self,
        recordings: pd.DataFrame,
        events: pd.DataFrame,
        config: WindowConfig = WindowConfig(),
        *,
        rank: int | None = None,
        world_size: int | None = None,
        prepared: PreparedAudio | None = None,
    ):
        eligible = recordings[recordings["annotation"].isin(config.annotations)]
        super().__init__(eligible, config, rank, world_size, prepared)
        rate, size = config.sample_rate, config.window_samples
        index = {rid: i for i, rid in enumerate(self.recording_ids)}
        events = events[events["recording_id"].isin(index)]
        events = events.sort_values(["recording_id", "start_s"], kind="stable")
        self._events = {
            index[rid]: {c: group[c].to_numpy() for c in EVENT_COLUMNS}
            for rid, group in events.groupby("recording_id", sort=False)
        }
        self._no_events = {c: events[c].to_numpy()[:0] for c in EVENT_COLUMNS}
        regions = []  # (rec, first, last) in target samples
        for rec, text in enumerate(eligible["regions"].astype(str)):
            for start_s, end_s in _parse_regions(text):
                first = math.ceil(start_s * rate)
                last = min(math.floor(end_s * rate), int(self.n_samples[rec]))
                if last > first:
                    regions.append((rec, first, last))
        if not regions:
            raise ValueError(
                f"no annotated regions in {len(eligible)} recording(s) with annotation in "
                f"{config.annotations}"
            )
        self.regions = np.array(regions, dtype=np.int64)  # (R, 3)
        self._region_list = regions  # the same as Python ints, for the per-window path
        self._positives, self._negatives = self._candidates(size)
        fraction = config.positive_fraction
        if fraction is not None and fraction > 0 and len(self._positives[0]) == 0:
            raise ValueError("positive_fraction > 0 but no event lies inside an annotated region")
        if fraction is not None and fraction < 1 and len(self._negatives[0]) == 0:
            raise ValueError(
                f"positive_fraction={fraction} needs event-free stretches of {config.window_s} s "
                "inside annotated regions and there are none: use positive_fraction=None, 1.0 or "
                "shorter windows"
            )
        annotated_s = float((self.regions[:, 2] - self.regions[:, 1]).sum()) / rate
        self.windows_per_epoch = config.windows_per_epoch or max(
            1, round(annotated_s / config.window_s)
        )

    def _candidates(self, size: int):
        """Start ranges ``(region, lo, hi)`` (inclusive, target samples) of positive windows — one
        per event, each window holding the event's centre — and of negative windows, inside the
        event-free gaps of at least one window. Plans draw positives uniformly over events and
        negatives uniformly over all negative starts."""
        rate = self.config.sample_rate
        pos, neg = [], []
        empty = np.array([], dtype=np.int64)
        for r, (rec, first, last) in enumerate(self.regions):
            table = self._events.get(int(rec))
            # conservative sample bounds: a negative window never touches an event
            starts = np.floor(table["start_s"] * rate).astype(np.int64) if table else empty
            ends = np.ceil(table["end_s"] * rate).astype(np.int64) if table else empty
            inside = (starts < last) & (ends > first)
            for s, e in zip(starts[inside], ends[inside], strict=True):
                if last - first <= size:  # a short region: its one window, from its start
                    pos.append((r, first, first))
                    continue
                centre = min(max((s + e) // 2, first), last - 1)
                pos.append((r, max(first, centre - size + 1), min(last - size, centre)))
            cursor = first
            for s, e in sorted(zip(starts[inside], ends[inside], strict=False)):
                if s - cursor >= size:
                    neg.append((r, cursor, s - size))
                cursor = max(cursor, e)
            if last - cursor >= size:
                neg.append((r, cursor, last - size))
            elif not inside.any() and last - first < size:
                neg.append((r, first, first))  # a short event-free region: one padded window

        return _ranges(pos), _ranges(neg)

    def __len__(self) -> int:
        n_shards = self.world_size
        return len(range(self.rank, self.windows_per_epoch, n_shards))

    def plan(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's windows: ``(region_index (N,), start_sample (N,))``, the same everywhere."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, self.epoch if epoch is None else epoch])
        n = self.windows_per_epoch
        if cfg.positive_fraction is None:
            first, last = self.regions[:, 1], self.regions[:, 2]
            span = np.maximum(last - first - cfg.window_samples, 0) + 1
            region = rng.choice(len(self.regions), size=n, p=(last - first) / (last - first).sum())
            start = first[region] + rng.integers(0, span[region])
            return region, start
        n_pos = round(n * cfg.positive_fraction)
        parts = []
        for (region, lo, hi), count, weighted in (
            (self._positives, n_pos, False),
            (self._negatives, n - n_pos, True),
        ):
            if count == 0:
                continue
            p = (hi - lo + 1) / (hi - lo + 1).sum() if weighted else None
            pick = rng.choice(len(region), size=count, p=p)
            parts.append((region[pick], lo[pick] + rng.integers(0, hi[pick] - lo[pick] + 1)))
        region = np.concatenate([p[0] for p in parts])
        start = np.concatenate([p[1] for p in parts])
        order = rng.permutation(n)
        return region[order], start[order]

    def _entries(self) -> Iterator[tuple[int, int, int]]:
        shard, n_shards = self._shard()
        regions, starts = self.plan()
        for region, start in zip(
            regions[shard::n_shards].tolist(), starts[shard::n_shards].tolist(), strict=False
        ):
            rec, _, last = self._region_list[region]
            yield rec, start, last

    def _recordings_used(self) -> np.ndarray:
        return np.unique(self.regions[:, 0])

    def _extras(self, rec: int, start: int, stop: int, columns: bool = False) -> dict:
        stop = min(start + self.config.window_samples, stop)
        events = self._window_events(rec, start, stop)
        return {"events": events if columns or self.config.events_as == "columns" else
                events_frame(events)}  # fmt: skip

    def window(self, region: int, start: int) -> dict:
        """The item for a window at ``start`` (target samples) in region ``region``."""
        rec, _, last = self._region_list[region]
        return self._item(rec, start, last)

    def _window_events(self, rec: int, start: int, stop: int) -> dict:
        """The events of the window ``[start, stop)`` (target samples) of ``rec`` as columns."""
        rate = self.config.sample_rate
        t0, t1 = start / rate, stop / rate
        table = self._events.get(rec, self._no_events)
        hit = np.flatnonzero((table["start_s"] < t1) & (table["end_s"] > t0))
        begin, end = table["start_s"][hit] - t0, table["end_s"][hit] - t0  # window time
        new_begin, new_end = np.maximum(begin, 0.0), np.minimum(end, (stop - start) / rate)
        length = end - begin
        kept = np.where(length > 0, (new_end - new_begin) / np.where(length > 0, length, 1), 1.0)
        out = {c: table[c][hit] for c in EVENT_COLUMNS}
        out["start_s"], out["end_s"], out["kept_fraction"] = new_begin, new_end, kept
        return out


class UnlabeledStream(_WindowSource):
    """Random windows from all recordings, for pretraining (no events).

    Recordings are drawn with probability proportional to their duration, starts uniformly; each
    item is a dict ``audio, recording_id, start_sample, sample_rate, n_valid``.

    Args:
        recordings: catalog recordings (any annotation status).
        config: a :class:`WindowConfig` (only window, rate, cache and seed fields are used).
        n_windows: windows per epoch over all ranks and workers; ``None`` streams forever.
        rank, world_size, prepared: as for :class:`WindowDataset`.
    """

    _BLOCK = 4096  # plan entries drawn per random block

    def __init__(
        self,
        recordings: pd.DataFrame,
        config: WindowConfig = WindowConfig(),
        *,
        n_windows: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        prepared: PreparedAudio | None = None,
    ):
        if len(recordings) == 0:
            raise ValueError("UnlabeledStream needs at least one recording")
        if n_windows is not None and n_windows < 1:
            raise ValueError(f"n_windows must be >= 1 or None, got {n_windows}")
        super().__init__(recordings, config, rank, world_size, prepared)
        self.n_windows = n_windows
        self._weights = self.n_samples / self.n_samples.sum()

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.config.seed, self.epoch, b])
        rec = rng.choice(len(self.paths), size=self._BLOCK, p=self._weights)
        span = np.maximum(self.n_samples[rec] - self.config.window_samples, 0) + 1
        return rec, rng.integers(0, span)

    def _entries(self) -> Iterator[tuple[int, int, int]]:
        shard, n_shards = self._shard()
        i, b = shard, 0
        while self.n_windows is None or i < self.n_windows:
            while i >= (b + 1) * self._BLOCK:
                b += 1
            recs, starts = self._block(b)
            while i < (b + 1) * self._BLOCK and (self.n_windows is None or i < self.n_windows):
                rec = int(recs[i - b * self._BLOCK])
                yield rec, int(starts[i - b * self._BLOCK]), int(self.n_samples[rec])
                i += n_shards
