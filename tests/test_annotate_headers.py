"""A run reads each recording's header once: annotate reads it and hands it to the detector (the
auto detector's routing, the model's streaming and boxes, the energy detector's blocks), the
pictures and the summary, instead of each stage reading it again."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from biomae import audio
from biomae.annotate import AnnotateConfig, annotate
from biomae.detectors import complete
from biomae.detectors.auto import AutoDetector
from biomae.detectors.energy import EnergyDetector
from biomae.detectors.model import InferConfig, ModelDetector

N_RECORDINGS = 4


@pytest.fixture
def folder(tmp_path):
    """Four recordings with a tone: two the model hears, two (at 2 kHz) the energy detector gets."""
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for i, rate in enumerate((16000, 2000, 16000, 2000)):
        samples = 0.01 * rng.standard_normal(2 * rate)
        samples[rate // 2 : rate] += 0.3 * np.sin(2 * np.pi * 500 * np.arange(rate // 2) / rate)
        sf.write(tmp_path / "in" / f"rec{i}.wav", samples, rate)
    return tmp_path / "in"


@pytest.fixture
def info_calls(monkeypatch):
    calls = []
    real = audio.info

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(audio, "info", counting)
    return calls


def test_the_auto_detector_run_reads_each_header_once(
    tiny_detect_model, folder, tmp_path, info_calls
):
    auto = AutoDetector(ModelDetector(tiny_detect_model, InferConfig(bf16=False)), EnergyDetector())
    assert complete(auto) is auto  # the whole protocol: nothing to wrap
    summary = annotate([folder], tmp_path / "out", auto, AnnotateConfig(progress=True))
    assert summary["status"].eq("done").all()
    assert sorted(summary["detector"]) == ["energy", "energy", "model", "model"]
    assert len(info_calls) == N_RECORDINGS, info_calls


def test_the_energy_detector_run_with_pictures_reads_each_header_once(folder, tmp_path, info_calls):
    config = AnnotateConfig(progress=True, plots=True)
    summary = annotate([folder], tmp_path / "out", EnergyDetector(), config)
    assert summary["status"].eq("done").all()
    assert len(info_calls) == N_RECORDINGS, info_calls


def test_a_detector_without_the_info_arguments_still_runs(folder, tmp_path):
    class Plain:
        name = "plain"

        def params(self) -> dict:
            return {"detector": self.name}

        def detect_file(self, path, recording=None):
            return EnergyDetector().detect_file(path, recording)

    summary = annotate([folder], tmp_path / "out", Plain(), AnnotateConfig(progress=False))
    assert summary["status"].eq("done").all() and set(summary["detector"]) == {"plain"}
