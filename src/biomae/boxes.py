"""Frequency boxes of many events at once, from one shared spectrogram (no Python loop per event).

The batched form of :func:`biomae.decode.frequency_box` + :func:`biomae.decode.narrowest_band`
that :class:`biomae.detectors.model.ModelDetector` measures its events' boxes with: the same
arithmetic in the same order (means over each event's own frames, per-bin medians of its noise
frames, the narrowest band holding ``energy_fraction`` of the excess), so the boxes are the same
numbers as measuring the events one by one; it only removes the per-event Python overhead.

Frame conventions: ``spans`` rows are ``(context_start, start, end, context_end)`` spectrogram
frames of one event, ``context_start <= start < end <= context_end``; the event's own frames are
``[start, end)``, its context (the noise floor's frames) ``[context_start, start)`` and
``[end, context_end)``.
"""

from __future__ import annotations

import numpy as np

NOISE_FRAMES = 16  # context frames whose per-bin median is an event's noise floor
_MAX_CELLS = 1 << 22  # events * bins * (bins + 1) compared at once in narrowest_bands


def noise_frames(spans: np.ndarray) -> np.ndarray:
    """``(E, NOISE_FRAMES)`` frame indices spread evenly over each event's context outside it
    (``[context_start, start)`` then ``[end, context_end)``), repeating when there are fewer;
    all of ``[context_start, context_end)`` when fewer than 4 context frames lie outside it."""
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 4)
    c_lo, first, last, c_hi = spans.T
    n_before, n_after = first - c_lo, c_hi - last
    outside = n_before + n_after >= 4
    n = np.where(outside, n_before + n_after, c_hi - c_lo)  # frames picked from
    picks = np.linspace(0, n - 1, NOISE_FRAMES, axis=1).round().astype(np.int64)  # (E, N)
    skip = np.where(outside, last - first, 0)[:, None]  # jump over the event's own frames
    before = picks < np.where(outside, n_before, n)[:, None]
    return c_lo[:, None] + picks + np.where(before, 0, skip)


def frequency_boxes(
    power: np.ndarray, bin_edges_hz: np.ndarray, spans: np.ndarray, energy_fraction: float = 0.9
) -> np.ndarray:
    """Each event's band above its own noise floor (:func:`biomae.decode.frequency_box` with
    the noise floor of :func:`noise_frames`), for all events in one call.

    Args:
        power: ``(F, T)`` linear power spectrogram, bin 0 = lowest frequency.
        bin_edges_hz: ``(F + 1,)`` increasing bin edges in Hz.
        spans: ``(E, 4)`` int frames ``(context_start, start, end, context_end)`` (module
            docstring), within ``[0, T]``.
        energy_fraction: in (0, 1].

    Returns:
        ``(E, 2)`` ``(low_hz, high_hz)``; NaN rows where nothing rises above the noise floor.
    """
    power = np.asarray(power, dtype=np.float64)
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 4)
    n_bins = power.shape[0]
    if len(bin_edges_hz) != n_bins + 1:
        raise ValueError(f"frequency_boxes: {len(bin_edges_hz)} bin edges for {n_bins} bins")
    if len(spans) == 0:
        return np.zeros((0, 2))
    noise = np.median(power[:, noise_frames(spans)], axis=2)  # (F, E)
    first, last = spans[:, 1], spans[:, 2]
    mean = np.empty((len(spans), n_bins))  # (E, F): each event's mean power per bin
    lengths = last - first
    for length in np.unique(lengths):  # one gather per event length, not per event
        rows = np.flatnonzero(lengths == length)
        frames = first[rows, None] + np.arange(length)  # (e, length)
        mean[rows] = power[:, frames].mean(axis=2).T  # as power[:, a:b].mean(axis=1)
    excess = np.maximum(mean - noise.T, 0.0)  # (E, F)
    return narrowest_bands(excess, bin_edges_hz, energy_fraction)


def narrowest_bands(
    excess: np.ndarray, bin_edges_hz: np.ndarray, energy_fraction: float = 0.9
) -> np.ndarray:
    """:func:`biomae.decode.narrowest_band` of each row of ``excess`` ``(E, F)``: ``(E, 2)``
    band edges in Hz, NaN rows where a row sums to 0 (same ties: more excess, then lowest)."""
    excess = np.asarray(excess, dtype=np.float64)
    n_events, n_bins = excess.shape
    out = np.full((n_events, 2), np.nan)
    chunk = max(1, _MAX_CELLS // (n_bins * (n_bins + 1)))
    for lo_row in range(0, n_events, chunk):  # bounded memory: a chunk of events at a time
        rows = slice(lo_row, lo_row + chunk)
        out[rows] = _bands(excess[rows], np.asarray(bin_edges_hz), energy_fraction)
    return out


def _bands(excess: np.ndarray, bin_edges_hz: np.ndarray, energy_fraction: float) -> np.ndarray:
    n_events, n_bins = excess.shape
    total = excess.sum(axis=1)  # (E,)
    cumulative = np.concatenate([np.zeros((n_events, 1)), np.cumsum(excess, axis=1)], axis=1)
    need = energy_fraction * total * (1 - 1e-12)  # (E,)
    target = cumulative[:, :-1] + need[:, None]  # (E, F): what a run from each low edge needs
    # searchsorted(cumulative, target, "left") per row: how many cumulative values lie below
    highs = (cumulative[:, None, :] < target[:, :, None]).sum(axis=2)  # (E, F)
    lows = np.arange(n_bins)
    highs = np.maximum(highs, lows + 1)
    valid = highs <= n_bins
    energy = np.take_along_axis(cumulative, np.minimum(highs, n_bins), axis=1) - cumulative[:, :-1]
    width = np.where(valid, highs - lows, n_bins + 1)
    best = valid & (width == width.min(axis=1, keepdims=True))  # the narrowest runs
    best &= energy == np.where(best, energy, -np.inf).max(axis=1, keepdims=True)  # most excess
    lo = best.argmax(axis=1)  # then the lowest
    hi = highs[np.arange(n_events), lo]
    bands = np.stack([bin_edges_hz[lo], bin_edges_hz[hi]], axis=1).astype(np.float64)
    bands[~(total > 0)] = np.nan
    return bands
