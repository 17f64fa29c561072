"""Pretraining configs: TOML + dotted overrides, validation naming the key, JSON round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from biomae.train.pretrain_config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    config_to_json,
    load_config,
    parse_override,
)

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "biomae" / "configs"


@pytest.mark.parametrize("name", ["tiny", "small", "base", "vit1b"])
def test_shipped_configs_load_and_build(name):
    config = load_config(CONFIGS / f"pretrain_{name}.toml")
    mae = config.model.build_config()
    assert mae.encoder.n_mels == config.front_end.n_mels
    frames = round(config.data.window_s / config.front_end.hop_s)
    assert frames % mae.encoder.patch_t == 0, "window should fill whole patch columns"


def test_vit1b_config_is_the_cluster_recipe():
    config = load_config(CONFIGS / "pretrain_vit1b.toml")
    assert (config.train.parallel, config.train.bf16) == ("fsdp", True)
    assert config.train.activation_checkpointing and config.train.compile
    assert config.model.build_config().encoder.dim == 1408


def test_overrides_are_parsed_as_toml(tmp_path):
    config = load_config(
        CONFIGS / "pretrain_tiny.toml",
        [
            "optim.lr=3e-4",
            "train.bf16=false",
            "data.n_fft_choices=[256, 512]",
            "train.out_dir=runs/x",
            "model.overrides.mask_ratio=0.5",
        ],
    )
    assert config.optim.lr == 3e-4 and config.train.bf16 is False
    assert config.data.n_fft_choices == [256, 512]
    assert config.train.out_dir == "runs/x"
    assert config.model.build_config().mask_ratio == 0.5


def test_parse_override_rejects_undotted_keys():
    assert parse_override("optim.betas=[0.9, 0.99]") == (["optim", "betas"], [0.9, 0.99])
    with pytest.raises(ConfigError, match="dotted"):
        parse_override("lr=3e-4")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("optim.lr")


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"optim\.lrr"):
        load_config(CONFIGS / "pretrain_tiny.toml", ["optim.lrr=1e-3"])
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(CONFIGS / "pretrain_tiny.toml", ["optimizer.lr=1e-3"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optim.warmup_steps=5000", "optim.warmup_steps=5000"),
        ("optim.min_lr=1.0", "optim.min_lr"),
        ("train.parallel='zero'", "train.parallel"),
        ("data.eval_fraction=1.0", "data.eval_fraction=1.0"),
        ("data.catalog='x.parquet'", "exactly one"),
        ("data.prepared=true", "data.prepared reads a catalog's prepared audio"),
    ],
)
def test_invalid_values_fail_with_the_file_and_key(override, fragment):
    with pytest.raises(ConfigError, match="pretrain_tiny.toml") as err:
        load_config(CONFIGS / "pretrain_tiny.toml", [override])
    assert fragment in str(err.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\nlr = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_dict_round_trip_is_exact():
    config = load_config(CONFIGS / "pretrain_vit1b.toml")
    raw = config_to_dict(config)
    assert config_from_dict(raw) == config
    assert '"decoder_window_t": 8' in config_to_json(config)


def test_presets_name_the_shipped_configs(tmp_path, monkeypatch):
    """`--config tiny` works from any folder (a pip install has no configs/ folder beside it);
    the old repository path `configs/pretrain_tiny.toml` still resolves to the shipped file."""
    from biomae.train.finetune import load_config as load_finetune

    monkeypatch.chdir(tmp_path)
    assert load_config("tiny") == load_config(CONFIGS / "pretrain_tiny.toml")
    assert load_config("configs/pretrain_tiny.toml") == load_config("tiny")
    assert load_config("pretrain_vit1b").train.parallel == "fsdp"
    assert load_finetune("detect", ["data.data_dir=x"]).head.task == "detect"
    assert load_finetune("starter", ["data.data_dir=x"]).data.data_dir == "x"
    with pytest.raises(ConfigError, match="tinyy not found, and it is no pretrain preset; .*tiny"):
        load_config("tinyy")
    with pytest.raises(ConfigError, match="presets: .*detect"):
        load_finetune("tiny")


@pytest.mark.slow
def test_a_built_wheel_ships_the_configs(tmp_path):
    """What `pip install biomae` gets: a wheel built from a copy of the sources holds every
    shipped config (package data), so `biomae pretrain --config tiny` works after install."""
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    copy = tmp_path / "src_copy"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "starter.safetensors")
    shutil.copytree(repo / "src", copy / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(repo / name, copy / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(wheels), str(copy)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("biomae-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"biomae/configs/{p.name}" for p in CONFIGS.glob("*.toml")}
    assert len(shipped) >= 9 and shipped <= names
    assert "biomae/data/example.flac" in names
