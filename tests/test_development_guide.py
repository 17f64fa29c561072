"""docs/development.md says where each kind of change goes; these tests make those changes (a toy
annotation format, a toy detector) in exactly that one place and run them through the commands."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import soundfile as sf

from biomae import annotations
from biomae.annotate import AnnotateConfig, annotate
from biomae.annotations import make_events, read_annotations, write_annotations
from biomae.cli import main

TOY_FORMAT = '''
"""A toy format: one line per event, "start end label"."""
from pathlib import Path

from biomae.atomic_io import atomic_open
from biomae.annotations.schema import make_events

SUFFIX = ".toy"
OUTPUT_SUFFIX = ".toy.txt"
WRITE_OPTIONS = ()


def read(path, recording=None):
    rows = []
    for line in Path(path).read_text().splitlines():
        start, end, label = line.split(" ", 2)
        rows.append(dict(start_s=float(start), end_s=float(end), label=label))
    return make_events(rows, recording=recording or Path(path).stem)


def write(events, path):
    with atomic_open(Path(path)) as handle:
        for row in events.itertuples():
            handle.write(f"{row.start_s!r} {row.end_s!r} {row.label}\\n")
'''


class ToyDetector:
    """A detector is any object with these four members (biomae.detectors.Detector)."""

    name = "toy"

    def params(self) -> dict:
        return {"detector": self.name}

    def name_for(self, path) -> str:
        return self.name

    def detect_file(self, path, recording=None) -> pd.DataFrame:
        rows = [dict(start_s=0.25, end_s=0.5, label="toy-call", score=1.0)]
        return make_events(rows, recording=recording or str(path))


def _recording(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)


def test_a_new_format_is_one_module_named_in_formats(tmp_path, monkeypatch):
    # a format kept outside biomae is named by its dotted path; one in src/biomae/annotations/ by
    # its module name: either way, the module and its FORMATS entry are the whole change
    (tmp_path / "toypkg").mkdir()
    (tmp_path / "toypkg" / "__init__.py").write_text("")
    (tmp_path / "toypkg" / "toy.py").write_text(textwrap.dedent(TOY_FORMAT))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(annotations.FORMATS, "toy", "toypkg.toy")

    events = make_events([dict(start_s=0.1, end_s=0.3, label="a b")], recording="x")
    write_annotations(events, tmp_path / "x.toy", "toy")
    back = read_annotations(tmp_path / "x.toy", "toy", recording="x")
    assert back[["start_s", "end_s", "label"]].equals(events[["start_s", "end_s", "label"]])

    _recording(tmp_path / "in" / "rec.wav")
    out = tmp_path / "out"
    code = main(["annotate", str(tmp_path / "in"), "--out", str(out), "--detector", "energy",
                 "--format", "toy,raven", "--no-progress"])  # fmt: skip
    assert code == 0 and (out / "in" / "rec.toy.txt").exists()
    assert (out / "in" / "rec.selections.txt").exists()


def test_a_new_detector_is_one_class_with_the_detector_protocol(tmp_path):
    # no detect_many: annotate detects one recording at a time
    _recording(tmp_path / "in" / "a.wav")
    _recording(tmp_path / "in" / "b.wav")
    summary = annotate([tmp_path / "in"], tmp_path / "out", ToyDetector(), AnnotateConfig(
        formats=["csv"], progress=False))  # fmt: skip
    assert list(summary["detector"]) == ["toy", "toy"]
    events = pd.read_csv(tmp_path / "out" / "events.csv")
    assert list(events["label"]) == ["toy-call", "toy-call"]
