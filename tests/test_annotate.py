"""`biomae annotate` end to end: tables that read back, bad files reported, resume, atomic
outputs."""

from __future__ import annotations

import json
import shutil

import crowsetta
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotate import AnnotateConfig, annotate, find_recordings
from biomae.annotations import read_annotations
from biomae.cli import main
from biomae.detectors.energy import EnergyDetector


def _tones(path, sample_rate=16000, seconds=3.0, at_s=(0.5, 1.5)):
    rng = np.random.default_rng(0)
    audio = 0.002 * rng.standard_normal(round(seconds * sample_rate))
    for start_s in at_s:
        a = round(start_s * sample_rate)
        t = np.arange(round(0.2 * sample_rate)) / sample_rate
        audio[a : a + len(t)] += 0.1 * np.sin(2 * np.pi * 2000 * t)
    sf.write(path, audio.astype(np.float32), sample_rate)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "recordings"
    (root / "site_b").mkdir(parents=True)
    _tones(root / "a.wav")
    _tones(root / "site_b" / "b.flac", at_s=(1.0,))
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    (root / "notes.txt").write_text("not audio")
    return root


def test_demo_on_bundled_example(example_path, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "annotate",
                str(example_path),
                "--out",
                str(out),
                "--format",
                "raven,audacity,csv,parquet",
                "--plots",
                "--quiet",
            ]
        )
        == 0
    )
    raven = out / "data" / "example.selections.txt"  # named by its folder, src/biomae/data
    ours = read_annotations(raven, "raven")
    assert len(ours) >= 3
    theirs = crowsetta.formats.bbox.Raven.from_file(raven, annot_col="Annotation")
    assert len(theirs.df) == len(ours)
    np.testing.assert_allclose(theirs.df["begin_time_s"], ours["start_s"], atol=1e-6)
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "status"] == "done" and summary.loc[0, "n_events"] == len(ours)
    assert (out / "data" / "example.png").stat().st_size > 10_000
    assert len(pd.read_parquet(out / "events.parquet")) == len(ours)
    params = json.loads((out / "run.json").read_text())
    from biomae.starter import default_model

    # the default: the packaged starter model (routed by AutoDetector) when it ships, else energy
    assert params["detector"]["detector"] == ("auto" if default_model() else "energy")


def test_folder_with_a_corrupt_file_is_reported_and_skipped(folder, tmp_path):
    out = tmp_path / "out"
    summary = annotate([folder], out, EnergyDetector(), AnnotateConfig(progress=False))
    by_key = summary.set_index("key")
    assert set(by_key.index) == {"recordings/a", "recordings/site_b/b", "recordings/broken"}
    assert by_key.loc["recordings/a", "n_events"] == 2
    assert by_key.loc["recordings/site_b/b", "n_events"] == 1
    assert by_key.loc["recordings/broken", "status"] == "error"
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["path"]) == [str(folder / "broken.wav")]
    assert "broken.wav" in errors.loc[0, "error"]
    assert (out / "recordings" / "site_b" / "b.selections.txt").exists()
    assert len(pd.read_csv(out / "events.csv")) == 3


def test_rerun_skips_done_and_overwrite_redoes(folder, tmp_path):
    out = tmp_path / "out"
    annotate([folder], out, EnergyDetector(), AnnotateConfig(progress=False))
    table = out / "recordings" / "a.selections.txt"
    before = table.stat().st_mtime_ns
    summary = annotate([folder], out, EnergyDetector(), AnnotateConfig(progress=False))
    assert summary.set_index("key").loc["recordings/a", "skipped"]
    assert table.stat().st_mtime_ns == before
    assert not summary.set_index("key").loc["recordings/broken", "skipped"]  # errors are retried
    summary = annotate(
        [folder], out, EnergyDetector(), AnnotateConfig(progress=False, overwrite=True)
    )
    assert not summary["skipped"].any()
    assert table.stat().st_mtime_ns > before


class _InterruptOnSecond(EnergyDetector):
    calls = 0

    def detect_file(self, path, recording=None):
        type(self).calls += 1
        if type(self).calls == 2:
            raise KeyboardInterrupt
        return super().detect_file(path, recording)


def test_interrupt_leaves_no_partial_files_and_resumes(folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        annotate([folder], out, _InterruptOnSecond(), AnnotateConfig(progress=False))
    assert not list(out.rglob("*.part"))
    lines = (out / "manifest.jsonl").read_text().splitlines()
    # a.wav finished and broken.wav failed before the interrupt hit site_b/b.flac
    keys = [json.loads(line)["key"] for line in lines]
    assert keys == ["recordings/a", "recordings/broken"]
    assert not (out / "recordings" / "site_b" / "b.selections.txt").exists()
    summary = annotate([folder], out, EnergyDetector(), AnnotateConfig(progress=False))
    assert summary["skipped"].sum() == 1
    assert set(summary["status"]) == {"done", "error"}


def test_inputs_globs_and_name_clashes(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        _tones(tmp_path / sub / "same.wav")
    recs = find_recordings([tmp_path / "x" / "same.wav", str(tmp_path / "y" / "*.wav")])
    assert len({r.key for r in recs}) == 2
    with pytest.raises(FileNotFoundError, match="nothing.wav"):
        find_recordings([tmp_path / "nothing.wav"])
    assert main(["annotate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_unsupported_container_is_reported(tmp_path, shared_data):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared_data / "audio" / "birdnet_example" / "soundscape.aac", folder)
    summary = annotate([folder], tmp_path / "out", EnergyDetector(), AnnotateConfig(progress=False))
    assert summary.loc[0, "status"] == "error"
    assert "soundscape.aac" in summary.loc[0, "error"]


@pytest.mark.distributed
def test_torchrun_two_ranks_share_the_recordings(tmp_path):
    import os
    import subprocess
    import sys

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        _tones(folder / f"r{i}.wav", at_s=(0.5, 1.5)[: 1 + i % 2])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "biomae",
        "annotate",
        str(folder),
        "--out",
        str(out),
        "--quiet",
        "--detector",
        "energy",  # the tones are for the energy detector; this test is about the ranks
    ]
    subprocess.run(cmd, check=True, env=env, timeout=300, capture_output=True)
    summary = pd.read_csv(out / "summary.csv").set_index("key")
    keys = ["in/r0", "in/r1", "in/r2", "in/r3"]
    assert sorted(summary.index) == keys
    assert (summary["status"] == "done").all()
    assert list(summary.loc[keys, "n_events"]) == [1, 2, 1, 2]
    ranks = [
        [json.loads(line)["key"] for line in (out / f"manifest.rank{r}.jsonl").open()]
        for r in (0, 1)
    ]
    assert ranks == [["in/r0", "in/r2"], ["in/r1", "in/r3"]]  # disjoint shares
    assert len(pd.read_csv(out / "events.csv")) == 6
