"""Optimizer groups, the LR schedule, atomic resumable checkpoints, safetensors encoder export."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest
import torch

from biomae import distributed
from biomae.models import files
from biomae.models.mae import MAE
from biomae.models.presets import get_preset
from biomae.train import common
from biomae.train.pretrain_config import PretrainConfig, config_to_json

LR, WARMUP, MAX_STEPS, MIN_LR = 1e-3, 10, 100, 1e-5


def lr(step: int) -> float:
    return common.lr_at(step, LR, WARMUP, MAX_STEPS, MIN_LR)


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    assert lr(0) == pytest.approx(LR / WARMUP)
    assert lr(WARMUP - 1) == pytest.approx(LR)
    assert lr(WARMUP) == pytest.approx(LR)
    assert lr(MAX_STEPS) == MIN_LR and lr(10 * MAX_STEPS) == MIN_LR
    middle = WARMUP + (MAX_STEPS - WARMUP) // 2
    assert lr(middle) == pytest.approx((LR + MIN_LR) / 2)
    values = [lr(s) for s in range(MAX_STEPS + 1)]
    assert all(a < b for a, b in itertools.pairwise(values[:WARMUP]))
    assert all(a >= b for a, b in itertools.pairwise(values[WARMUP:]))
    assert min(values) >= MIN_LR > 0


def test_schedule_without_warmup_starts_at_peak():
    assert common.lr_at(0, LR, 0, MAX_STEPS, 0.0) == LR
    assert common.lr_at(MAX_STEPS - 1, LR, 0, MAX_STEPS, 0.0) < 1e-6


def small_mae() -> MAE:
    torch.manual_seed(0)
    return MAE(get_preset("tiny", **{"encoder.depth": 2, "decoder_depth": 1}))


def test_no_weight_decay_on_norms_biases_and_tokens():
    model = small_mae()
    optimizer = common.build_optimizer(model, 1e-3, (0.9, 0.95), 0.05)
    decay, no_decay = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert "mask_token" in skipped
    assert any(n.endswith("norm1.weight") for n in skipped)
    assert any(n.endswith("qkv.bias") for n in skipped)
    total = len(decay["params"]) + len(no_decay["params"])
    assert total == len(list(model.parameters()))


def trained_state():
    model = small_mae()
    optimizer = common.build_optimizer(model, 1e-3, (0.9, 0.95), 0.05)
    spec = torch.randn(2, 128, 32)
    model(spec, mask_generator=torch.Generator().manual_seed(0))["loss"].backward()
    optimizer.step()
    return model, optimizer


def test_checkpoint_round_trip_restores_everything(tmp_path):
    model, optimizer = trained_state()
    model_state, optim_state = distributed.full_state_dicts(model, optimizer)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = common.save_checkpoint(
        tmp_path / "ckpt.pt",
        model_state=model_state,
        optim_state=optim_state,
        step=7,
        data_state={"seed": 0, "micro_batches": 21},
        config_json=config_to_json(PretrainConfig()),
        metrics={"bad_in_row": 1},
    )
    expected = (random.random(), np.random.rand(), torch.rand(1))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"], "no temp file left behind"

    payload = common.load_checkpoint(path)
    assert payload["step"] == 7 and payload["data"] == {"seed": 0, "micro_batches": 21}
    assert payload["metrics"] == {"bad_in_row": 1.0}
    common.set_rng_state(payload["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected

    fresh = small_mae()
    for p in fresh.parameters():
        torch.nn.init.zeros_(p)
    fresh_opt = common.build_optimizer(fresh, 1e-3, (0.9, 0.95), 0.05)
    distributed.load_full_state_dicts(fresh, fresh_opt, payload["model"], payload["optimizer"])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    old, new = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert old.keys() == new.keys()
    assert all(torch.equal(old[k]["exp_avg_sq"], new[k]["exp_avg_sq"]) for k in old)


def test_load_checkpoint_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        common.load_checkpoint(tmp_path / "nope.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a biomae-pretrain-checkpoint"):
        common.load_checkpoint(other)


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = trained_state()
    model_state, optim_state = distributed.full_state_dicts(model, optimizer)
    kwargs = dict(
        model_state=model_state,
        optim_state=optim_state,
        data_state={"micro_batches": 1},
        config_json="{}",
    )
    path = common.save_checkpoint(tmp_path / "ckpt.pt", step=1, **kwargs)

    def crash(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        common.save_checkpoint(path, step=2, **kwargs)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert common.load_checkpoint(path)["step"] == 1


def test_encoder_export_round_trip_without_pickle(tmp_path, monkeypatch):
    config = PretrainConfig()
    config.model.overrides = {"encoder.depth": 2, "decoder_depth": 1}
    model, optimizer = trained_state()
    model_state, optim_state = distributed.full_state_dicts(model, optimizer)
    ckpt = common.save_checkpoint(
        tmp_path / "ckpt.pt",
        model_state=model_state,
        optim_state=optim_state,
        step=3,
        data_state={"micro_batches": 3},
        config_json=config_to_json(config),
    )
    out = common.export_encoder(ckpt, tmp_path / "encoder.safetensors")
    assert out.read_bytes()[8:9] == b"{", "safetensors: 8-byte header length, then JSON"

    def no_unpickling(*args, **kwargs):
        raise AssertionError("load_encoder must not call torch.load")

    monkeypatch.setattr(torch, "load", no_unpickling)
    encoder, spec = files.load_encoder(out)
    vit_config = spec.encoder
    assert vit_config == model.encoder.config
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], tensor), name
    spec = torch.randn(1, 128, 32)
    with torch.no_grad():
        assert torch.equal(
            encoder.forward_features(spec), model.encoder.eval().forward_features(spec)
        )
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["config"])["depth"] == 2 and meta["step"] == "3"


def test_load_encoder_rejects_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="foreign.safetensors"):
        files.load_encoder(path)


def test_rng_state_is_plain_data():
    state = common.rng_state()
    assert isinstance(state["numpy"][1], torch.Tensor) and math.isfinite(state["numpy"][2])
