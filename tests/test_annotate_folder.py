"""A field season in miniature: ~200 short recordings in nested site folders with the same file
names in every site, 5% corrupt or truncated, annotated by `biomae annotate` in a subprocess killed
-9 three times, resumed, then rerun with a changed option — the result equals an uninterrupted
run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

N_SITES, N_PER_SITE = 4, 50  # 200 recordings


def _field_season(root):
    rng = np.random.default_rng(0)
    bad, cut = [], []
    for site in range(N_SITES):
        for i in range(N_PER_SITE):
            path = root / f"site{site}" / f"2024-0{1 + i % 2}" / f"20240101_{i:06d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            if (site * N_PER_SITE + i) % 40 == 7:  # 2.5% corrupt: garbage or zero bytes
                path.write_bytes(rng.bytes(300) if i % 2 else b"")
                bad.append(path)
                continue
            audio = 0.002 * rng.standard_normal(2400)  # 0.3 s at 8 kHz
            at = int(rng.integers(200, 1400))
            audio[at : at + 640] += 0.1 * np.sin(
                2 * np.pi * (1000 + 100 * site) * np.arange(640) / 8000
            )
            sf.write(path, audio.astype(np.float32), 8000)
            if (site * N_PER_SITE + i) % 40 == 27:  # 2.5% cut short, as when a battery dies
                path.write_bytes(path.read_bytes()[:-3000])
                cut.append(path)
    return bad, cut


def _cmd(root, out, *extra):
    return [
        sys.executable,
        "-m",
        "biomae",
        "annotate",
        str(root),
        "--out",
        str(out),
        "--no-progress",
        "--detector",
        "energy",
        "--format",
        "csv,raven",
        *extra,
    ]


def _lines(out):
    path = out / "manifest.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def _tables(out):
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.name.endswith((".events.csv", ".selections.txt"))
    }


@pytest.mark.slow
def test_killed_three_times_resumed_then_rerun_with_a_changed_option(tmp_path):
    root = tmp_path / "season"
    bad, cut = _field_season(root)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    assert subprocess.run(_cmd(root, reference), env=env, capture_output=True).returncode == 1

    out = tmp_path / "out"
    for after in (15, 70, 130):  # kill -9 at three moments, each run resuming the last
        process = subprocess.Popen(
            _cmd(root, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while process.poll() is None and _lines(out) < after:
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL  # killed before it finished
    resumed = subprocess.run(_cmd(root, out), env=env, capture_output=True, text=True)
    assert resumed.returncode == 1, resumed.stderr  # 1: the corrupt recordings failed
    assert not list(out.rglob("*.part"))

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == N_SITES * N_PER_SITE and summary["key"].is_unique
    assert set(summary.loc[summary["status"] == "error", "path"]) == {str(p) for p in bad}
    warned = summary[summary["warning"].fillna("").str.startswith("truncated")]
    assert set(warned["path"]) == {str(p) for p in cut}  # read up to the cut, and said so
    assert (warned["status"] == "done").all()
    entries = [json.loads(line) for line in (out / "manifest.jsonl").open()]
    done = Counter(e["resolved"] for e in entries if e["status"] == "done")
    assert len(done) == len(summary) - len(bad) and set(done.values()) == {1}  # exactly once
    assert (out / "events.csv").read_bytes() == (reference / "events.csv").read_bytes()
    assert _tables(out) == _tables(reference)
    expected = pd.read_csv(reference / "summary.csv")
    pd.testing.assert_frame_equal(
        summary[["key", "status", "n_events"]], expected[["key", "status", "n_events"]]
    )

    run_json = (out / "run.json").read_text()
    changed = subprocess.run(
        _cmd(root, out, "--on-db", "14"), env=env, capture_output=True, text=True
    )
    assert changed.returncode == 2 and "detector.on_db: 8.0 -> 14.0" in changed.stderr
    assert (out / "run.json").read_text() == run_json and _tables(out) == _tables(reference)
    redone = subprocess.run(
        _cmd(root, out, "--on-db", "14", "--overwrite"), env=env, capture_output=True, text=True
    )
    assert redone.returncode == 1, redone.stderr
    assert json.loads((out / "run.json").read_text())["detector"]["on_db"] == 14.0
    summary = pd.read_csv(out / "summary.csv")
    assert not summary["skipped"].any() and (summary["status"] == "done").sum() == len(done)
