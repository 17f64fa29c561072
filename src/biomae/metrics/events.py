"""Event, tolerance and frame metrics over canonical event tables (see annotations/schema.py).

Conventions (all documented here once; every function below follows them):

- **Groups.** Predictions and references are compared per ``recording`` and, when
  ``match_labels=True``, per ``label`` too (a prediction can only match a reference of its own
  label). With ``match_labels=False`` matching is class-agnostic.
- **One-to-one matching.** Inside a group, a prediction and a reference *can* match when they pass
  the criterion (IoU, or onset/offset collars). Among all one-to-one matchings the one with the most
  pairs is taken (maximum cardinality, as ``mir_eval.util.match_events``, sed_eval's ``optimal``
  matching and the DCASE few-shot bioacoustic evaluation); ties are broken by the largest total
  IoU. It is solved with ``scipy.optimize.linear_sum_assignment`` on weights ``BIG + IoU`` for
  candidate pairs (``BIG`` larger than any achievable IoU sum) and 0 otherwise.
- **IoU** is the time IoU ``|A ∩ B| / |A ∪ B|`` of the ``[start_s, end_s]`` intervals (the
  time-frequency box IoU with ``use_frequency=True``); a pair is a candidate when
  ``IoU >= iou_threshold - 1e-9`` (the slack absorbs float rounding at the threshold). Zero-length
  events have IoU 0 with everything (they can match only under the tolerance criterion).
- **Onset/offset tolerance** (sed_eval's event-based metric): a candidate when
  ``|Δonset| <= t_collar_s`` and ``|Δoffset| <= max(t_collar_s, offset_fraction * ref_duration)``.
- **Counts.** precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2tp / (2tp + fp + fn);
  a 0/0 is NaN (undefined), never a silent 0 or 1. Macro averages are the mean over classes (the
  labels found in either table) of the defined per-class values (NaN skipped); micro ("overall")
  values come from summed counts.
- **Regions.** Where only parts of files were annotated, pass ``regions``: for each recording a list
  of ``(start_s, end_s)`` spans. An *event* is scored when its midpoint ``(start_s + end_s) / 2``
  lies in a span (ends included); a *frame* is scored when its centre does. Events and frames
  outside are ignored, both in predictions and references. A recording of the tables that has no
  entry in ``regions`` is an error (its annotation status is unknown).
- **Frames** (``frame_f1``): frame ``i`` covers ``[i, i + 1) * frame_s``; an event is active in
  frames ``floor(start_s / frame_s)`` to ``ceil(end_s / frame_s) - 1`` (sed_eval's event roll;
  quotients are rounded to 6 decimals first so that 0.07 / 0.01 is 7, not 7.000000000000001).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from biomae.metrics.matching import candidate_blocks, event_boxes, match_groups, match_one_to_one

Regions = Mapping[str, Sequence[tuple[float, float]]]


@dataclass(frozen=True)
class MatchConfig:
    """How predictions match references.

    Attributes:
        iou_threshold: minimum IoU of a match, in (0, 1] (DCASE few-shot convention: 0.3).
        match_labels: a match needs equal labels; per-class results are reported.
        use_frequency: IoU of time-frequency boxes, not time intervals (all events need bands).
        t_collar_s: onset collar of the tolerance criterion, seconds (sed_eval: 0.2).
        offset_fraction: offset collar as a fraction of the reference duration (0.2 here; sed_eval's
            own default is 0.5).
        frame_s: frame length of :func:`frame_f1`, seconds.
    """

    iou_threshold: float = 0.3
    match_labels: bool = False
    use_frequency: bool = False
    t_collar_s: float = 0.2
    offset_fraction: float = 0.2
    frame_s: float = 0.01

    def __post_init__(self):
        if not 0 < self.iou_threshold <= 1:
            raise ValueError(f"iou_threshold={self.iou_threshold} must lie in (0, 1]")
        if not self.t_collar_s >= 0:
            raise ValueError(f"t_collar_s={self.t_collar_s} must be >= 0 seconds")
        if not self.offset_fraction >= 0:
            raise ValueError(f"offset_fraction={self.offset_fraction} must be >= 0")
        if not self.frame_s > 0:
            raise ValueError(f"frame_s={self.frame_s} must be > 0 seconds")


@dataclass(frozen=True)
class Counts:
    """True/false positives and false negatives, with the scores they imply (NaN where 0/0)."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else math.nan

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self) -> dict[str, float]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class Scores:
    """The result of one metric: overall (micro) counts, per-class counts and the macro average.

    ``per_class`` is empty for class-agnostic metrics. ``pairs`` holds the matched (pred_row,
    ref_row) row positions into the tables as given (after region filtering: into the originals).
    """

    overall: Counts
    per_class: dict[str, Counts] = field(default_factory=dict)
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    @property
    def macro_f1(self) -> float:
        """Mean per-class F1 over the classes where it is defined (the overall F1 if none)."""
        if not self.per_class:
            return self.overall.f1
        values = [c.f1 for c in self.per_class.values() if not math.isnan(c.f1)]
        return float(np.mean(values)) if values else math.nan

    def as_dict(self) -> dict:
        return {
            "overall": self.overall.as_dict(),
            "macro_f1": self.macro_f1,
            "per_class": {k: v.as_dict() for k, v in self.per_class.items()},
        }


def in_regions(events: pd.DataFrame, regions: Regions | None) -> np.ndarray:
    """Which events are scored: those whose midpoint lies in a region of their recording.

    Returns:
        A boolean mask of shape (n_events,); all True when ``regions`` is None.

    Raises:
        ValueError: an event's recording has no entry in ``regions``.
    """
    keep = np.ones(len(events), dtype=bool)
    if regions is None:
        return keep
    missing = sorted(set(events["recording"]) - set(regions))
    if missing:
        raise ValueError(
            f"recordings {missing[:5]} ({len(missing)} in all) have no entry in regions; "
            "give each recording its annotated spans (an empty list to ignore it)"
        )
    mid_s = (events["start_s"].to_numpy(float) + events["end_s"].to_numpy(float)) / 2
    rec = events["recording"].to_numpy()
    for name, spans in regions.items():
        rows = rec == name
        inside = np.zeros(int(rows.sum()), dtype=bool)
        for start_s, end_s in spans:
            inside |= (mid_s[rows] >= start_s) & (mid_s[rows] <= end_s)
        keep[rows] = inside
    return keep


def check_events(events: pd.DataFrame, what: str, need_bands: bool) -> None:
    for name in ("recording", "start_s", "end_s", "label"):
        if name not in events.columns:
            raise ValueError(f"{what} table lacks column {name!r} (build it with make_events)")
    if need_bands:
        bad = events["low_hz"].isna() | events["high_hz"].isna()
        if bad.any():
            raise ValueError(
                f"{what} row {int(np.flatnonzero(bad.to_numpy())[0])}: use_frequency=True needs "
                f"low_hz/high_hz on every event; {int(bad.sum())} row(s) have none"
            )


def match_events(
    pred: pd.DataFrame,
    ref: pd.DataFrame,
    config: MatchConfig = MatchConfig(),
    *,
    criterion: str = "iou",
    regions: Regions | None = None,
) -> Scores:
    """Score predicted events against reference events with one-to-one matching.

    Args:
        pred: predicted events (canonical table); ``score`` is not used here.
        ref: reference events.
        config: thresholds and whether labels must agree.
        criterion: ``"iou"`` (event F1 at ``config.iou_threshold``) or ``"onset_offset"``
            (sed_eval-style collars).
        regions: per recording the annotated spans; see the module docstring.

    Returns:
        :class:`Scores` with overall counts, per-class counts (``match_labels=True``) and the
        matched row pairs as positions into ``pred`` and ``ref``.
    """
    check_events(pred, "prediction", config.use_frequency)
    check_events(ref, "reference", config.use_frequency)
    pred_pos = np.flatnonzero(in_regions(pred, regions))
    ref_pos = np.flatnonzero(in_regions(ref, regions))
    pred_in = pred.iloc[pred_pos].reset_index(drop=True)
    ref_in = ref.iloc[ref_pos].reset_index(drop=True)
    per_class: dict[str, Counts] = {}
    all_pairs = []
    for key, p_idx, r_idx, singles, blocks in candidate_blocks(pred_in, ref_in, config, criterion):
        n_tp = len(singles)
        all_pairs.append(singles)
        for cp, cr, hit, weight in blocks:
            pairs = match_one_to_one(hit, weight)
            n_tp += len(pairs)
            all_pairs.append(np.stack([cp[pairs[:, 0]], cr[pairs[:, 1]]], axis=1))
        counts = Counts(n_tp, len(p_idx) - n_tp, len(r_idx) - n_tp)
        if config.match_labels:
            label = key[1]
            per_class[label] = per_class.get(label, Counts(0, 0, 0)) + counts
    if all_pairs:
        pairs = np.concatenate(all_pairs)
        pairs = np.stack([pred_pos[pairs[:, 0]], ref_pos[pairs[:, 1]]], axis=1)
        pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    else:
        pairs = np.zeros((0, 2), dtype=np.int64)
    n_tp = len(pairs)
    overall = Counts(n_tp, len(pred_in) - n_tp, len(ref_in) - n_tp)
    return Scores(overall=overall, per_class=dict(sorted(per_class.items())), pairs=pairs)


def event_f1(pred, ref, config: MatchConfig = MatchConfig(), *, regions=None) -> Scores:
    """Event F1 with one-to-one IoU matching (see :func:`match_events`)."""
    return match_events(pred, ref, config, criterion="iou", regions=regions)


def onset_offset_f1(pred, ref, config: MatchConfig = MatchConfig(), *, regions=None) -> Scores:
    """Event F1 with sed_eval's onset/offset collars (see :func:`match_events`)."""
    return match_events(pred, ref, config, criterion="onset_offset", regions=regions)


def _frame_roll(boxes: np.ndarray, n_frames: int, frame_s: float) -> np.ndarray:
    """Boolean activity of shape (n_frames,) for the event boxes (N, 4) of one recording/class."""
    roll = np.zeros(n_frames, dtype=bool)
    first = np.floor(np.round(boxes[:, 0] / frame_s, 6)).astype(np.int64)
    stop = np.ceil(np.round(boxes[:, 1] / frame_s, 6)).astype(np.int64)
    for a, b in zip(first, stop, strict=True):
        roll[a:b] = True
    return roll


def frame_f1(
    pred: pd.DataFrame,
    ref: pd.DataFrame,
    config: MatchConfig = MatchConfig(),
    *,
    regions: Regions | None = None,
    durations_s: Mapping[str, float] | None = None,
) -> Scores:
    """Frame-level F1: events rasterised on a grid of ``config.frame_s`` (see the module docstring).

    Counts are over (frame, class) cells: a cell is a TP when a reference and a prediction of that
    class are both active in the frame. ``durations_s`` gives each recording's length (default: the
    latest event end or region end); events past it are an error.
    """
    check_events(pred, "prediction", False)
    check_events(ref, "reference", False)
    frame_s = config.frame_s
    both = pd.concat([pred[["recording", "end_s"]], ref[["recording", "end_s"]]])
    last_end_s = both.groupby("recording")["end_s"].max().to_dict()
    grid: dict[str, tuple[int, np.ndarray]] = {}  # recording -> (n_frames, scored frames)
    for name, end_s in last_end_s.items():
        if durations_s is not None:
            if name not in durations_s:
                raise ValueError(f"recording {name!r} has no entry in durations_s")
            if end_s > durations_s[name] + 1e-3:
                raise ValueError(
                    f"recording {name!r}: an event ends at {end_s:g} s, after the recording's "
                    f"duration {durations_s[name]:g} s"
                )
            end_s = max(end_s, durations_s[name])
        if regions is not None:
            if name not in regions:
                raise ValueError(f"recording {name!r} has no entry in regions")
            end_s = max([end_s, *[b for _, b in regions[name]]])
        n_frames = int(math.ceil(round(end_s / frame_s, 6)))
        scored = np.ones(n_frames, dtype=bool)
        if regions is not None:
            centre_s = (np.arange(n_frames) + 0.5) * frame_s
            scored[:] = False
            for a_s, b_s in regions[name]:
                scored |= (centre_s >= a_s) & (centre_s <= b_s)
        grid[name] = (n_frames, scored)
    pred_boxes, ref_boxes = event_boxes(pred), event_boxes(ref)
    per_class: dict[str, Counts] = {}
    for key, p_idx, r_idx in match_groups(pred, ref, config.match_labels):
        n_frames, scored = grid[key[0]]
        pr = _frame_roll(pred_boxes[p_idx], n_frames, frame_s) & scored
        rr = _frame_roll(ref_boxes[r_idx], n_frames, frame_s) & scored
        tp = int((pr & rr).sum())
        label = key[1] if config.match_labels else ""
        counts = Counts(tp, int(pr.sum()) - tp, int(rr.sum()) - tp)
        per_class[label] = per_class.get(label, Counts(0, 0, 0)) + counts
    overall = sum(per_class.values(), Counts(0, 0, 0))
    if not config.match_labels:
        per_class = {}
    return Scores(overall=overall, per_class=dict(sorted(per_class.items())))
