"""The spectrogram's arithmetic as plain functions: STFT power, the Slaney mel scale and its
filterbank, and the one-pole smoother of PCEN.

:mod:`biomae.features` builds the model's front end (:class:`biomae.features.Spectrogram`,
:class:`biomae.features.FrontEnd`) from these; the energy detector, the frequency boxes and the
pictures use :func:`power_spectrogram` directly. Coordinate conventions: see :mod:`biomae.features`.

:func:`power_spectrogram` and the mel scale are NumPy: annotating on ONNX Runtime imports no
torch. The filterbank and PCEN's smoother (the model's front end) import torch when called.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if TYPE_CHECKING:
    from torch import Tensor

PCEN_CHUNK_FRAMES = 128  # frames per step of the chunked PCEN smoother


def check_n_fft(n_fft: int) -> None:
    """Raise unless ``n_fft`` is an even integer >= 16 (even keeps frames centred on samples)."""
    if int(n_fft) != n_fft or n_fft < 16 or n_fft % 2:
        raise ValueError(f"n_fft must be an even integer >= 16, got {n_fft}")


def power_spectrogram(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Linear power ``|STFT|^2`` of mono audio, ``(n_fft // 2 + 1, n_frames)`` float32 NumPy:
    periodic Hann window, frames centred on samples ``0, hop, 2 hop, …`` (reflect padding); audio
    too short to reflect (under half a window) is zero-padded at the end first. Bin ``k`` is at
    ``k * sample_rate / n_fft`` Hz. The plain CPU spectrogram of the energy detector, the pictures
    and the frequency boxes (the model's front end is :class:`biomae.features.Spectrogram`).
    Frames are transformed ``STFT_CHUNK_FRAMES`` at a time: memory beyond the output stays small.
    ``scipy.fft`` transforms float32 in float32, about 6x faster than ``numpy.fft`` (float64).
    """
    import scipy.fft  # imported when used: `import biomae.spectral` stays light

    x = np.ascontiguousarray(audio, dtype=np.float32)  # (n,)
    if len(x) < n_fft // 2 + 1:
        x = np.pad(x, (0, n_fft // 2 + 1 - len(x)))
    frames = sliding_window_view(np.pad(x, n_fft // 2, mode="reflect"), n_fft)[::hop]  # (T, n_fft)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    power = np.empty((n_fft // 2 + 1, len(frames)), dtype=np.float32)  # (F, T)
    for start in range(0, len(frames), STFT_CHUNK_FRAMES):
        spectrum = scipy.fft.rfft(frames[start : start + STFT_CHUNK_FRAMES] * window, axis=-1)
        power[:, start : start + STFT_CHUNK_FRAMES] = (spectrum.real**2 + spectrum.imag**2).T
    return power


STFT_CHUNK_FRAMES = 2048  # frames per FFT call of power_spectrogram


# ----------------------------------------------------------------------------- mel scale (Slaney)

_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15
_LOGSTEP = math.log(6.4) / 27.0  # log-spaced above 1 kHz


def hz_to_mel(freq_hz) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above. Float64
    NumPy of the input's shape (a scalar gives a 0-d array)."""
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    linear = freq_hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(freq_hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(freq_hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)


def mel_edges_hz(n_mels: int, fmin_hz: float, fmax_hz: float) -> Tensor:
    """``n_mels + 2`` float64 frequencies equally spaced in mel: filter ``k`` spans [k, k + 2]."""
    import torch

    mels = torch.linspace(
        float(hz_to_mel(fmin_hz)), float(hz_to_mel(fmax_hz)), n_mels + 2, dtype=torch.float64
    )
    return torch.from_numpy(mel_to_hz(mels.numpy()))


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin_hz: float, fmax_hz: float
) -> Tensor:
    """Triangular Slaney-normalised mel filters (what ``librosa.filters.mel`` computes by default).

    Returns:
        (n_mels, n_fft // 2 + 1) float64: row ``k`` weights the power of each FFT bin; each
        triangle is scaled by ``2 / (its width in Hz)`` so the filters have equal area.
    """
    import torch

    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_edges_hz(n_mels, fmin_hz, fmax_hz)  # (n_mels + 2,)
    widths = edges.diff()  # (n_mels + 1,)
    ramps = edges[:, None] - fft_hz[None, :]  # (n_mels + 2, n_bins)
    rising = -ramps[:-2] / widths[:-1, None]  # (n_mels, n_bins)
    falling = ramps[2:] / widths[1:, None]  # (n_mels, n_bins)
    weights = torch.minimum(rising, falling).clamp(min=0)
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


# ----------------------------------------------------------------------------- PCEN


def pcen_smoothing_coefficient(time_constant_s: float, sample_rate: int, hop_samples: int) -> float:
    """``b`` of the one-pole smoother ``M[t] = (1 - b) M[t-1] + b E[t]`` (librosa's formula)."""
    t_frames = time_constant_s * sample_rate / hop_samples
    return (math.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)


def smooth_frames(energy: Tensor, b: float, chunk_frames: int = PCEN_CHUNK_FRAMES) -> Tensor:
    """One-pole low-pass along the last axis, started at the first frame (``M[-1] = E[0]``).

    Exact and parallel within chunks: each chunk is a lower-triangular matrix product plus the
    decayed state carried in from the previous chunk.

    Args:
        energy: (..., T) float tensor.
        b: smoothing coefficient in (0, 1].

    Returns:
        (..., T) smoothed tensor ``M``.
    """
    import torch

    n_frames = energy.shape[-1]
    size = min(chunk_frames, n_frames)
    index = torch.arange(size, device=energy.device)
    lag = (index[:, None] - index[None, :]).clamp(min=0)  # (L, L)
    causal = index[:, None] >= index[None, :]
    weights = torch.where(causal, b * (1 - b) ** lag.to(energy.dtype), 0.0)  # (L, L)
    carry_gain = (1 - b) ** (index + 1).to(energy.dtype)  # (L,)
    state = energy[..., 0]  # (...,)
    pieces = []
    for start in range(0, n_frames, size):
        piece = energy[..., start : start + size]  # (..., n)
        n = piece.shape[-1]
        smoothed = piece @ weights[:n, :n].T + state[..., None] * carry_gain[:n]  # (..., n)
        pieces.append(smoothed)
        state = smoothed[..., -1]
    return torch.cat(pieces, dim=-1)
