"""Benchmark suites: dev/synth end to end with the energy detector, an oracle that must score
F1 = 1, BirdNET window merging, the seed suite on tiny fixtures laid out like the real datasets,
and the embeddings suite with the log-mel baseline on real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.evaluate import benchmarks
from biomae.evaluate.seed_suite import clip_label_sets

RATE = 16000


class Oracle:
    """A "model" whose predictions are the references (with a score)."""

    name = "oracle"

    def __init__(self, events: pd.DataFrame):
        self.events = events

    def detect_file(self, path, recording=None):
        mine = self.events[self.events["recording"] == str(path)].copy()
        mine["recording"] = str(path) if recording is None else recording
        mine["score"] = 1.0
        return mine.reset_index(drop=True)


def chirps(path: Path, spans_s: list[tuple[float, float]], duration_s: float = 4.0) -> Path:
    """Quiet noise with loud 2-kHz tones over ``spans_s``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(duration_s * RATE)) / RATE
    audio = 0.001 * np.random.default_rng(0).standard_normal(len(t))
    for start_s, end_s in spans_s:
        inside = (t >= start_s) & (t < end_s)
        audio[inside] += 0.3 * np.sin(2 * np.pi * 2000 * t[inside])
    sf.write(path, audio.astype(np.float32), RATE)
    return path


def seed_fixture(root: Path) -> None:
    """hainan_gibbons (per-recording CSVs) and watkins (label folders); the others absent."""
    for name, spans in (("r1", [(0.5, 1.0), (2.0, 2.6)]), ("r2", [(1.2, 1.5)])):
        chirps(root / "hainan_gibbons" / "site" / f"{name}.wav", spans)
        rows = "".join(f"{a},{b},gibbon\n" for a, b in spans)
        (root / "hainan_gibbons" / "site" / f"{name}.csv").write_text(
            "start_s,end_s,label\n" + rows
        )
    for label in ("humpback", "orca"):
        for k in range(2):
            chirps(root / "watkins" / label / f"{label}{k}.wav", [(0.2, 0.8)], duration_s=1.0)


def summary(out: Path) -> pd.DataFrame:
    assert json.loads((out / "summary.json").read_text())["rows"]
    return pd.read_csv(out / "summary.csv")


def test_birdnet_without_its_venv_is_skipped(tmp_path, monkeypatch, capsys):
    import biomae.detectors.birdnet as birdnet

    monkeypatch.setattr(birdnet, "BIRDNET_PYTHON", tmp_path / "absent" / "python")
    assert benchmarks.run("birdnet", "dev", tmp_path / "out") == 3
    assert "venv" in capsys.readouterr().err


def test_unknown_suite_and_model_are_errors(tmp_path, capsys):
    assert benchmarks.run("energy", "nope", tmp_path) == 2
    assert "known: dev" in capsys.readouterr().err
    assert benchmarks.run(str(tmp_path / "missing.safetensors"), "dev", tmp_path) == 2
    assert benchmarks.run("energy", "dev", tmp_path, max_recs=2) == 2
    assert "no option(s) ['max_recs']" in capsys.readouterr().err


# ---- seed suite on fixtures -------------------------------------------------------------------


def test_clip_label_sets_use_event_midpoints():
    events = pd.DataFrame(
        {
            "recording": ["a"] * 3,
            "start_s": [1.0, 9.0, 19.0],
            "end_s": [2.0, 12.0, 21.0],
            "label": ["x", "y", "x"],
        }
    )
    # 19-21 s has its midpoint at 20 s: the end of a 20-s recording falls in its last clip
    assert clip_label_sets(events, {"a": 20.0, "b": 3.0}, 10.0) == [{"x"}, {"y", "x"}, set()]
    assert clip_label_sets(events, {"a": 12.0}, 10.0, agnostic=True) == [{"call"}, {"call"}]


def test_seed_suite_oracle_is_perfect_and_missing_datasets_are_reported(tmp_path, capsys):
    from biomae.datasets.registry import get_adapter

    seed_fixture(tmp_path / "data")
    references = pd.concat(
        [get_adapter(n).load(tmp_path / "data" / n)[1] for n in ("hainan_gibbons", "watkins")]
    )
    out = tmp_path / "out"
    assert benchmarks.run(Oracle(references), "seed", out, data_root=tmp_path / "data") == 0
    table = summary(out).set_index("dataset")
    assert table.loc["gibbons", "event_f1"] == 1.0
    assert table.loc["gibbons", "clip_label_f1"] == 1.0
    assert table.loc["watkins", "accuracy"] == 1.0
    assert table.loc["gibbons", "seed_reference"] == pytest.approx(0.041)
    missing = {"dcase", "enabirds", "hiceas", "rainforest", "esc"}
    assert set(table.index[table["status"] == "missing"]) == missing
    printed = capsys.readouterr()
    assert "quoted from the seed paper" in printed.out and "esc skipped" in printed.err
    assert (out / "gibbons" / "gibbons" / "metrics.csv").is_file()


def test_seed_suite_with_energy_and_no_data(tmp_path):
    seed_fixture(tmp_path / "data")
    out = tmp_path / "out"
    assert benchmarks.run("energy", "seed", out, data_root=tmp_path / "data") == 0
    table = summary(out).set_index("dataset")
    assert table.loc["gibbons", "clip_presence_f1"] > 0.5  # loud tones are found
    assert table.loc["watkins", "accuracy"] == 0.0  # class-agnostic: "call" names no class
    assert benchmarks.run("energy", "seed", tmp_path / "o2", data_root=tmp_path / "empty") == 3


# ---- dev and synth suites on real data ------------------------------------------------------


def test_dev_suite_split_is_deterministic_and_disjoint(shared_data):
    test, _ = benchmarks.dev_recordings(shared_data)
    again, _ = benchmarks.dev_recordings(shared_data)
    everything, _ = benchmarks.dev_recordings(shared_data, split="all")
    assert test["path"].tolist() == again["path"].tolist()
    assert set(test["source"]) == set(benchmarks.DEV_SOURCES)
    assert set(everything["split"]) == {"train", "val", "test"}
    assert 0.05 < test["duration_s"].sum() / everything["duration_s"].sum() < 0.2


def test_dev_suite_oracle_scores_one(shared_data, tmp_path):
    recordings, events = benchmarks.dev_recordings(shared_data, max_recordings=3)
    assert len(recordings) == 3 and len(events) > 0
    out = tmp_path / "out"
    assert benchmarks.run(Oracle(events), "dev", out, data_root=shared_data, max_recordings=3) == 0
    table = summary(out)
    assert (table["event_f1"] == 1.0).all() and (table["onset_offset_f1"] == 1.0).all()
    assert table.set_index("scope").loc["all", "n_ref"] == len(events)


def test_dev_suite_energy_end_to_end(shared_data, tmp_path):
    out = tmp_path / "out"
    assert benchmarks.run("energy", "dev", out, data_root=shared_data, max_recordings=4) == 0
    table = summary(out).set_index("scope")
    assert table.loc["all", "n_recordings"] == 4
    assert 0 < table.loc["all", "event_f1"] < 1
    for scope in ("all", *benchmarks.DEV_SOURCES):
        assert (out / scope / "metrics.csv").is_file() and (out / scope / "pr_curve.png").is_file()
    listed = json.loads((out / "summary.json").read_text())["recordings"]
    assert len(listed) == 4 and all(r["split"] == "test" for r in listed)


@pytest.mark.slow
def test_synth_suite_energy_end_to_end(shared_data, tmp_path):
    out = tmp_path / "out"
    options = dict(data_root=shared_data, n_soundscapes=1, duration_s=10.0)
    assert benchmarks.run("energy", "synth", out, **options) == 0
    row = summary(out).iloc[0]
    assert row["scope"] == "synth" and row["n_ref"] > 0 and row["event_f1"] > 0
    assert (out / "soundscapes" / "soundscape_0000.flac").is_file()


@pytest.mark.slow
def test_dev_suite_runs_a_model_path(shared_data, tmp_path, tiny_detect_model):
    out = tmp_path / "out"
    rc = benchmarks.run(tiny_detect_model, "dev", out, data_root=shared_data, max_recordings=1)
    assert rc == 0
    row = summary(out).iloc[0]
    assert row["n_recordings"] == 1 and row["n_ref"] > 0  # untrained: any F1 is possible


# ---- embeddings suite -----------------------------------------------------------------------


def test_embeddings_suite_logmel_on_real_clips(shared_data, tmp_path):
    out = tmp_path / "out"
    assert benchmarks.run("logmel", "embeddings", out, data_root=shared_data, max_clips=40) == 0
    table = summary(out).set_index("source")
    assert set(table["embedding"]) == {"logmel"}
    gibbons = table.loc["gibbon_workflow"]
    assert gibbons["n_labels"] >= 2 and gibbons["nn_accuracy"] > gibbons["chance"]
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert any(n.startswith("perch_fish_queries: left out") for n in notes)


@pytest.mark.slow
def test_embeddings_suite_with_a_model_beside_logmel(shared_data, tmp_path, tiny_detect_model):
    out = tmp_path / "out"
    options = dict(data_root=shared_data, max_clips=16, max_clip_s=3.0)
    assert benchmarks.run(tiny_detect_model, "embeddings", out, **options) == 0
    table = summary(out)
    assert set(table["embedding"]) == {"logmel", str(tiny_detect_model)}
    assert table["nn_accuracy"].between(0, 1).all() and table["probe_accuracy"].notna().all()


def test_cli_hands_over_to_the_suites(tmp_path, capsys):
    from biomae.cli import main

    assert main(["evaluate", "--model", "energy", "--suite", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown suite 'nope'; known: dev, synth, seed, embeddings" in capsys.readouterr().err


def test_evaluate_makes_its_detectors_with_the_cli_factory(monkeypatch, tiny_detect_model):
    from biomae.evaluate import benchmarks
    from biomae.evaluate.benchmarks import load_detector

    calls = []
    real = benchmarks.make_detector  # biomae.detectors.make_detector, imported at the top

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(benchmarks, "make_detector", spy)
    assert load_detector("energy").name == "energy"
    assert load_detector(str(tiny_detect_model)).name == "model"
    assert [c[0][0] for c in calls] == ["energy", "model"]
    with pytest.raises(ValueError, match="birdnet options"):
        real("energy", birdnet_options={"threshold": 0.5})
