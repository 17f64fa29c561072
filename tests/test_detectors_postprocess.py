"""The post-processing every detector shares: band, merge, minimum duration, label."""

from __future__ import annotations

import math

import pytest

from biomae.annotations import make_events
from biomae.detectors.postprocess import PostProcess


def _events(rows):
    keys = ("start_s", "end_s", "low_hz", "high_hz", "score", "label")
    return make_events([dict(zip(keys, row, strict=True)) for row in rows], recording="r.wav")


EVENTS = _events(
    [
        (0.0, 0.5, 1000.0, 3000.0, 0.5, "call"),
        (0.6, 0.7, 4000.0, 6000.0, 0.9, "call"),  # 0.1 s after the first
        (1.0, 1.02, 200.0, 400.0, 0.4, "call"),  # low and short
        (2.0, 2.5, math.nan, math.nan, 0.7, "call"),  # no box
    ]
)


def test_band_drops_events_outside_it_and_clips_boxes():
    out = PostProcess(low_hz=2000, high_hz=5000).apply(EVENTS)
    assert out["start_s"].tolist() == [0.0, 0.6, 2.0]  # the 200-400 Hz event is gone
    assert out["low_hz"].tolist()[:2] == [2000.0, 4000.0]
    assert out["high_hz"].tolist()[:2] == [3000.0, 5000.0]
    assert math.isnan(out.loc[2, "low_hz"])  # kept: its box is unknown, not outside
    assert PostProcess(low_hz=6500).apply(EVENTS)["start_s"].tolist() == [2.0]


def test_merge_joins_events_up_to_the_gap_with_union_boxes_and_best_score():
    out = PostProcess(merge_gap_s=0.1).apply(EVENTS)
    assert out[["start_s", "end_s"]].values.tolist() == [[0.0, 0.7], [1.0, 1.02], [2.0, 2.5]]
    assert (out.loc[0, "low_hz"], out.loc[0, "high_hz"], out.loc[0, "score"]) == (
        1000.0,
        6000.0,
        0.9,
    )
    assert len(PostProcess(merge_gap_s=0.09).apply(EVENTS)) == 4


def test_merge_keeps_labels_apart_and_band_comes_first():
    two = _events([(0.0, 0.5, 1000, 2000, 0.5, "a"), (0.55, 1.0, 1000, 2000, 0.5, "b")])
    assert len(PostProcess(merge_gap_s=1.0).apply(two)) == 2
    # a low event between two in-band ones is dropped before merging: it bridges nothing
    chain = _events(
        [
            (0.0, 0.1, 3000, 4000, 0.5, "call"),
            (0.2, 0.3, 100, 200, 0.5, "call"),
            (0.6, 0.7, 3000, 4000, 0.5, "call"),
        ]
    )
    assert len(PostProcess(low_hz=1000, merge_gap_s=0.15).apply(chain)) == 2


def test_min_duration_after_merging_then_label():
    out = PostProcess(min_duration_s=0.5, label="bird").apply(EVENTS)
    assert out["start_s"].tolist() == [0.0, 2.0] and set(out["label"]) == {"bird"}
    merged = PostProcess(merge_gap_s=0.1, min_duration_s=0.7).apply(EVENTS)
    assert merged["start_s"].tolist() == [0.0]  # 0.0-0.7 after merging: exactly long enough


def test_nothing_given_changes_nothing_and_bad_settings_are_refused():
    assert PostProcess().apply(EVENTS).equals(EVENTS)
    with pytest.raises(ValueError, match="high_hz"):
        PostProcess(low_hz=5000, high_hz=100)
    with pytest.raises(ValueError, match="min_duration_s"):
        PostProcess(min_duration_s=-1)
    with pytest.raises(ValueError, match="label"):
        PostProcess(label=" ")
