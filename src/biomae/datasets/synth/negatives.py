"""Hard negatives: generated sound with no animal in it, for call-free training soundscapes.

A detector that has only seen calls on quiet backgrounds fires on whatever else is loud or odd.
:func:`hard_negative` draws one of :data:`NEGATIVE_KINDS`:

- ``white``, ``pink``, ``brown``: stationary noise ``1/f^alpha`` (alpha 0, 1, 2) at an RMS level
  uniform in ``level_dbfs`` (default −80 to −10 dBFS: from a quiet recorder to a loud one);
- ``dither``: digital silence with 16-bit TPDF dither (about −101 dBFS), as in padded or muted
  files;
- ``clicks``: handling noise — sparse clicks and low thumps (decaying 20-200 Hz bursts) over quiet
  pink noise;
- ``rain``: impulse noise — Poisson drops (50-400 per s), each a short decaying broadband burst of
  random level, over quiet pink noise.

Soundscapes built on them (``SynthConfig.negative_prob``) hold no call, so their tables are empty.
"""

from __future__ import annotations

import numpy as np

NEGATIVE_KINDS = ("white", "pink", "brown", "dither", "clicks", "rain")
LEVEL_DBFS = (-80.0, -10.0)


def coloured_noise(n_samples: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """``(n_samples,)`` noise with power spectrum ``1/f^alpha`` and unit RMS (float64)."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] /= freqs[1:] ** (alpha / 2)
    spectrum[0] = 0
    audio = np.fft.irfft(spectrum, n_samples)
    return audio / max(float(np.std(audio)), 1e-12)


def _at_level(audio: np.ndarray, level_dbfs: float) -> np.ndarray:
    return audio * (10 ** (level_dbfs / 20) / max(float(np.std(audio)), 1e-12))


def _bursts(n_samples: int, onsets: np.ndarray, make, rng) -> np.ndarray:
    """Sum of ``make(rng) -> (m,)`` bursts starting at each onset (cut at the end)."""
    out = np.zeros(n_samples)
    for onset in onsets:
        burst = make(rng)
        stop = min(n_samples, onset + len(burst))
        out[onset:stop] += burst[: stop - onset]
    return out


def hard_negative(
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    kind: str | None = None,
    level_dbfs: tuple[float, float] = LEVEL_DBFS,
) -> tuple[np.ndarray, str]:
    """One call-free background (module docstring) and its kind.

    Args:
        n_samples, sample_rate: length and rate of the audio.
        rng: the random generator (the same seed gives the same audio).
        kind: one of :data:`NEGATIVE_KINDS`; None draws one uniformly.
        level_dbfs: (low, high) RMS level of the noise kinds, dB re full scale.

    Returns:
        ``(audio (n_samples,) float32, kind)``, peak at most 0.99.
    """
    if kind is None:
        kind = NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))]
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"hard_negative: kind {kind!r} is not one of {NEGATIVE_KINDS}")
    if not level_dbfs[0] <= level_dbfs[1] <= 0:
        raise ValueError(f"hard_negative: need low <= high <= 0 dBFS, got {level_dbfs}")
    level = float(rng.uniform(*level_dbfs))
    if kind in ("white", "pink", "brown"):
        alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
        audio = _at_level(coloured_noise(n_samples, alpha, rng), level)
    elif kind == "dither":  # TPDF dither of one 16-bit step
        audio = (rng.random(n_samples) - rng.random(n_samples)) / 32768
    else:
        audio = _at_level(coloured_noise(n_samples, 1.0, rng), min(level, -60.0))
        duration_s = n_samples / sample_rate
        if kind == "clicks":
            n_events = int(rng.poisson(max(1.0, 0.5 * duration_s)))

            def make(rng):  # a click (a few samples) or a thump (decaying low tone)
                if rng.random() < 0.5:
                    return rng.standard_normal(int(rng.integers(1, 8)))
                m = int(rng.uniform(0.02, 0.2) * sample_rate)
                t_s = np.arange(m) / sample_rate
                tone = np.sin(2 * np.pi * rng.uniform(20, 200) * t_s)
                return tone * np.exp(-t_s / rng.uniform(0.01, 0.05))
        else:  # rain
            n_events = int(rng.poisson(rng.uniform(50, 400) * duration_s))

            def make(rng):  # a drop: a short decaying broadband burst
                m = max(2, int(rng.uniform(0.001, 0.01) * sample_rate))
                decay = np.exp(-np.arange(m) / (m / 4))
                return rng.standard_normal(m) * decay * 10 ** (rng.uniform(-30, 0) / 20)

        onsets = rng.integers(0, max(1, n_samples), size=n_events)
        impulses = _bursts(n_samples, onsets, make, rng)
        if np.any(impulses):
            audio = audio + impulses * (10 ** (level / 20) / np.max(np.abs(impulses)))
    peak = float(np.max(np.abs(audio))) if n_samples else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    return audio.astype(np.float32), kind
