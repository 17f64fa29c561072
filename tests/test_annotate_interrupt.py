"""Ctrl-C stops `biomae annotate` every time (exit 130), keeps every finished recording and the
next run resumes; a KeyboardInterrupt swallowed on its way (a library's broad except, a
finalizer) still stops the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotate import AnnotateConfig, annotate
from biomae.detectors.energy import EnergyDetector


def _folder(root, n):
    for i in range(n):
        path = root / f"site{i % 3}" / f"r{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        sf.write(path, (0.01 * rng.standard_normal(4000)).astype(np.float32), 16000)
    return root


def _default_sigint():
    """In the child: Ctrl-C as in a terminal (a background shell job inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _manifest_lines(out):
    path = out / "manifest.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


class _Swallowing(EnergyDetector):
    """Receives Ctrl-C inside code that swallows every exception (as some libraries do)."""

    calls = 0

    def detect_file(self, path, recording=None):
        type(self).calls += 1
        if type(self).calls == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler runs here
            except BaseException:
                pass
        return super().detect_file(path, recording)


def test_a_swallowed_interrupt_still_stops_the_run(tmp_path, monkeypatch):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    monkeypatch.setattr(_Swallowing, "calls", 0)
    try:
        _swallowed(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _swallowed(tmp_path):
    folder = _folder(tmp_path / "in", 5)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        annotate([folder], out, _Swallowing(), AnnotateConfig(progress=False))
    assert _manifest_lines(out) == 2  # the recording it was on finished whole, then it stopped
    summary = annotate([folder], out, EnergyDetector(), AnnotateConfig(progress=False))
    assert list(summary["skipped"]) == [True, True, False, False, False]


@pytest.mark.slow
@pytest.mark.parametrize("after_lines", [0, 1, 8])
def test_sigint_at_several_points_exits_130_and_resumes(tmp_path, after_lines):
    folder = _folder(tmp_path / "in", 20)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "biomae", "annotate", str(folder), "--out", str(out)]
    cmd += ["--quiet", "--detector", "energy", "--format", "csv"]
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint
    )
    marker = out / "run.json"
    while process.poll() is None and not (marker.exists() and _manifest_lines(out) >= after_lines):
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()[-2000:]
    assert b"interrupted" in err
    done = _manifest_lines(out)
    assert done < 20 and not list(out.rglob("*.part"))
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 20 and (summary["status"] == "done").all()
    assert summary["skipped"].sum() == done
    keys = [json.loads(line)["key"] for line in (out / "manifest.jsonl").open()]
    assert len(keys) == len(set(keys)) == 20  # each recording annotated exactly once
