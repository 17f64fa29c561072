"""Noise addition (coloured and real background noise at a target SNR) and spectral gating.

Coloured noise is generated in the frequency domain: the rfft bins ``k >= 1`` get independent
complex Gaussian values scaled by ``k ** (-beta / 2)`` (DC is zero), so the expected power
spectrum is exactly ``1 / f ** beta`` (white ``beta = 0``, pink 1, brown 2); ``irfft`` gives the
signal, normalised to unit mean square. White noise is drawn directly in the time domain.

SNR convention for :func:`add_noise`: the signal power is the input audio's mean square over the
whole window (floored at ``floor_db`` dB re full scale, default -100 dBFS, so a silent window gets
noise at ``floor_db - snr_db``); the noise is scaled to mean square
``P_signal / 10 ** (snr_db / 10)``.

:func:`reduce_noise` is spectral gating with the noise profile estimated from the recording
itself: STFT magnitude in dB; per frequency bin, the frames at or below the ``quantile`` of that
bin are taken as noise, and the gate threshold is their mean plus ``k_std`` standard deviations
(dB); bins above threshold pass, others are lowered by ``attenuation_db``; the binary mask is
smoothed over ``smooth_bins`` x ``smooth_frames`` and applied, and the inverse STFT gives audio of
the same length. A call must be absent from at least ``1 - quantile`` of the frames in its bins
to be kept (a tone that never stops is indistinguishable from stationary noise).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from biomae.augment.core import check_audio

NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def stft(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Periodic-Hann STFT, frame ``t`` centred at sample ``t * hop`` (zero padding at the ends).

    Args:
        audio: float ``(n_samples,)``.
        n_fft: window and FFT length; ``hop`` must divide it and be at most ``n_fft // 2``.

    Returns:
        ``(n_fft // 2 + 1, n_samples // hop + 1)`` complex64.
    """
    import scipy.fft

    _check_stft(n_fft, hop)
    n_frames = len(audio) // hop + 1
    padded = np.zeros((n_frames - 1) * hop + n_fft, dtype=np.float32)
    padded[n_fft // 2 : n_fft // 2 + len(audio)] = audio
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (T, n_fft)
    spec = scipy.fft.rfft(frames * _hann(n_fft), axis=1)  # (T, F)
    return spec.T.astype(np.complex64, copy=False)  # (F, T)


def istft(spec: np.ndarray, n_fft: int, hop: int, n_samples: int) -> np.ndarray:
    """Inverse of :func:`stft` by weighted overlap-add (exact for an unmodified spectrum).

    Args:
        spec: ``(n_fft // 2 + 1, frames)`` complex.
        n_samples: length of the output, float32 ``(n_samples,)``.
    """
    import scipy.fft

    _check_stft(n_fft, hop)
    window = _hann(n_fft)
    n_frames, per_frame = spec.shape[1], n_fft // hop
    frames = scipy.fft.irfft(spec.T, n=n_fft, axis=1).astype(np.float32) * window  # (T, n_fft)
    frames = frames.reshape(n_frames, per_frame, hop)  # (T, n_fft // hop, hop)
    chunks = np.zeros((n_frames - 1 + per_frame, hop), dtype=np.float32)  # output in hop chunks
    weight = np.zeros_like(chunks)
    window_chunks = (window**2).reshape(per_frame, hop)  # (n_fft // hop, hop)
    for k in range(per_frame):  # chunk k of frame t lands on output chunk t + k
        chunks[k : k + n_frames] += frames[:, k]
        weight[k : k + n_frames] += window_chunks[k]
    out = (chunks / np.maximum(weight, 1e-8)).reshape(-1)  # (n_chunks * hop,)
    return out[n_fft // 2 : n_fft // 2 + n_samples]


def _check_stft(n_fft: int, hop: int) -> None:
    if hop < 1 or n_fft % hop or hop > n_fft // 2:
        raise ValueError(f"stft: hop {hop} must divide n_fft {n_fft} and be at most n_fft // 2")


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window ``(n_fft,)`` float32."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    window.flags.writeable = False
    return window


@functools.lru_cache(maxsize=16)
def _spectral_scale(n_bins: int, beta: float) -> np.ndarray:
    """Amplitude ``k ** (-beta / 2)`` per rfft bin ``k`` (zero at DC), float32 ``(n_bins,)``."""
    scale = np.zeros(n_bins, dtype=np.float32)
    scale[1:] = np.arange(1, n_bins, dtype=np.float64) ** (-beta / 2)
    scale.flags.writeable = False
    return scale


def colored_noise(n_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise ``(n_samples,)`` float32 with power spectrum ``1 / f ** beta``."""
    if color not in NOISE_EXPONENTS:
        raise ValueError(
            f"colored_noise: color must be one of {sorted(NOISE_EXPONENTS)}, got {color!r}"
        )
    if n_samples < 2:
        raise ValueError(f"colored_noise: need at least 2 samples, got {n_samples}")
    beta = NOISE_EXPONENTS[color]
    if beta == 0:
        noise = rng.standard_normal(n_samples, dtype=np.float32)
    else:
        import scipy.fft

        n_bins = n_samples // 2 + 1
        # (2 * n_bins,) float32 viewed as (n_bins,) complex64: independent real and imaginary parts
        spectrum = rng.standard_normal(2 * n_bins, dtype=np.float32).view(np.complex64)
        spectrum *= _spectral_scale(n_bins, beta)
        noise = scipy.fft.irfft(spectrum, n=n_samples).astype(np.float32, copy=False)
    power = float(np.dot(noise, noise)) / n_samples
    return noise * np.float32(1 / np.sqrt(power))


def add_noise(
    audio: np.ndarray, noise: np.ndarray, snr_db: float, floor_db: float = -100.0
) -> np.ndarray:
    """``audio + g * noise`` with ``g`` setting the SNR over the whole window (module docstring)."""
    audio = check_audio(audio, "add_noise")
    noise = check_audio(noise, "add_noise noise")
    if noise.shape != audio.shape:
        raise ValueError(f"add_noise: noise shape {noise.shape} differs from audio {audio.shape}")
    noise_power = float(np.dot(noise, noise)) / len(noise)
    if noise_power <= 0:
        raise ValueError("add_noise: the noise is silent; no SNR can be set")
    signal_power = max(float(np.dot(audio, audio)) / len(audio), 10 ** (floor_db / 10))
    gain = np.sqrt(signal_power / (10 ** (snr_db / 10) * noise_power))
    return audio + np.float32(gain) * noise


@dataclass(frozen=True)
class NoiseConfig:
    """Random noise at a random SNR.

    Attributes:
        colors: choices, drawn uniformly: "white", "pink", "brown", or "background" (a random crop
            of one of the :class:`AddNoise` backgrounds; a background shorter than the audio is
            repeated end to end).
        snr_db: (low, high), uniform in dB.
        floor_db: signal power floor, dB re full scale.
        bank_samples: 0 draws fresh noise on every call. A positive value draws, on first use of
            each colour, one periodic noise bank of that many samples (from the call's ``rng``)
            and then takes random circular crops of it with a random sign: about 10x faster,
            with the same spectrum, at the price of noise shared between examples. Must be at
            least the audio length.
    """

    colors: tuple[str, ...] = ("white", "pink", "brown")
    snr_db: tuple[float, float] = (0.0, 30.0)
    floor_db: float = -100.0
    bank_samples: int = 0

    def __post_init__(self) -> None:
        unknown = [c for c in self.colors if c not in (*NOISE_EXPONENTS, "background")]
        if unknown or not self.colors:
            raise ValueError(f"NoiseConfig: unknown or no colors {list(self.colors)}")
        if not self.snr_db[0] <= self.snr_db[1]:
            raise ValueError(f"NoiseConfig: snr_db low exceeds high in {self.snr_db}")
        if self.bank_samples < 0:
            raise ValueError(f"NoiseConfig: bank_samples must be >= 0, got {self.bank_samples}")


@dataclass
class AddNoise:
    """Add coloured or real background noise (see :class:`NoiseConfig`). Events are unchanged."""

    config: NoiseConfig
    backgrounds: Sequence[np.ndarray] = ()

    def __post_init__(self) -> None:
        if "background" in self.config.colors and not self.backgrounds:
            raise ValueError("AddNoise: color 'background' needs at least one background recording")
        self._banks: dict[str, np.ndarray] = {}

    def _noise(self, n_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
        bank_samples = self.config.bank_samples
        if not bank_samples:
            return colored_noise(n_samples, color, rng)
        if bank_samples < n_samples:
            raise ValueError(
                f"AddNoise: bank_samples={bank_samples} is shorter than the audio ({n_samples})"
            )
        if color not in self._banks:
            self._banks[color] = colored_noise(bank_samples, color, rng)
        return _circular_crop(self._banks[color], n_samples, rng) * np.float32(rng.choice((-1, 1)))

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        n_samples = len(audio)
        color = self.config.colors[int(rng.integers(len(self.config.colors)))]
        if color == "background":
            source = check_audio(
                self.backgrounds[int(rng.integers(len(self.backgrounds)))], "AddNoise"
            )
            noise = _circular_crop(source, n_samples, rng)
        else:
            noise = self._noise(n_samples, color, rng)
        snr_db = rng.uniform(*self.config.snr_db)
        return add_noise(audio, noise, snr_db, self.config.floor_db), events


def _circular_crop(source: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` from a random start in ``source``, wrapping around (repeating if shorter)."""
    start = int(rng.integers(len(source)))
    if start + n_samples <= len(source):
        return source[start : start + n_samples]
    return source[(start + np.arange(n_samples)) % len(source)]


@dataclass(frozen=True)
class NoiseReductionConfig:
    """Spectral gating parameters (module docstring).

    Attributes:
        n_fft: STFT window in samples; hop is ``n_fft // 4``.
        quantile: per-bin fraction of quietest frames that estimate the noise, in (0, 1].
        k_std: threshold = noise mean + ``k_std`` * noise std, in dB.
        attenuation_db: how far gated bins are lowered (> 0).
        smooth_bins, smooth_frames: size of the box filter that smooths the mask (1 disables
            that axis). Keep it small: a wide box dilutes the mask of a narrowband call.
        block_s: longer audio is gated in blocks of this length (seconds), each with its own
            noise profile (so the profile follows slow changes and memory stays bounded, about
            60 bytes per sample of a block); neighbouring blocks overlap by at least
            ``4 * n_fft`` samples and are crossfaded linearly there.
    """

    n_fft: int = 1024
    quantile: float = 0.5
    k_std: float = 3.0
    attenuation_db: float = 20.0
    smooth_bins: int = 3
    smooth_frames: int = 3
    block_s: float = 60.0

    def __post_init__(self) -> None:
        if self.n_fft < 16 or self.n_fft % 4:
            raise ValueError(
                f"NoiseReductionConfig: n_fft must be >= 16 and a multiple of 4, got {self.n_fft}"
            )
        if not 0 < self.quantile <= 1:
            raise ValueError(
                f"NoiseReductionConfig: quantile must lie in (0, 1], got {self.quantile}"
            )
        if not self.attenuation_db > 0:
            raise ValueError(
                f"NoiseReductionConfig: attenuation_db must be > 0, got {self.attenuation_db}"
            )
        if self.smooth_bins < 1 or self.smooth_frames < 1:
            raise ValueError(
                f"NoiseReductionConfig: smooth_bins and smooth_frames must be >= 1, got "
                f"{self.smooth_bins}, {self.smooth_frames}"
            )
        if not self.block_s > 0:
            raise ValueError(f"NoiseReductionConfig: block_s must be > 0, got {self.block_s}")


def reduce_noise(
    audio: np.ndarray, sample_rate: int, config: NoiseReductionConfig | None = None
) -> np.ndarray:
    """Spectral gating (module docstring): float32 ``(n_samples,)`` in, same shape out.

    Raises:
        ValueError: audio shorter than one STFT window, or ``block_s`` shorter than 8 windows.
    """
    config = config or NoiseReductionConfig()
    audio = check_audio(audio, "reduce_noise")
    if len(audio) < config.n_fft:
        raise ValueError(
            f"reduce_noise: audio of {len(audio)} samples is shorter than n_fft={config.n_fft}"
        )
    block = round(config.block_s * sample_rate)
    if len(audio) <= block:
        return _gate(audio, config)
    overlap = 4 * config.n_fft
    if block < 2 * overlap:
        raise ValueError(
            f"reduce_noise: block_s={config.block_s} s is {block} samples, fewer than "
            f"8 * n_fft = {2 * overlap}"
        )
    n_blocks = -(-(len(audio) - overlap) // (block - overlap))
    starts = np.round(np.linspace(0, len(audio) - block, n_blocks)).astype(np.int64)
    out = _gate(audio[:block], config)
    out = np.concatenate([out, np.zeros(len(audio) - block, dtype=np.float32)])
    for previous, start in zip(starts[:-1], starts[1:], strict=True):
        gated = _gate(audio[start : start + block], config)
        shared = int(previous + block - start)  # samples both blocks cover
        ramp = np.linspace(0, 1, shared + 2, dtype=np.float32)[1:-1]
        out[start : start + shared] = (
            out[start : start + shared] * (1 - ramp) + gated[:shared] * ramp
        )
        out[start + shared : start + block] = gated[shared:]
    return out


def _gate(audio: np.ndarray, config: NoiseReductionConfig) -> np.ndarray:
    """Spectral gating of one block with its own noise profile (module docstring)."""
    from scipy.ndimage import uniform_filter

    hop = config.n_fft // 4
    spec = stft(audio, config.n_fft, hop)  # (F, T)
    level_db = 20 * np.log10(np.abs(spec) + 1e-10)
    cutoff = np.quantile(level_db, config.quantile, axis=1, keepdims=True)  # (F, 1)
    quiet = level_db <= cutoff
    n_quiet = quiet.sum(axis=1, keepdims=True)
    mean_db = np.where(quiet, level_db, 0).sum(axis=1, keepdims=True) / n_quiet
    var_db = np.where(quiet, (level_db - mean_db) ** 2, 0).sum(axis=1, keepdims=True) / n_quiet
    mask = (level_db > mean_db + config.k_std * np.sqrt(var_db)).astype(np.float32)
    mask = uniform_filter(mask, size=(config.smooth_bins, config.smooth_frames), mode="nearest")
    floor = 10 ** (-config.attenuation_db / 20)
    gain = floor + (1 - floor) * mask
    return istft(spec * gain, config.n_fft, hop, len(audio))


@dataclass
class NoiseReduction:
    """:func:`reduce_noise` as an augmentation (events unchanged; ``rng`` unused)."""

    sample_rate: int
    config: NoiseReductionConfig = NoiseReductionConfig()

    def __call__(
        self, audio: np.ndarray, events: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        return reduce_noise(audio, self.sample_rate, self.config), events
