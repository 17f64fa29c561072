"""Amplitude envelopes for a caller approaching or receding, with optional atmospheric absorption.

Two gain laws over the window (``t`` from 0 at the first sample to 1 at the last):

- ``"db_ramp"``: the level moves linearly in dB from ``start_db`` to ``end_db``;
- ``"spherical"``: the caller moves at constant speed from ``start_m`` to ``end_m``; the input is
  taken as heard at ``reference_m``, so the gain is ``reference_m / distance(t)`` (1/r spreading,
  -6 dB per doubling of distance).

Absorption (``"spherical"`` only, ``absorption=True``): air absorbs more at high frequencies. We use
``alpha(f) = db_per_m_at_1khz * (f / 1 kHz) ** exponent`` dB/m (defaults 0.005 dB/m and 1.5, a
rough fit to ISO 9613-1 at 20 degC, 50 % RH: about 0.005, 0.01, 0.03 and 0.1 dB/m at 1, 2, 4 and
8 kHz) and apply ``-alpha(f) * (distance - reference_m)`` dB in the STFT domain, frame by frame
(so a caller nearer than ``reference_m`` gains treble; n_fft 512, hop 128).

Audibility: each event's level change is the energy ratio output / input over its span (in the
STFT, over its frequency band when the event has one and absorption is on). An event whose level
falls more than ``audibility_floor_db`` below its original level gets ``audible = False``; it stays
in the table with its label and must not be trained as a positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from biomae.augment.core import check_audio, ensure_columns
from biomae.augment.noise import istft, stft

ABSORPTION_N_FFT = 512


@dataclass(frozen=True)
class EnvelopeConfig:
    """Random amplitude envelope (module docstring). Ranges are (low, high), drawn uniformly.

    Attributes:
        sample_rate: Hz.
        mode: "db_ramp" or "spherical".
        start_db, end_db: level at the first / last sample, dB ("db_ramp").
        start_m, end_m: caller distance at the first / last sample, metres ("spherical").
        reference_m: distance at which the input is taken to be heard, metres.
        absorption: apply frequency-dependent air absorption ("spherical" only).
        db_per_m_at_1khz, exponent: the absorption law ``alpha(f)``.
        audibility_floor_db: events whose level drops below this (dB re original, < 0) are
            marked ``audible = False``.
    """

    sample_rate: int
    mode: str = "db_ramp"
    start_db: tuple[float, float] = (-12.0, 0.0)
    end_db: tuple[float, float] = (-12.0, 0.0)
    start_m: tuple[float, float] = (5.0, 50.0)
    end_m: tuple[float, float] = (5.0, 50.0)
    reference_m: float = 10.0
    absorption: bool = False
    db_per_m_at_1khz: float = 0.005
    exponent: float = 1.5
    audibility_floor_db: float = -30.0

    def __post_init__(self) -> None:
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise ValueError(
                f"EnvelopeConfig: sample_rate must be a positive int, got {self.sample_rate}"
            )
        if self.mode not in ("db_ramp", "spherical"):
            raise ValueError(
                f"EnvelopeConfig: mode must be 'db_ramp' or 'spherical', got {self.mode!r}"
            )
        for name in ("start_db", "end_db", "start_m", "end_m"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"EnvelopeConfig: {name} low {low} exceeds high {high}")
        if min(*self.start_m, *self.end_m, self.reference_m) <= 0:
            raise ValueError("EnvelopeConfig: distances (start_m, end_m, reference_m) must be > 0")
        if self.absorption and self.mode != "spherical":
            raise ValueError("EnvelopeConfig: absorption needs mode='spherical' (distances)")
        if self.db_per_m_at_1khz < 0:
            raise ValueError(
                f"EnvelopeConfig: db_per_m_at_1khz must be >= 0, got {self.db_per_m_at_1khz}"
            )
        if not self.audibility_floor_db < 0:
            raise ValueError(
                f"EnvelopeConfig: audibility_floor_db must be < 0, got {self.audibility_floor_db}"
            )


def ramp(n_samples: int, start: float, end: float) -> np.ndarray:
    """Linear ramp ``(n_samples,)`` float32 from ``start`` (first sample) to ``end`` (last)."""
    return np.linspace(start, end, n_samples, dtype=np.float32)


def db_ramp_gain(n_samples: int, start_db: float, end_db: float) -> np.ndarray:
    """Amplitude gain ``(n_samples,)`` whose level moves linearly in dB from start to end.

    ``exp(a + b * i)`` is computed as the outer product of a coarse and a fine exponential
    (``i = 256 * j + k``), which needs one ``exp`` per 256 samples instead of one per sample.
    """
    if n_samples < 2:
        return np.full(n_samples, 10 ** (start_db / 20), dtype=np.float32)
    to_log = np.log(10) / 20
    slope = (end_db - start_db) * to_log / (n_samples - 1)  # natural-log gain per sample
    block = 256
    n_blocks = -(-n_samples // block)
    coarse = np.exp(start_db * to_log + slope * block * np.arange(n_blocks))  # (n_blocks,)
    fine = np.exp(slope * np.arange(block))  # (block,)
    grid = np.multiply.outer(coarse.astype(np.float32), fine.astype(np.float32))  # (blocks, 256)
    return grid.reshape(-1)[:n_samples]  # (n_samples,)


def spherical_gain(distance_m: np.ndarray, reference_m: float) -> np.ndarray:
    """Amplitude gain ``reference_m / distance_m`` (1/r spreading), same shape as ``distance_m``."""
    return (np.float32(reference_m) / distance_m).astype(np.float32)


def absorption_db(frequency_hz: np.ndarray, db_per_m_at_1khz: float, exponent: float) -> np.ndarray:
    """Air absorption in dB/m at each frequency (module docstring)."""
    return db_per_m_at_1khz * (np.asarray(frequency_hz, dtype=np.float64) / 1000.0) ** exponent


def _level_change_db(before: np.ndarray, after: np.ndarray) -> float:
    energy_before = float(np.sum(np.square(before, dtype=np.float64)))
    energy_after = float(np.sum(np.square(after, dtype=np.float64)))
    return 10 * np.log10((energy_after + 1e-20) / (energy_before + 1e-20))


def apply_envelope(
    audio: np.ndarray,
    events: pd.DataFrame,
    config: EnvelopeConfig,
    *,
    start: float,
    end: float,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Apply one envelope: ``start``/``end`` are dB ("db_ramp") or metres ("spherical").

    Returns the new audio and the events with ``audible`` updated (module docstring).
    """
    audio = check_audio(audio, "apply_envelope")
    n_samples, sample_rate = len(audio), config.sample_rate
    table = ensure_columns(events).copy(deep=False)
    if config.mode == "db_ramp":
        gain = db_ramp_gain(n_samples, start, end)
    else:
        distance = ramp(n_samples, start, end)
        gain = spherical_gain(distance, config.reference_m)
    out = audio * gain
    starts = np.floor(table["start_s"].to_numpy(np.float64) * sample_rate).astype(np.int64)
    ends = np.ceil(table["end_s"].to_numpy(np.float64) * sample_rate).astype(np.int64)
    if not config.absorption:
        change_db = [
            _level_change_db(audio[a:b], out[a:b]) for a, b in zip(starts, ends, strict=True)
        ]
    else:
        n_fft = ABSORPTION_N_FFT
        hop = n_fft // 4
        spec_in = stft(audio, n_fft, hop)  # (F, T)
        frame_centre = np.arange(spec_in.shape[1]) * hop  # samples
        frame_distance = start + (end - start) * np.clip(frame_centre / max(n_samples - 1, 1), 0, 1)
        frequency_hz = np.fft.rfftfreq(n_fft, 1 / sample_rate)
        alpha = absorption_db(frequency_hz, config.db_per_m_at_1khz, config.exponent)
        atten_db = -alpha[:, None] * (frame_distance[None, :] - config.reference_m)  # (F, T)
        spec_out = stft(out, n_fft, hop) * (10 ** (atten_db / 20)).astype(np.float32)  # (F, T)
        out = istft(spec_out, n_fft, hop, n_samples)
        low = table["low_hz"].to_numpy(np.float64)
        high = table["high_hz"].to_numpy(np.float64)
        change_db = []
        for a, b, lo, hi in zip(starts, ends, low, high, strict=True):
            # frames whose centre lies within half a hop of the span
            frames = (frame_centre >= a - hop // 2) & (frame_centre < b + hop // 2)
            bins = np.ones_like(frequency_hz, dtype=bool)
            if np.isfinite(lo):  # the event's band; the nearest bin when it is narrower than one
                bins = (frequency_hz >= lo) & (frequency_hz <= hi)
                bins[np.argmin(np.abs(frequency_hz - (lo + hi) / 2))] = True
            before = np.abs(spec_in[bins][:, frames])
            change_db.append(_level_change_db(before, np.abs(spec_out[bins][:, frames])))
    if len(table):
        quiet = np.asarray(change_db) < config.audibility_floor_db
        table["audible"] = table["audible"].to_numpy(bool) & ~quiet
    return out, table


@dataclass
class AmplitudeEnvelope:
    """Random :func:`apply_envelope` with start/end drawn from the config's ranges."""

    config: EnvelopeConfig

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        if self.config.mode == "db_ramp":
            start, end = rng.uniform(*self.config.start_db), rng.uniform(*self.config.end_db)
        else:
            start, end = rng.uniform(*self.config.start_m), rng.uniform(*self.config.end_m)
        return apply_envelope(audio, events, self.config, start=start, end=end)
