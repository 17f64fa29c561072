"""Frame scores → event tables, and event tables → frame targets.

Time convention (shared by targets and decoding): output frame ``i`` of a detection head with hop
``frame_hop_s`` covers ``[i * frame_hop_s, (i + 1) * frame_hop_s)`` seconds after the window
start. A frame is a positive *target* when its centre ``(i + 0.5) * frame_hop_s`` lies within an
event (:func:`frame_targets`); a decoded run of frames ``[a, b)`` becomes the event
``[a * frame_hop_s, b * frame_hop_s)``. So a decoded boundary is within half a frame of the truth.

Decoding (:func:`decode_events`), per class:

1. **hysteresis** (:func:`hysteresis_segments`): an event is a maximal run of frames with
   score >= ``threshold_off`` that holds at least one frame with score >= ``threshold_on``;
2. **merge gap** (:func:`merge_segments`): events separated by at most ``merge_gap_s`` join;
3. **minimum duration** (:func:`drop_short`): events shorter than ``min_duration_s`` are dropped
   (after merging, so fragments that join survive);
4. **boundary refinement** (optional, :func:`refine_boundaries`): with onset / offset channels,
   each boundary moves to the onset (offset) peak within ``refine_search_s`` if that peak reaches
   ``threshold_on``;
5. **score** = the maximum (or the mean, ``score="mean"``) activity within the event's frames;
6. **frequency box** (optional, :func:`frequency_box`): from a linear-power spectrogram, the
   smallest contiguous band holding ``energy_fraction`` of the event's energy above the noise floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from biomae.annotations.schema import make_events

SCORE_REDUCTIONS = ("max", "mean")


@dataclass
class DecodeConfig:
    """Post-processing of frame scores (probabilities in [0, 1]).

    Attributes:
        threshold_on: a run of frames must reach this score to become an event.
        threshold_off: the run extends while the score is >= this (None = ``threshold_on``).
        min_duration_s: events shorter than this are dropped (after merging).
        merge_gap_s: events separated by at most this gap are merged.
        class_thresholds: per-label ``[on, off]`` overriding the two thresholds above.
        score: "max" or "mean" activity over the event's frames.
        refine_search_s: onset/offset refinement radius in seconds (0 = no refinement).
        energy_fraction: share of above-noise energy the frequency box must hold, in (0, 1].
    """

    threshold_on: float = 0.5
    threshold_off: float | None = None
    min_duration_s: float = 0.0
    merge_gap_s: float = 0.0
    class_thresholds: dict[str, list[float]] = field(default_factory=dict)
    score: str = "max"
    refine_search_s: float = 0.0
    energy_fraction: float = 0.9

    def __post_init__(self):
        self.thresholds("")  # validates the defaults
        for label in self.class_thresholds:
            self.thresholds(label)
        for name in ("min_duration_s", "merge_gap_s", "refine_search_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"DecodeConfig: {name}={value} must be a finite number >= 0")
        if self.score not in SCORE_REDUCTIONS:
            raise ValueError(f"DecodeConfig: score={self.score!r} not in {SCORE_REDUCTIONS}")
        if not 0 < self.energy_fraction <= 1:
            raise ValueError(f"DecodeConfig: energy_fraction={self.energy_fraction} not in (0, 1]")

    def thresholds(self, label: str) -> tuple[float, float]:
        """``(on, off)`` for ``label``; raises if they are not ``0 <= off <= on <= 1``."""
        if label in self.class_thresholds:
            pair = self.class_thresholds[label]
            if len(pair) != 2:
                raise ValueError(
                    f"DecodeConfig: class_thresholds[{label!r}]={pair} is not [on, off]"
                )
            on, off = float(pair[0]), float(pair[1])
        else:
            on = self.threshold_on
            off = on if self.threshold_off is None else self.threshold_off
        if not 0 <= off <= on <= 1:
            raise ValueError(
                f"DecodeConfig: thresholds for {label!r} are on={on}, off={off}; "
                "need 0 <= off <= on <= 1"
            )
        return on, off


# ----------------------------------------------------------------------------------------------
# Segments: integer arrays (K, 2) of [start_frame, end_frame) rows, sorted, non-overlapping


def hysteresis_segments(scores: np.ndarray, on: float, off: float) -> np.ndarray:
    """Maximal runs with ``scores >= off`` that contain a frame with ``scores >= on``.

    Args:
        scores: ``(T,)`` frame scores.
        on, off: thresholds, ``off <= on``.

    Returns:
        ``(K, 2)`` int64 ``[start, end)`` frame indices.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"hysteresis_segments: scores must be (T,); got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(
            f"hysteresis_segments: scores hold NaN at frame {np.isnan(scores).argmax()}"
        )
    above = np.concatenate([[False], scores >= off, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    runs = edges.reshape(-1, 2)  # (K, 2) [start, end)
    n_on = np.concatenate([[0], np.cumsum(scores >= on)])  # frames >= on before each frame
    keep = n_on[runs[:, 1]] > n_on[runs[:, 0]]
    return runs[keep].astype(np.int64).reshape(-1, 2)


def merge_segments(segments: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """Join consecutive segments whose gap (``start_next - end_prev``) is <= ``max_gap_frames``."""
    segments = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
    if len(segments) == 0:
        return segments
    reach = np.maximum.accumulate(segments[:, 1])  # the furthest end so far
    new_group = np.concatenate([[True], segments[1:, 0] - reach[:-1] > max_gap_frames])
    firsts = np.flatnonzero(new_group)
    ends = np.maximum.reduceat(segments[:, 1], firsts)
    return np.stack([segments[firsts, 0], ends], axis=1)


def drop_short(segments: np.ndarray, min_frames: int) -> np.ndarray:
    """Keep segments at least ``min_frames`` long."""
    return segments[(segments[:, 1] - segments[:, 0]) >= min_frames].reshape(-1, 2)


def refine_boundaries(
    segments: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
    search_frames: int,
    threshold: float,
) -> np.ndarray:
    """Move boundaries to onset/offset peaks within ``search_frames`` that reach ``threshold``.

    A start moves to the onset argmax in ``[start - r, start + r]``; an end to one past the offset
    argmax in ``[end - 1 - r, end - 1 + r]``. A refinement that would leave a segment empty is not
    applied. Segments may touch after refinement; they are not re-merged.
    """
    n_frames = len(onset)
    out = segments.copy()
    for k, (start, end) in enumerate(segments):
        lo, hi = max(start - search_frames, 0), min(start + search_frames + 1, n_frames)
        new_start = lo + int(np.argmax(onset[lo:hi])) if onset[lo:hi].max() >= threshold else start
        last = end - 1
        lo, hi = max(last - search_frames, 0), min(last + search_frames + 1, n_frames)
        new_end = (
            lo + int(np.argmax(offset[lo:hi])) + 1 if offset[lo:hi].max() >= threshold else end
        )
        if new_start < new_end:
            out[k] = (new_start, new_end)
    return out


# ----------------------------------------------------------------------------------------------
# Frequency boxes


def edges_from_centers(centers_hz: np.ndarray) -> np.ndarray:
    """Bin edges ``(F + 1,)`` halfway between increasing centres ``(F,)``; outer edges mirror the
    nearest spacing and the lowest edge stops at 0 Hz."""
    centers_hz = np.asarray(centers_hz, dtype=np.float64)
    if centers_hz.ndim != 1 or len(centers_hz) < 2 or (np.diff(centers_hz) <= 0).any():
        raise ValueError("edges_from_centers: need >= 2 strictly increasing bin centres")
    mid = (centers_hz[1:] + centers_hz[:-1]) / 2
    first = max(centers_hz[0] - (mid[0] - centers_hz[0]), 0.0)
    last = centers_hz[-1] + (centers_hz[-1] - mid[-1])
    return np.concatenate([[first], mid, [last]])


def frequency_box(
    power: np.ndarray,
    bin_edges_hz: np.ndarray,
    start_frame: int,
    end_frame: int,
    energy_fraction: float = 0.9,
    noise_floor: np.ndarray | None = None,
) -> tuple[float, float]:
    """The band that holds an event's energy above the noise floor.

    Per bin, the excess is the event's mean power over frames ``[start_frame, end_frame)`` minus the
    noise floor (by default the bin's median power over all frames of ``power``, so pass enough
    context around the event), floored at 0. The box is the smallest contiguous run of bins whose
    excess sums to at least ``energy_fraction`` of the total (ties: the run with more excess).

    Args:
        power: ``(F, T)`` linear power (or magnitude) spectrogram, bin 0 = lowest frequency.
        bin_edges_hz: ``(F + 1,)`` increasing edges of the bins in Hz.
        start_frame, end_frame: the event's spectrogram frames, ``0 <= start < end <= T``.
        energy_fraction: in (0, 1].
        noise_floor: ``(F,)`` per-bin noise power; None = per-bin median over ``power``.

    Returns:
        ``(low_hz, high_hz)``: bin edges of the band; ``(nan, nan)`` when nothing in the span
        rises above the noise floor.
    """
    power = np.asarray(power, dtype=np.float64)
    n_bins, n_frames = power.shape
    if len(bin_edges_hz) != n_bins + 1:
        raise ValueError(f"frequency_box: {len(bin_edges_hz)} bin edges for {n_bins} bins")
    if not 0 <= start_frame < end_frame <= n_frames:
        raise ValueError(
            f"frequency_box: frames [{start_frame}, {end_frame}) outside the {n_frames} frames"
        )
    if noise_floor is None:
        noise_floor = np.median(power, axis=1)
    excess = np.maximum(power[:, start_frame:end_frame].mean(axis=1) - noise_floor, 0.0)  # (F,)
    return narrowest_band(excess, bin_edges_hz, energy_fraction)


def narrowest_band(
    excess: np.ndarray, bin_edges_hz: np.ndarray, energy_fraction: float = 0.9
) -> tuple[float, float]:
    """The smallest contiguous run of bins whose ``excess`` sums to ``energy_fraction`` of it all.

    Ties: the run with more excess, then the lowest one. Shared by :func:`frequency_box` and the
    energy detector (:mod:`biomae.detectors.energy`), which weigh the bins their own way.

    Args:
        excess: ``(F,)`` non-negative weight per bin (energy above the noise floor).
        bin_edges_hz: ``(F + 1,)`` increasing edges of the bins in Hz.
        energy_fraction: in (0, 1].

    Returns:
        ``(low_hz, high_hz)``: bin edges of the band; ``(nan, nan)`` when ``excess`` sums to 0.
    """
    excess = np.asarray(excess, dtype=np.float64)
    n_bins = len(excess)
    if len(bin_edges_hz) != n_bins + 1:
        raise ValueError(f"narrowest_band: {len(bin_edges_hz)} bin edges for {n_bins} bins")
    total = excess.sum()
    if not total > 0:
        return math.nan, math.nan
    cumulative = np.concatenate([[0.0], np.cumsum(excess)])  # (F + 1,) non-decreasing
    need = energy_fraction * total * (1 - 1e-12)
    # for every low edge lo, the first high edge hi whose run [lo, hi) holds `need`
    lows = np.arange(n_bins)
    highs = np.maximum(np.searchsorted(cumulative, cumulative[:-1] + need, side="left"), lows + 1)
    valid = highs <= n_bins
    lows, highs = lows[valid], highs[valid]  # lo = 0 always reaches the total
    energy = cumulative[highs] - cumulative[lows]
    # the narrowest run; among equals the one with more excess, then the lowest
    best = np.lexsort((lows, -energy, highs - lows))[0]
    lo, hi = int(lows[best]), int(highs[best])
    return float(bin_edges_hz[lo]), float(bin_edges_hz[hi])


# ----------------------------------------------------------------------------------------------
# Decoding


def decode_events(
    activity: np.ndarray,
    frame_hop_s: float,
    labels: Sequence[str],
    config: DecodeConfig | None = None,
    *,
    onset: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    power: np.ndarray | None = None,
    spec_hop_s: float | None = None,
    bin_edges_hz: np.ndarray | None = None,
    offset_s: float = 0.0,
    recording: str = "",
    source: str = "biomae",
) -> pd.DataFrame:
    """Turn frame probabilities into a canonical event table.

    Args:
        activity: ``(T, C)`` (or ``(T,)`` for one class) probabilities in [0, 1].
        frame_hop_s: seconds per frame (``DetectionHead.frame_hop_s``).
        labels: ``C`` class labels ("" for class-agnostic detection).
        config: thresholds etc.; default :class:`DecodeConfig`.
        onset, offset: ``(T, C)`` boundary probabilities for refinement (used when
            ``config.refine_search_s > 0``).
        power: ``(F, T_spec)`` linear power spectrogram of the same window for frequency boxes,
            frame ``j`` at ``j * spec_hop_s``; needs ``spec_hop_s`` and ``bin_edges_hz``.
        offset_s: added to all times (the window's start in the recording).
        recording, source: copied into every row.

    Returns:
        Event table (``biomae.annotations.schema``), sorted by start time; ``low_hz``/``high_hz``
        are NaN without ``power``.
    """
    config = config or DecodeConfig()
    activity = _as_frames_by_class(activity, "activity")
    n_frames, n_classes = activity.shape
    if len(labels) != n_classes:
        raise ValueError(f"decode_events: {len(labels)} labels for {n_classes} score columns")
    if not frame_hop_s > 0:
        raise ValueError(f"decode_events: frame_hop_s={frame_hop_s} must be > 0")
    if ((activity < 0) | (activity > 1)).any():
        raise ValueError("decode_events: activity must be probabilities in [0, 1] (apply sigmoid)")
    refine = config.refine_search_s > 0
    if refine and (onset is None or offset is None):
        raise ValueError("decode_events: refine_search_s > 0 needs onset and offset scores")
    if power is not None and (spec_hop_s is None or bin_edges_hz is None):
        raise ValueError("decode_events: frequency boxes need spec_hop_s and bin_edges_hz")
    tol = 1e-9
    gap_frames = int(math.floor(config.merge_gap_s / frame_hop_s + tol))
    min_frames = int(math.ceil(config.min_duration_s / frame_hop_s - tol))
    search_frames = int(round(config.refine_search_s / frame_hop_s))
    columns: dict[str, list] = {name: [] for name in ("start", "end", "low", "high", "score")}
    class_labels: list[str] = []
    for c, label in enumerate(labels):
        on, off = config.thresholds(label)
        segments = hysteresis_segments(activity[:, c], on, off)
        segments = drop_short(merge_segments(segments, gap_frames), min_frames)
        if refine:
            onset_c = _as_frames_by_class(onset, "onset")[:, c]
            offset_c = _as_frames_by_class(offset, "offset")[:, c]
            segments = refine_boundaries(segments, onset_c, offset_c, search_frames, on)
        if not len(segments):
            continue
        columns["start"].append(segments[:, 0])
        columns["end"].append(segments[:, 1])
        columns["score"].append(_span_scores(activity[:, c], segments, config.score))
        boxes = np.full((len(segments), 2), math.nan)
        if power is not None:
            boxes = _window_boxes(power, segments, frame_hop_s, spec_hop_s, bin_edges_hz, config)
        columns["low"].append(boxes[:, 0])
        columns["high"].append(boxes[:, 1])
        class_labels += [label] * len(segments)
    frames = {k: np.concatenate(v) if v else np.zeros(0) for k, v in columns.items()}
    events = make_events(
        {
            "start_s": offset_s + frames["start"] * frame_hop_s,
            "end_s": offset_s + frames["end"] * frame_hop_s,
            "low_hz": frames["low"],
            "high_hz": frames["high"],
            "label": class_labels,
            "score": frames["score"].astype(np.float64),
        },
        recording=recording,
        source=source,
    )
    return events.sort_values(["start_s", "end_s"], kind="stable").reset_index(drop=True)


def _span_scores(scores: np.ndarray, segments: np.ndarray, reduction: str) -> np.ndarray:
    """The maximum (or mean) of ``scores`` ``(T,)`` over each ``[start, end)`` of ``segments``."""
    if reduction == "max":  # reduceat over [s0, e0, s1, e1, ...]: the even entries are the spans
        padded = np.append(scores, 0.0)  # an end may be T
        return np.maximum.reduceat(padded, segments.reshape(-1))[::2]
    return np.array([scores[a:b].mean() for a, b in segments])  # pairwise sums, as before


def _window_boxes(power, segments, frame_hop_s, spec_hop_s, bin_edges_hz, config) -> np.ndarray:
    """``(K, 2)`` boxes of the segments from the window's spectrogram (:func:`frequency_box`)."""
    tol = 1e-9
    boxes = np.empty((len(segments), 2))
    for k, (start, end) in enumerate(segments):
        first = min(int(math.ceil(start * frame_hop_s / spec_hop_s - tol)), power.shape[1] - 1)
        last = int(math.ceil(end * frame_hop_s / spec_hop_s - tol))
        last = min(max(last, first + 1), power.shape[1])
        boxes[k] = frequency_box(power, bin_edges_hz, first, last, config.energy_fraction)
    return boxes


def _as_frames_by_class(scores: np.ndarray, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]  # (T, 1)
    if scores.ndim != 2:
        raise ValueError(f"decode_events: {name} must be (T,) or (T, C); got {scores.shape}")
    return scores


# ----------------------------------------------------------------------------------------------
# Targets


def _class_index(events: pd.DataFrame, labels: Sequence[str] | None) -> np.ndarray:
    if labels is None:
        return np.zeros(len(events), dtype=np.int64)
    lookup = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(events["label"]) - set(lookup))
    if unknown:
        raise ValueError(
            f"frame_targets: labels {unknown} are not among the classes {list(labels)}"
        )
    return events["label"].map(lookup).to_numpy(dtype=np.int64)


def frame_targets(
    events: pd.DataFrame,
    n_frames: int,
    frame_hop_s: float,
    labels: Sequence[str] | None = None,
    offset_s: float = 0.0,
) -> np.ndarray:
    """Binary activity targets: frame ``i`` is 1 for a class when its centre lies in an event.

    Args:
        events: event table with times in seconds (relative to ``offset_s``); events may extend
            past the window (only frames inside it exist).
        n_frames: frames in the window.
        frame_hop_s: seconds per frame.
        labels: class order; None = one class-agnostic column. A label outside ``labels`` raises.
        offset_s: subtracted from event times (the window's start).

    Returns:
        ``(n_frames, C)`` float32.
    """
    out = np.zeros((n_frames, 1 if labels is None else len(labels)), dtype=np.float32)
    classes = _class_index(events, labels)
    centers = (np.arange(n_frames) + 0.5) * frame_hop_s  # (T,)
    start = events["start_s"].to_numpy(np.float64) - offset_s
    end = events["end_s"].to_numpy(np.float64) - offset_s
    for a, b, c in zip(start, end, classes, strict=True):
        out[(centers >= a) & (centers <= b), c] = 1.0
    return out


def boundary_targets(
    events: pd.DataFrame,
    n_frames: int,
    frame_hop_s: float,
    labels: Sequence[str] | None = None,
    offset_s: float = 0.0,
    width_frames: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Onset / offset targets ``(n_frames, C)`` float32 each.

    The onset frame of an event is ``round(start / frame_hop_s)`` (the frame whose left edge is
    nearest the start), the offset frame ``round(end / frame_hop_s) - 1``; ``width_frames`` more
    frames on either side are also positive. Boundaries outside the window have no target.
    """
    n_classes = 1 if labels is None else len(labels)
    onset = np.zeros((n_frames, n_classes), dtype=np.float32)
    offset = np.zeros_like(onset)
    classes = _class_index(events, labels)
    start = events["start_s"].to_numpy(np.float64) - offset_s
    end = events["end_s"].to_numpy(np.float64) - offset_s
    for a, b, c in zip(start, end, classes, strict=True):
        for target, frame in (
            (onset, round(a / frame_hop_s)),
            (offset, round(b / frame_hop_s) - 1),
        ):
            lo, hi = max(frame - width_frames, 0), min(frame + width_frames + 1, n_frames)
            if lo < hi:
                target[lo:hi, c] = 1.0
    return onset, offset
