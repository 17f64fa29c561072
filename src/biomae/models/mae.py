"""The Bioacoustic Masked Autoencoder (MAE, He et al. 2021; Audio-MAE, Huang et al. 2022).

``MAE.forward(spec)`` on a log-mel spectrogram ``(B, F, T)``:

1. choose visible patches with the configured masking function (``biomae.models.masking``);
2. the ``Encoder`` embeds all patches, adds 2-D sin-cos positions, gathers the visible ones and
   runs its blocks on those only (``1 - mask_ratio`` of the tokens);
3. the decoder projects them to ``decoder_dim``, scatters them into a full grid filled with a
   learned mask token, adds its own sin-cos positions, runs its blocks (global attention, or
   windowed along time with ``decoder_window_t``) and predicts every patch's pixels;
4. the loss is the MSE on masked patches only, against per-patch normalised targets
   (``norm_pix_loss``: each patch's pixels minus their mean, over their std).

Normalising the log-mel values themselves is the caller's job (the training code). Padding
``T`` to a multiple of ``patch_t`` is also the caller's (``Encoder.pad_frames``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from biomae.models.masking import MASKING
from biomae.models.vit import Block, Encoder, ViTConfig, init_weights, sincos_pos_embed_2d


@dataclass
class MAEConfig:
    """Encoder + decoder + masking of one MAE.

    Attributes:
        encoder: the encoder's ``ViTConfig``.
        decoder_dim, decoder_depth, decoder_heads, decoder_mlp_dim: decoder widths.
        mask_ratio: fraction of patches (or columns / rows) hidden from the encoder, in [0, 1).
        masking: a key of ``biomae.models.masking.MASKING``.
        norm_pix_loss: normalise each target patch by its own mean and std.
        decoder_window_t: if set, decoder tokens attend only within +-this many time patches.
    """

    encoder: ViTConfig = field(default_factory=ViTConfig)
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    decoder_mlp_dim: int = 2048
    mask_ratio: float = 0.8
    masking: str = "random"
    norm_pix_loss: bool = True
    decoder_window_t: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = ViTConfig(**self.encoder)
        for name in ("decoder_dim", "decoder_depth", "decoder_heads", "decoder_mlp_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"MAEConfig.{name}={getattr(self, name)} must be >= 1")
        if self.decoder_dim % 4 or self.decoder_dim % self.decoder_heads:
            raise ValueError(
                f"MAEConfig: decoder_dim={self.decoder_dim} must be a multiple of 4 and of "
                f"decoder_heads={self.decoder_heads}"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"MAEConfig.mask_ratio={self.mask_ratio} must be in [0, 1)")
        if self.masking not in MASKING:
            raise ValueError(f"MAEConfig.masking={self.masking!r} is not one of {sorted(MASKING)}")
        if self.decoder_window_t is not None and self.decoder_window_t < 1:
            raise ValueError(f"MAEConfig.decoder_window_t={self.decoder_window_t} must be >= 1")


class MAE(nn.Module):
    """Masked autoencoder over spectrogram patches. See the module docstring."""

    def __init__(self, config: MAEConfig):
        super().__init__()
        self.config = config
        enc = config.encoder
        self.encoder = Encoder(config.encoder)
        self.mask_fn = MASKING[config.masking]
        self.decoder_embed = nn.Linear(enc.dim, config.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(config.decoder_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(
                config.decoder_dim,
                config.decoder_heads,
                config.decoder_mlp_dim,
                enc.qkv_bias,
                enc.norm_eps,
                window_t=config.decoder_window_t,
            )
            for _ in range(config.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(config.decoder_dim, eps=enc.norm_eps)
        self.decoder_pred = nn.Linear(config.decoder_dim, enc.patch_pixels)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm):
            module.apply(init_weights)
        self.decoder_pred.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def decode(self, latent: Tensor, keep_idx: Tensor, grid_f: int, grid_t: int) -> Tensor:
        """Predict every patch from the visible tokens.

        Args:
            latent: ``(B, N_keep, D)`` encoder output.
            keep_idx: ``(B, N_keep)`` positions of those tokens in the time-major grid.
            grid_f, grid_t: the patch grid.

        Returns:
            ``(B, N, P)`` predicted patch pixels.
        """
        b = latent.shape[0]
        d = self.config.decoder_dim
        n_tokens = grid_f * grid_t
        y = self.decoder_embed(latent)  # (B, N_keep, Dd)
        full = self.mask_token.to(y.dtype).expand(b, n_tokens, d)  # (B, N, Dd)
        x = full.scatter(1, keep_idx[:, :, None].expand(-1, -1, d), y)  # (B, N, Dd)
        x = x + sincos_pos_embed_2d(d, grid_f, grid_t, device=x.device).to(x.dtype)
        for block in self.decoder_blocks:
            x = block(x, grid_f)
        return self.decoder_pred(self.decoder_norm(x))  # (B, N, P)

    def target(self, spec: Tensor) -> Tensor:
        """``(B, N, P)`` reconstruction targets, per-patch normalised if ``norm_pix_loss``."""
        target = self.encoder.patchify(spec).float()  # (B, N, P)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    @staticmethod
    def masked_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean squared error over the masked patches only (float32 scalar)."""
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # (B, N)
        weight = mask.to(per_patch.dtype)
        return (per_patch * weight).sum() / weight.sum()

    def forward(self, spec: Tensor, mask_generator: torch.Generator | None = None) -> dict:
        """Mask, encode, decode and score one batch.

        Args:
            spec: ``(B, F, T)`` or ``(B, 1, F, T)`` normalised log-mel, ``T`` a multiple of
                ``patch_t``.
            mask_generator: random source for the mask (reproducible masks); ``None`` = global.

        Returns:
            ``{"loss": () float32, "pred": (B, N, P), "mask": (B, N) bool True=masked,
            "target": (B, N, P) float32}``.
        """
        spec = self.encoder.check_spec(spec)
        grid_f, grid_t = self.encoder.grid(spec.shape[-1])
        keep_idx, mask = self.mask_fn(
            spec.shape[0],
            grid_f,
            grid_t,
            self.config.mask_ratio,
            generator=mask_generator,
            device=spec.device,
        )
        latent = self.encoder.forward_features(spec, keep_idx)  # (B, N_keep, D)
        pred = self.decode(latent, keep_idx, grid_f, grid_t)  # (B, N, P)
        target = self.target(spec)
        return {
            "loss": self.masked_loss(pred, target, mask),
            "pred": pred,
            "mask": mask,
            "target": target,
        }

    def reconstruct(self, pred: Tensor, n_frames: int) -> Tensor:
        """Patch predictions ``(B, N, P)`` -> spectrogram ``(B, F, T)`` (in target units)."""
        return self.encoder.unpatchify(pred, n_frames)
