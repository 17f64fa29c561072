"""Heads: output shapes, frame rates, token order, span pooling and masks."""

from __future__ import annotations

import pytest
import torch

from biomae.models.heads import (
    AttentionPool,
    ClassificationHead,
    DetectionHead,
    DetectionHeadConfig,
    MeanPool,
    ProjectionHead,
    init_output_bias,
    tokens_to_grid,
)

D = 32


def _tokens(batch=2, grid=(8, 5), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, grid[0] * grid[1], D, generator=gen)


def test_tokens_to_grid_orders_agree():
    grid = (3, 4)
    fgrid = torch.arange(12).reshape(1, 3, 4, 1).float()  # value = f * 4 + t
    freq_major = fgrid.reshape(1, 12, 1)
    time_major = fgrid.transpose(1, 2).reshape(1, 12, 1)
    assert torch.equal(tokens_to_grid(freq_major, grid, "freq_major"), fgrid)
    assert torch.equal(tokens_to_grid(time_major, grid, "time_major"), fgrid)
    from biomae.models.vit import Encoder

    positions = Encoder.token_grid_positions(*grid)  # (N, 2) [f, t] of the encoder's tokens
    encoder_tokens = (positions[:, 0] * 4 + positions[:, 1]).float().reshape(1, 12, 1)
    assert torch.equal(tokens_to_grid(encoder_tokens, grid), fgrid)  # default = encoder order
    with pytest.raises(ValueError, match="do not fill"):
        tokens_to_grid(freq_major, (5, 4))


@pytest.mark.parametrize(
    "patch_t, upsample, frame_hop_s", [(16, 8, 0.02), (16, 16, 0.01), (2, 1, 0.02), (16, 1, 0.16)]
)
def test_detection_head_shapes_and_resolution(patch_t, upsample, frame_hop_s):
    cfg = DetectionHeadConfig(
        dim=D, patch_t=patch_t, upsample=upsample, n_classes=3, outputs=("activity", "onset")
    )
    head = DetectionHead(cfg)
    out = head(_tokens(grid=(8, 5)), (8, 5))
    assert set(out) == {"activity", "onset"}
    assert out["activity"].shape == (2, 5 * upsample, 3) == (2, head.n_frames(5), 3)
    assert head.frame_hop_s == pytest.approx(frame_hop_s)


def test_detection_head_upsampling_is_local_in_time():
    """Without convs, the output frames of patch column t depend on column t only."""
    head = DetectionHead(
        DetectionHeadConfig(dim=D, patch_t=16, upsample=8, conv_layers=0, token_order="freq_major")
    )
    tokens = _tokens(batch=1, grid=(4, 6))
    base = head(tokens, (4, 6))["activity"]
    changed = tokens.reshape(1, 4, 6, D).clone()
    changed[:, :, 2] += torch.randn(4, D)  # perturb patch column 2 (freq-major order)
    out = head(changed.reshape(1, 24, D), (4, 6))["activity"]
    differs = (out - base).abs()[0, :, 0] > 1e-6
    assert differs[16:24].all() and not differs[:16].any() and not differs[24:].any()


def test_detection_config_rejects_bad_values():
    with pytest.raises(ValueError, match="must divide patch_t"):
        DetectionHeadConfig(dim=D, patch_t=16, upsample=3)
    with pytest.raises(ValueError, match="start with 'activity'"):
        DetectionHeadConfig(dim=D, outputs=("onset",))
    with pytest.raises(ValueError, match="unknown outputs"):
        DetectionHeadConfig(dim=D, outputs=("activity", "pitch"))


@pytest.mark.parametrize("pool", [MeanPool(), AttentionPool(D, heads=4)])
def test_pools_respect_mask(pool):
    tokens = _tokens(batch=2, grid=(2, 3))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, :2] = True
    pooled = pool(tokens, mask)
    garbage = tokens.clone()
    garbage[:, 2:] = 1e3
    assert pooled.shape == (2, D)
    assert torch.allclose(pool(garbage, mask), pooled)
    with pytest.raises(ValueError, match="no token"):
        pool(tokens, torch.zeros(2, 6, dtype=torch.bool))


def test_mean_pool_is_mean():
    tokens = _tokens(batch=1, grid=(2, 2))
    mask = torch.tensor([[True, False, True, False]])
    assert torch.allclose(MeanPool()(tokens, mask), tokens[:, [0, 2]].mean(1))


def test_classification_spans_pool_only_their_columns():
    head = ClassificationHead(D, n_classes=4, token_order="freq_major")
    grid = (2, 5)
    tokens = _tokens(batch=2, grid=grid)
    patch_s = 0.16
    # event in batch row 1 spanning columns 1..2 (0.2 s .. 0.4 s)
    spans = torch.tensor([[1.0, 0.2, 0.4], [0.0, 0.0, 0.0]])
    logits = head.forward_spans(tokens, grid, spans, patch_s)
    assert logits.shape == (2, 4)
    cols = tokens.reshape(2, 2, 5, D)[1, :, 1:3].reshape(1, 4, D)
    assert torch.allclose(logits[0], head(cols)[0], atol=1e-6)
    assert torch.allclose(logits[1], head(tokens.reshape(2, 2, 5, D)[0, :, :1].reshape(1, 2, D))[0])
    with pytest.raises(ValueError, match="overlaps none"):
        head.forward_spans(tokens, grid, torch.tensor([[0.0, 5.0, 6.0]]), patch_s)


def test_clip_classification_and_projection():
    tokens = _tokens()
    assert ClassificationHead(D, 7, pool=AttentionPool(D))(tokens).shape == (2, 7)
    emb = ProjectionHead(D, out_dim=16)(tokens)
    assert emb.shape == (2, 16)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_init_output_bias_sets_prior():
    layer = torch.nn.Linear(4, 2)
    init_output_bias(layer, 0.05)
    assert torch.allclose(torch.sigmoid(layer.bias), torch.full((2,), 0.05))
    with pytest.raises(ValueError):
        init_output_bias(layer, 1.0)
