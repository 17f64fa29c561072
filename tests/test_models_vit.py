"""ViT encoder: patch order, sin-cos positions, visible-only encoding, windowed attention."""

from __future__ import annotations

import pytest
import torch

from biomae.models.vit import (
    Attention,
    Block,
    Encoder,
    ViTConfig,
    WindowedAttention,
    sincos_pos_embed_2d,
)

SMALL = ViTConfig(n_mels=32, patch_f=8, patch_t=4, dim=32, depth=2, heads=2, mlp_dim=64)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n_mels=100"):
        ViTConfig(n_mels=100, patch_f=16)
    with pytest.raises(ValueError, match="dim=30"):
        ViTConfig(dim=30, heads=3)
    with pytest.raises(ValueError, match="drop_path"):
        ViTConfig(drop_path=1.0)


def test_patchify_is_time_major_and_inverts():
    enc = Encoder(SMALL)
    spec = torch.randn(2, 32, 12)
    patches = enc.patchify(spec)  # (B, N, P)
    grid_f, grid_t = enc.grid(12)
    assert (grid_f, grid_t) == (4, 3)
    assert patches.shape == (2, 12, 32)
    # token n = t * grid_f + f holds bins f*8..f*8+8 and frames t*4..t*4+4
    for t in range(grid_t):
        for f in range(grid_f):
            expect = spec[:, f * 8 : (f + 1) * 8, t * 4 : (t + 1) * 4].reshape(2, -1)
            torch.testing.assert_close(patches[:, t * grid_f + f], expect)
    torch.testing.assert_close(enc.unpatchify(patches, 12), spec)
    positions = Encoder.token_grid_positions(grid_f, grid_t)
    assert positions[5].tolist() == [5 % grid_f, 5 // grid_f]


def test_patch_embed_follows_token_order():
    """Changing one patch's pixels changes exactly that token of the patch embedding."""
    enc = Encoder(SMALL)
    spec = torch.randn(1, 32, 12)
    base = enc.patch_embed(spec[:, None])
    spec2 = spec.clone()
    spec2[:, 16:24, 8:12] += 1.0  # f = 2, t = 2 -> token 2 * 4 + 2 = 10
    changed = (enc.patch_embed(spec2[:, None]) - base).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [10]


def test_bad_inputs_fail_with_the_shape():
    enc = Encoder(SMALL)
    with pytest.raises(ValueError, match="multiple of patch_t=4"):
        enc.forward_features(torch.randn(1, 32, 10))
    with pytest.raises(ValueError, match=r"\(B, 32, T\)"):
        enc.forward_features(torch.randn(1, 40, 12))
    assert enc.pad_frames(torch.randn(1, 32, 10)).shape == (1, 32, 12)


def test_sincos_pos_embed_properties():
    emb = sincos_pos_embed_2d(64, grid_f=4, grid_t=50)
    assert emb.shape == (200, 64)
    # every channel pair is a point on the unit circle: each half has norm sqrt(dim/4)
    half_norm = emb[:, :32].norm(dim=1)
    torch.testing.assert_close(half_norm, torch.full((200,), 4.0))
    # time half depends only on t, frequency half only on f
    grid = emb.view(50, 4, 64)  # (grid_t, grid_f, dim)
    torch.testing.assert_close(grid[:, :1, :32].expand(50, 4, 32), grid[:, :, :32])
    torch.testing.assert_close(grid[:1, :, 32:].expand(50, 4, 32), grid[:, :, 32:])
    # all positions distinct; a longer grid extends a shorter one unchanged
    assert torch.cdist(emb, emb).add(torch.eye(200)).min() > 1e-3
    torch.testing.assert_close(sincos_pos_embed_2d(64, 4, 20), emb[:80])
    with pytest.raises(ValueError, match="dim=30"):
        sincos_pos_embed_2d(30, 2, 2)


@pytest.mark.parametrize("n_frames", [16, 400, 1008])
def test_forward_features_shapes_any_duration(n_frames):
    enc = Encoder(ViTConfig(dim=64, depth=2, heads=2, mlp_dim=128))
    out = enc.forward_features(torch.randn(2, 128, n_frames))
    assert out.shape == (2, 8 * n_frames // 16, 64)
    assert torch.isfinite(out).all()


def test_encoder_sees_only_visible_patches():
    torch.manual_seed(0)
    enc = Encoder(SMALL).eval()
    spec = torch.randn(2, 32, 12)
    keep_idx = torch.tensor([[0, 3, 7, 11], [1, 2, 5, 9]])
    out = enc.forward_features(spec, keep_idx)
    assert out.shape == (2, 4, 32)
    spec2 = spec.clone()
    spec2[0, 8:16, 0:4] = 100.0  # token 1 (f=1, t=0): masked in clip 0
    spec2[1, 0:8, 0:4] = -50.0  # token 0: masked in clip 1
    torch.testing.assert_close(enc.forward_features(spec2, keep_idx), out)
    spec2[0, 0:8, 0:4] = 7.0  # token 0: visible in clip 0
    assert not torch.allclose(enc.forward_features(spec2, keep_idx)[0], out[0])
    # keeping all tokens equals no keep_idx
    all_idx = torch.arange(12).expand(2, 12)
    torch.testing.assert_close(enc.forward_features(spec, all_idx), enc.forward_features(spec))


@pytest.mark.parametrize(("grid_f", "grid_t", "window_t"), [(3, 17, 2), (2, 5, 1), (4, 3, 5)])
def test_windowed_attention_is_local(grid_f, grid_t, window_t):
    """Output of a token depends only on tokens within +-window_t time columns."""
    torch.manual_seed(0)
    attn = WindowedAttention(16, 2, window_t)
    x = torch.randn(1, grid_t, grid_f, 16)
    perturbed = x.repeat(grid_t, 1, 1, 1)  # (grid_t, grid_t, grid_f, D): clip c moves column c
    perturbed[torch.arange(grid_t), torch.arange(grid_t)] += 1.0
    with torch.no_grad():
        base = attn(x.view(1, -1, 16), grid_f)  # (1, N, D)
        moved = attn(perturbed.view(grid_t, -1, 16), grid_f)  # (grid_t, N, D)
    changed = (moved - base).abs().amax(-1).view(grid_t, grid_t, grid_f) > 1e-6
    t = torch.arange(grid_t)
    inside = (t[:, None] - t[None, :]).abs() <= window_t  # (moved column, output column)
    assert torch.equal(changed, inside[:, :, None].expand(-1, -1, grid_f))


def test_windowed_attention_equals_global_when_window_covers_all():
    torch.manual_seed(0)
    local = WindowedAttention(16, 2, window_t=10)
    full = Attention(16, 2)
    full.load_state_dict(local.state_dict())
    x = torch.randn(2, 4 * 7, 16)
    torch.testing.assert_close(local(x, 4), full(x, 4), atol=1e-5, rtol=1e-5)


def test_windowed_attention_equals_masked_full_attention():
    """Same numbers as an O(N^2) boolean-masked reference."""
    torch.manual_seed(1)
    grid_f, grid_t, w = 2, 11, 3
    attn = WindowedAttention(16, 2, w)
    x = torch.randn(2, grid_f * grid_t, 16)
    q, k, v = attn.split_heads(x)
    t_of = torch.arange(grid_f * grid_t) // grid_f
    mask = (t_of[:, None] - t_of[None, :]).abs() <= w
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref = attn.proj(ref.transpose(1, 2).reshape(2, grid_f * grid_t, 16))
    torch.testing.assert_close(attn(x, grid_f), ref, atol=1e-5, rtol=1e-5)


def test_block_drop_path_only_in_training():
    block = Block(16, 2, 32, drop_path=0.5)
    x = torch.randn(8, 5, 16)
    block.eval()
    torch.testing.assert_close(block(x), block(x))
    block.train()
    torch.manual_seed(0)
    a = block(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, block(x))
