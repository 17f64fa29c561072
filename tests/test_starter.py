"""The starter-model pipeline (scripts/starter_recipe.py, scripts/starter_model.py) and the shipped
model's lookup (biomae.starter): license selection, the split by recording, the Raven tables from
the index, the model card, and a smoke run end to end."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biomae import starter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import starter_recipe as recipe  # noqa: E402  (the build recipe lives with its script)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CC-BY-4.0 (Koumura 2016 figshare 3470165); repo BSD-3", "permissive"),
        ("MIT / CC-BY-4.0", "permissive"),
        ("BSD-3; see *.description.txt", "permissive"),
        ("Apache-2.0", "permissive"),
        ("GPL>=2", "copyleft"),
        ("GPL-3", "copyleft"),
        ("CC-BY-NC-4.0", "restricted"),
        (
            "MIT (birdnet package); audio provenance not stated: research use, do not copy",
            "restricted",
        ),
        ("no LICENSE in repo (WhisperSeg, Hahnloser lab)", "restricted"),
        ("", "unknown"),
    ],
)
def test_license_class(text, expected):
    assert recipe.license_class(text) == expected


def test_inventory_trains_only_on_permissive_sources(shared_data):
    files = recipe.inventory(shared_data, seed=0, test_fraction=0.15)
    trained = files[files["use"].isin(["pretrain", "train", "test"])]
    assert set(trained["license_class"]) == {"permissive"}
    assert set(files["source"][files["use"].isin(["train", "test"])]) == {
        "koumura_bird0",
        "bfsongrepo",
    }
    assert set(files["source"][files["use"] == "eval-only"]) == {"whisperseg"}
    partial = set(files["source"][files["use"] == "eval-partial"])
    assert partial == {"frog_degradation_ots2021", "bellbird_mimicry"} == set(recipe.PARTIAL_SETS)
    assert not files["source"][files["use"] == "pretrain"].isin(["ketos_assets", "seewave"]).any()
    unseen = files[files["taxon"] == recipe.UNSEEN_SPECIES]
    assert len(unseen) and set(unseen["use"]) == {"eval-only"}


def _files(counts: dict[str, int]) -> pd.DataFrame:
    rows = [(s, f"audio/{s}/{i}.flac") for s, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["source", "file"])


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_by_recording_is_disjoint_deterministic_and_two_sided(seed):
    files = _files({"a": 40, "b": 2, "c": 9})
    side = recipe.split_by_recording(files, 0.2, seed)
    assert set(side) == {"train", "test"}
    assert side.equals(recipe.split_by_recording(files, 0.2, seed))
    for _, group in files.assign(side=side).groupby("source"):
        assert set(group["side"]) == {"train", "test"}  # every source on both sides
    assert files.assign(side=side).groupby("file")["side"].nunique().max() == 1
    assert 0.05 < (side[files["source"] == "a"] == "test").mean() < 0.4
    assert not side.equals(recipe.split_by_recording(files, 0.2, seed + 100))


def test_split_by_recording_rejects_a_single_recording_source():
    with pytest.raises(ValueError, match="'solo'.*>= 2"):
        recipe.split_by_recording(_files({"solo": 1, "b": 3}), 0.2, 0)
    with pytest.raises(ValueError, match="test_fraction"):
        recipe.split_by_recording(_files({"b": 3}), 1.0, 0)


def test_write_tables_links_audio_and_writes_readable_tables(tmp_path):
    import soundfile as sf

    from biomae.annotations import read_annotations

    root = tmp_path / "data"
    (root / "audio" / "src").mkdir(parents=True)
    for name in ("x", "y"):
        sf.write(root / "audio" / "src" / f"{name}.flac", np.zeros(8000, np.float32), 8000)
    files = pd.DataFrame({"file": ["audio/src/x.flac", "audio/src/y.flac"], "sr": [8000, 8000]})
    (root / "index").mkdir()
    pd.DataFrame(
        {
            "source": ["src", "src", "other"],
            "file": ["audio/src/x.flac", "audio/src/x.flac", "audio/other/z.flac"],
            "onset_s": [0.1, 0.5, 0.0],
            "offset_s": [0.2, 0.75, 0.1],
            "low_hz": [1000.0, None, None],
            "high_hz": [3000.0, None, None],
            "label": ["a", "b", "c"],
            "taxon": ["t", "t", "t"],
            "note": ["", "", ""],
        }
    ).to_csv(root / "index" / "events.csv", index=False)
    events = recipe.index_events(root, files)
    assert list(events["start_s"]) == [0.1, 0.5]  # only the events of the chosen files
    out = tmp_path / "labelled"
    assert recipe.write_tables(root, files, events, out) == 2
    link = out / "audio" / "src" / "x.flac"
    assert link.is_symlink() and link.resolve() == (root / "audio" / "src" / "x.flac").resolve()
    back = read_annotations(link.with_name("x.selections.txt"), "raven")
    assert np.allclose(back["start_s"], [0.1, 0.5]) and np.allclose(back["end_s"], [0.2, 0.75])
    assert back["low_hz"].iloc[0] == 1000.0 and math.isnan(back["low_hz"].iloc[1])
    assert len(read_annotations(out / "audio" / "src" / "y.selections.txt", "raven")) == 0


def _info(**changes) -> dict:
    info = {
        "seed": 3,
        "smoke": False,
        "summary": [
            {
                "use": "train",
                "source": "koumura_bird0",
                "recordings": 5,
                "hours": 0.25,
                "events": 900,
                "license": "CC-BY-4.0",
            },
            {
                "use": "test",
                "source": "koumura_bird0",
                "recordings": 1,
                "hours": 0.05,
                "events": 70,
                "license": "CC-BY-4.0",
            },
        ],
        "test_files": ["audio/k/114.flac"],
        "recipe": {"pretrain_steps": 1234, "finetune_steps": 567, "capped": []},
        "metrics": {
            "held-out": {
                "starter": {"precision": 0.81234, "recall": 0.7, "f1": 0.75, "n_ref": 70},
                "energy": {"precision": None, "recall": 0.0, "f1": 0.0, "n_ref": 70},
            }
        },
        "timings_s": {"pretrain": 600.0, "finetune": 300.0},
        "size_bytes": 22 * 2**20,
        "machine": "x86_64, 2 cores",
    }
    return info | changes


def test_model_card_holds_the_measured_numbers():
    card = recipe.model_card(_info())
    for text in (
        "0.812",
        "0.75",
        "1234 steps",
        "567 steps",
        "audio/k/114.flac",
        "22.0 MB",
        "15.0 min",
        "seed 3",
        "| held-out | energy | n/a | 0.0 | 0.0 | 70 |",
        '"train": 0.25',
    ):
        assert text in card, text
    assert "Smoke run" not in card and "time budget cut" not in card
    smoke = recipe.model_card(
        _info(smoke=True, recipe={**_info()["recipe"], "capped": ["finetune"]})
    )
    assert "Smoke run" in smoke and "time budget cut training short** (stages: finetune" in smoke


def test_copy_model_refuses_a_file_over_30_mb(tmp_path):
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(recipe.MAX_MODEL_BYTES + 1)
    with pytest.raises(ValueError, match="big.safetensors.*exceeds"):
        recipe.copy_model(big, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_default_model_prefers_the_environment(tmp_path, monkeypatch):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x")
    monkeypatch.setenv(starter.MODEL_ENV, str(model))
    assert starter.default_model() == model
    monkeypatch.setenv(starter.MODEL_ENV, str(tmp_path / "missing.safetensors"))
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        starter.default_model()
    monkeypatch.delenv(starter.MODEL_ENV)
    packaged = starter.PACKAGED_MODEL
    assert starter.default_model() == (packaged if packaged.is_file() else None)


@pytest.mark.slow
def test_smoke_pipeline_is_deterministic_resumable_and_annotate_runs_its_model(
    shared_data, example_path, tmp_path
):
    import torch
    from safetensors.torch import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "starter"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "starter_model.py"),
        "--out",
        str(out),
        "--smoke",
        "--data",
        str(shared_data),
    ]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    model = out / "starter.safetensors"
    assert 0 < model.stat().st_size <= recipe.MAX_MODEL_BYTES
    card = (out / "MODEL_CARD.md").read_text()
    assert "Smoke run" in card and "| held-out | starter |" in card
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("done before, skipped") == 4
    other = tmp_path / "again"
    cmd[cmd.index(str(out))] = str(other)
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    first_weights = load_file(model)
    second_weights = load_file(other / "starter.safetensors")
    assert first_weights.keys() == second_weights.keys()
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    annotate = [
        sys.executable,
        "-m",
        "biomae",
        "annotate",
        str(example_path),
        "--model",
        str(model),
        "--out",
        str(tmp_path / "ann"),
        "--format",
        "csv",
        "--quiet",
    ]
    result = subprocess.run(annotate, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ann" / "summary.csv").exists()
