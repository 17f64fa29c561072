"""The default detector: the starter model where it can hear the calls, the energy detector below
its band (low sample rates) and for ultrasound, each recording's detector named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.cli import main
from biomae.detectors.auto import AutoDetector, half_band_rate_hz
from biomae.detectors.energy import ULTRASONIC_RATE_HZ, EnergyDetector, EnergyDetectorConfig
from biomae.detectors.model import InferConfig, ModelDetector
from biomae.starter import MODEL_ENV, PACKAGED_MODEL


def _write(path, sample_rate, seconds=2.0):
    rng = np.random.default_rng(0)
    audio = 0.01 * rng.standard_normal(round(seconds * sample_rate))
    # a long call: at threshold 0 the model marks the whole file, and the default's noise-floor
    # gate keeps an event only where a call fills more than a fifth of it
    t = np.arange(round(0.6 * seconds * sample_rate)) / sample_rate
    start = round(0.2 * seconds * sample_rate)
    audio[start : start + len(t)] += 0.3 * np.sin(2 * np.pi * sample_rate / 8 * t)
    sf.write(path, audio.astype(np.float32), sample_rate)
    return path


@pytest.fixture
def mixed(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    _write(root / "bird.wav", 16000)
    _write(root / "bat.wav", 192000)
    _write(root / "hydrophone.wav", 2000)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    return root


def test_auto_routes_low_rate_and_ultrasonic_recordings_to_the_energy_detector(
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
    assert sources["hydrophone.wav"] == {"biomae-energy"}
    params = json.loads((out / "run.json").read_text())["detector"]
    assert params["detector"] == "auto" and params["ultrasonic_rate_hz"] == ULTRASONIC_RATE_HZ
    assert params["model"]["detector"] == "starter-model" and "routing" in params
    # the tiny model listens at 16 kHz through mel bands of 0-8 kHz: half of them need 3.4 kHz
    assert params["low_rate_hz"] == pytest.approx(half_band_rate_hz(0, 8000))


def test_name_for_says_which_detector_each_recording_goes_to(tiny_detect_model, mixed):
    model = ModelDetector(tiny_detect_model, InferConfig(bf16=False), name="starter-model")
    auto = AutoDetector(model, EnergyDetector())
    assert auto.name_for(mixed / "bird.wav") == "starter-model"
    assert auto.name_for(mixed / "bat.wav") == "energy"
    assert auto.name_for(mixed / "hydrophone.wav") == "energy"
    assert auto.name_for(mixed / "broken.wav") == "starter-model"  # which reports the error
    assert model.name_for(mixed / "bat.wav") == "starter-model"
    assert EnergyDetector().name_for(mixed / "bird.wav") == "energy"


def test_the_ultrasonic_threshold_is_the_same_for_routing_and_energy_settings(
    tiny_detect_model, tmp_path
):
    """A file auto calls ultrasonic gets the energy detector's ultrasonic settings, and one it
    does not (96 kHz, 100 kHz) goes to the model: one threshold, not two."""
    auto = AutoDetector(ModelDetector(tiny_detect_model, InferConfig(bf16=False)), EnergyDetector())
    for rate, to_energy in ((96_000, False), (100_000, False), (100_800, True), (192_000, True)):
        path = _write(tmp_path / f"r{rate}.wav", rate, seconds=1.2)
        assert auto.name_for(path) == ("energy" if to_energy else "model"), rate
        ultrasonic = EnergyDetectorConfig().resolved(rate).post.low_hz == 15_000.0
        assert ultrasonic == to_energy, rate


def test_time_expansion_routes_by_the_rate_the_model_hears(tiny_detect_model, tmp_path):
    bat = _write(tmp_path / "bat.wav", 250_000, seconds=1.2)
    slowed = ModelDetector(tiny_detect_model, InferConfig(bf16=False, time_expansion=10))
    assert AutoDetector(slowed, EnergyDetector()).name_for(bat) == "model"  # heard at 25 kHz


def test_half_band_rate_from_the_front_end():
    # Slaney mel: the middle of 0-16 kHz lies at 2.39 kHz, so 4.8 kHz recordings fill half
    assert half_band_rate_hz(0, 16000) == pytest.approx(4777, abs=1)
    assert half_band_rate_hz(0, 8000, "linear") == 8000


def test_real_2khz_hydrophone_goes_to_the_energy_detector(shared_data):
    """ketos_assets' 2-kHz hydrophone file: the starter model would hear a quarter of its bands
    and finds nothing there; auto sends it to the energy detector, which finds its sounds."""
    if not PACKAGED_MODEL.is_file():
        pytest.skip("no packaged starter model")
    path = shared_data / "audio/ketos/ketos/tests/assets/2min.flac"
    model = ModelDetector(PACKAGED_MODEL, InferConfig(bf16=False), name="starter-model")
    auto = AutoDetector(model, EnergyDetector())
    assert auto.low_rate_hz == pytest.approx(4777, abs=1)
    assert auto.name_for(path) == "energy"
    events = auto.detect_file(path)
    assert len(events) > 0 and set(events["source"]) == {"biomae-energy"}
    grunt = shared_data / "audio/ketos/ketos/tests/assets/grunt1.flac"  # 96 kHz: audible
    assert auto.name_for(grunt) == "starter-model"
