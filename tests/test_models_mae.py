"""Masked autoencoder: shapes at any duration, visible-only encoding, masked-only loss, learning."""

from __future__ import annotations

import pytest
import torch

from biomae.models.mae import MAE, MAEConfig
from biomae.models.presets import get_preset
from biomae.models.vit import ViTConfig


def small_mae(**overrides) -> MAE:
    torch.manual_seed(0)
    config = MAEConfig(
        encoder=ViTConfig(n_mels=32, patch_f=8, patch_t=4, dim=32, depth=2, heads=2, mlp_dim=64),
        decoder_dim=32,
        decoder_depth=2,
        decoder_heads=2,
        decoder_mlp_dim=64,
        **overrides,
    )
    return MAE(config)


def fixed_mask() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_config_validation_names_the_value():
    with pytest.raises(ValueError, match="masking='blocks'"):
        MAEConfig(masking="blocks")
    with pytest.raises(ValueError, match="mask_ratio=1.0"):
        MAEConfig(mask_ratio=1.0)
    with pytest.raises(ValueError, match="decoder_window_t=0"):
        MAEConfig(decoder_window_t=0)
    assert MAEConfig(encoder={"dim": 64, "heads": 2}).encoder.dim == 64  # from a saved dict


@pytest.mark.parametrize("n_frames", [16, 48, 400])
@pytest.mark.parametrize("masking", ["random", "time", "frequency"])
def test_output_shapes(n_frames, masking):
    mae = small_mae(masking=masking, mask_ratio=0.5)
    out = mae(torch.randn(2, 32, n_frames))
    n_tokens = 4 * n_frames // 4
    assert out["pred"].shape == out["target"].shape == (2, n_tokens, 32)
    assert out["mask"].shape == (2, n_tokens) and out["mask"].dtype == torch.bool
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert mae.reconstruct(out["pred"], n_frames).shape == (2, 32, n_frames)


@pytest.mark.parametrize("window_t", [None, 4])
def test_tiny_preset_on_60_s(window_t):
    """60 s at a 10 ms hop: 6000 frames -> 375 x 8 = 3000 tokens, no retraining."""
    mae = MAE(get_preset("tiny", decoder_window_t=window_t))
    with torch.no_grad():
        out = mae(torch.randn(1, 128, 6000))
    assert out["pred"].shape == (1, 3000, 256)
    assert out["mask"].sum() == 2400
    assert torch.isfinite(out["loss"])


def test_encoder_never_sees_masked_pixels():
    """Changing the pixels of masked patches leaves every prediction unchanged."""
    mae = small_mae(mask_ratio=0.75).eval()
    spec = torch.randn(2, 32, 24)
    out = mae(spec, mask_generator=fixed_mask())
    pixels = mae.encoder.patchify(spec)  # (B, N, P)
    pixels[out["mask"]] = torch.randn_like(pixels[out["mask"]]) * 10
    spec2 = mae.reconstruct(pixels, 24)
    out2 = mae(spec2, mask_generator=fixed_mask())
    assert torch.equal(out2["mask"], out["mask"])
    torch.testing.assert_close(out2["pred"], out["pred"])
    assert not torch.allclose(out2["target"], out["target"])


def test_loss_only_on_masked_patches():
    mae = small_mae()
    out = mae(torch.randn(2, 32, 24), mask_generator=fixed_mask())
    pred = out["pred"].detach().clone().requires_grad_(True)
    loss = MAE.masked_loss(pred, out["target"], out["mask"])
    torch.testing.assert_close(loss, out["loss"])
    (grad,) = torch.autograd.grad(loss, pred)
    assert (grad[~out["mask"]] == 0).all()
    assert (grad[out["mask"]].abs().sum(-1) > 0).all()
    moved = pred.detach().clone()
    moved[~out["mask"]] += 5.0
    torch.testing.assert_close(MAE.masked_loss(moved, out["target"], out["mask"]), loss)


def test_norm_pix_targets_are_standardised_per_patch():
    mae = small_mae()
    spec = torch.randn(2, 32, 24) * 3 + 7
    target = mae.target(spec)
    torch.testing.assert_close(target.mean(-1), torch.zeros(2, 24), atol=1e-5, rtol=0)
    torch.testing.assert_close(target.std(-1), torch.ones(2, 24), atol=1e-4, rtol=0)
    raw = small_mae(norm_pix_loss=False).target(spec)
    torch.testing.assert_close(raw, mae.encoder.patchify(spec))


def test_every_parameter_gets_a_gradient():
    mae = small_mae(decoder_window_t=2)
    mae(torch.randn(2, 32, 40))["loss"].backward()
    missing = [name for name, p in mae.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_bf16_autocast_forward_backward():
    mae = small_mae()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mae(torch.randn(2, 32, 24))
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert mae.mask_token.grad is not None


def test_tiny_mae_overfits_one_clip():
    """Loss falls more than 5x in 60 AdamW steps on one clip with a fixed mask."""
    torch.manual_seed(0)
    mae = MAE(get_preset("tiny", decoder_depth=2, **{"encoder.depth": 2}))
    spec = torch.randn(1, 128, 16).repeat(1, 1, 10)  # (1, 128, 160): one pattern per band
    optim = torch.optim.AdamW(mae.parameters(), lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95))
    losses = []
    for _ in range(60):
        loss = mae(spec, mask_generator=fixed_mask())["loss"]
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, losses[::10]


@pytest.mark.parametrize("window_t", [None, 2])
def test_traces_as_one_graph_for_torch_compile(window_t):
    """No data-dependent Python control flow: dynamo captures the whole forward in one graph."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(small_mae(decoder_window_t=window_t))(
        torch.randn(2, 32, 24)
    )
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
