"""Masking strategies: ratios, block structure, keep_idx/mask agreement, reproducibility."""

from __future__ import annotations

import pytest
import torch

from biomae.models.masking import MASKING, freq_block_mask, random_mask, time_block_mask


@pytest.mark.parametrize("name", sorted(MASKING))
def test_keep_idx_and_mask_agree(name):
    keep_idx, mask = MASKING[name](3, 8, 25, 0.8, generator=torch.Generator().manual_seed(0))
    assert keep_idx.dtype == torch.long and mask.dtype == torch.bool
    assert mask.shape == (3, 200)
    for row in range(3):
        visible = (~mask[row]).nonzero().flatten()
        assert visible.tolist() == keep_idx[row].tolist()  # sorted, same set
    assert (keep_idx.diff(dim=1) > 0).all()


def test_random_mask_ratio_and_randomness():
    keep_idx, mask = random_mask(4, 8, 25, 0.75, generator=torch.Generator().manual_seed(0))
    assert keep_idx.shape == (4, 50)
    assert (mask.sum(1) == 150).all()
    assert not torch.equal(mask[0], mask[1])  # each clip gets its own mask


def test_time_block_mask_masks_whole_columns():
    keep_idx, mask = time_block_mask(2, 8, 25, 0.8, generator=torch.Generator().manual_seed(0))
    grid = mask.view(2, 25, 8)  # (B, grid_t, grid_f): time-major tokens
    assert (grid.all(dim=2) | ~grid.any(dim=2)).all()  # each column all-or-nothing
    assert (grid[:, :, 0].sum(1) == 20).all()
    assert keep_idx.shape == (2, 5 * 8)


def test_freq_block_mask_masks_whole_rows():
    _, mask = freq_block_mask(2, 8, 25, 0.8, generator=torch.Generator().manual_seed(0))
    grid = mask.view(2, 25, 8)  # (B, grid_t, grid_f)
    assert (grid.all(dim=1) | ~grid.any(dim=1)).all()  # each row all-or-nothing
    assert (grid[:, 0, :].sum(1) == 6).all()  # round(0.8 * 8) rows


@pytest.mark.parametrize("name", sorted(MASKING))
def test_generator_makes_masks_reproducible(name):
    a = MASKING[name](2, 8, 10, 0.5, generator=torch.Generator().manual_seed(3))
    b = MASKING[name](2, 8, 10, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_ratios_fail_early():
    with pytest.raises(ValueError, match="ratio 1.0"):
        random_mask(1, 8, 10, 1.0)
    with pytest.raises(ValueError, match="leaving none visible"):
        time_block_mask(1, 8, 2, 0.9)
    with pytest.raises(ValueError, match="masks no unit"):
        freq_block_mask(1, 2, 10, 0.2)
    keep_idx, mask = random_mask(1, 8, 10, 0.0)
    assert keep_idx.shape == (1, 80) and not mask.any()
