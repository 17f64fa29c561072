"""Precision-recall curves and average precision of scored event predictions.

Convention: predictions are ranked by ``score`` (descending). At each distinct score ``t`` the
predictions with ``score >= t`` are matched one-to-one to the references exactly as
:func:`biomae.metrics.events.match_events` does (maximum-cardinality matching at the IoU
threshold, per recording and, with ``match_labels``, per label), so the curve's counts at ``t``
equal the event F1 counts of the predictions kept at that threshold. The matching is grown one
prediction at a time by an augmenting-path search (the maximum matching of a set plus one vertex is
the old one or that plus one augmenting path), which keeps the whole curve exact.

**AP** is the area under the *interpolated* curve (all-point interpolation, PASCAL VOC 2010+ and
COCO style): precision at recall ``r`` is replaced by the highest precision at any recall ``>= r``,
and AP = sum over curve points of (recall step) x (interpolated precision). Recall that is never
reached adds no area. AP is NaN for a class with no references (excluded from mAP) and 0 where
there are references but no predictions. mAP is the mean AP over classes with references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from biomae.metrics.events import MatchConfig, Regions, check_events, in_regions
from biomae.metrics.matching import candidate_blocks


@dataclass(frozen=True)
class PRCurve:
    """A precision-recall curve, one point per distinct score, in descending score order.

    Attributes:
        thresholds: (K,) scores; point k counts the predictions with score >= thresholds[k].
        tp: (K,) true positives at each point; fp: (K,) false positives.
        n_ref: number of references (tp + fn at every point).
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_ref: int

    @property
    def precision(self) -> np.ndarray:
        return self.tp / np.maximum(self.tp + self.fp, 1)

    @property
    def recall(self) -> np.ndarray:
        return self.tp / self.n_ref if self.n_ref else np.full(len(self.tp), math.nan)

    @property
    def ap(self) -> float:
        """Area under the interpolated curve (see the module docstring)."""
        if self.n_ref == 0:
            return math.nan
        if len(self.tp) == 0:
            return 0.0
        recall = np.concatenate([[0.0], self.recall])
        interpolated = np.maximum.accumulate(self.precision[::-1])[::-1]
        return float(np.sum(np.diff(recall) * interpolated))

    def best_f1(self) -> tuple[float, float]:
        """(threshold, F1) of the point with the highest F1; (NaN, NaN) without points."""
        if len(self.tp) == 0 or self.n_ref == 0:
            return math.nan, math.nan
        f1 = 2 * self.tp / (self.tp + self.fp + self.n_ref)
        k = int(np.argmax(f1))
        return float(self.thresholds[k]), float(f1[k])

    def as_frame(self) -> pd.DataFrame:
        """The curve as a table: threshold, tp, fp, fn, precision, recall."""
        return pd.DataFrame(
            {
                "threshold": self.thresholds,
                "tp": self.tp,
                "fp": self.fp,
                "fn": self.n_ref - self.tp,
                "precision": self.precision,
                "recall": self.recall,
            }
        )


@dataclass(frozen=True)
class APResult:
    """The pooled curve (all predictions ranked together) and, with ``match_labels``, per class."""

    overall: PRCurve
    per_class: dict[str, PRCurve] = field(default_factory=dict)

    @property
    def mean_ap(self) -> float:
        """mAP over classes with references; the pooled AP when there are no classes."""
        if not self.per_class:
            return self.overall.ap
        values = [c.ap for c in self.per_class.values() if c.n_ref]
        return float(np.mean(values)) if values else math.nan


def _augment(start: int, adjacency: dict[int, list[int]], owner: dict[int, int]) -> bool:
    """Try to match prediction ``start`` by an augmenting path; updates ``owner`` (ref -> pred)."""
    stack = [(start, iter(adjacency.get(start, ())))]
    chosen: list[int] = []  # chosen[i]: the reference stack[i] reaches for
    visited: set[int] = set()
    while stack:
        pred, refs = stack[-1]
        for ref in refs:
            if ref in visited:
                continue
            visited.add(ref)
            chosen.append(ref)
            if ref not in owner:  # free reference: flip the path
                for (p, _), r in zip(stack, chosen, strict=True):
                    owner[r] = p
                return True
            stack.append((owner[ref], iter(adjacency.get(owner[ref], ()))))
            break
        else:
            stack.pop()
            if chosen:
                chosen.pop()
    return False


def _curve(scores: np.ndarray, gained: np.ndarray, n_ref: int) -> PRCurve:
    """Curve from scores (N,) sorted descending and per-prediction TP increments (N,)."""
    if len(scores) == 0:
        empty = np.zeros(0)
        return PRCurve(empty, empty.astype(np.int64), empty.astype(np.int64), n_ref)
    last = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))  # end of each tie group
    tp = np.cumsum(gained)[last]
    return PRCurve(scores[last], tp, last + 1 - tp, n_ref)


def precision_recall(
    pred: pd.DataFrame,
    ref: pd.DataFrame,
    config: MatchConfig | None = None,
    *,
    regions: Regions | None = None,
) -> APResult:
    """Precision-recall curves and AP of scored predictions at ``config.iou_threshold``.

    Args:
        pred: predicted events with a finite ``score`` on every row.
        ref: reference events.
        config: IoU threshold, label matching, time or time-frequency IoU (default MatchConfig()).
        regions: per recording the annotated spans (events scored by midpoint, as in metrics).

    Returns:
        :class:`APResult`; ``per_class`` is filled when ``config.match_labels``.

    Raises:
        ValueError: a prediction has no score (NaN).
    """
    config = config or MatchConfig()
    check_events(pred, "prediction", config.use_frequency)
    check_events(ref, "reference", config.use_frequency)
    pred = pred[in_regions(pred, regions)].reset_index(drop=True)
    ref = ref[in_regions(ref, regions)].reset_index(drop=True)
    scores = pred["score"].to_numpy(float)
    missing = np.flatnonzero(np.isnan(scores))
    if len(missing):
        raise ValueError(
            f"prediction row {int(missing[0])}: no score; a precision-recall curve needs a score "
            f"on every prediction ({len(missing)} row(s) lack one)"
        )
    adjacency: dict[int, list[int]] = {}
    for _, _, _, singles, blocks in candidate_blocks(pred, ref, config, "iou"):
        for i, j in singles.tolist():
            adjacency[i] = [j]
        for cp, cr, hit, _ in blocks:
            for i, j in zip(*np.nonzero(hit), strict=True):
                adjacency.setdefault(int(cp[i]), []).append(int(cr[j]))
    order = np.argsort(-scores, kind="stable")
    owner: dict[int, int] = {}
    gained = np.array([_augment(int(i), adjacency, owner) for i in order], dtype=np.int64)
    overall = _curve(scores[order], gained, len(ref))
    per_class: dict[str, PRCurve] = {}
    if config.match_labels:
        pred_labels, ref_labels = pred["label"].to_numpy()[order], ref["label"].to_numpy()
        for label in sorted(set(pred_labels) | set(ref_labels)):
            mine = pred_labels == label
            per_class[label] = _curve(
                scores[order][mine], gained[mine], int((ref_labels == label).sum())
            )
    return APResult(overall=overall, per_class=per_class)
