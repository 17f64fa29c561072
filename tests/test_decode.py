"""Decoding on hand-made score curves, frequency boxes on a synthetic tone, and frame targets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biomae.annotations.schema import make_events, validate_events
from biomae.decode import (
    DecodeConfig,
    boundary_targets,
    decode_events,
    edges_from_centers,
    frame_targets,
    frequency_box,
    hysteresis_segments,
)

HOP = 0.02


def _curve(*runs, n=50, base=0.0):
    """Scores ``base`` everywhere except ``(start, end, value)`` runs of frames."""
    scores = np.full(n, base)
    for start, end, value in runs:
        scores[start:end] = value
    return scores


def _spans(events):
    return [
        (round(s / HOP), round(e / HOP)) for s, e in zip(events.start_s, events.end_s, strict=True)
    ]


def test_hysteresis_extends_to_off_and_needs_on():
    scores = _curve((5, 8, 0.4), (8, 10, 0.9), (10, 14, 0.4), (20, 25, 0.4))
    # the 0.4 shoulders join the 0.9 core; the lone 0.4 run never reaches 'on'
    assert hysteresis_segments(scores, 0.5, 0.3).tolist() == [[5, 14]]
    # without hysteresis the shoulders are cut off
    assert hysteresis_segments(scores, 0.5, 0.5).tolist() == [[8, 10]]


def test_hysteresis_splits_on_a_dip_below_off():
    scores = _curve((5, 10, 0.9), (10, 11, 0.2), (11, 15, 0.9))
    assert hysteresis_segments(scores, 0.5, 0.3).tolist() == [[5, 10], [11, 15]]
    assert hysteresis_segments(scores, 0.5, 0.1).tolist() == [[5, 15]]


def test_events_at_the_edges_of_the_window():
    scores = _curve((0, 3, 0.9), (47, 50, 0.9))
    events = decode_events(scores, HOP, [""])
    assert _spans(events) == [(0, 3), (47, 50)]


def test_min_duration_drops_blips_and_merge_gap_joins():
    scores = _curve((5, 15, 0.9), (17, 27, 0.8), (35, 36, 0.95))
    plain = decode_events(scores, HOP, ["a"])
    assert _spans(plain) == [(5, 15), (17, 27), (35, 36)]
    cfg = DecodeConfig(min_duration_s=0.05, merge_gap_s=0.04)  # 2.5 frames, 2 frames
    joined = decode_events(scores, HOP, ["a"], cfg)
    assert _spans(joined) == [(5, 27)]
    assert joined.score.tolist() == [pytest.approx(0.9)]
    # a gap of 2 frames is not joined by a 1-frame merge gap
    assert _spans(decode_events(scores, HOP, ["a"], DecodeConfig(merge_gap_s=0.02))) == _spans(
        plain
    )


def test_merge_happens_before_min_duration():
    scores = _curve((5, 7, 0.9), (8, 10, 0.9))  # two 2-frame pieces, 1-frame gap
    cfg = DecodeConfig(min_duration_s=0.1, merge_gap_s=0.02)
    assert _spans(decode_events(scores, HOP, [""], cfg)) == [(5, 10)]


def test_per_class_thresholds_and_labels():
    activity = np.stack([_curve((5, 10, 0.6)), _curve((20, 30, 0.6))], axis=1)  # (T, 2)
    cfg = DecodeConfig(threshold_on=0.5, class_thresholds={"owl": [0.7, 0.5]})
    events = decode_events(activity, HOP, ["wren", "owl"], cfg, offset_s=10.0, recording="r.flac")
    assert events.label.tolist() == ["wren"]
    assert events.start_s.tolist() == [pytest.approx(10.1)]
    assert events.recording.tolist() == ["r.flac"]
    validate_events(events)
    with pytest.raises(ValueError, match="need 0 <= off <= on"):
        DecodeConfig(class_thresholds={"owl": [0.3, 0.5]})


def test_mean_score_and_probability_checks():
    scores = _curve((5, 7, 0.6), (7, 9, 1.0))
    assert decode_events(scores, HOP, [""], DecodeConfig(score="mean")).score[0] == pytest.approx(
        0.8
    )
    with pytest.raises(ValueError, match="probabilities"):
        decode_events(scores * 3, HOP, [""])
    with pytest.raises(ValueError, match="2 labels for 1"):
        decode_events(scores, HOP, ["a", "b"])


def test_boundary_refinement_moves_to_peaks():
    activity = _curve((10, 20, 0.9))
    onset = _curve((8, 9, 0.8))
    offset = _curve((21, 22, 0.8))
    cfg = DecodeConfig(refine_search_s=0.06)  # 3 frames
    events = decode_events(activity, HOP, [""], cfg, onset=onset, offset=offset)
    assert _spans(events) == [(8, 22)]
    weak = decode_events(activity, HOP, [""], cfg, onset=onset * 0.5, offset=offset * 0.5)
    assert _spans(weak) == [(10, 20)]


def _tone_spectrogram(n_frames=200, low_bin=40, high_bin=52, on=(80, 120), seed=0):
    rng = np.random.default_rng(seed)
    power = rng.exponential(1.0, size=(128, n_frames))  # noise floor ~1 per bin
    power[low_bin:high_bin, on[0] : on[1]] += 50.0
    return power


def test_frequency_box_brackets_a_tone():
    edges = np.linspace(0, 16000, 129)  # 125 Hz bins
    power = _tone_spectrogram()
    low_hz, high_hz = frequency_box(power, edges, 80, 120, energy_fraction=0.9)
    assert 40 * 125 <= low_hz <= 42 * 125 and 50 * 125 <= high_hz <= 52 * 125
    full = frequency_box(power, edges, 80, 120, energy_fraction=1.0)
    assert full[0] <= 40 * 125 and full[1] >= 52 * 125
    assert all(math.isnan(v) for v in frequency_box(np.ones((128, 50)), edges, 10, 20))


def test_decode_adds_frequency_boxes():
    power = _tone_spectrogram()  # spectrogram at 10 ms, tone on 0.8 - 1.2 s
    activity = np.zeros(100)  # head at 20 ms
    activity[40:60] = 0.9
    centers = np.arange(128) * 125.0 + 62.5
    events = decode_events(
        activity,
        HOP,
        ["tone"],
        power=power,
        spec_hop_s=0.01,
        bin_edges_hz=edges_from_centers(centers),
    )
    assert len(events) == 1
    assert 40 * 125 <= events.low_hz[0] < events.high_hz[0] <= 52 * 125
    validate_events(events, sample_rate=32000)


def test_frame_targets_use_frame_centres_and_round_trip():
    events = make_events(
        [
            {"start_s": 0.10, "end_s": 0.305, "label": "a"},
            {"start_s": 0.55, "end_s": 0.70, "label": "b"},
            {"start_s": 0.95, "end_s": 2.0, "label": "a"},  # runs past the 1-s window
        ]
    )
    targets = frame_targets(events, 50, HOP, labels=["a", "b"])
    assert targets.shape == (50, 2) and targets.dtype == np.float32
    assert np.flatnonzero(targets[:, 0]).tolist() == [*range(5, 15), 47, 48, 49]
    assert np.flatnonzero(targets[:, 1]).tolist() == list(range(27, 35))
    decoded = decode_events(targets, HOP, ["a", "b"])
    assert decoded.label.tolist() == ["a", "b", "a"]
    assert np.allclose(decoded.start_s, [0.10, 0.54, 0.94]) and np.allclose(
        decoded.end_s[:2], [0.30, 0.70]
    )
    with pytest.raises(ValueError, match=r"\['c'\]"):
        frame_targets(make_events([{"start_s": 0, "end_s": 1, "label": "c"}]), 50, HOP, ["a"])


def test_frame_targets_class_agnostic_with_window_offset():
    events = make_events([{"start_s": 12.0, "end_s": 12.2, "label": "x"}])
    targets = frame_targets(events, 50, HOP, offset_s=11.9)
    assert targets.shape == (50, 1)
    assert np.flatnonzero(targets[:, 0]).tolist() == list(range(5, 15))


def test_boundary_targets():
    events = make_events([{"start_s": 0.10, "end_s": 0.30}, {"start_s": 0.9, "end_s": 1.5}])
    onset, offset = boundary_targets(events, 50, HOP, width_frames=1)
    assert np.flatnonzero(onset[:, 0]).tolist() == [4, 5, 6, 44, 45, 46]
    assert np.flatnonzero(offset[:, 0]).tolist() == [13, 14, 15]  # the second ends past the window


def _decode_one_event_at_a_time(activity, config):
    """The decoding as it was written before it was vectorised: a Python loop per segment."""
    rows = []
    for c in range(activity.shape[1]):
        on, off = config.thresholds("")
        above = np.concatenate([[False], activity[:, c] >= off, [False]])
        runs = np.flatnonzero(np.diff(above.astype(np.int8))).reshape(-1, 2)
        runs = [(a, b) for a, b in runs if (activity[a:b, c] >= on).any()]
        merged = []
        for a, b in runs:
            if merged and a - merged[-1][1] <= round(config.merge_gap_s / HOP):
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        for a, b in merged:
            if b - a >= math.ceil(config.min_duration_s / HOP - 1e-9):
                span = activity[a:b, c]
                score = span.max() if config.score == "max" else span.mean()
                rows.append({"start_s": a * HOP, "end_s": b * HOP, "score": float(score)})
    return make_events(rows, source="biomae").sort_values(["start_s", "end_s"], kind="stable")


@pytest.mark.parametrize("score", ["max", "mean"])
def test_vectorised_decoding_gives_the_events_of_a_loop_per_segment(score):
    rng = np.random.default_rng(0)
    activity = np.clip(rng.normal(0.3, 0.3, (5000, 2)).cumsum(axis=0) % 1.0, 0, 1)  # (T, C)
    config = DecodeConfig(threshold_on=0.7, threshold_off=0.4, merge_gap_s=0.06,
                          min_duration_s=0.1, score=score)  # fmt: skip
    events = decode_events(activity, HOP, ["", ""], config)
    expected = _decode_one_event_at_a_time(activity, config).reset_index(drop=True)
    assert len(events) > 100
    np.testing.assert_array_equal(events["start_s"], expected["start_s"])
    np.testing.assert_array_equal(events["end_s"], expected["end_s"])
    np.testing.assert_array_equal(events["score"], expected["score"])  # bit for bit
