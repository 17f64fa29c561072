"""Batch-level augmentations: SpecAugment masks, mixup, and the per-batch FFT-window choice.

SpecAugment (:func:`spec_augment`) masks random time spans and frequency bands of spectrogram
tensors ``(B, F, T)``; masks are independent per example. Annotations are unchanged: a masked event
is still there, only partly hidden, which is the point of the augmentation.

Mixup (:func:`mixup`, :func:`mixup_batch`) is for clip classification: two waveforms with multi-hot
label vectors become ``lam * a + (1 - lam) * b`` with ``lam ~ Beta(alpha, alpha)``; labels mix the
same way (soft targets) or as their union (``"union"``, for multi-label BCE where both are present).

FFT-window jitter (:func:`choose_n_fft`, :class:`NFFTJitter`): the training loop draws one ``n_fft``
per batch and passes it to ``biomae.features.Spectrogram(config).forward(waveform, n_fft=...)``. The
hop (``hop_s``) and the mel filterbank size (``n_mels``) stay fixed, so the output is always
``(B, n_mels, frames)`` and the ViT patch grid does not change; what changes is the trade-off inside
each patch: a long window (large ``n_fft``) resolves frequency finely but smears time, a short one
resolves onsets finely but blurs harmonics. Training across windows makes the encoder robust to the
front end's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Mask counts and maximum widths.

    Attributes:
        n_time_masks, max_time_frames: number of time masks per example and their maximum width.
        n_freq_masks, max_freq_bins: number of frequency masks and their maximum height.
        fill: "mean" (each example's mean) or "zero".
    """

    n_time_masks: int = 2
    max_time_frames: int = 20
    n_freq_masks: int = 2
    max_freq_bins: int = 16
    fill: str = "mean"

    def __post_init__(self) -> None:
        for name in ("n_time_masks", "max_time_frames", "n_freq_masks", "max_freq_bins"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"SpecAugmentConfig: {name} must be >= 0, got {getattr(self, name)}"
                )
        if self.fill not in ("mean", "zero"):
            raise ValueError(f"SpecAugmentConfig: fill must be 'mean' or 'zero', got {self.fill!r}")


def _band_mask(
    size: int, n_masks: int, max_width: int, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """Boolean ``(batch, size)``: True inside ``n_masks`` random bands of width ``0..max_width``."""
    width = rng.integers(0, min(max_width, size) + 1, size=(batch, n_masks))  # (B, M)
    start = (rng.random((batch, n_masks)) * (size - width + 1)).astype(np.int64)  # (B, M)
    position = np.arange(size)[None, None, :]  # (1, 1, size)
    inside = (position >= start[..., None]) & (
        position < (start + width)[..., None]
    )  # (B, M, size)
    return inside.any(axis=1)


def spec_augment(
    spec: torch.Tensor, config: SpecAugmentConfig, rng: np.random.Generator
) -> torch.Tensor:
    """Return a masked copy of ``spec`` ``(B, F, T)`` (see :class:`SpecAugmentConfig`)."""
    import torch

    if spec.ndim != 3:
        raise ValueError(f"spec_augment: expected (B, F, T), got shape {tuple(spec.shape)}")
    batch, n_freq, n_time = spec.shape
    freq = _band_mask(n_freq, config.n_freq_masks, config.max_freq_bins, batch, rng)  # (B, F)
    time = _band_mask(n_time, config.n_time_masks, config.max_time_frames, batch, rng)  # (B, T)
    mask = torch.from_numpy(freq[:, :, None] | time[:, None, :]).to(spec.device)  # (B, F, T)
    if config.fill == "mean":
        fill = spec.mean(dim=(1, 2), keepdim=True).expand_as(spec)  # (B, F, T)
    else:
        fill = torch.zeros_like(spec)
    return torch.where(mask, fill, spec)


def mixup(
    audio_a: np.ndarray,
    labels_a: np.ndarray,
    audio_b: np.ndarray,
    labels_b: np.ndarray,
    rng: np.random.Generator,
    alpha: float = 0.4,
    labels: str = "soft",
) -> tuple[np.ndarray, np.ndarray, float]:
    """Mix two examples. Audio ``(n_samples,)`` each, labels multi-hot ``(n_classes,)`` each.

    Returns:
        ``(audio, labels, lam)``: ``lam * a + (1 - lam) * b`` for audio; for labels the same
        (``"soft"``) or ``max(a, b)`` (``"union"``).
    """
    if audio_a.shape != audio_b.shape or labels_a.shape != labels_b.shape:
        raise ValueError(
            f"mixup: shapes differ: audio {audio_a.shape} vs {audio_b.shape}, "
            f"labels {labels_a.shape} vs {labels_b.shape}"
        )
    if not alpha > 0:
        raise ValueError(f"mixup: alpha must be > 0, got {alpha}")
    if labels not in ("soft", "union"):
        raise ValueError(f"mixup: labels must be 'soft' or 'union', got {labels!r}")
    lam = float(rng.beta(alpha, alpha))
    audio = (lam * audio_a + (1 - lam) * audio_b).astype(audio_a.dtype, copy=False)
    if labels == "soft":
        mixed = lam * labels_a + (1 - lam) * labels_b
    else:
        mixed = np.maximum(labels_a, labels_b)
    return audio, mixed.astype(np.float32), lam


def mixup_batch(
    waveforms: torch.Tensor,
    targets: torch.Tensor,
    rng: np.random.Generator,
    alpha: float = 0.4,
    labels: str = "soft",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup within a batch: example ``i`` with example ``perm[i]``, one ``lam`` per example.

    Args:
        waveforms: ``(B, n_samples)``; targets: multi-hot ``(B, n_classes)``.
    """
    import torch

    if waveforms.shape[0] != targets.shape[0]:
        raise ValueError(
            f"mixup_batch: batch sizes differ: {waveforms.shape[0]} vs {targets.shape[0]}"
        )
    batch = waveforms.shape[0]
    lam = torch.from_numpy(rng.beta(alpha, alpha, size=batch).astype(np.float32))
    lam = lam.to(waveforms.device)
    perm = torch.from_numpy(rng.permutation(batch)).to(waveforms.device)
    mixed = lam[:, None] * waveforms + (1 - lam[:, None]) * waveforms[perm]  # (B, n_samples)
    if labels == "soft":
        mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[perm]
    elif labels == "union":
        mixed_targets = torch.maximum(targets, targets[perm])
    else:
        raise ValueError(f"mixup_batch: labels must be 'soft' or 'union', got {labels!r}")
    return mixed, mixed_targets


def choose_n_fft(rng: np.random.Generator, choices: Sequence[int] = (256, 512, 1024, 2048)) -> int:
    """One FFT window length drawn uniformly from ``choices`` (module docstring)."""
    if not choices or any(int(c) != c or c < 2 for c in choices):
        raise ValueError(f"choose_n_fft: choices must be integers >= 2, got {list(choices)}")
    return int(choices[int(rng.integers(len(choices)))])


@dataclass(frozen=True)
class NFFTJitter:
    """Per-batch FFT window choice: ``NFFTJitter((256, 512, 1024))(rng) -> n_fft``."""

    choices: tuple[int, ...] = (256, 512, 1024, 2048)

    def __post_init__(self) -> None:
        choose_n_fft(np.random.default_rng(0), self.choices)  # validates

    def __call__(self, rng: np.random.Generator) -> int:
        return choose_n_fft(rng, self.choices)
