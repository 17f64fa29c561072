"""Procedural calls and noise: generic animal-like sounds with exact times and bands.

The annotated recordings that a permissively licensed model may learn from are few and of few
species. Procedural calls add the *shapes* that vocalizations of other taxa take — frequency
sweeps with harmonics (birds, bats time-expanded), trills of repeated notes, harmonic stacks
(frogs, mammals), pulse trains (insects, frogs) and band-limited noise bursts (rasps, calls of
many taxa) — each drawn with random frequencies, durations and envelopes, so that a class-agnostic
detector learns "structured sound that stands out of the background" rather than one species.

Every generated :class:`~biomae.datasets.synth.sources.Snippet` knows its event exactly: the event
spans the non-zero part of its envelope, and ``low_hz`` / ``high_hz`` bound the instantaneous
frequencies of every partial (or the passband of filtered noise). The audio carries ``margin_s``
of silence either side, as cut snippets carry context.

:func:`noise_background` makes a stationary-ish background (coloured noise ``1/f^alpha`` with slow
level drift and an optional hum), which holds no unlisted calls — unlike real "unlabeled"
recordings, which often do.
"""

from __future__ import annotations

import numpy as np

from biomae.datasets.synth.sources import Snippet

KINDS = ("sweep", "trill", "stack", "pulses", "noise")
MIN_HZ = 200.0


def _envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` attack-decay envelope: raised-cosine ramps of random shares, peak 1, ends at 0."""
    attack = max(1, int(n * rng.uniform(0.05, 0.5)))
    release = max(1, int((n - attack) * rng.uniform(0.1, 0.9)))
    env = np.ones(n)
    env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    env[n - release :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, release + 1) / release)
    return env


def _tone(f_hz: np.ndarray, rate: int, n_harmonics: int, rng) -> tuple[np.ndarray, float, float]:
    """Sum of harmonics of the instantaneous frequency track ``f_hz`` that stay below 0.45 of
    the rate; returns (audio, low_hz, high_hz) over the partials kept."""
    nyquist_guard = 0.45 * rate
    phase = 2 * np.pi * np.cumsum(f_hz) / rate + rng.uniform(0, 2 * np.pi)
    audio = np.zeros(len(f_hz))
    high = 0.0
    for k in range(1, n_harmonics + 2):
        if k * f_hz.max() > nyquist_guard:
            break
        audio += rng.uniform(0.2, 1.0) ** (k - 1) * np.sin(k * phase)
        high = k * f_hz.max()
    return audio, float(f_hz.min()), float(high)


def _sweep(rate: int, top_hz: float, rng) -> tuple[np.ndarray, float, float]:
    n = int(rng.uniform(0.03, 0.8) * rate)
    f0, f1 = rng.uniform(MIN_HZ * 2, top_hz, size=2)
    shape = rng.uniform(0.3, 3.0)  # curvature of the sweep
    f = f0 + (f1 - f0) * np.linspace(0, 1, n) ** shape
    audio, low, high = _tone(f, rate, int(rng.integers(0, 4)), rng)
    return audio * _envelope(n, rng), low, high


def _trill(rate: int, top_hz: float, rng) -> tuple[np.ndarray, float, float]:
    """Repeated short notes with gaps under 25 ms: one event, as annotators box a trill."""
    note_n = int(rng.uniform(0.01, 0.06) * rate)
    gap_n = int(rng.uniform(0.003, 0.025) * rate)
    f0, f1 = rng.uniform(MIN_HZ * 4, top_hz, size=2)
    f = np.linspace(f0, f1, note_n)
    note, low, high = _tone(f, rate, int(rng.integers(0, 3)), rng)
    note *= _envelope(note_n, rng)
    n_notes = int(rng.integers(3, 16))
    unit = np.concatenate([note, np.zeros(gap_n)])
    audio = np.tile(unit, n_notes)[: n_notes * len(unit) - gap_n]
    return audio, low, high


def _stack(rate: int, top_hz: float, rng) -> tuple[np.ndarray, float, float]:
    """A low harmonic stack with slow pitch drift and amplitude modulation (croaks, howls)."""
    n = int(rng.uniform(0.1, 1.5) * rate)
    f0 = rng.uniform(MIN_HZ, min(1500.0, top_hz / 4))
    drift = f0 * rng.uniform(-0.3, 0.3)
    f = f0 + drift * np.sin(np.pi * np.linspace(0, 1, n))
    audio, low, high = _tone(f, rate, int(rng.integers(3, 10)), rng)
    am_hz = rng.uniform(0, 40)
    am = 1 - rng.uniform(0, 0.9) * (0.5 + 0.5 * np.sin(2 * np.pi * am_hz * np.arange(n) / rate))
    return audio * am * _envelope(n, rng), low, high


def _band_noise(n: int, rate: int, low: float, high: float, rng) -> np.ndarray:
    """White noise band-limited to exactly [low, high] Hz (FFT brick wall)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, n)


def _band(top_hz: float, rng) -> tuple[float, float]:
    low = rng.uniform(MIN_HZ * 2, 0.8 * top_hz)
    return low, min(top_hz, low * rng.uniform(1.2, 4.0))


def _pulses(rate: int, top_hz: float, rng) -> tuple[np.ndarray, float, float]:
    """Clicks (1-5 ms decaying noise, band-limited) repeated at 10-120 Hz."""
    low, high = _band(top_hz, rng)
    period_n = int(rate / rng.uniform(10, 120))
    click_n = min(period_n, int(rng.uniform(0.001, 0.005) * rate))
    n_clicks = int(rng.integers(3, 30))
    audio = np.zeros(period_n * (n_clicks - 1) + click_n)
    decay = np.exp(-np.arange(click_n) / (0.3 * click_n))
    for i in range(n_clicks):
        audio[i * period_n : i * period_n + click_n] += rng.standard_normal(click_n) * decay
    return _band_noise(len(audio), rate, low, high, rng), low, high


def _noise(rate: int, top_hz: float, rng) -> tuple[np.ndarray, float, float]:
    low, high = _band(top_hz, rng)
    n = int(rng.uniform(0.05, 0.5) * rate)
    return _band_noise(n, rate, low, high, rng) * _envelope(n, rng), low, high


GENERATORS = {"sweep": _sweep, "trill": _trill, "stack": _stack, "pulses": _pulses, "noise": _noise}


def procedural_snippets(
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    margin_s: float = 0.02,
    max_hz: float = 15_000.0,
    kinds: tuple[str, ...] = KINDS,
) -> list[Snippet]:
    """``n`` generated calls, kinds drawn uniformly from ``kinds``; each labelled by its kind,
    with unit RMS over its event, ``margin_s`` of silence either side, and exact event bounds.

    Raises:
        ValueError: an unknown kind, or ``max_hz`` too low for the rate.
    """
    unknown = sorted(set(kinds) - set(GENERATORS))
    if unknown or not kinds:
        raise ValueError(f"procedural_snippets: unknown kinds {unknown}; choose from {KINDS}")
    top_hz = min(max_hz, 0.45 * sample_rate)
    if top_hz < 8 * MIN_HZ:
        raise ValueError(f"procedural_snippets: {sample_rate} Hz leaves no room for calls")
    margin_n = round(margin_s * sample_rate)
    snippets = []
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        audio, low, high = GENERATORS[kind](sample_rate, top_hz, rng)
        # exact event: from the first to the last non-zero sample
        nonzero = np.flatnonzero(np.abs(audio) > 1e-9)
        audio = audio[nonzero[0] : nonzero[-1] + 1]
        audio = audio / max(float(np.sqrt(np.mean(audio**2))), 1e-12)
        padded = np.pad(audio, (margin_n, margin_n)).astype(np.float32)
        snippets.append(
            Snippet(
                audio=padded,
                event_offset_s=margin_n / sample_rate,
                event_duration_s=len(audio) / sample_rate,
                label=kind,
                taxon="procedural",
                low_hz=low,
                high_hz=high,
                origin=f"procedural:{kind}:{i}",
            )
        )
    return snippets


def noise_background(n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_samples,)`` float32 coloured noise ``1/f^alpha`` (alpha 0-2), RMS -50..-25 dBFS, with
    a slow level drift and, half the time, a mains-like hum: a background with no calls in it."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples, 1 / sample_rate)
    spectrum[1:] /= freqs[1:] ** (rng.uniform(0.0, 2.0) / 2)
    spectrum[0] = 0
    audio = np.fft.irfft(spectrum, n_samples)
    t_s = np.arange(n_samples) / sample_rate
    audio *= 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.01, 0.2) * t_s + rng.uniform(0, 6.3))
    if rng.random() < 0.5:
        hum_hz = rng.choice([50.0, 60.0])
        audio += 0.3 * np.std(audio) * np.sin(2 * np.pi * hum_hz * t_s)
    rms_db = rng.uniform(-50, -25)
    audio *= 10 ** (rms_db / 20) / max(float(np.std(audio)), 1e-12)
    return audio.astype(np.float32)
