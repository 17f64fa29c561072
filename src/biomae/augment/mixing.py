"""Mixing a snippet into a recording at a chosen SNR, and stitching segments with crossfades.

SNR convention (used by :func:`mix`, :class:`Mix` and :mod:`biomae.datasets.synth`):

- the snippet's *active span* is the union of its events' spans, in samples
  ``[floor(start_s * sample_rate), ceil(end_s * sample_rate))``, restricted to the part of the
  snippet that lands inside the recording; a snippet without events is active everywhere, and so is
  one whose events all fall outside the recording;
- signal power ``P_s`` is the snippet's mean square over its active span; background power ``P_b``
  is the recording's mean square over the same samples (before mixing), floored at ``floor_db``
  dB re full scale (default -100 dBFS) so a silent background gives a finite, defined gain;
- the snippet is scaled by ``g = sqrt(10 ** (snr_db / 10) * P_b / P_s)``, so that over the active
  span the power rises from ``P_b`` to about ``P_b * (1 + 10 ** (snr_db / 10))`` (exactly so when
  the two are uncorrelated).

Offsets are integer samples; a snippet hanging over an edge is cut there, its events clipped with
``kept_fraction`` updated and events wholly outside removed (see :mod:`.core`). When the part that
lands inside is all zeros nothing is added (gain 0); a snippet silent over its active span but not
elsewhere is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from biomae.augment.core import (
    check_audio,
    clip_events,
    concat_tables,
    ensure_columns,
    shift_events,
)


def active_mask(events: pd.DataFrame, n_samples: int, sample_rate: int) -> np.ndarray:
    """Boolean ``(n_samples,)``: True inside the union of the events' spans (all if no events)."""
    if len(events) == 0:
        return np.ones(n_samples, dtype=bool)
    starts = np.floor(events["start_s"].to_numpy(np.float64) * sample_rate).astype(np.int64)
    ends = np.ceil(events["end_s"].to_numpy(np.float64) * sample_rate).astype(np.int64)
    edges = np.zeros(n_samples + 1, dtype=np.int64)
    np.add.at(edges, np.clip(starts, 0, n_samples), 1)
    np.add.at(edges, np.clip(ends, 0, n_samples), -1)
    return np.cumsum(edges[:-1]) > 0


def snr_gain(
    snippet: np.ndarray,
    background: np.ndarray,
    active: np.ndarray,
    snr_db: float,
    floor_db: float = -100.0,
    where: str = "snr_gain",
) -> float:
    """The amplitude gain putting ``snippet`` at ``snr_db`` over ``background`` (module docstring).

    Args:
        snippet, background: aligned float arrays ``(n,)`` (the overlapping part only).
        active: boolean ``(n,)``; power is measured where True (everywhere if nowhere True).
        snr_db: target signal-to-noise ratio in dB.
        floor_db: background power floor in dB re full scale.
    """
    if not active.all() and active.any():  # else: the whole snippet
        snippet, background = snippet[active], background[active]
    signal_power = float(np.dot(snippet, snippet)) / len(snippet)
    if signal_power <= 0:
        raise ValueError(f"{where}: the snippet is silent over its active span; no SNR can be set")
    background_power = float(np.dot(background, background)) / len(background)
    background_power = max(background_power, 10 ** (floor_db / 10))
    return math.sqrt(10 ** (snr_db / 10) * background_power / signal_power)


def mix(
    audio: np.ndarray,
    events: pd.DataFrame,
    snippet: np.ndarray,
    snippet_events: pd.DataFrame,
    *,
    snr_db: float,
    offset_samples: int,
    sample_rate: int,
    floor_db: float = -100.0,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, pd.DataFrame, float]:
    """Add ``snippet`` at ``offset_samples`` into ``audio`` at ``snr_db`` (module docstring).

    Args:
        audio: float ``(n_samples,)``, the recording mixed into (not modified).
        events: its event table (times relative to ``audio``).
        snippet: float ``(m,)``; ``snippet_events`` has times relative to the snippet's start.
        offset_samples: where the snippet's first sample lands; may be negative or past the end.
        reference: the background whose power sets the SNR (default ``audio``); the synthesizer
            passes the pure background so that overlapping calls do not change each other's level.

    Returns:
        ``(mixed (n_samples,) float32, events of both as separate rows, gain applied to snippet)``;
        the snippet's rows keep their own ``recording`` value (set it when writing a table).
    """
    audio = check_audio(audio, "mix")
    snippet = check_audio(snippet, "mix snippet")
    reference = audio if reference is None else check_audio(reference, "mix reference")
    if reference.shape != audio.shape:
        raise ValueError(f"mix: reference shape {reference.shape} differs from audio {audio.shape}")
    n_samples, m_samples = audio.shape[0], snippet.shape[0]
    offset = int(offset_samples)
    first, last = max(0, offset), min(n_samples, offset + m_samples)
    out = audio.copy()
    placed = clip_events(shift_events(snippet_events, offset, sample_rate), n_samples, sample_rate)
    if last <= first:
        return out, concat_tables([events]), 0.0
    part = snippet[first - offset : last - offset]
    if not np.any(part):  # nothing audible lands inside: there is nothing to scale
        return out, concat_tables([events, placed]), 0.0
    active = active_mask(snippet_events, m_samples, sample_rate)[first - offset : last - offset]
    gain = snr_gain(part, reference[first:last], active, snr_db, floor_db, "mix")
    out[first:last] += np.float32(gain) * part
    return out, concat_tables([events, placed]), gain


@dataclass(frozen=True)
class MixConfig:
    """Random :func:`mix` of one snippet from a pool.

    Attributes:
        sample_rate: Hz (audio and snippets).
        snr_db: (low, high); the SNR is uniform in dB.
        allow_partial: True lets the snippet hang over either edge (offset uniform over
            ``[-(m - 1), n - 1]``); False keeps it inside (offset in ``[0, n - m]``).
        floor_db: background power floor, dB re full scale.
    """

    sample_rate: int
    snr_db: tuple[float, float] = (0.0, 20.0)
    allow_partial: bool = True
    floor_db: float = -100.0

    def __post_init__(self) -> None:
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise ValueError(
                f"MixConfig: sample_rate must be a positive int, got {self.sample_rate}"
            )
        low, high = self.snr_db
        if not low <= high:
            raise ValueError(f"MixConfig: snr_db low {low} exceeds high {high}")


@dataclass
class Mix:
    """Mix a random snippet of ``pool`` (a list of ``(audio, events)``) into the input."""

    config: MixConfig
    pool: Sequence[tuple[np.ndarray, pd.DataFrame]]

    def __post_init__(self) -> None:
        if len(self.pool) == 0:
            raise ValueError("Mix: the snippet pool is empty")
        self.pool = [(check_audio(a, "Mix pool"), ensure_columns(e)) for a, e in self.pool]

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        snippet, snippet_events = self.pool[int(rng.integers(len(self.pool)))]
        n_samples, m_samples = len(audio), len(snippet)
        if self.config.allow_partial:
            offset = int(rng.integers(-(m_samples - 1), n_samples))
        elif m_samples > n_samples:
            raise ValueError(
                f"Mix: snippet of {m_samples} samples does not fit inside audio of {n_samples} "
                "samples and allow_partial is False"
            )
        else:
            offset = int(rng.integers(0, n_samples - m_samples + 1))
        snr_db = rng.uniform(*self.config.snr_db)
        out, table, _ = mix(
            audio,
            events,
            snippet,
            snippet_events,
            snr_db=snr_db,
            offset_samples=offset,
            sample_rate=self.config.sample_rate,
            floor_db=self.config.floor_db,
        )
        return out, table


def crossfade_samples(crossfade_s: float, sample_rate: int) -> int:
    """The crossfade length in whole samples, ``round(crossfade_s * sample_rate)``."""
    if not crossfade_s >= 0:
        raise ValueError(f"crossfade_s must be >= 0, got {crossfade_s}")
    return round(crossfade_s * sample_rate)


def stitch(
    segments: Sequence[tuple[np.ndarray, pd.DataFrame]], crossfade_s: float, sample_rate: int
) -> tuple[np.ndarray, pd.DataFrame]:
    """Concatenate segments with equal-power crossfades of ``crossfade_s`` between neighbours.

    Segment ``k`` starts at sample ``sum_{j<k} (n_j - c)`` with ``c = round(crossfade_s *
    sample_rate)``: consecutive segments overlap by ``c`` samples, in which the earlier one fades
    out as ``cos(pi/2 * t)`` and the later one fades in as ``sin(pi/2 * t)``, ``t`` in (0, 1).
    The total length is ``sum(n_k) - (K - 1) * c`` samples; events shift by the segment's start.

    Raises:
        ValueError: no segments, or a segment shorter than the crossfades it takes part in.
    """
    if not segments:
        raise ValueError("stitch: no segments")
    n_cross = crossfade_samples(crossfade_s, sample_rate)
    lengths = [len(check_audio(a, f"stitch segment {k}")) for k, (a, _) in enumerate(segments)]
    for k, n in enumerate(lengths):
        needed = n_cross * ((k > 0) + (k < len(segments) - 1))
        if n < needed:
            raise ValueError(
                f"stitch: segment {k} has {n} samples, fewer than its crossfades need ({needed} = "
                f"{crossfade_s} s at {sample_rate} Hz per neighbour)"
            )
    starts = np.concatenate([[0], np.cumsum(np.asarray(lengths[:-1]) - n_cross)]).astype(np.int64)
    out = np.zeros(int(starts[-1]) + lengths[-1], dtype=np.float32)
    t = (np.arange(n_cross, dtype=np.float64) + 0.5) / max(n_cross, 1)
    fade_in = np.sin(0.5 * np.pi * t).astype(np.float32)
    fade_out = np.cos(0.5 * np.pi * t).astype(np.float32)
    tables = []
    for k, ((audio, events), start) in enumerate(zip(segments, starts, strict=True)):
        piece = np.asarray(audio, dtype=np.float32).copy()
        if n_cross and k > 0:
            piece[:n_cross] *= fade_in
        if n_cross and k < len(segments) - 1:
            piece[len(piece) - n_cross :] *= fade_out
        out[start : start + len(piece)] += piece
        tables.append(shift_events(events, int(start), sample_rate))
    return out, concat_tables(tables)


def make_bout(
    call: np.ndarray,
    call_events: pd.DataFrame,
    n_calls: int,
    interval_s: tuple[float, float],
    sample_rate: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, pd.DataFrame]:
    """A bout: ``n_calls`` copies of ``call`` separated by silent gaps uniform in ``interval_s``.

    Gaps are whole samples between the end of one copy and the start of the next; each copy's events
    become their own rows. Returns ``(audio (n,), events)``.
    """
    low, high = interval_s
    if n_calls < 1 or not 0 <= low <= high:
        raise ValueError(
            f"make_bout: need n_calls >= 1 and 0 <= low <= high, got {n_calls}, {interval_s}"
        )
    call = check_audio(call, "make_bout")
    gaps = rng.integers(round(low * sample_rate), round(high * sample_rate) + 1, size=n_calls - 1)
    starts = np.concatenate([[0], np.cumsum(len(call) + gaps)]).astype(np.int64)
    out = np.zeros(int(starts[-1]) + len(call), dtype=np.float32)
    for start in starts:
        out[start : start + len(call)] = call
    tables = [shift_events(call_events, int(s), sample_rate) for s in starts]
    return out, concat_tables(tables)


def long_call(
    call: np.ndarray,
    call_events: pd.DataFrame,
    n_repeats: int,
    crossfade_s: float,
    sample_rate: int,
) -> tuple[np.ndarray, pd.DataFrame]:
    """A long call: ``n_repeats`` copies of ``call`` stitched with crossfades, events merged.

    The copies' events are merged into one row per label, from the first copy's start to the last
    copy's end (other columns from the first copy's row); ``kept_fraction`` is the minimum.
    """
    if n_repeats < 1:
        raise ValueError(f"long_call: n_repeats must be >= 1, got {n_repeats}")
    audio, events = stitch([(call, call_events)] * n_repeats, crossfade_s, sample_rate)
    if len(events) == 0:
        return audio, events
    merged = []
    for _, group in events.groupby("label", sort=False):
        row = group.iloc[[0]].copy()
        row["start_s"] = group["start_s"].min()
        row["end_s"] = group["end_s"].max()
        row["kept_fraction"] = group["kept_fraction"].min()
        merged.append(row)
    return audio, ensure_columns(pd.concat(merged, ignore_index=True))
