"""Frequency boxes of many events in one call equal the boxes measured one event at a time."""

from __future__ import annotations

import numpy as np

from biomae.boxes import NOISE_FRAMES, frequency_boxes, noise_frames
from biomae.decode import frequency_box


def _spans(rng, n_frames, n_events):
    spans = []
    for _ in range(n_events):
        c_lo = int(rng.integers(0, n_frames - 2))
        c_hi = int(rng.integers(c_lo + 1, min(n_frames, c_lo + 120) + 1))
        first = int(rng.integers(c_lo, c_hi))
        last = int(rng.integers(first + 1, c_hi + 1))
        spans.append((c_lo, first, last, c_hi))
    return np.array(spans)


def _one_by_one_noise_frames(c_lo, first, last, c_hi):
    outside = np.r_[c_lo:first, last:c_hi]
    if len(outside) < 4:
        outside = np.arange(c_lo, c_hi)
    return outside[np.linspace(0, len(outside) - 1, NOISE_FRAMES).round().astype(int)]


def test_noise_frames_spread_over_the_context_outside_each_event():
    spans = _spans(np.random.default_rng(0), 400, 2000)
    expected = np.stack([_one_by_one_noise_frames(*span) for span in spans])
    np.testing.assert_array_equal(noise_frames(spans), expected)
    picks = noise_frames([(10, 10, 12, 13)])  # 1 frame outside: all the context is used
    assert set(picks[0]) == {10, 11, 12}


def test_boxes_of_many_events_are_the_numbers_of_one_at_a_time():
    rng = np.random.default_rng(1)
    spans = _spans(rng, 400, 1500)
    for n_bins in (7, 129, 257):
        power = rng.gamma(0.5, size=(n_bins, 400)) * (rng.random((n_bins, 1)) < 0.6)
        power[:, 50:60] = 1.0  # flat: nothing above the noise floor there
        edges_hz = np.linspace(150.0, 16000.0, n_bins + 1)
        noise = np.median(power[:, noise_frames(spans)], axis=2)  # (F, E)
        expected = np.array(
            [
                frequency_box(power[:, a:d], edges_hz, b - a, c - a, 0.9, noise[:, e])
                for e, (a, b, c, d) in enumerate(spans)
            ]
        )
        got = frequency_boxes(power, edges_hz, spans, 0.9)
        np.testing.assert_array_equal(got, expected)  # exactly: same arithmetic, same order
        assert np.isnan(got).any() and not np.isnan(got).all()
