"""Presets: parameter counts (built on the meta device, free), overrides, analytic FLOPs."""

from __future__ import annotations

import pytest
import torch

from biomae.models.mae import MAE
from biomae.models.presets import (
    PRESETS,
    block_flops,
    count_params,
    flops_per_second_of_audio,
    get_preset,
)

# preset -> (encoder params, decoder params); tests allow +-10 %
TARGETS = {
    "tiny": (5.5e6, None),
    "small": (22e6, None),
    "base": (86e6, None),
    "large": (300e6, None),
    "huge": (630e6, None),
    "vit1b": (1.0e9, 500e6),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_counts(name):
    with torch.device("meta"):
        mae = MAE(get_preset(name))
    n_encoder = count_params(mae.encoder)
    n_decoder = count_params(mae) - n_encoder
    encoder_target, decoder_target = TARGETS[name]
    assert abs(n_encoder / encoder_target - 1) < 0.10, n_encoder
    if decoder_target is not None:
        assert abs(n_decoder / decoder_target - 1) < 0.10, n_decoder
    assert 0 < n_decoder < n_encoder


def test_get_preset_overrides_and_copies():
    config = get_preset("tiny", mask_ratio=0.5, masking="time", **{"encoder.depth": 2})
    assert (config.mask_ratio, config.masking, config.encoder.depth) == (0.5, "time", 2)
    assert PRESETS["tiny"].encoder.depth == 12 and PRESETS["tiny"].mask_ratio == 0.8
    assert get_preset("tiny", encoder_dim=96, encoder_heads=2).encoder.dim == 96
    with pytest.raises(KeyError, match="unknown MAE preset 'giant'"):
        get_preset("giant")
    with pytest.raises(KeyError, match="unknown override 'depth'"):
        get_preset("tiny", depth=3)
    with pytest.raises(ValueError, match="dim=100"):
        get_preset("tiny", **{"encoder.dim": 100})


def test_flops_match_a_hand_count():
    config = get_preset("base")
    flops = flops_per_second_of_audio(config)
    # 10 ms hop, 16-frame patches, 8 mel rows: 50 tokens per second; 500 per 10-s clip
    assert flops["tokens"] == pytest.approx(50.0)
    per_block = 2 * 500 * 12 * 768**2 + 4 * 500 * 500 * 768
    embed = 2 * 256 * 768 * 500
    assert flops["encoder"] == pytest.approx((12 * per_block + embed) / 10)
    # pretraining encoder sees 20 % of the tokens, the decoder all of them
    assert flops["encoder_visible"] < 0.25 * flops["encoder"]
    assert flops["decoder"] > 8 * block_flops(500, 512, 2048) / 10


def test_windowed_decoder_flops_grow_linearly():
    global_cfg = get_preset("tiny")
    local_cfg = get_preset("tiny", decoder_window_t=4)
    for clip_s in (10.0, 60.0):
        assert (
            flops_per_second_of_audio(local_cfg, clip_s=clip_s)["decoder"]
            <= (flops_per_second_of_audio(global_cfg, clip_s=clip_s)["decoder"])
        )
    short = flops_per_second_of_audio(local_cfg, clip_s=10.0)["decoder"]
    long = flops_per_second_of_audio(local_cfg, clip_s=600.0)["decoder"]
    assert long == pytest.approx(short)  # per second: constant -> linear in length
    with pytest.raises(ValueError, match="hop_s=0"):
        flops_per_second_of_audio(global_cfg, hop_s=0)
