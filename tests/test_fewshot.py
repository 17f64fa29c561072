"""Few-shot detection: ``biomae annotate REC --shots TABLE`` (biomae.fewshot)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from test_examples import HIGH_HZ, LOW_HZ, _recording

from biomae.annotations import make_events, write_annotations
from biomae.cli import main
from biomae.fewshot import FewShotConfig, calibrate_threshold, f1_threshold


@pytest.fixture
def tiny_embedder(tiny_detect_model, monkeypatch):
    monkeypatch.setenv("BIOMAE_STARTER_MODEL", str(tiny_detect_model))
    return tiny_detect_model


# the call type (HIGH_HZ) ten times, a distractor (LOW_HZ) between them
TARGETS = [0.5 + 1.0 * k for k in range(10)]
DISTRACTORS = [1.0 + 1.0 * k for k in range(10)]


def _scene(tmp_path):
    calls = [(s, 0.2, HIGH_HZ) for s in TARGETS] + [(s, 0.2, LOW_HZ) for s in DISTRACTORS]
    return _recording(tmp_path / "rec.wav", calls, seconds=11.5, seed=1)


def _shots(path, starts_s, label="tsk"):
    starts = list(starts_s)
    events = make_events(
        {"start_s": starts, "end_s": [s + 0.2 for s in starts], "label": [label] * len(starts)}
    )
    write_annotations(events, path, "raven")
    return path


def _run(rec, out, shots, *extra) -> int:
    return main(
        ["annotate", str(rec), "--out", str(out), "--detector", "energy", "--shots", str(shots),
         "--format", "csv", "--quiet", *extra]
    )  # fmt: skip


def test_shots_find_the_rest_of_the_call_type_and_nothing_before_the_fifth(
    tiny_embedder, tmp_path, capsys
):
    rec = _scene(tmp_path)
    shots = _shots(tmp_path / "shots.selections.txt", TARGETS[:5])
    out = tmp_path / "out"
    assert _run(rec, out, shots) == 0
    assert "events reported after 4.7 s" in capsys.readouterr().out
    table = pd.read_csv(out / tmp_path.name / "rec.events.csv")
    assert (table["start_s"] >= TARGETS[4] + 0.2).all()  # the DCASE rule
    assert (table["label"] == "tsk").all()
    found = sorted(round(s) for s in table["start_s"] - 0.5)  # target k starts at k + 0.5
    assert found == [5, 6, 7, 8, 9]  # every later target, no distractor
    assert table["score"].between(0, 1).all() and "similarity" in table
    settings = json.loads((out / "run.json").read_text())["detector"]["shots"]
    assert settings["n_shots"] == 5 and settings["fingerprint"]


def test_sliding_windows_find_calls_the_detector_missed(tiny_detect_model, tmp_path):
    from biomae.audio import info as audio_info
    from biomae.detectors import make_detector
    from biomae.embed import Embedder
    from biomae.fewshot import FewShotDetector

    rec = _scene(tmp_path)
    shots = make_events({"start_s": TARGETS[:5], "end_s": [s + 0.2 for s in TARGETS[:5]]})
    finder = FewShotDetector(
        make_detector("energy"), Embedder(tiny_detect_model), shots, FewShotConfig(mode="both")
    )
    nothing_detected = make_events([])
    events = finder.find(rec, nothing_detected, audio_info(rec))
    starts = sorted(events["start_s"])
    assert len(starts) == 5 and (events["source"] == "biomae-fewshot").all()
    for target, start in zip(TARGETS[5:], starts, strict=True):
        assert abs(start - target) <= 0.1


@pytest.mark.parametrize(
    "case, expected",
    [
        ("two recordings", "belongs to one recording, and the inputs hold 2"),
        ("six shots", "6 events; give only the first 5"),
        ("no table", "no such file"),
        ("with examples", "--examples and --shots: give one"),
    ],
)
def test_unusable_shots_are_refused(tiny_embedder, tmp_path, capsys, case, expected):
    rec = _scene(tmp_path)
    shots = _shots(tmp_path / "shots.selections.txt", TARGETS[: 6 if case == "six shots" else 5])
    args = [str(rec), "--out", str(tmp_path / "out"), "--detector", "energy", "--quiet"]
    if case == "two recordings":
        sf.write(tmp_path / "other.wav", sf.read(rec)[0], 16000)
        args[0] = str(tmp_path)
    if case == "no table":
        shots = tmp_path / "missing.csv"
    if case == "with examples":
        args += ["--examples", str(tmp_path)]
    assert main(["annotate", *args, "--shots", str(shots)]) == 2
    assert expected in capsys.readouterr().err


def test_calibrate_threshold_takes_the_middle_of_the_best_range():
    assert calibrate_threshold(np.array([0.9, 0.8]), np.array([0.1, 0.5])) == pytest.approx(0.65)
    assert calibrate_threshold(np.array([0.9, 0.8]), np.array([])) == pytest.approx(0.8)


def test_f1_threshold_keeps_the_true_candidates_and_drops_the_false():
    similarity = np.array([0.9, 0.85, 0.8, 0.6, 0.5, 0.3])
    positive = np.array([True, True, False, True, False, False])
    # F1 is best (6/7) keeping the top four: the threshold lies between 0.5 and 0.6
    assert f1_threshold(similarity, positive, n_targets=3) == pytest.approx(0.55)
    # a fourth shot that no candidate matched counts as missed, not as a reason to keep more
    assert f1_threshold(similarity, positive, n_targets=4) == pytest.approx(0.55)
