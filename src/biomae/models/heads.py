"""Fine-tuning heads: small modules that turn encoder tokens into detections, labels or embeddings.

Every head consumes the encoder's output tokens ``(B, N, D)`` together with the patch grid
``(grid_f, grid_t)`` they came from (``N = grid_f * grid_t``). Tokens are reshaped to a grid with
:func:`tokens_to_grid`; the token order is a head field, by default ``"time_major"`` (token
``n = t * grid_f + f``, the order of :class:`biomae.models.vit.Encoder`); ``"freq_major"``
(``n = f * grid_t + t``) serves encoders that flatten a patch conv's output directly.

- :class:`DetectionHead` — frame-level activity (and optionally onset/offset) logits per class:
  tokens are pooled over frequency, upsampled in time (transposed conv, ``upsample`` output frames
  per patch) and passed through a small 1-D conv stack. Output frame ``i`` covers
  ``[i * frame_hop_s, (i + 1) * frame_hop_s)`` seconds of the window, the convention
  :mod:`biomae.decode` uses for targets and events.
- :class:`ClassificationHead` — multi-label logits per clip, or per event (tokens pooled within the
  event's time span); the pooling is a module (:class:`MeanPool` or :class:`AttentionPool`).
- :class:`ProjectionHead` — pooled tokens → MLP → L2-normalised embedding (contrastive objectives).

Variants are composed from modules; a disabled part is ``nn.Identity()``. Imports torch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TOKEN_ORDERS = ("freq_major", "time_major")
DETECTION_OUTPUTS = ("activity", "onset", "offset")


def tokens_to_grid(tokens: Tensor, grid: tuple[int, int], order: str = "time_major") -> Tensor:
    """Reshape encoder tokens to their patch grid.

    Args:
        tokens: ``(B, N, D)`` with ``N = grid_f * grid_t``.
        grid: ``(grid_f, grid_t)`` patches along frequency and time.
        order: ``"freq_major"`` (token ``n = f * grid_t + t``) or ``"time_major"``
            (``n = t * grid_f + f``).

    Returns:
        ``(B, grid_f, grid_t, D)``.
    """
    grid_f, grid_t = grid
    batch, n_tokens, dim = tokens.shape
    if n_tokens != grid_f * grid_t:
        raise ValueError(
            f"tokens_to_grid: {n_tokens} tokens do not fill a grid of {grid_f} x {grid_t} patches"
        )
    if order == "freq_major":
        return tokens.reshape(batch, grid_f, grid_t, dim)  # (B, Gf, Gt, D)
    if order == "time_major":
        return tokens.reshape(batch, grid_t, grid_f, dim).transpose(1, 2)  # (B, Gf, Gt, D)
    raise ValueError(f"tokens_to_grid: token order {order!r} is not one of {TOKEN_ORDERS}")


# ----------------------------------------------------------------------------------------------
# Pooling over tokens (optionally restricted by a mask)


class MeanPool(nn.Module):
    """Mean of the tokens selected by ``mask`` (all tokens when ``mask`` is None)."""

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Args: tokens ``(B, N, D)``; mask ``(B, N)`` bool, True = use. Returns ``(B, D)``."""
        if mask is None:
            return tokens.mean(dim=1)
        _check_mask(mask, tokens)
        weights = mask.to(tokens.dtype).unsqueeze(-1)  # (B, N, 1)
        return (tokens * weights).sum(dim=1) / weights.sum(dim=1)


class AttentionPool(nn.Module):
    """Softmax attention pooling with one learned query per head (``heads`` must divide ``dim``)."""

    def __init__(self, dim: int, heads: int = 1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"AttentionPool: heads={heads} does not divide dim={dim}")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, heads)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Args: tokens ``(B, N, D)``; mask ``(B, N)`` bool, True = use. Returns ``(B, D)``."""
        batch, n_tokens, dim = tokens.shape
        x = self.norm(tokens)
        logits = self.score(x)  # (B, N, H)
        if mask is not None:
            _check_mask(mask, tokens)
            logits = logits.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        weights = logits.softmax(dim=1)  # (B, N, H)
        values = x.reshape(batch, n_tokens, self.heads, dim // self.heads)  # (B, N, H, D/H)
        pooled = torch.einsum("bnh,bnhd->bhd", weights, values)  # (B, H, D/H)
        return pooled.reshape(batch, dim)  # (B, D)


def _check_mask(mask: Tensor, tokens: Tensor) -> None:
    if mask.shape != tokens.shape[:2]:
        raise ValueError(
            f"pool: mask shape {tuple(mask.shape)} != tokens {tuple(tokens.shape[:2])}"
        )
    empty = ~mask.any(dim=1)
    if empty.any():
        row = int(empty.nonzero()[0])
        raise ValueError(f"pool: mask selects no token for batch row {row}")


# ----------------------------------------------------------------------------------------------
# Detection


@dataclass
class DetectionHeadConfig:
    """Frame-level detection head.

    Attributes:
        dim: encoder token width D.
        patch_t: encoder patch width in spectrogram frames.
        hop_s: spectrogram hop in seconds (10 ms by default).
        n_classes: output classes C (1 = class-agnostic activity).
        outputs: channels predicted per class, a subset of ("activity", "onset", "offset") that
            starts with "activity".
        upsample: output frames per patch column; must divide ``patch_t``. ``patch_t // 2`` gives
            20 ms frames for 10-ms hop, ``patch_t`` full frame rate, 1 no upsampling (tall patches).
        hidden_dim: channels after upsampling.
        conv_layers: 1-D conv layers (kernel ``kernel_size``) after upsampling; 0 = none.
        kernel_size: odd kernel of the conv stack, in output frames.
        token_order: see :func:`tokens_to_grid`.
    """

    dim: int
    patch_t: int = 16
    hop_s: float = 0.01
    n_classes: int = 1
    outputs: tuple[str, ...] = ("activity",)
    upsample: int = 8
    hidden_dim: int = 128
    conv_layers: int = 2
    kernel_size: int = 5
    token_order: str = "time_major"

    def __post_init__(self):
        self.outputs = tuple(self.outputs)
        for name in ("dim", "patch_t", "n_classes", "upsample", "hidden_dim", "kernel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"DetectionHeadConfig: {name}={getattr(self, name)} must be >= 1")
        if self.patch_t % self.upsample:
            raise ValueError(
                f"DetectionHeadConfig: upsample={self.upsample} must divide patch_t={self.patch_t}"
            )
        if self.kernel_size % 2 == 0:
            raise ValueError(f"DetectionHeadConfig: kernel_size={self.kernel_size} must be odd")
        if self.conv_layers < 0:
            raise ValueError(f"DetectionHeadConfig: conv_layers={self.conv_layers} must be >= 0")
        if not self.hop_s > 0:
            raise ValueError(f"DetectionHeadConfig: hop_s={self.hop_s} must be > 0")
        if (
            not self.outputs
            or self.outputs[0] != "activity"
            or len(set(self.outputs)) != len(self.outputs)
        ):
            raise ValueError(
                f"DetectionHeadConfig: outputs={self.outputs} must start with 'activity' "
                "and not repeat"
            )
        unknown = set(self.outputs) - set(DETECTION_OUTPUTS)
        if unknown:
            raise ValueError(
                f"DetectionHeadConfig: unknown outputs {sorted(unknown)}; use {DETECTION_OUTPUTS}"
            )
        if self.token_order not in TOKEN_ORDERS:
            raise ValueError(
                f"DetectionHeadConfig: token_order={self.token_order!r} not in {TOKEN_ORDERS}"
            )

    @property
    def frame_hop_s(self) -> float:
        """Time between output frames in seconds: ``hop_s * patch_t / upsample``."""
        return self.hop_s * self.patch_t / self.upsample


class DetectionHead(nn.Module):
    """Tokens → per-frame logits for each output channel and class.

    Pipeline: frequency mean-pool ``(B, Gf, Gt, D) → (B, Gt, D)`` → LayerNorm → time upsampling by
    ``upsample`` (a transposed conv with kernel = stride; 1x1 when ``upsample == 1``) → GELU →
    ``conv_layers`` residual 1-D convs → linear to ``len(outputs) * n_classes`` logits.
    """

    def __init__(self, config: DetectionHeadConfig):
        super().__init__()
        self.config = config
        c = config
        self.norm = nn.LayerNorm(c.dim)
        self.upsample = nn.ConvTranspose1d(c.dim, c.hidden_dim, c.upsample, stride=c.upsample)
        self.convs = nn.ModuleList(
            nn.Conv1d(c.hidden_dim, c.hidden_dim, c.kernel_size, padding=c.kernel_size // 2)
            for _ in range(c.conv_layers)
        )
        self.out = nn.Linear(c.hidden_dim, len(c.outputs) * c.n_classes)

    @property
    def frame_hop_s(self) -> float:
        """Seconds between output frames (see :attr:`DetectionHeadConfig.frame_hop_s`)."""
        return self.config.frame_hop_s

    def n_frames(self, grid_t: int) -> int:
        """Output frames for a token grid ``grid_t`` patches long."""
        return grid_t * self.config.upsample

    def forward(self, tokens: Tensor, grid: tuple[int, int]) -> dict[str, Tensor]:
        """Args: tokens ``(B, N, D)``; grid ``(grid_f, grid_t)``.

        Returns:
            ``{name: logits (B, grid_t * upsample, C)}`` for each name in ``config.outputs``.
        """
        c = self.config
        x = tokens_to_grid(tokens, grid, c.token_order).mean(dim=1)  # (B, Gt, D)
        x = self.norm(x).transpose(1, 2)  # (B, D, Gt)
        x = F.gelu(self.upsample(x))  # (B, H, T)
        for conv in self.convs:
            x = x + F.gelu(conv(x))  # (B, H, T)
        logits = self.out(x.transpose(1, 2))  # (B, T, K * C)
        batch, n_frames, _ = logits.shape
        logits = logits.reshape(batch, n_frames, len(c.outputs), c.n_classes)  # (B, T, K, C)
        return {name: logits[:, :, k] for k, name in enumerate(c.outputs)}


# ----------------------------------------------------------------------------------------------
# Classification


class ClassificationHead(nn.Module):
    """Multi-label (or softmax) class logits per clip or per event.

    Args:
        dim: token width D.
        n_classes: output classes C.
        pool: a pooling module ``(tokens (B, N, D), mask (B, N) | None) -> (B, D)``; default
            :class:`MeanPool`.
        token_order: see :func:`tokens_to_grid` (used by :meth:`forward_spans`).
    """

    def __init__(
        self,
        dim: int,
        n_classes: int,
        pool: nn.Module | None = None,
        token_order: str = "time_major",
    ):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"ClassificationHead: n_classes={n_classes} must be >= 1")
        if token_order not in TOKEN_ORDERS:
            raise ValueError(
                f"ClassificationHead: token_order={token_order!r} not in {TOKEN_ORDERS}"
            )
        self.token_order = token_order
        self.pool = pool if pool is not None else MeanPool()
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, n_classes)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Clip logits: tokens ``(B, N, D)``, mask ``(B, N)`` bool or None -> ``(B, C)``."""
        return self.out(self.norm(self.pool(tokens, mask)))

    def forward_spans(
        self, tokens: Tensor, grid: tuple[int, int], spans: Tensor, patch_s: float
    ) -> Tensor:
        """Event logits: pool the tokens of every patch column that overlaps each event.

        Args:
            tokens: ``(B, N, D)``.
            grid: ``(grid_f, grid_t)``.
            spans: ``(E, 3)`` float rows ``(batch_index, start_s, end_s)``, times relative to the
                window's first frame.
            patch_s: seconds per patch column (``hop_s * patch_t``).

        Returns:
            ``(E, C)`` logits.

        Raises:
            ValueError: if an event overlaps no patch column of its window.
        """
        grid_f, grid_t = grid
        if spans.ndim != 2 or spans.shape[1] != 3:
            raise ValueError(f"forward_spans: spans must be (E, 3); got {tuple(spans.shape)}")
        rows = spans[:, 0].long()
        first = torch.floor(spans[:, 1] / patch_s).long()  # (E,)
        last = torch.ceil(spans[:, 2] / patch_s).long()  # (E,) exclusive
        last = torch.maximum(last, first + 1)  # zero-length events still cover their column
        column = torch.arange(grid_t, device=tokens.device)  # (Gt,)
        in_span = (column >= first[:, None]) & (column < last[:, None])  # (E, Gt)
        empty = ~in_span.any(dim=1)
        if empty.any():
            e = int(empty.nonzero()[0])
            raise ValueError(
                f"forward_spans: event {e} ({float(spans[e, 1]):.3f}-{float(spans[e, 2]):.3f} s) "
                f"overlaps none of the {grid_t} patch columns ({grid_t * patch_s:.3f} s)"
            )
        grid_tokens = tokens_to_grid(tokens, grid, self.token_order)[rows]  # (E, Gf, Gt, D)
        mask = in_span[:, None, :].expand(-1, grid_f, -1)  # (E, Gf, Gt)
        flat = grid_tokens.reshape(len(rows), grid_f * grid_t, -1)  # (E, Gf*Gt, D), any order
        return self.forward(flat, mask.reshape(len(rows), grid_f * grid_t))  # (E, C)


# ----------------------------------------------------------------------------------------------
# Projection


class ProjectionHead(nn.Module):
    """Pooled tokens → MLP → L2-normalised embedding (SupCon / InfoNCE).

    Args:
        dim: token width D.
        out_dim: embedding width E.
        hidden_dim: MLP hidden width (defaults to ``dim``); ``0`` = a single linear layer.
        pool: pooling module (default :class:`MeanPool`).
    """

    def __init__(
        self,
        dim: int,
        out_dim: int = 128,
        hidden_dim: int | None = None,
        pool: nn.Module | None = None,
    ):
        super().__init__()
        hidden_dim = dim if hidden_dim is None else hidden_dim
        if out_dim < 1 or hidden_dim < 0:
            raise ValueError(f"ProjectionHead: out_dim={out_dim}, hidden_dim={hidden_dim} invalid")
        self.pool = pool if pool is not None else MeanPool()
        if hidden_dim:
            self.mlp: nn.Module = nn.Sequential(
                nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim)
            )
        else:
            self.mlp = nn.Linear(dim, out_dim)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Args: tokens ``(B, N, D)``; mask ``(B, N)`` or None. Returns unit vectors ``(B, E)``."""
        return F.normalize(self.mlp(self.pool(tokens, mask)), dim=-1)


def init_output_bias(linear: nn.Linear, prior: float) -> None:
    """Set a logit layer's bias to ``log(prior / (1 - prior))`` so training starts at that rate.

    Detection targets are rare (a few % of frames); starting the sigmoid at the prior keeps the
    first steps from spending themselves on the bias (Lin et al. 2017, focal loss §4.1).
    """
    if not 0 < prior < 1:
        raise ValueError(f"init_output_bias: prior={prior} must lie in (0, 1)")
    with torch.no_grad():
        linear.bias.fill_(math.log(prior / (1 - prior)))
