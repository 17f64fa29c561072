"""The default detector: the starter model below 96 kHz, the energy detector for ultrasound."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.cli import main
from biomae.starter import MODEL_ENV


def _write(path, sample_rate, seconds=2.0):
    rng = np.random.default_rng(0)
    audio = 0.01 * rng.standard_normal(round(seconds * sample_rate))
    t = np.arange(round(0.2 * sample_rate)) / sample_rate
    start = round(0.8 * sample_rate)
    audio[start : start + len(t)] += 0.3 * np.sin(2 * np.pi * sample_rate / 8 * t)
    sf.write(path, audio.astype(np.float32), sample_rate)


@pytest.fixture
def mixed(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    _write(root / "bird.wav", 16000)
    _write(root / "bat.wav", 192000)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    return root


def test_auto_routes_ultrasonic_recordings_to_the_energy_detector(
    tiny_detect_model, mixed, tmp_path, monkeypatch
):
    monkeypatch.setenv(MODEL_ENV, str(tiny_detect_model))
    out = tmp_path / "out"
    argv = ["annotate", str(mixed), "--out", str(out), "--format", "csv", "--quiet"]
    assert main([*argv, "--threshold", "0"]) == 1  # broken.wav failed
    summary = pd.read_csv(out / "summary.csv").set_index("key")
    assert summary.loc["in/broken", "status"] == "error"
    events = pd.read_csv(out / "events.csv")
    sources = events.groupby(events["recording"].map(lambda p: p.rsplit("/", 1)[-1]))["source"]
    sources = sources.agg(set)
    assert sources["bird.wav"] == {"biomae-model"}  # threshold 0: the model marks it all
    assert sources["bat.wav"] == {"biomae-energy"}
    params = json.loads((out / "run.json").read_text())["detector"]
    assert params["detector"] == "auto" and params["ultrasonic_rate_hz"] == 96000


def test_energy_options_choose_the_energy_detector_or_clash_with_a_model(
    tiny_detect_model, mixed, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(MODEL_ENV, str(tiny_detect_model))
    out = tmp_path / "out"
    argv = ["annotate", str(mixed / "bird.wav"), "--format", "csv", "--quiet"]
    assert main([*argv, "--out", str(out), "--on-db", "6"]) == 0
    assert json.loads((out / "run.json").read_text())["detector"]["detector"] == "energy"
    code = main(
        [*argv, "--out", str(tmp_path / "o2"), "--model", str(tiny_detect_model), "--denoise"]
    )
    assert code == 2 and "--denoise apply to the energy detector" in capsys.readouterr().err
