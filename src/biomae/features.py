"""Spectrogram front end as an ``nn.Module``: STFT power -> mel or linear bins -> dB, log or PCEN.

Coordinate conventions (the rest of biomae relies on them):

* framing is ``center=True`` with zero ("constant") padding of ``n_fft // 2`` samples on each side,
  so frame ``i`` is centred on sample ``i * hop_samples``, i.e. at ``i * hop_samples / sample_rate``
  seconds, and a waveform of ``T`` samples gives ``T // hop_samples + 1`` frames for every (even)
  ``n_fft``. Zero padding (librosa's default) works for any length, unlike reflect padding;
* the window is ``n_fft`` samples long (periodic Hann / Hamming / Blackman);
* mel bins use the Slaney mel scale with Slaney area normalisation (librosa's default,
  ``htk=False, norm="slaney"``), bin ``k`` centred at :meth:`Spectrogram.frequencies_hz` ``[k]``;
  linear bins are the FFT bins ``k * sample_rate / n_fft`` inside ``[fmin_hz, fmax_hz]``.

``n_fft`` may change per call (the training loop jitters it per batch): the window and mel
filterbank of each ``n_fft`` are built once and kept as non-persistent buffers, so they follow
``.to(device)``. With ``scale="mel"`` the output is ``(B, n_mels, frames)`` whatever the ``n_fft``,
so the model's patch grid does not change; with ``scale="linear"`` the number of bins depends on
``n_fft``.

The STFT and everything after it run in float32 even inside a bf16/fp16 autocast region; the output
is float32.

The arithmetic underneath (STFT power, the mel scale and filterbank, PCEN's smoother) is plain
functions in :mod:`biomae.spectral`; this module holds the configs and the modules built on them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from biomae.spectral import (
    check_n_fft,
    mel_edges_hz,
    mel_filterbank,
    pcen_smoothing_coefficient,
    smooth_frames,
)

WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}
SCALES = ("mel", "linear")
COMPRESSIONS = ("db", "log", "pcen")


@dataclass
class SpectrogramConfig:
    """Front-end parameters (all times in seconds, frequencies in Hz).

    Attributes:
        sample_rate: rate of the input waveform in Hz.
        n_fft: default FFT and window length in samples (even, >= 16); ``forward`` may override it.
        hop_s: frame hop; ``hop_samples = round(hop_s * sample_rate)``.
        window: "hann", "hamming" or "blackman" (periodic).
        scale: "mel" (``n_mels`` bins) or "linear" (the FFT bins within ``[fmin_hz, fmax_hz]``).
        n_mels: number of mel bins.
        fmin_hz, fmax_hz: frequency band kept; ``fmax_hz=None`` is the Nyquist frequency.
        compression: "db" (``10 log10(max(power, amin))``, then clipped at ``top_db`` below each
            example's maximum), "log" (``ln(max(power, amin))``) or "pcen" (per-channel energy
            normalisation of the *magnitude* spectrogram scaled by ``pcen_input_scale``, as in
            librosa's documentation).
        top_db: dynamic range kept by "db", or None for no clipping.
        amin: floor applied to the power before "db" or "log".
        pcen_time_constant_s, pcen_gain, pcen_bias, pcen_power, pcen_eps: PCEN's smoother time
            constant and ``alpha``, ``delta``, ``r``, ``eps`` (librosa.pcen's defaults).
        pcen_input_scale: factor applied to the magnitude before PCEN (2**31: float audio treated
            as 32-bit integers).
    """

    sample_rate: int
    n_fft: int = 512
    hop_s: float = 0.01
    window: str = "hann"
    scale: str = "mel"
    n_mels: int = 128
    fmin_hz: float = 0.0
    fmax_hz: float | None = None
    compression: str = "db"
    top_db: float | None = 80.0
    amin: float = 1e-10
    pcen_time_constant_s: float = 0.4
    pcen_gain: float = 0.98
    pcen_bias: float = 2.0
    pcen_power: float = 0.5
    pcen_eps: float = 1e-6
    pcen_input_scale: float = 2.0**31

    def __post_init__(self) -> None:
        check_n_fft(self.n_fft)
        nyquist_hz, fmax_hz = self.sample_rate / 2, self.band_hz[1]
        positive = ("amin", "pcen_time_constant_s", "pcen_bias", "pcen_power", "pcen_eps",
                    "pcen_input_scale")  # fmt: skip
        checks = [
            (int(self.sample_rate) == self.sample_rate and self.sample_rate > 0,
             f"sample_rate must be a positive integer (Hz), got {self.sample_rate}"),
            (math.isfinite(self.hop_s) and self.hop_s > 0 and self.hop_samples >= 1,
             f"hop_s={self.hop_s} must be at least one sample at {self.sample_rate} Hz"),
            (self.window in WINDOWS,
             f"window must be one of {sorted(WINDOWS)}, got {self.window!r}"),
            (self.scale in SCALES, f"scale must be one of {SCALES}, got {self.scale!r}"),
            (self.compression in COMPRESSIONS,
             f"compression must be one of {COMPRESSIONS}, got {self.compression!r}"),
            (self.n_mels >= 1, f"n_mels must be >= 1, got {self.n_mels}"),
            (self.fmin_hz >= 0, f"fmin_hz must be >= 0, got {self.fmin_hz}"),
            (fmax_hz <= nyquist_hz,
             f"fmax_hz={fmax_hz} exceeds the Nyquist frequency {nyquist_hz} Hz"),
            (self.fmin_hz < fmax_hz, f"fmin_hz={self.fmin_hz} must be below fmax_hz={fmax_hz}"),
            (self.top_db is None or self.top_db > 0, f"top_db must be > 0, got {self.top_db}"),
            (0 <= self.pcen_gain <= 1, f"pcen_gain must be in [0, 1], got {self.pcen_gain}"),
            *[(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
              for name in positive],
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SpectrogramConfig: {message}")

    @property
    def hop_samples(self) -> int:
        """Frame hop in samples, ``round(hop_s * sample_rate)``."""
        return round(self.hop_s * self.sample_rate)

    @property
    def band_hz(self) -> tuple[float, float]:
        """``(fmin_hz, fmax_hz)`` with ``fmax_hz=None`` resolved to the Nyquist frequency."""
        return float(self.fmin_hz), float(
            self.sample_rate / 2 if self.fmax_hz is None else self.fmax_hz
        )


def pcen(energy: Tensor, config: SpectrogramConfig) -> Tensor:
    """Per-channel energy normalisation of ``energy`` (..., F, T), as librosa.pcen computes it.

    ``out = delta^r * expm1(r * log1p(E / (eps + M)^alpha / delta))`` with ``M`` the smoothed
    ``E`` (:func:`smooth_frames`). Only the smoother's start differs from librosa, which assumes a
    past input of 1 (``M[-1] = 1``); here the past is the first frame (``M[-1] = E[0]``), so a clip
    has no warm-up transient. The two agree once the start has decayed (a few time constants).
    """
    b = pcen_smoothing_coefficient(
        config.pcen_time_constant_s, config.sample_rate, config.hop_samples
    )
    smoothed = smooth_frames(energy, b)
    eps, gain = config.pcen_eps, config.pcen_gain
    bias, power = config.pcen_bias, config.pcen_power
    agc = torch.exp(-gain * (math.log(eps) + torch.log1p(smoothed / eps)))
    return bias**power * torch.expm1(power * torch.log1p(energy * agc / bias))


# ----------------------------------------------------------------------------- module


class Spectrogram(nn.Module):
    """Waveforms (B, T) -> compressed spectrograms (B, F, n_frames), float32, any device."""

    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        self.config = config
        self._buffers_for(config.n_fft, torch.device("cpu"))

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"sample_rate={c.sample_rate}, n_fft={c.n_fft}, hop_samples={c.hop_samples}, "
            f"scale={c.scale!r}, n_mels={c.n_mels}, band_hz={c.band_hz}, "
            f"compression={c.compression!r}"
        )

    # -- geometry

    def n_frames(self, n_samples: int) -> int:
        """Frames for ``n_samples`` input samples: ``n_samples // hop_samples + 1``."""
        return n_samples // self.config.hop_samples + 1

    def frame_times_s(self, n_frames: int) -> np.ndarray:
        """(n_frames,) float64 frame centres in seconds: ``i * hop_samples / sample_rate``."""
        return np.arange(n_frames) * self.config.hop_samples / self.config.sample_rate

    def frequencies_hz(self, n_fft: int | None = None) -> np.ndarray:
        """(F,) float64 centre frequency of each output bin (mel: the filters' peaks)."""
        n_fft = self.config.n_fft if n_fft is None else n_fft
        check_n_fft(n_fft)
        fmin_hz, fmax_hz = self.config.band_hz
        if self.config.scale == "mel":
            return mel_edges_hz(self.config.n_mels, fmin_hz, fmax_hz)[1:-1].numpy()
        low, high = self._linear_bins(n_fft)
        return np.arange(low, high) * self.config.sample_rate / n_fft

    def _linear_bins(self, n_fft: int) -> tuple[int, int]:
        """[low, high) FFT bin indices inside the band (raises when the band holds no bin)."""
        fmin_hz, fmax_hz = self.config.band_hz
        bin_hz = self.config.sample_rate / n_fft
        low, high = math.ceil(fmin_hz / bin_hz - 1e-9), math.floor(fmax_hz / bin_hz + 1e-9) + 1
        if high <= low:
            raise ValueError(
                f"n_fft={n_fft}: no FFT bin ({bin_hz:.1f} Hz apart) falls in "
                f"[{fmin_hz}, {fmax_hz}] Hz"
            )
        return low, high

    # -- cached windows and filterbanks

    def _buffers_for(self, n_fft: int, device: torch.device) -> tuple[Tensor, Tensor | None]:
        """The window (n_fft,) and mel filterbank (n_mels, n_fft // 2 + 1) of ``n_fft``, cached."""
        names = (f"window_{n_fft}", f"mel_{n_fft}")
        if not hasattr(self, names[0]):
            periodic = WINDOWS[self.config.window](n_fft, periodic=True, dtype=torch.float32)
            self.register_buffer(names[0], periodic, persistent=False)
            filters = None
            if self.config.scale == "mel":
                filters = mel_filterbank(
                    self.config.sample_rate, n_fft, self.config.n_mels, *self.config.band_hz
                ).float()
                self._warn_empty_filters(filters, n_fft)
            self.register_buffer(names[1], filters, persistent=False)
        window, filters = getattr(self, names[0]), getattr(self, names[1])
        if window.device != device:  # the module was not moved: follow the input
            window = window.to(device)
            filters = None if filters is None else filters.to(device)
            setattr(self, names[0], window)
            setattr(self, names[1], filters)
        return window, filters

    def _warn_empty_filters(self, filters: Tensor, n_fft: int) -> None:
        """Warn (once per message, Python's default) when some mel rows get no FFT bin."""
        empty = int((filters.sum(dim=1) == 0).sum())
        if empty:
            warnings.warn(
                f"Spectrogram: {empty} of {self.config.n_mels} mel filters are empty at "
                f"n_fft={n_fft} ({self.config.sample_rate / n_fft:.1f} Hz per FFT bin); those rows "
                "stay at the floor. Use fewer mels, a higher fmin_hz or a larger n_fft.",
                stacklevel=3,
            )

    # -- forward

    def forward(self, waveform: Tensor, n_fft: int | None = None) -> Tensor:
        """Compute the spectrogram.

        Args:
            waveform: (B, T) or (T,) float audio at ``config.sample_rate``.
            n_fft: FFT/window length for this call (even, >= 16); None = ``config.n_fft``. Mel
                output has ``n_mels`` rows for every ``n_fft``.

        Returns:
            (B, F, T // hop_samples + 1) float32, F = ``n_mels`` (mel) or the number of FFT bins in
            ``[fmin_hz, fmax_hz]`` (linear). A (T,) input gives B = 1.
        """
        n_fft = self.config.n_fft if n_fft is None else int(n_fft)
        check_n_fft(n_fft)
        if waveform.ndim == 1:
            waveform = waveform[None]  # (1, T)
        if waveform.ndim != 2 or not waveform.is_floating_point():
            raise ValueError(
                f"Spectrogram: waveform must be a float (B, T) or (T,) tensor, got "
                f"{waveform.dtype} of shape {tuple(waveform.shape)}"
            )
        window, filters = self._buffers_for(n_fft, waveform.device)
        window = window.float()  # stays float32 even after module.double() / .half()
        filters = None if filters is None else filters.float()
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            stft = torch.stft(
                waveform.float(),
                n_fft,
                hop_length=self.config.hop_samples,
                win_length=n_fft,
                window=window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )  # (B, n_fft // 2 + 1, n_frames)
            power = stft.real.square() + stft.imag.square()
            if self.config.compression == "pcen":
                energy = power.sqrt() * self.config.pcen_input_scale  # magnitude
            else:
                energy = power
            if filters is not None:
                spec = torch.matmul(filters, energy)  # (B, n_mels, n_frames)
            else:
                low, high = self._linear_bins(n_fft)
                spec = energy[:, low:high]  # (B, F, n_frames)
            return self._compress(spec)

    def _compress(self, spec: Tensor) -> Tensor:
        config = self.config
        if config.compression == "pcen":
            return pcen(spec, config)
        if config.compression == "log":
            return torch.log(spec.clamp(min=config.amin))
        db = 10.0 * torch.log10(spec.clamp(min=config.amin))
        if config.top_db is not None:
            floor = db.amax(dim=(-2, -1), keepdim=True) - config.top_db  # (B, 1, 1)
            db = torch.maximum(db, floor)
        return db


# ------------------------------------------------------------------------ the model's front end

NORM_EPS = 1e-5  # per-clip standardisation: (x - mean) / (std + NORM_EPS)


FRONT_END_COMPRESSIONS = ("db", "pcen")


@dataclass
class FrontEndConfig:
    """The model's mel front end (a :class:`Spectrogram`); audio is resampled to ``sample_rate``.
    The ``[front_end]`` section of the training configs, and part of every model file's spec
    (:mod:`biomae.models.files`; a spec without ``compression``, as in every model file written
    before it existed, is the "db" front end).

    Attributes:
        sample_rate: model sample rate in Hz; every window is resampled to it.
        n_fft: default FFT size in samples (pretraining may jitter it per batch).
        hop_s: frame hop in seconds (10 ms -> 100 frames per second).
        n_mels: mel bins; must equal the encoder's ``n_mels``.
        compression: "db": mel power in dB, standardised per clip (:func:`normalize_per_clip`;
            a clip of hiss then looks like any other clip: the shipped starter model's front
            end); "pcen": per-channel energy normalisation of the mel magnitude (:func:`pcen`,
            librosa's defaults), not standardised: each band divided by its own running level
            (time constant ``pcen_time_constant_s``), so the output hardly changes with the gain
            (±30 dB moves it by a few per cent) and stationary noise of any level gives a low,
            flat output while a call stands out. Plain ops only: it exports to ONNX.
        pcen_time_constant_s: PCEN's smoother time constant ("pcen" only).
    """

    sample_rate: int = 32000
    n_fft: int = 1024
    hop_s: float = 0.01
    n_mels: int = 128
    compression: str = "db"
    pcen_time_constant_s: float = 0.4

    def __post_init__(self) -> None:
        checks = [
            (1000 <= self.sample_rate <= 1_000_000, f"front_end.sample_rate={self.sample_rate} Hz"),
            (self.n_fft >= 16, f"front_end.n_fft={self.n_fft} must be >= 16 samples"),
            (0.0 < self.hop_s <= 0.1, f"front_end.hop_s={self.hop_s} must be in (0, 0.1] s"),
            (self.n_mels >= 8, f"front_end.n_mels={self.n_mels} must be >= 8"),
            (
                self.compression in FRONT_END_COMPRESSIONS,
                f"front_end.compression={self.compression!r} must be one of "
                f"{FRONT_END_COMPRESSIONS}",
            ),
            (
                math.isfinite(self.pcen_time_constant_s) and self.pcen_time_constant_s > 0,
                f"front_end.pcen_time_constant_s={self.pcen_time_constant_s} must be > 0 s",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def build_config(self, n_fft: int | None = None) -> SpectrogramConfig:
        """The ``SpectrogramConfig`` for this front end (``n_fft`` overrides the default)."""
        return SpectrogramConfig(
            sample_rate=self.sample_rate,
            n_fft=n_fft or self.n_fft,
            hop_s=self.hop_s,
            n_mels=self.n_mels,
            compression=self.compression,
            pcen_time_constant_s=self.pcen_time_constant_s,
        )

    def normalize(self, spec: Tensor) -> Tensor:
        """What the encoder gets from the spectrogram ``(B, F, T)``: per-clip standardised dB
        ("db"), or the PCEN output as it is ("pcen")."""
        return normalize_per_clip(spec) if self.compression == "db" else spec


def normalize_per_clip(spec: Tensor) -> Tensor:
    """Standardise each clip: ``(B, F, T)`` log-mel -> zero mean, unit std per clip."""
    mean = spec.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    std = spec.std(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    return (spec - mean) / (std + NORM_EPS)


class FrontEnd:
    """Audio ``(B, n_samples)`` -> normalised mel features ``(B, n_mels, T)`` with ``T`` a multiple
    of ``patch_t``: mel spectrogram (:class:`Spectrogram`, ``n_fft`` chosen per call; dB or PCEN),
    trailing frames past the last whole patch cropped (fewer than ``patch_t``, the same number for
    every window of a given length), then :meth:`FrontEndConfig.normalize`. What pretraining,
    fine-tuning, annotating and embedding all feed the encoder.

    Args:
        config: the front end.
        patch_t: the encoder's patch length in frames.
        device: where the spectrogram runs (the input is moved there).
    """

    def __init__(self, config: FrontEndConfig, patch_t: int, device: torch.device | str = "cpu"):
        self.config = config
        self.patch_t = patch_t
        self.device = torch.device(device)
        self.spectrogram = Spectrogram(config.build_config()).to(self.device)

    @torch.no_grad()
    def __call__(self, audio: Tensor, n_fft: int = 0) -> Tensor:
        spec = self.spectrogram(audio.to(self.device, non_blocking=True), n_fft=n_fft or None)
        n_frames = spec.shape[-1] - spec.shape[-1] % self.patch_t
        if n_frames == 0:
            raise ValueError(
                f"a window gives {spec.shape[-1]} frames < patch_t={self.patch_t}; "
                "raise data.window_s"
            )
        return self.config.normalize(spec[..., :n_frames])  # (B, F, T)
