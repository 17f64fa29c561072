"""Patch masking strategies for MAE pretraining, one function each, chosen by name in ``MASKING``.

Every function has the signature ``(batch, grid_f, grid_t, ratio, generator=None, device=None)``
and returns ``(keep_idx, mask)``:

- ``keep_idx``: ``(B, N_keep)`` long, the visible tokens in increasing (time-major) order, the
  same count in every row (so the batch stays rectangular);
- ``mask``: ``(B, N)`` bool, True = masked (hidden from the encoder, scored by the loss).

Tokens are time-major (``n = t * grid_f + f``, see ``biomae.models.vit``). The number of masked
units is ``round(ratio * units)``; at least one unit must stay visible and, for ``ratio > 0``,
at least one must be masked, otherwise a ``ValueError`` names the grid and the ratio.

- ``random_mask``: independent patches (the MAE / Audio-MAE default).
- ``time_block_mask``: whole time columns (every frequency row of a 160 ms slice) — the model
  must infer a call from its temporal context.
- ``freq_block_mask``: whole frequency rows (a mel band over the whole clip) — the model must
  infer a band from harmonics and the other bands.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def n_masked_units(units: int, ratio: float, where: str) -> int:
    """How many of ``units`` to mask at ``ratio``; fails if none stays visible."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"{where}: mask ratio {ratio} must be in [0, 1)")
    n_masked = round(ratio * units)
    if n_masked >= units:
        raise ValueError(
            f"{where}: ratio {ratio} masks {n_masked} of {units} units, leaving none visible"
        )
    if ratio > 0 and n_masked == 0:
        raise ValueError(f"{where}: ratio {ratio} masks no unit of {units}; use a longer input")
    return n_masked


def choose_units(
    batch: int, units: int, n_keep: int, generator: torch.Generator | None, device
) -> Tensor:
    """``(B, n_keep)`` sorted indices of units kept visible, uniformly at random per row."""
    gen_device = generator.device if generator is not None else device
    noise = torch.rand(batch, units, generator=generator, device=gen_device).to(device)
    keep = noise.argsort(dim=1)[:, :n_keep]  # (B, n_keep)
    return keep.sort(dim=1).values


def mask_from_keep(keep_idx: Tensor, n_tokens: int) -> Tensor:
    """``(B, N)`` bool mask, True everywhere except at ``keep_idx``."""
    mask = torch.ones(keep_idx.shape[0], n_tokens, dtype=torch.bool, device=keep_idx.device)
    return mask.scatter(1, keep_idx, False)


def random_mask(
    batch: int,
    grid_f: int,
    grid_t: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Mask ``round(ratio * N)`` patches chosen independently per clip."""
    n_tokens = grid_f * grid_t
    n_keep = n_tokens - n_masked_units(n_tokens, ratio, f"random_mask({grid_f}x{grid_t})")
    keep_idx = choose_units(batch, n_tokens, n_keep, generator, device)  # (B, N_keep)
    return keep_idx, mask_from_keep(keep_idx, n_tokens)


def time_block_mask(
    batch: int,
    grid_f: int,
    grid_t: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Mask ``round(ratio * grid_t)`` whole time columns (all ``grid_f`` rows of each)."""
    n_keep_t = grid_t - n_masked_units(grid_t, ratio, f"time_block_mask({grid_f}x{grid_t})")
    cols = choose_units(batch, grid_t, n_keep_t, generator, device)  # (B, Kt)
    rows = torch.arange(grid_f, device=cols.device)
    keep_idx = (cols[:, :, None] * grid_f + rows[None, None, :]).reshape(batch, -1)  # (B, Kt*gf)
    return keep_idx, mask_from_keep(keep_idx, grid_f * grid_t)


def freq_block_mask(
    batch: int,
    grid_f: int,
    grid_t: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Mask ``round(ratio * grid_f)`` whole frequency rows (all ``grid_t`` columns of each)."""
    n_keep_f = grid_f - n_masked_units(grid_f, ratio, f"freq_block_mask({grid_f}x{grid_t})")
    rows = choose_units(batch, grid_f, n_keep_f, generator, device)  # (B, Kf)
    cols = torch.arange(grid_t, device=rows.device)
    keep_idx = (cols[None, :, None] * grid_f + rows[:, None, :]).reshape(batch, -1)  # (B, gt*Kf)
    return keep_idx, mask_from_keep(keep_idx, grid_f * grid_t)


MaskFn = Callable[..., tuple[Tensor, Tensor]]

MASKING: dict[str, MaskFn] = {
    "random": random_mask,
    "time": time_block_mask,
    "frequency": freq_block_mask,
}
