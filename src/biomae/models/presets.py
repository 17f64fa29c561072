"""Named MAE sizes, parameter counts and analytic FLOPs.

=======  ======================  ===========================  =====================
preset   encoder (dim/depth/h)   decoder (dim/depth/h/mlp)    encoder + decoder
=======  ======================  ===========================  =====================
tiny     192 / 12 / 3   ~5.4M    128 / 4 / 4 / 512   ~0.8M    CPU tests, demos
small    384 / 12 / 6   ~21M     256 / 4 / 8 / 1024  ~3.3M
base     768 / 12 / 12  ~85M     512 / 8 / 16 / 2048 ~26M     (Audio-MAE base)
large    1024 / 24 / 16 ~303M    512 / 8 / 16 / 2048 ~26M
huge     1280 / 32 / 16 ~630M    512 / 8 / 16 / 2048 ~26M
vit1b    1408 / 40 / 16 ~1.01B   1024 / 40 / 16 / 4096 ~505M
=======  ======================  ===========================  =====================

All use 128 mel bins, 16 x 16 patches (16 bins x 160 ms at a 10 ms hop), mask ratio 0.8.
Build big ones on the meta device (``with torch.device("meta"): MAE(cfg)``) to count for free.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from biomae.models.mae import MAEConfig
from biomae.models.vit import ViTConfig


def _preset(
    dim: int,
    depth: int,
    heads: int,
    mlp_dim: int,
    decoder: tuple[int, int, int, int],
) -> MAEConfig:
    dec_dim, dec_depth, dec_heads, dec_mlp = decoder
    return MAEConfig(
        encoder=ViTConfig(dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim),
        decoder_dim=dec_dim,
        decoder_depth=dec_depth,
        decoder_heads=dec_heads,
        decoder_mlp_dim=dec_mlp,
    )


PRESETS: dict[str, MAEConfig] = {
    "tiny": _preset(192, 12, 3, 768, (128, 4, 4, 512)),
    "small": _preset(384, 12, 6, 1536, (256, 4, 8, 1024)),
    "base": _preset(768, 12, 12, 3072, (512, 8, 16, 2048)),
    "large": _preset(1024, 24, 16, 4096, (512, 8, 16, 2048)),
    "huge": _preset(1280, 32, 16, 5120, (512, 8, 16, 2048)),
    "vit1b": _preset(1408, 40, 16, 6144, (1024, 40, 16, 4096)),
}


def get_preset(name: str, **overrides) -> MAEConfig:
    """A fresh copy of preset ``name`` with field overrides.

    ``overrides`` are ``MAEConfig`` fields, or encoder fields prefixed ``encoder.`` /
    ``encoder_`` (e.g. ``get_preset("tiny", mask_ratio=0.7, **{"encoder.depth": 2})``).
    """
    if name not in PRESETS:
        raise KeyError(f"unknown MAE preset {name!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS[name]
    encoder_fields = {f.name for f in dataclasses.fields(ViTConfig)}
    mae_fields = {f.name for f in dataclasses.fields(MAEConfig)}
    enc_over, mae_over = {}, {}
    for key, value in overrides.items():
        for prefix in ("encoder.", "encoder_"):
            if key.startswith(prefix) and key[len(prefix) :] in encoder_fields:
                enc_over[key[len(prefix) :]] = value
                break
        else:
            if key not in mae_fields:
                raise KeyError(f"get_preset({name!r}): unknown override {key!r}")
            mae_over[key] = value
    encoder = mae_over.pop("encoder", base.encoder)
    if isinstance(encoder, dict):
        encoder = ViTConfig(**encoder)
    encoder = dataclasses.replace(encoder, **enc_over)
    return dataclasses.replace(base, encoder=encoder, **mae_over)


def attention_flops(n_query: int, n_key: int, dim: int) -> float:
    """Matmul FLOPs of ``softmax(QK^T)V`` for one sequence: ``2 * 2 * n_query * n_key * dim``."""
    return 4.0 * n_query * n_key * dim


def block_flops(n_tokens: float, dim: int, mlp_dim: int, n_key: float | None = None) -> float:
    """Forward matmul FLOPs of one ``Block`` on ``n_tokens`` tokens (each seeing ``n_key``)."""
    linear = 2.0 * n_tokens * (4 * dim * dim + 2 * dim * mlp_dim)
    return linear + attention_flops(n_tokens, n_tokens if n_key is None else n_key, dim)


def count_params(module: nn.Module) -> int:
    """Number of parameters (works on meta-device modules)."""
    return sum(p.numel() for p in module.parameters())


def flops_per_second_of_audio(
    config: MAEConfig, hop_s: float = 0.01, clip_s: float = 10.0
) -> dict[str, float]:
    """Analytic forward matmul FLOPs per second of audio (multiply-add = 2 FLOPs).

    Counts linear layers, the patch embedding, the decoder head and attention score/value
    matmuls (which grow with sequence length, hence ``clip_s``: sequences are ``clip_s`` long;
    with ``decoder_window_t`` each decoder query sees ``2 * window_t + 1`` time columns, the
    useful work — the blocked kernel computes up to ``3 * window_t`` columns and masks the rest).
    Backward is ~2x forward, so a training step is ~3x these figures.

    Args:
        config: the MAE.
        hop_s: spectrogram hop in seconds (10 ms -> 100 frames per second).
        clip_s: clip length the model sees at once, for the attention term.

    Returns:
        ``encoder``: encoder over all tokens (inference / fine-tuning);
        ``encoder_visible``: encoder over the ``1 - mask_ratio`` visible tokens (pretraining);
        ``decoder``: decoder over all tokens (pretraining); ``tokens``: tokens per second.
    """
    if hop_s <= 0 or clip_s <= 0:
        raise ValueError(f"flops_per_second_of_audio: hop_s={hop_s}, clip_s={clip_s} must be > 0")
    enc = config.encoder
    tokens_per_s = enc.grid_f / (hop_s * enc.patch_t)
    n_clip = tokens_per_s * clip_s
    n_visible = n_clip * (1.0 - config.mask_ratio)
    embed = 2.0 * enc.patch_pixels * enc.dim  # per token

    def encoder_flops(n: float) -> float:
        per_clip = enc.depth * block_flops(n, enc.dim, enc.mlp_dim)
        return per_clip / clip_s + embed * tokens_per_s

    d = config.decoder_dim
    if config.decoder_window_t is None:
        n_key = n_clip
    else:
        n_key = min(n_clip, (2 * config.decoder_window_t + 1) * enc.grid_f)
    dec_clip = config.decoder_depth * block_flops(n_clip, d, config.decoder_mlp_dim, n_key)
    dec_clip += 2.0 * n_visible * enc.dim * d + 2.0 * n_clip * d * enc.patch_pixels
    return {
        "encoder": encoder_flops(n_clip),
        "encoder_visible": encoder_flops(n_visible),
        "decoder": dec_clip / clip_s,
        "tokens": tokens_per_s,
    }
