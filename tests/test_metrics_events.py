"""Event / tolerance / frame metrics: hand-computed toy cases, regions, hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomae.annotations.schema import empty_events, make_events
from biomae.metrics.events import (
    Counts,
    MatchConfig,
    event_f1,
    frame_f1,
    in_regions,
    match_events,
    match_one_to_one,
    onset_offset_f1,
)


def events(*rows, recording="rec"):
    """Rows as (start_s, end_s[, label[, score]])."""
    out = []
    for row in rows:
        start_s, end_s, *rest = row
        label = rest[0] if rest else ""
        score = rest[1] if len(rest) > 1 else math.nan
        out.append(dict(start_s=start_s, end_s=end_s, label=label, score=score))
    return make_events(out, recording=recording) if out else empty_events()


def test_counts_scores_and_undefined_values():
    c = Counts(tp=3, fp=1, fn=2)
    assert (c.precision, c.recall) == (0.75, 0.6)
    assert c.f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert math.isnan(Counts(0, 0, 0).f1) and math.isnan(Counts(0, 0, 4).precision)
    assert Counts(0, 0, 4).f1 == 0.0


def test_one_prediction_overlapping_two_references_matches_one():
    ref = events((0.0, 1.0), (1.2, 2.2))
    pred = events((0.0, 2.2))  # IoU 1/2.2 = 0.45 with each reference
    s = event_f1(pred, ref)
    assert (s.overall.tp, s.overall.fp, s.overall.fn) == (1, 0, 1)


def test_duplicate_predictions_count_once():
    ref = events((1.0, 2.0))
    pred = events((1.0, 2.0), (1.0, 2.0), (1.05, 2.0))
    s = event_f1(pred, ref)
    assert (s.overall.tp, s.overall.fp, s.overall.fn) == (1, 2, 0)


def test_empty_tables():
    ref = events((0.0, 1.0), (2.0, 3.0))
    none = event_f1(empty_events(), ref).overall
    assert (none.tp, none.fp, none.fn, none.f1) == (0, 0, 2, 0.0)
    spurious = event_f1(ref, empty_events()).overall
    assert (spurious.tp, spurious.fp, spurious.fn) == (0, 2, 0)
    assert math.isnan(spurious.recall)
    assert math.isnan(event_f1(empty_events(), empty_events()).overall.f1)
    assert frame_f1(empty_events(), empty_events()).overall == Counts(0, 0, 0)


def test_iou_exactly_at_threshold_matches():
    ref = events((0.0, 1.0))
    assert event_f1(events((0.0, 0.3)), ref).overall.tp == 1  # IoU 0.3 exactly
    assert event_f1(events((0.7, 1.0)), ref).overall.tp == 1  # 0.30000000000000004 / 1
    assert event_f1(events((0.1, 0.4)), ref).overall.tp == 1  # 0.30000000000000004 / 1
    assert event_f1(events((0.0, 0.299)), ref).overall.tp == 0
    assert event_f1(events((0.0, 0.5)), ref, MatchConfig(iou_threshold=0.5)).overall.tp == 1


def test_maximum_cardinality_beats_maximum_iou():
    # A fits r1 perfectly but also reaches r2; B reaches only r1. Best IoU sum alone (A-r1)
    # would leave one TP; the one-to-one matching with the most pairs finds two.
    ref = events((0.0, 1.0), (0.5, 1.5))
    pred = events((0.0, 1.0), (0.0, 0.35))
    s = event_f1(pred, ref)
    assert s.overall.tp == 2
    assert sorted(map(tuple, s.pairs.tolist())) == [(0, 1), (1, 0)]


def test_match_one_to_one_prefers_larger_iou_among_equal_cardinality():
    hit = np.array([[True, True]])
    weight = np.array([[0.4, 0.9]])
    assert match_one_to_one(hit, weight).tolist() == [[0, 1]]


def test_labels_must_agree_when_asked_and_per_class_counts():
    ref = events((0, 1, "a"), (2, 3, "b"), (4, 5, "b"))
    pred = events((0, 1, "b"), (2, 3, "b"), (6, 7, "c"))
    agnostic = event_f1(pred, ref)
    assert agnostic.overall == Counts(2, 1, 1) and agnostic.per_class == {}
    labelled = event_f1(pred, ref, MatchConfig(match_labels=True))
    assert labelled.overall == Counts(1, 2, 2)
    assert labelled.per_class == {"a": Counts(0, 0, 1), "b": Counts(1, 1, 1), "c": Counts(0, 1, 0)}
    assert labelled.macro_f1 == pytest.approx(np.mean([0.0, 0.5, 0.0]))


def test_recordings_never_match_each_other():
    ref = events((0, 1), recording="x")
    pred = events((0, 1), recording="y")
    assert event_f1(pred, ref).overall == Counts(0, 1, 1)


def test_time_frequency_iou():
    ref = make_events([dict(start_s=0, end_s=1, low_hz=1000, high_hz=2000)], recording="r")
    same_time_other_band = ref.assign(low_hz=3000.0, high_hz=4000.0)
    config = MatchConfig(use_frequency=True)
    assert event_f1(same_time_other_band, ref).overall.tp == 1  # time IoU only
    assert event_f1(same_time_other_band, ref, config).overall.tp == 0
    assert event_f1(ref, ref, config).overall.tp == 1
    with pytest.raises(ValueError, match="use_frequency=True needs low_hz/high_hz"):
        event_f1(events((0, 1), recording="r"), ref, config)


def test_onset_offset_collars():
    ref = events((1.0, 3.0))  # offset collar max(0.2, 0.2 * 2 s) = 0.4 s
    config = MatchConfig(t_collar_s=0.2, offset_fraction=0.2)
    assert onset_offset_f1(events((1.2, 3.4)), ref, config).overall.tp == 1
    assert onset_offset_f1(events((1.21, 3.0)), ref, config).overall.tp == 0
    assert onset_offset_f1(events((1.0, 3.41)), ref, config).overall.tp == 0
    # a zero-length reference can still be matched by the tolerance criterion (IoU is 0)
    point = events((2.0, 2.0))
    assert onset_offset_f1(events((2.1, 2.1)), point).overall.tp == 1
    assert event_f1(events((2.0, 2.0)), point).overall.tp == 0


def test_regions_keep_events_by_midpoint():
    ref = events((0.0, 1.0), (5.0, 6.0), (9.0, 12.0))
    pred = events((0.0, 1.0), (7.0, 8.0), (9.0, 12.0))
    regions = {"rec": [(0.0, 6.0), (10.0, 11.0)]}  # midpoints 0.5, 5.5, 10.5 in; 7.5 out
    assert in_regions(pred, regions).tolist() == [True, False, True]
    s = event_f1(pred, ref, regions=regions)
    assert s.overall == Counts(2, 0, 1)
    assert s.pairs.tolist() == [[0, 0], [2, 2]]  # positions into the tables as given
    with pytest.raises(ValueError, match="no entry in regions"):
        event_f1(pred, ref, regions={"other": [(0, 1)]})


def test_frame_f1_counts_frames():
    ref = events((0.1, 0.2, "a"), (0.5, 0.6, "b"))
    pred = events((0.15, 0.25, "a"), (0.5, 0.6, "a"))
    config = MatchConfig(frame_s=0.01, match_labels=True)
    s = frame_f1(pred, ref, config)
    assert s.per_class["a"] == Counts(5, 5 + 10, 5)
    assert s.per_class["b"] == Counts(0, 0, 10)
    agnostic = frame_f1(pred, ref, MatchConfig(frame_s=0.01))
    assert agnostic.overall == Counts(15, 5, 5)
    # regions: only frames whose centre is in [0, 0.2] are scored
    s = frame_f1(pred, ref, MatchConfig(frame_s=0.01), regions={"rec": [(0.0, 0.2)]})
    assert s.overall == Counts(5, 0, 5)
    with pytest.raises(ValueError, match="after the recording's duration"):
        frame_f1(pred, ref, durations_s={"rec": 0.3})


def test_config_rejects_bad_values():
    for bad in (
        dict(iou_threshold=0.0),
        dict(iou_threshold=1.5),
        dict(frame_s=0),
        dict(t_collar_s=-1),
    ):
        with pytest.raises(ValueError):
            MatchConfig(**bad)


# ---------------------------------------------------------------- properties

intervals = st.lists(
    st.tuples(
        st.floats(0, 50, allow_nan=False),
        st.floats(0.05, 5, allow_nan=False),
        st.sampled_from("ab"),
    ),
    min_size=1,
    max_size=25,
)


def _table(rows, shift_s=0.0):
    return events(*[(s + shift_s, s + shift_s + d, label) for s, d, label in rows])


@settings(max_examples=25, deadline=None)
@given(intervals, st.booleans())
def test_perfect_prediction_scores_one(rows, match_labels):
    table = _table(rows)
    config = MatchConfig(match_labels=match_labels)
    for metric in (event_f1, onset_offset_f1, frame_f1):
        assert metric(table, table, config).overall.f1 == 1.0


@settings(max_examples=25, deadline=None)
@given(intervals)
def test_far_shifted_prediction_scores_zero(rows):
    ref, pred = _table(rows), _table(rows, shift_s=100.0)
    for metric in (event_f1, onset_offset_f1, frame_f1):
        assert metric(pred, ref).overall.tp == 0
        assert metric(pred, ref).overall.f1 == 0.0


@settings(max_examples=25, deadline=None)
@given(intervals, intervals, st.booleans())
def test_swapping_pred_and_ref_keeps_iou_tp(pred_rows, ref_rows, match_labels):
    pred, ref = _table(pred_rows), _table(ref_rows)
    config = MatchConfig(match_labels=match_labels)
    forward, backward = event_f1(pred, ref, config), event_f1(ref, pred, config)
    assert forward.overall.tp == backward.overall.tp
    assert (forward.overall.fp, forward.overall.fn) == (backward.overall.fn, backward.overall.fp)
    assert frame_f1(pred, ref, config).overall.tp == frame_f1(ref, pred, config).overall.tp


@settings(max_examples=20, deadline=None)
@given(intervals, intervals)
def test_matching_is_one_to_one_and_above_threshold(pred_rows, ref_rows):
    pred, ref = _table(pred_rows), _table(ref_rows)
    s = event_f1(pred, ref)
    assert len(set(s.pairs[:, 0])) == len(s.pairs) == len(set(s.pairs[:, 1]))
    for p, r in s.pairs:
        a, b = pred.iloc[p], ref.iloc[r]
        inter = max(0.0, min(a.end_s, b.end_s) - max(a.start_s, b.start_s))
        union = (a.end_s - a.start_s) + (b.end_s - b.start_s) - inter
        assert inter / union >= 0.3 - 1e-9
    # recording-wise splitting changes nothing: two copies in two recordings double every count
    twice = pd.concat([pred, pred.assign(recording="other")], ignore_index=True)
    twice_ref = pd.concat([ref, ref.assign(recording="other")], ignore_index=True)
    doubled = event_f1(twice, twice_ref).overall
    assert (doubled.tp, doubled.fp, doubled.fn) == tuple(
        2 * v for v in (s.overall.tp, s.overall.fp, s.overall.fn)
    )


@settings(max_examples=20, deadline=None)
@given(intervals, intervals, st.sampled_from(["iou", "onset_offset"]))
def test_sparse_components_equal_one_dense_matching(pred_rows, ref_rows, criterion):
    from biomae.metrics import matching

    pred, ref = _table(pred_rows), _table(ref_rows)
    config = MatchConfig(iou_threshold=0.1)
    p_box, r_box = matching.event_boxes(pred), matching.event_boxes(ref)
    # brute force: every pair, one dense matching over the whole recording
    p_all, r_all = np.meshgrid(np.arange(len(pred)), np.arange(len(ref)), indexing="ij")
    iou = matching._pair_iou(p_box[p_all.ravel()], r_box[r_all.ravel()], False)
    iou = iou.reshape(len(pred), len(ref))  # (P, R)
    if criterion == "iou":
        hit = iou >= 0.1 - 1e-9
    else:
        ref_len = (r_box[:, 1] - r_box[:, 0])[None, :]
        hit = np.abs(p_box[:, :1] - r_box[None, :, 0]) <= 0.2 + 1e-9
        hit &= np.abs(p_box[:, 1:2] - r_box[None, :, 1]) <= np.maximum(0.2, 0.2 * ref_len) + 1e-9
    dense = matching.match_one_to_one(hit, iou)
    sparse = match_events(pred, ref, config, criterion=criterion)
    assert sparse.overall.tp == len(dense)


def test_candidate_search_in_chunks_finds_the_same_pairs(monkeypatch):
    from biomae.metrics import matching

    rng = np.random.default_rng(3)
    start = rng.uniform(0, 30, 80)
    ref = make_events(dict(start_s=start, end_s=start + rng.uniform(0.1, 2, 80)), recording="r")
    pred = ref.assign(start_s=ref["start_s"] + rng.normal(0, 0.2, 80)).assign(
        start_s=lambda t: t["start_s"].clip(lower=0), end_s=lambda t: t["end_s"] + 0.1
    )
    whole = [event_f1(pred, ref).pairs, onset_offset_f1(pred, ref).pairs]
    monkeypatch.setattr(matching, "_MAX_PAIRS", 3)
    assert np.array_equal(event_f1(pred, ref).pairs, whole[0])
    assert np.array_equal(onset_offset_f1(pred, ref).pairs, whole[1])
