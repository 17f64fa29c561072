"""``biomae annotate``'s options as a user meets them: they never switch the detector behind the
user's back, mean the same for every detector, and a wrong one is one clear line (exit 2)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from biomae.cli import main
from biomae.starter import MODEL_ENV


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    """3 s of faint noise with a 3-kHz tone from 1 to 2 s (16 kHz)."""
    rate = 16000
    audio = 0.005 * np.random.default_rng(0).standard_normal(3 * rate)
    audio[rate : 2 * rate] += 0.3 * np.sin(2 * np.pi * 3000 * np.arange(rate) / rate)
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    sf.write(path, audio.astype(np.float32), rate)
    return path


def _annotate(tone, out, *options):
    return main(["annotate", str(tone), "--out", str(out), "--format", "csv", "--quiet", *options])


def _events(out) -> pd.DataFrame:
    return pd.read_csv(out / "events.csv")


@pytest.mark.parametrize(
    "option",
    [
        ["--label", "bird"],
        ["--low-hz", "100"],
        ["--high-hz", "7000"],
        ["--min-duration-s", "0.01"],
        ["--merge-gap-s", "0.01"],
    ],
)
def test_event_options_keep_the_default_detector(
    tiny_detect_model, tone, tmp_path, monkeypatch, option
):
    monkeypatch.setenv(MODEL_ENV, str(tiny_detect_model))
    assert _annotate(tone, tmp_path / "out", *option) == 0
    params = json.loads((tmp_path / "out" / "run.json").read_text())["detector"]
    assert params["detector"] == "auto"
    assert params["model"][option[0][2:].replace("-", "_")] == pytest.approx(
        option[1] if option[0] == "--label" else float(option[1])
    )


@pytest.mark.parametrize("detector", ["model", "energy"])
@pytest.mark.parametrize(
    "options, expected",
    [
        (["--label", "bird"], 1),
        (["--low-hz", "4000"], 0),  # the tone's box, ~2.9-3.1 kHz, lies below the band
        (["--high-hz", "2000"], 0),
        (["--low-hz", "3000", "--high-hz", "5000"], 1),
        (["--min-duration-s", "4"], 0),  # longer than the recording
    ],
)
def test_event_options_mean_the_same_for_the_model_and_the_energy_detector(
    tiny_detect_model, tone, tmp_path, detector, options, expected
):
    # threshold 0: the untrained model marks the whole recording; its box is the tone's
    chosen = {
        "model": ["--model", str(tiny_detect_model), "--threshold", "0"],
        "energy": ["--detector", "energy"],
    }[detector]
    assert _annotate(tone, tmp_path, *options, *chosen) == 0
    assert json.loads((tmp_path / "run.json").read_text())["detector"]["detector"] == detector
    events = _events(tmp_path)
    assert len(events) == expected
    if "--label" in options:
        assert set(events["label"]) == {"bird"}
    if "--high-hz" in options and expected:
        assert events["low_hz"].min() >= 3000 and events["high_hz"].max() <= 5000


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_energy_options_need_the_energy_detector(tiny_detect_model, tone, tmp_path, capsys):
    model = ["--model", str(tiny_detect_model)]
    assert _annotate(tone, tmp_path / "a", "--on-db", "6") == 2
    _one_line_error(capsys, "--on-db", "--detector energy")
    assert _annotate(tone, tmp_path / "b", *model, "--denoise", "--off-db", "2") == 2
    _one_line_error(capsys, "--off-db, --denoise", "--detector energy")
    assert _annotate(tone, tmp_path / "c", "--detector", "energy", "--on-db", "6", "--denoise") == 0
    assert json.loads((tmp_path / "c" / "run.json").read_text())["detector"]["on_db"] == 6


def test_model_options_and_the_energy_detector_clash(tiny_detect_model, tone, tmp_path, capsys):
    assert _annotate(tone, tmp_path / "a", "--detector", "energy", "--threshold", "0.3") == 2
    _one_line_error(capsys, "--threshold", "--detector energy")
    model = ["--model", str(tiny_detect_model)]
    assert _annotate(tone, tmp_path / "b", "--detector", "energy", *model) == 2
    _one_line_error(capsys, "--model", "--detector energy")


def test_bad_model_files_are_one_line_errors(tone, tmp_path, capsys):
    from safetensors.torch import save_file

    text = tmp_path / "notes.safetensors"
    text.write_text("not a model")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    for model in (tmp_path / "missing.safetensors", text, tone, foreign):
        assert _annotate(tone, tmp_path / "out", "--model", str(model)) == 2
        _one_line_error(capsys, str(model), "biomae finetune")


def test_bad_devices_are_one_line_errors(tiny_detect_model, tone, tmp_path, capsys):
    model = ["--model", str(tiny_detect_model)]
    assert _annotate(tone, tmp_path / "a", *model, "--device", "gpu") == 2
    _one_line_error(capsys, "'gpu'", "cuda:N")
    assert _annotate(tone, tmp_path / "b", *model, "--device", "cuda:99") == 2
    _one_line_error(capsys, "'cuda:99'")
    if not torch.cuda.is_available():
        assert _annotate(tone, tmp_path / "c", *model, "--device", "cuda") == 2
        _one_line_error(capsys, "'cuda'", "--device cpu")


def test_help_and_progress_switch(tone, tmp_path):
    from biomae.cli import build_parser

    parser = build_parser()
    annotate = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["annotate"]
    text = annotate.format_help()
    assert "``" not in text
    assert all(action.help for action in annotate._actions), "an option without help"
    assert "--no-progress" in text and 'label "call"' in text
    for switch in ("--no-progress", "--quiet"):
        out = tmp_path / switch
        assert main(["annotate", str(tone), "--out", str(out), "--detector", "energy", switch]) == 0


# run.json's energy detector settings as biomae wrote them before the five shared options became
# one PostProcess (flat keys): a rerun into such a folder must still see the same settings.
FLAT_ENERGY_PARAMS = {
    "detector": "energy",
    "low_hz": None,
    "high_hz": None,
    "hop_s": None,
    "n_fft": None,
    "on_db": 8.0,
    "off_db": 4.0,
    "noise_window_s": 10.0,
    "noise_quantile": 0.25,
    "min_duration_s": 0.05,
    "merge_gap_s": None,
    "max_duration_s": None,
    "box_quantile": 0.05,
    "block_s": 120.0,
    "label": "call",
    "denoise": False,
}


def test_a_rerun_into_a_folder_with_the_flat_settings_of_earlier_versions_resumes(
    tone, tmp_path, capsys
):
    out = tmp_path / "out"
    energy = ["--detector", "energy", "--min-duration-s", "0.05"]
    assert _annotate(tone, out, *energy) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["detector"] == FLAT_ENERGY_PARAMS  # plain, flat data
    capsys.readouterr()
    assert _annotate(tone, out, *energy) == 0
    assert "(1 already done)" in capsys.readouterr().out
