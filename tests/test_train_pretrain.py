"""The pretraining loop: exact resume, the NaN guard, outputs of ``biomae pretrain``."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile
import torch

from biomae import features
from biomae.cli import main
from biomae.models import files
from biomae.train import common, pretrain
from biomae.train.pretrain_config import load_config

RATE = 16000


def write_recordings(folder, n=3):
    """Hand-made recordings: noise plus frequency sweeps, 4 s each at 16 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(4 * RATE) / RATE
    for i in range(n):
        sweep = np.sin(2 * np.pi * (500 + 400 * i) * t * (1 + t)) * (np.sin(3 * t + i) > 0)
        audio = 0.3 * sweep + 0.02 * rng.standard_normal(t.size)
        soundfile.write(folder / f"rec{i}.flac", audio.astype(np.float32), RATE)


def write_config(tmp_path, out_dir, extra: str = "") -> str:
    """A tiny-preset run on 0.64-s windows (4 patch columns); returns the TOML path."""
    (tmp_path / "audio").mkdir(exist_ok=True)
    write_recordings(tmp_path / "audio")
    path = tmp_path / "run.toml"
    path.write_text(
        f"""
[model]
preset = "tiny"
[model.overrides]
"encoder.depth" = 2
decoder_depth = 1
[front_end]
sample_rate = {RATE}
n_fft = 512
n_mels = 128
[data]
audio_globs = ["{tmp_path / "audio" / "*.flac"}"]
window_s = 0.64
batch_size = 2
eval_fraction = 0.3
n_eval_windows = 3
n_fft_choices = [512, 1024]
[optim]
lr = 1e-3
warmup_steps = 1
max_steps = 4
[train]
out_dir = "{out_dir}"
log_every = 1
eval_every = 0
ckpt_every = 2
n_pictures = 0
{extra}
""",
        encoding="utf-8",
    )
    return str(path)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_resume_after_an_interrupt_gives_identical_losses(tmp_path, monkeypatch):
    toml = write_config(tmp_path, tmp_path / "whole")
    whole = pretrain.pretrain(load_config(toml), progress=False)
    assert sorted(whole["losses"]) == [1, 2, 3, 4]

    parts = tmp_path / "parts"
    config = load_config(toml, [f"train.out_dir={parts}"])
    real_lr_at = common.lr_at

    def interrupt_at_step_2(step, *args):
        if step == 2:
            raise KeyboardInterrupt  # like Ctrl-C after the step-2 checkpoint
        return real_lr_at(step, *args)

    monkeypatch.setattr(common, "lr_at", interrupt_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(config, progress=False)
    monkeypatch.setattr(common, "lr_at", real_lr_at)
    assert common.load_checkpoint(parts / "checkpoint.pt")["step"] == 2
    resumed = pretrain.pretrain(config, progress=False)

    assert sorted(resumed["losses"]) == [3, 4]
    for step in (3, 4):
        assert resumed["losses"][step] == whole["losses"][step], step  # bitwise
    a = common.load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    b = common.load_checkpoint(parts / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_rows(parts / "metrics.csv")] == ["1", "2", "3", "4"]

    changed = load_config(toml, [f"train.out_dir={parts}", "model.overrides.decoder_depth=2"])
    with pytest.raises(ValueError, match="cannot resume.*model"):
        pretrain.pretrain(changed, progress=False)


@pytest.mark.slow
def test_nan_guard_skips_bad_steps_and_aborts_after_too_many(tmp_path, monkeypatch):
    from biomae.models.mae import MAE

    real_forward = MAE.forward
    poisoned_calls = set()
    calls = {"n": 0}

    def forward(self, spec, mask_generator=None):
        out = real_forward(self, spec, mask_generator)
        if torch.is_grad_enabled():  # training micro-batches only, not the eval
            calls["n"] += 1
            if calls["n"] in poisoned_calls or "all" in poisoned_calls:
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(MAE, "forward", forward)
    poisoned_calls.add(2)
    toml = write_config(tmp_path, tmp_path / "one_bad", "max_bad_steps = 2")
    summary = pretrain.pretrain(load_config(toml), progress=False)
    assert summary["bad_steps"] == 1 and math.isnan(summary["losses"][2])
    assert all(math.isfinite(summary["losses"][s]) for s in (1, 3, 4))
    rows = read_rows(tmp_path / "one_bad" / "metrics.csv")
    assert [r["bad_steps"] for r in rows] == ["0", "1", "1", "1"]

    poisoned_calls.add("all")
    config = load_config(toml, [f"train.out_dir={tmp_path / 'all_bad'}"])
    with pytest.raises(pretrain.NonFiniteLossError, match="2 consecutive steps"):
        pretrain.pretrain(config, progress=False)


@pytest.mark.slow
def test_cli_pretrain_writes_a_complete_run(tmp_path, capsys):
    out = tmp_path / "run"
    toml = write_config(tmp_path, out)
    code = main(
        [
            "pretrain",
            "--config",
            toml,
            "optim.max_steps=2",
            "train.eval_every=1",
            "train.n_pictures=2",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "eval loss" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {
        "checkpoint.pt",
        "encoder.safetensors",
        "metrics.csv",
        "eval.csv",
        "config.json",
    } <= names
    assert sorted(p.name for p in (out / "pictures").iterdir()) == [
        "step_0000001.png",
        "step_0000002.png",
    ]
    rows = read_rows(out / "eval.csv")
    assert [r["step"] for r in rows] == ["1", "2"]
    for row in rows:
        assert float(row["baseline_zero"]) == pytest.approx(255 / 256, abs=0.02)
        assert float(row["eval_loss"]) > 0 and float(row["baseline_mean_spec"]) > 0
    assert json.loads((out / "config.json").read_text())["optim"]["max_steps"] == 2
    encoder, spec = files.load_encoder(out / "encoder.safetensors")
    vit = spec.encoder
    assert vit.depth == 2 and encoder.forward_features(torch.zeros(1, 128, 64)).shape == (
        1,
        32,
        192,
    )

    assert main(["pretrain", "--config", toml, "--no-resume"]) == 2
    assert "--no-resume" in capsys.readouterr().err
    assert main(["pretrain", "--config", toml, "optim.lr=7"]) == 2
    assert "optim.lr=7" in capsys.readouterr().err


def test_per_clip_normalisation():
    spec = torch.randn(3, 8, 10) * torch.tensor([1.0, 5.0, 0.1])[:, None, None] + 4.0
    norm = features.normalize_per_clip(spec)
    assert torch.allclose(norm.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(norm.std(dim=(1, 2)), torch.ones(3), atol=1e-3)


def test_mask_generators_depend_on_seed_and_index():
    draw = lambda seed, index: torch.rand(4, generator=pretrain.mask_generator(seed, index))  # noqa: E731
    assert torch.equal(draw(0, 5), draw(0, 5))
    assert not torch.equal(draw(0, 5), draw(0, 6)) and not torch.equal(draw(0, 5), draw(1, 5))
