"""Vision Transformer over log-mel spectrogram patches: the encoder of the Bioacoustic MAE.

A spectrogram ``(B, F, T)`` (``F = n_mels`` bins, ``T`` frames at a 10 ms hop) is cut into
non-overlapping ``patch_f x patch_t`` patches. The patch grid is ``(grid_f, grid_t)`` with
``grid_f = F // patch_f`` and ``grid_t = T // patch_t``; ``T`` must be a multiple of ``patch_t``
(``Encoder.pad_frames`` pads it, the caller decides).

Token order is **time-major**: token ``n = t * grid_f + f`` is the patch in time column ``t`` and
frequency row ``f`` (``f = 0`` is the lowest mel band). So ``tokens.view(B, grid_t, grid_f, D)``
recovers the grid, and a run of ``w * grid_f`` consecutive tokens is ``w`` whole time columns,
which is what makes windowed attention along time a cheap reshape.

Positional embeddings are fixed 2-D sin-cos, computed for the actual grid at every call, so any
duration works without retraining. Attention goes through ``F.scaled_dot_product_attention``
(flash / memory-efficient kernels on GPU). Blocks are plain modules in ``nn.ModuleList`` so that
activation checkpointing and FSDP can wrap them from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ViTConfig:
    """Encoder hyper-parameters.

    Attributes:
        n_mels: input frequency bins ``F``; must be a multiple of ``patch_f``.
        patch_f: patch height in mel bins.
        patch_t: patch width in frames (16 frames at a 10 ms hop = 160 ms).
        dim: token width ``D``; a multiple of 4 (2-D sin-cos) and of ``heads``.
        depth: number of transformer blocks.
        heads: attention heads.
        mlp_dim: hidden width of the MLP.
        qkv_bias: bias on the fused q/k/v projection.
        norm_eps: LayerNorm epsilon.
        drop_path: stochastic-depth rate of the last block (linear from 0 over the depth).
    """

    n_mels: int = 128
    patch_f: int = 16
    patch_t: int = 16
    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_dim: int = 768
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_mels", "patch_f", "patch_t", "dim", "depth", "heads", "mlp_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ViTConfig.{name}={getattr(self, name)} must be >= 1")
        if self.n_mels % self.patch_f:
            raise ValueError(
                f"ViTConfig: n_mels={self.n_mels} is not a multiple of patch_f={self.patch_f}"
            )
        if self.dim % 4 or self.dim % self.heads:
            raise ValueError(
                f"ViTConfig: dim={self.dim} must be a multiple of 4 and of heads={self.heads}"
            )
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"ViTConfig.drop_path={self.drop_path} must be in [0, 1)")

    @property
    def grid_f(self) -> int:
        """Patches along frequency."""
        return self.n_mels // self.patch_f

    @property
    def patch_pixels(self) -> int:
        """Values per patch, ``P = patch_f * patch_t``."""
        return self.patch_f * self.patch_t


def sincos_pos_embed_2d(
    dim: int, grid_f: int, grid_t: int, device: torch.device | str | None = None
) -> Tensor:
    """Fixed 2-D sin-cos positional embedding for a ``(grid_f, grid_t)`` patch grid.

    The first ``dim / 2`` channels encode the time column, the last ``dim / 2`` the frequency row,
    each as ``[sin(p * w_k), cos(p * w_k)]`` with ``w_k = 10000 ** (-k / (dim / 4))``.

    Args:
        dim: embedding width, a multiple of 4.
        grid_f: frequency rows.
        grid_t: time columns.
        device: where to build it.

    Returns:
        ``(grid_t * grid_f, dim)`` float32, time-major rows (row ``t * grid_f + f``).
    """
    if dim % 4:
        raise ValueError(f"sincos_pos_embed_2d: dim={dim} must be a multiple of 4")
    quarter = dim // 4
    omega = 1.0 / (10000.0 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    t_pos = torch.arange(grid_t, device=device, dtype=torch.float32)
    f_pos = torch.arange(grid_f, device=device, dtype=torch.float32)
    t_ang = t_pos[:, None] * omega[None, :]  # (grid_t, dim/4)
    f_ang = f_pos[:, None] * omega[None, :]  # (grid_f, dim/4)
    t_emb = torch.cat([t_ang.sin(), t_ang.cos()], dim=1)  # (grid_t, dim/2)
    f_emb = torch.cat([f_ang.sin(), f_ang.cos()], dim=1)  # (grid_f, dim/2)
    emb = torch.cat(
        [
            t_emb[:, None, :].expand(grid_t, grid_f, dim // 2),
            f_emb[None, :, :].expand(grid_t, grid_f, dim // 2),
        ],
        dim=2,
    )  # (grid_t, grid_f, dim)
    return emb.reshape(grid_t * grid_f, dim)  # (N, dim)


class PatchEmbed(nn.Module):
    """Linear patch embedding as a strided conv: ``(B, 1, F, T)`` -> ``(B, N, D)`` time-major."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.proj = nn.Conv2d(
            1,
            config.dim,
            kernel_size=(config.patch_f, config.patch_t),
            stride=(config.patch_f, config.patch_t),
        )

    def forward(self, spec: Tensor) -> Tensor:
        x = self.proj(spec)  # (B, D, grid_f, grid_t)
        return x.permute(0, 3, 2, 1).flatten(1, 2)  # (B, grid_t * grid_f, D)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``rate``."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep


class Attention(nn.Module):
    """Global multi-head self-attention with a fused q/k/v projection.

    ``forward(x, grid_f)`` takes ``grid_f`` only to share a signature with ``WindowedAttention``.
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def split_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(B, N, D)`` -> q, k, v each ``(B, H, N, D / H)`` (strided views of one matmul)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, H, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, N, hd)
        return q, k, v

    def forward(self, x: Tensor, grid_f: int = 1) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.split_heads(x)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class WindowedAttention(Attention):
    """Local attention along time: a token in time column ``t`` attends exactly to the tokens in
    columns ``t - window_t .. t + window_t`` (all frequency rows), at a cost linear in length.

    The sequence (time-major, ``grid_f`` tokens per column) is cut into blocks of ``window_t``
    columns; each query block attends to its own block and its two neighbours (``3 * window_t``
    columns) under a static mask ``|t_q - t_k| <= window_t`` that also hides padding. Memory and
    FLOPs are ``O(N * 3 * window_t * grid_f)``, not ``O(N^2)``.
    """

    def __init__(self, dim: int, heads: int, window_t: int, qkv_bias: bool = True):
        super().__init__(dim, heads, qkv_bias)
        if window_t < 1:
            raise ValueError(f"WindowedAttention: window_t={window_t} must be >= 1")
        self.window_t = window_t

    def local_mask(self, n_blocks: int, grid_f: int, grid_t: int, device: torch.device) -> Tensor:
        """``(n_blocks, Lq, Lk)`` bool, True = may attend; ``Lq = w*grid_f``, ``Lk = 3*Lq``."""
        w = self.window_t
        q_col = torch.arange(w * grid_f, device=device) // grid_f  # (Lq,) column inside block
        k_col = torch.arange(3 * w * grid_f, device=device) // grid_f - w  # (Lk,) from prev block
        block = torch.arange(n_blocks, device=device)[:, None, None] * w  # (nb, 1, 1)
        t_q = block + q_col[None, :, None]  # (nb, Lq, 1)
        t_k = block + k_col[None, None, :]  # (nb, 1, Lk)
        return ((t_q - t_k).abs() <= w) & (t_k >= 0) & (t_k < grid_t)  # (nb, Lq, Lk)

    def forward(self, x: Tensor, grid_f: int = 1) -> Tensor:
        b, n, d = x.shape
        if n % grid_f:
            raise ValueError(f"WindowedAttention: {n} tokens is not a multiple of grid_f={grid_f}")
        w, h = self.window_t, self.heads
        grid_t = n // grid_f
        n_blocks = -(-grid_t // w)
        block_len = w * grid_f
        pad = n_blocks * block_len - n
        q, k, v = self.split_heads(x)  # 3 x (B, H, N, hd)
        hd = q.shape[-1]
        q = F.pad(q, (0, 0, 0, pad)).reshape(b, h * n_blocks, block_len, hd)  # (B, H*nb, Lq, hd)

        def neighbourhood(t: Tensor) -> Tensor:
            t = F.pad(t, (0, 0, block_len, pad + block_len))  # (B, H, (nb+2)*Lq, hd)
            t = t.view(b, h, n_blocks + 2, block_len, hd)  # (B, H, nb+2, Lq, hd)
            t = torch.cat([t[:, :, :-2], t[:, :, 1:-1], t[:, :, 2:]], dim=3)  # (B, H, nb, 3Lq, hd)
            return t.view(b, h * n_blocks, 3 * block_len, hd)  # (B, H*nb, Lk, hd)

        mask = self.local_mask(n_blocks, grid_f, grid_t, x.device)  # (nb, Lq, Lk)
        mask = mask.repeat(h, 1, 1)[None]  # (1, H*nb, Lq, Lk)
        out = F.scaled_dot_product_attention(q, neighbourhood(k), neighbourhood(v), attn_mask=mask)
        out = out.reshape(b, h, n_blocks * block_len, hd)[:, :, :n]  # (B, H, N, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``.

    Args:
        dim, heads, mlp_dim: widths.
        qkv_bias, norm_eps, drop_path: as in ``ViTConfig``.
        window_t: if set, local attention along time (``WindowedAttention``); else global.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        drop_path: float = 0.0,
        window_t: int | None = None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        if window_t is None:
            self.attn = Attention(dim, heads, qkv_bias)
        else:
            self.attn = WindowedAttention(dim, heads, window_t, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, grid_f: int = 1) -> Tensor:
        """``(B, N, D)`` -> ``(B, N, D)``; ``grid_f`` (tokens per time column) for windowing."""
        x = x + self.drop_path(self.attn(self.norm1(x), grid_f))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_weights(module: nn.Module) -> None:
    """MAE initialisation: xavier-uniform linears, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    """ViT encoder over spectrogram patches; sees only the patches it is given (``keep_idx``)."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        rates = [config.drop_path * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(
            Block(
                config.dim,
                config.heads,
                config.mlp_dim,
                config.qkv_bias,
                config.norm_eps,
                rate,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps)
        self.apply(init_weights)
        weight = self.patch_embed.proj.weight  # (D, 1, pf, pt): init like a linear layer
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))

    def grid(self, n_frames: int) -> tuple[int, int]:
        """``(grid_f, grid_t)`` for a spectrogram of ``n_frames`` frames (a multiple of patch_t)."""
        if n_frames % self.config.patch_t or n_frames < self.config.patch_t:
            raise ValueError(
                f"Encoder: {n_frames} frames is not a positive multiple of "
                f"patch_t={self.config.patch_t}; use Encoder.pad_frames first"
            )
        return self.config.grid_f, n_frames // self.config.patch_t

    def pad_frames(self, spec: Tensor, value: float = 0.0) -> Tensor:
        """Right-pad the last (time) axis with ``value`` to a multiple of ``patch_t`` frames."""
        pad = -spec.shape[-1] % self.config.patch_t
        return F.pad(spec, (0, pad), value=value) if pad else spec

    def check_spec(self, spec: Tensor) -> Tensor:
        """Validate ``(B, F, T)`` or ``(B, 1, F, T)`` and return ``(B, 1, F, T)``."""
        if spec.ndim == 3:
            spec = spec[:, None]  # (B, 1, F, T)
        if spec.ndim != 4 or spec.shape[1] != 1 or spec.shape[2] != self.config.n_mels:
            raise ValueError(
                f"Encoder: spectrogram shape {tuple(spec.shape)} is not "
                f"(B, {self.config.n_mels}, T) or (B, 1, {self.config.n_mels}, T)"
            )
        self.grid(spec.shape[-1])
        return spec

    def patchify(self, spec: Tensor) -> Tensor:
        """Cut a spectrogram into patch pixels.

        Args:
            spec: ``(B, F, T)`` or ``(B, 1, F, T)``, ``T`` a multiple of ``patch_t``.

        Returns:
            ``(B, N, patch_f * patch_t)``, tokens time-major, each patch's pixels row-major
            (frequency bin, then frame).
        """
        spec = self.check_spec(spec)
        pf, pt = self.config.patch_f, self.config.patch_t
        grid_f, grid_t = self.grid(spec.shape[-1])
        b = spec.shape[0]
        x = spec.reshape(b, grid_f, pf, grid_t, pt)  # (B, gf, pf, gt, pt)
        x = x.permute(0, 3, 1, 2, 4)  # (B, gt, gf, pf, pt)
        return x.reshape(b, grid_t * grid_f, pf * pt)  # (B, N, P)

    def unpatchify(self, patches: Tensor, n_frames: int) -> Tensor:
        """Inverse of ``patchify``: ``(B, N, P)`` -> ``(B, F, T)``."""
        pf, pt = self.config.patch_f, self.config.patch_t
        grid_f, grid_t = self.grid(n_frames)
        b = patches.shape[0]
        x = patches.reshape(b, grid_t, grid_f, pf, pt)  # (B, gt, gf, pf, pt)
        x = x.permute(0, 2, 3, 1, 4)  # (B, gf, pf, gt, pt)
        return x.reshape(b, grid_f * pf, grid_t * pt)  # (B, F, T)

    @staticmethod
    def token_grid_positions(grid_f: int, grid_t: int) -> Tensor:
        """``(N, 2)`` long ``[f, t]`` grid position of every token (time-major order).

        Equivalently, ``tokens.view(B, grid_t, grid_f, D).permute(0, 2, 1, 3)`` is
        ``(B, grid_f, grid_t, D)``.
        """
        t = torch.arange(grid_t).repeat_interleave(grid_f)  # (N,)
        f = torch.arange(grid_f).repeat(grid_t)  # (N,)
        return torch.stack([f, t], dim=1)  # (N, 2)

    def embed(self, spec: Tensor) -> Tensor:
        """Patch embedding plus positional embedding: ``(B, N, D)``, all tokens."""
        spec = self.check_spec(spec)
        grid_f, grid_t = self.grid(spec.shape[-1])
        x = self.patch_embed(spec)  # (B, N, D)
        pos = sincos_pos_embed_2d(self.config.dim, grid_f, grid_t, device=x.device)
        return x + pos.to(x.dtype)

    def forward_features(self, spec: Tensor, keep_idx: Tensor | None = None) -> Tensor:
        """Encode the visible patches.

        Args:
            spec: ``(B, F, T)`` or ``(B, 1, F, T)`` log-mel spectrogram, ``T`` a multiple of
                ``patch_t``.
            keep_idx: ``(B, N_kept)`` long indices (time-major) of the visible patches, the same
                count per row; ``None`` = all patches.

        Returns:
            ``(B, N_kept, D)`` layer-normed tokens, in ``keep_idx`` order.
        """
        x = self.embed(spec)  # (B, N, D)
        if keep_idx is not None:
            x = torch.gather(x, 1, keep_idx[:, :, None].expand(-1, -1, x.shape[-1]))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, spec: Tensor, keep_idx: Tensor | None = None) -> Tensor:
        """Alias of ``forward_features``."""
        return self.forward_features(spec, keep_idx)


__all__ = [
    "ViTConfig",
    "PatchEmbed",
    "Attention",
    "WindowedAttention",
    "Block",
    "Encoder",
    "sincos_pos_embed_2d",
]
