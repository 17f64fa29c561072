"""The post-processing every detector applies to its events, one implementation for all.

``biomae annotate``'s ``--low-hz/--high-hz``, ``--merge-gap-s``, ``--min-duration-s`` and
``--label`` mean exactly this, whichever detector ran (the energy detector, a trained model, or
the ``auto`` choice between them). In this order:

1. **Band** (``low_hz``, ``high_hz``, either may be None = open): an event whose frequency box
   ``[low_hz, high_hz]`` does not overlap the band is dropped; the box of one that does is clipped
   to the band. An event without a box (NaN, e.g. nothing rose above the noise floor) is kept.
   The energy detector also searches only inside the band, so its boxes already lie in it.
2. **Merge** (``merge_gap_s``): events of the same recording and label whose gap
   (``start_s`` of the next − the latest ``end_s`` so far) is at most ``merge_gap_s`` become one
   event: the first start, the latest end, the union of the boxes, the highest score.
3. **Minimum duration** (``min_duration_s``): events shorter than this (after merging) are dropped.
4. **Label** (``label``): written on every event.

A value of None leaves that step out. Times compare with a tolerance of a microsecond (the outputs'
resolution); a detector whose boundaries are quantised coarser passes its own ``gap_tolerance_s``
(the energy detector: one sample), so that a gap equal to the limit up to that rounding merges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

TOLERANCE_S = 1e-6  # times are rounded to the microsecond in the outputs


@dataclass(frozen=True)
class PostProcess:
    """The settings of :func:`postprocess` (None = that step is left out)."""

    low_hz: float | None = None
    high_hz: float | None = None
    merge_gap_s: float | None = None
    min_duration_s: float | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        for name in ("low_hz", "high_hz", "merge_gap_s", "min_duration_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value} must be a finite number >= 0")
        if self.low_hz is not None and self.high_hz is not None and self.high_hz <= self.low_hz:
            raise ValueError(f"high_hz ({self.high_hz:g}) must exceed low_hz ({self.low_hz:g})")
        if self.label is not None and not self.label.strip():
            raise ValueError("label must not be empty")

    def apply(self, events: pd.DataFrame, gap_tolerance_s: float = TOLERANCE_S) -> pd.DataFrame:
        """``events`` after the four steps of the module docstring (a new table)."""
        return postprocess(events, self, gap_tolerance_s)


def postprocess(
    events: pd.DataFrame, settings: PostProcess, gap_tolerance_s: float = TOLERANCE_S
) -> pd.DataFrame:
    """Band, merge, minimum duration and label (module docstring) applied to an event table."""
    events = keep_in_band(events, settings.low_hz, settings.high_hz)
    if settings.merge_gap_s is not None:
        events = merge_close(events, settings.merge_gap_s, gap_tolerance_s)
    if settings.min_duration_s is not None:
        events = drop_short(events, settings.min_duration_s)
    if settings.label is not None and len(events):
        events = events.assign(label=settings.label)
    return events.reset_index(drop=True)


def keep_in_band(events: pd.DataFrame, low_hz: float | None, high_hz: float | None):
    """Events whose box overlaps ``[low_hz, high_hz]``, boxes clipped to it (NaN boxes kept)."""
    if (low_hz is None and high_hz is None) or not len(events):
        return events
    low = events["low_hz"].to_numpy(np.float64)
    high = events["high_hz"].to_numpy(np.float64)
    band_low = -np.inf if low_hz is None else low_hz
    band_high = np.inf if high_hz is None else high_hz
    unknown = np.isnan(low) | np.isnan(high)
    keep = unknown | ((high >= band_low) & (low <= band_high))
    out = events[keep].copy()
    known = ~unknown[keep]
    out.loc[known, "low_hz"] = np.maximum(low[keep][known], band_low)
    out.loc[known, "high_hz"] = np.minimum(high[keep][known], band_high)
    return out


def merge_close(events: pd.DataFrame, max_gap_s: float, tolerance_s: float = TOLERANCE_S):
    """Join events of one recording and label at most ``max_gap_s`` apart (module docstring)."""
    if len(events) < 2:
        return events
    keys = [c for c in ("recording", "label") if c in events.columns]
    groups = events.groupby(keys, sort=False, dropna=False) if keys else [(None, events)]
    merged = [_merge_group(group, max_gap_s + tolerance_s) for _, group in groups]
    out = pd.concat(merged, ignore_index=True)
    return out.sort_values(["start_s", "end_s"], kind="stable").reset_index(drop=True)


def _merge_group(group: pd.DataFrame, max_gap_s: float) -> pd.DataFrame:
    group = group.sort_values(["start_s", "end_s"], kind="stable")
    starts = group["start_s"].to_numpy(np.float64)
    ends = group["end_s"].to_numpy(np.float64)
    # an event opens a new run when it starts more than max_gap_s after every earlier end
    latest_end = np.maximum.accumulate(ends)
    opens = np.concatenate([[True], starts[1:] - latest_end[:-1] > max_gap_s])
    run = np.cumsum(opens) - 1  # run index of each event
    if opens.all():
        return group
    first = group[opens].copy()  # every other column from the run's first event
    columns = {"end_s": "max", "low_hz": "min", "high_hz": "max", "score": "max"}
    columns = {c: how for c, how in columns.items() if c in group.columns}
    combined = group[list(columns)].groupby(run).agg(columns)  # NaN boxes are skipped
    for column in columns:
        first[column] = combined[column].to_numpy()
    return first


def drop_short(events: pd.DataFrame, min_duration_s: float) -> pd.DataFrame:
    """Events at least ``min_duration_s`` long (to the microsecond)."""
    if not len(events):
        return events
    return events[(events["end_s"] - events["start_s"]) >= min_duration_s - TOLERANCE_S]
