"""Transform protocol, composition, and the event-table arithmetic every augmentation shares.

A transform maps ``(audio, events, rng) -> (audio, events)``: ``audio`` is a float32 array
``(n_samples,)`` at the transform's ``sample_rate``; ``events`` is the canonical event table
(:mod:`biomae.annotations.schema`) with times in seconds from the first sample of ``audio``; ``rng``
is a :class:`numpy.random.Generator` passed explicitly (no global RNG), so a DataLoader worker that
seeds its own generator gets reproducible augmentations.

Augmentations add two columns to the table (see :func:`ensure_columns`):

- ``kept_fraction`` (float, 1.0 by default): the fraction of the original event's duration that
  is present in this row after clipping at an edge or splitting at a wrap point.
- ``audible`` (bool, True by default): False once a transform has attenuated the event below its
  audibility floor. Such a row is kept (with its label) but must not be used as a positive.

Shifts are integer numbers of samples; new times are ``start_s + offset / sample_rate`` computed in
float64, never accumulated. An event that ends up entirely outside the audio is removed — it is not
in the audio any more; every event that overlaps the audio is kept, clipped, with ``kept_fraction``
updated.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from biomae.annotations.schema import EVENT_COLUMNS, make_events

AUGMENT_COLUMNS = {"kept_fraction": 1.0, "audible": True}
_ALL_COLUMNS = frozenset((*EVENT_COLUMNS, *AUGMENT_COLUMNS))


class Transform(Protocol):
    """Anything called as ``transform(audio, events, rng) -> (audio, events)``."""

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]: ...


def ensure_columns(events: pd.DataFrame) -> pd.DataFrame:
    """``events`` as a canonical table with ``kept_fraction`` (1.0) and ``audible`` (True) columns.

    A table that already has every column is returned as it is (the fast path for per-example
    augmentation): transforms never modify a table in place, they assign columns on a copy.
    """
    names = events.columns.to_numpy(object)  # iterating a str Index directly is slow
    if _ALL_COLUMNS.issubset(names):
        return events
    if len(events) == 0 and _ALL_COLUMNS.issuperset(names):
        return _empty_table().copy(deep=False)  # copy-on-write: the cached table stays empty
    out = make_events(events)
    for name, default in AUGMENT_COLUMNS.items():
        if name not in out.columns:
            out[name] = default
    out["kept_fraction"] = out["kept_fraction"].astype("float64")
    out["audible"] = out["audible"].astype(bool)
    return out


@functools.lru_cache(maxsize=1)
def _empty_table() -> pd.DataFrame:
    table = make_events([])
    for name, default in AUGMENT_COLUMNS.items():
        table[name] = pd.Series(dtype=type(default))
    return table


def check_audio(audio: np.ndarray, where: str) -> np.ndarray:
    """Return ``audio`` as a float32 1-D array or raise naming ``where`` and the bad shape/dtype."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"{where}: audio must be 1-D (n_samples,), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{where}: audio must be floating point, got dtype {audio.dtype}")
    return audio.astype(np.float32, copy=False)


def shift_events(events: pd.DataFrame, offset_samples: int, sample_rate: int) -> pd.DataFrame:
    """Move every event by ``offset_samples / sample_rate`` seconds (no clipping)."""
    out = ensure_columns(events).copy(deep=False)  # copy-on-write: the input stays as it was
    delta_s = int(offset_samples) / sample_rate
    out["start_s"] = out["start_s"].to_numpy(np.float64) + delta_s
    out["end_s"] = out["end_s"].to_numpy(np.float64) + delta_s
    return out


def clip_events(events: pd.DataFrame, n_samples: int, sample_rate: int) -> pd.DataFrame:
    """Clip events to ``[0, n_samples / sample_rate]`` s, updating ``kept_fraction``.

    Rows entirely outside the audio are removed; a row that touches the audio only at one instant
    (zero overlap) is removed too unless the event itself has zero duration.
    """
    out = ensure_columns(events).copy(deep=False)
    duration_s = n_samples / sample_rate
    start = out["start_s"].to_numpy(np.float64)
    end = out["end_s"].to_numpy(np.float64)
    new_start = np.clip(start, 0.0, duration_s)
    new_end = np.clip(end, 0.0, duration_s)
    length = end - start
    inside = (end > 0) & (start < duration_s) | (
        (length == 0) & (start >= 0) & (start <= duration_s)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(length > 0, (new_end - new_start) / length, 1.0)
    out["start_s"] = new_start
    out["end_s"] = new_end
    out["kept_fraction"] = out["kept_fraction"].to_numpy(np.float64) * fraction
    if inside.all():
        return out
    return out[inside].reset_index(drop=True)


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate augmented event tables into a new table (augmentation columns kept)."""
    tables = [ensure_columns(t) for t in tables]
    non_empty = [t for t in tables if len(t)]
    if len(non_empty) > 1:
        return pd.concat(non_empty, ignore_index=True)
    only = non_empty or tables or [ensure_columns(make_events([]))]
    return only[0].copy(deep=False)  # copy-on-write: the caller's table stays as it was


@dataclass
class Compose:
    """Apply transforms in order, each with the same ``rng`` (its state advances between them)."""

    transforms: Sequence[Transform]

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        for transform in self.transforms:
            audio, events = transform(audio, events, rng)
        return audio, events


@dataclass
class RandomApply:
    """Apply ``transform`` with probability ``p`` (one uniform draw from ``rng`` per call)."""

    transform: Transform
    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"RandomApply: p must lie in [0, 1], got {self.p}")

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        if rng.random() < self.p:
            return self.transform(audio, events, rng)
        return audio, events


def _check_sample_rate(sample_rate: int, where: str) -> None:
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"{where}: sample_rate must be a positive integer, got {sample_rate}")


@dataclass(frozen=True)
class TimeShiftConfig:
    """Random time shift by up to ``max_shift_s`` either way.

    Attributes:
        sample_rate: Hz.
        max_shift_s: the shift is uniform over integer samples in ``[-max, +max]``.
        mode: "circular" (audio wraps; an event crossing the end splits into two rows whose
            ``kept_fraction`` sum to the original) or "pad" (zeros enter; events are clipped).
    """

    sample_rate: int
    max_shift_s: float = 1.0
    mode: str = "circular"

    def __post_init__(self) -> None:
        _check_sample_rate(self.sample_rate, "TimeShiftConfig")
        if not self.max_shift_s >= 0:
            raise ValueError(f"TimeShiftConfig: max_shift_s must be >= 0, got {self.max_shift_s}")
        if self.mode not in ("circular", "pad"):
            raise ValueError(
                f"TimeShiftConfig: mode must be 'circular' or 'pad', got {self.mode!r}"
            )


def time_shift(
    audio: np.ndarray, events: pd.DataFrame, shift_samples: int, sample_rate: int, mode: str
) -> tuple[np.ndarray, pd.DataFrame]:
    """Shift audio and events by ``shift_samples`` (> 0: later); see :class:`TimeShiftConfig`."""
    audio = check_audio(audio, "time_shift")
    n_samples = audio.shape[0]
    shift = int(shift_samples)
    if mode == "pad":
        out = np.zeros_like(audio)
        if abs(shift) < n_samples:
            if shift >= 0:
                out[shift:] = audio[: n_samples - shift]
            else:
                out[:shift] = audio[-shift:]
        return out, clip_events(shift_events(events, shift, sample_rate), n_samples, sample_rate)
    if mode != "circular":
        raise ValueError(f"time_shift: mode must be 'circular' or 'pad', got {mode!r}")
    shift %= n_samples if n_samples else 1
    out = np.roll(audio, shift)
    duration_s = n_samples / sample_rate
    table = ensure_columns(events)
    original_start = table["start_s"].to_numpy(np.float64)
    original_end = table["end_s"].to_numpy(np.float64)
    # one rounding per time: add either shift or shift - n_samples (wrapped), in seconds
    later, wrapped = shift / sample_rate, (shift - n_samples) / sample_rate
    start = original_start + later
    wrap_start = start >= duration_s  # the whole event wraps to the beginning
    start = np.where(wrap_start, original_start + wrapped, start)
    end = original_end + np.where(wrap_start, wrapped, later)
    split = end > duration_s  # the event crosses the wrap point: two rows
    whole = table.copy(deep=False)
    whole["start_s"], whole["end_s"] = start, end
    if not split.any():
        return out, whole
    head = whole[split].copy()  # the part before the wrap point
    tail = whole[split].copy()  # the part after it, at the beginning of the audio
    head["end_s"] = duration_s
    tail["start_s"] = 0.0
    tail["end_s"] = original_end[split] + wrapped
    length = original_end[split] - original_start[split]
    with np.errstate(invalid="ignore", divide="ignore"):
        head_fraction = (duration_s - start[split]) / length
    kept = table["kept_fraction"].to_numpy(np.float64)[split]
    head["kept_fraction"] = kept * head_fraction
    tail["kept_fraction"] = kept * (1.0 - head_fraction)
    return out, concat_tables([whole[~split], head, tail])


@dataclass
class TimeShift:
    """Random :func:`time_shift` (see :class:`TimeShiftConfig`)."""

    config: TimeShiftConfig

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        max_shift = round(self.config.max_shift_s * self.config.sample_rate)
        shift = int(rng.integers(-max_shift, max_shift + 1))
        return time_shift(audio, events, shift, self.config.sample_rate, self.config.mode)


@dataclass(frozen=True)
class GainConfig:
    """Random gain, uniform in dB over ``[min_db, max_db]``. Events are unchanged."""

    min_db: float = -6.0
    max_db: float = 6.0

    def __post_init__(self) -> None:
        if not self.min_db <= self.max_db:
            raise ValueError(f"GainConfig: min_db {self.min_db} exceeds max_db {self.max_db}")


@dataclass
class RandomGain:
    """Multiply the audio by ``10 ** (gain_db / 20)``, gain_db ~ U[min_db, max_db]."""

    config: GainConfig

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        gain_db = rng.uniform(self.config.min_db, self.config.max_db)
        return check_audio(audio, "RandomGain") * np.float32(10 ** (gain_db / 20)), events
