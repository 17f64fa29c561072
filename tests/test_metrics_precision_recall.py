"""Precision-recall curves and AP: hand-computed cases, agreement with event F1 per threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomae.annotations.schema import make_events
from biomae.metrics.events import MatchConfig, event_f1
from biomae.metrics.precision_recall import precision_recall


def events(rows, recording="rec"):
    """rows: (start_s, end_s, label, score)."""
    cols = ["start_s", "end_s", "label", "score"]
    return make_events([dict(zip(cols, row, strict=True)) for row in rows], recording=recording)


def test_hand_computed_ap():
    ref = events([(0, 1, "", math.nan), (2, 3, "", math.nan)])
    pred = events([(0, 1, "", 0.9), (5, 6, "", 0.8), (2, 3, "", 0.7)])
    result = precision_recall(pred, ref)
    curve = result.overall
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.7]
    assert curve.tp.tolist() == [1, 1, 2] and curve.fp.tolist() == [0, 1, 1]
    assert curve.recall.tolist() == [0.5, 0.5, 1.0]
    # interpolated precision at recall 0.5 is 1, at recall 1 is 2/3
    assert curve.ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert curve.best_f1() == pytest.approx((0.7, 0.8))
    table = curve.as_frame()
    assert list(table.columns) == ["threshold", "tp", "fp", "fn", "precision", "recall"]
    assert table["fn"].tolist() == [1, 1, 0]


def test_interpolation_lifts_precision_dips():
    ref = events([(i, i + 1, "", math.nan) for i in range(0, 8, 2)])  # 4 references
    # ranking: FP, TP, TP, FP, TP -> raw precision 0, .5, .67, .5, .6
    pred = events(
        [(20, 21, "", 0.9), (0, 1, "", 0.8), (2, 3, "", 0.7), (30, 31, "", 0.6), (4, 5, "", 0.5)]
    )
    curve = precision_recall(pred, ref).overall
    assert curve.ap == pytest.approx(0.25 * 2 / 3 + 0.25 * 2 / 3 + 0.25 * 0.6)


def test_ties_are_one_point_and_missing_classes():
    ref = events([(0, 1, "a", math.nan), (2, 3, "b", math.nan)])
    pred = events([(0, 1, "a", 0.5), (2, 3, "a", 0.5), (9, 10, "c", 0.4)])
    result = precision_recall(pred, ref, MatchConfig(match_labels=True))
    assert result.overall.thresholds.tolist() == [0.5, 0.4]
    assert result.overall.tp.tolist() == [1, 1]
    assert result.per_class["a"].ap == 0.5  # the tied pair is one point: precision 1/2, recall 1
    assert result.per_class["b"].ap == 0.0  # references, no predictions
    assert math.isnan(result.per_class["c"].ap)  # no references: left out of mAP
    assert result.mean_ap == pytest.approx(0.25)


def test_unscored_prediction_is_an_error():
    ref = events([(0, 1, "", math.nan)])
    with pytest.raises(ValueError, match="no score"):
        precision_recall(ref, ref)


def _interpolated_ap(precision, recall):
    """Independent all-point interpolated AP from raw curve arrays."""
    ap, previous = 0.0, 0.0
    for k in range(len(recall)):
        ap += (recall[k] - previous) * max(precision[k:])
        previous = recall[k]
    return ap


rows = st.lists(
    st.tuples(
        st.floats(0, 20, allow_nan=False),
        st.floats(0.1, 3, allow_nan=False),
        st.sampled_from("ab"),
        st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=20, deadline=None)
@given(rows, rows, st.booleans())
def test_curve_matches_event_f1_at_every_threshold(pred_rows, ref_rows, match_labels):
    pred = events([(s, s + d, lab, score) for s, d, lab, score in pred_rows])
    ref = events([(s, s + d, lab, math.nan) for s, d, lab, _ in ref_rows])
    config = MatchConfig(match_labels=match_labels)
    result = precision_recall(pred, ref, config)
    curve = result.overall
    for k, threshold in enumerate(curve.thresholds):
        kept = pred[pred["score"] >= threshold].reset_index(drop=True)
        counts = event_f1(kept, ref, config).overall
        assert (curve.tp[k], curve.fp[k], curve.n_ref - curve.tp[k]) == (
            counts.tp,
            counts.fp,
            counts.fn,
        )
    assert curve.ap == pytest.approx(_interpolated_ap(curve.precision, curve.recall))
    assert np.all(np.diff(curve.recall) >= 0)
    if match_labels:
        assert sum(c.tp[-1] for c in result.per_class.values() if len(c.tp)) == curve.tp[-1]
