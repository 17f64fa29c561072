"""The leave-taxa-out suite: held-out groups importable by training, an oracle scoring 1 on a tiny
shared-data layout, and recall at the energy detector's number of detections."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations.schema import make_events
from biomae.evaluate import benchmarks
from biomae.evaluate.leave_taxa_out import HELD_OUT, is_held_out, recall_at_count

RATE = 16000
ZEBRA = "audio/whisperseg/data/example_subset/Zebra_finch/test_adults/zebra_finch_a.flac"
BENGALESE = "audio/whisperseg/data/example_subset/Bengalese_finch/test/bengalese_finch_a.flac"
FILES = {  # file -> (source, annotation, call spans in s)
    ZEBRA: ("whisperseg", "full", [(0.5, 0.7), (1.5, 1.8)]),
    BENGALESE: ("whisperseg", "full", [(1.0, 1.2)]),
    "audio/frog_degradation_ots2021/data/raw/frog.flac": ("frog_degradation_ots2021", "partial",
                                                          [(1.0, 1.3)]),
    "audio/bellbird_mimicry/bird.flac": ("bellbird_mimicry", "partial", [(2.0, 2.4)]),
}  # fmt: skip


def test_training_can_ask_what_is_held_out():
    assert is_held_out("whisperseg", ZEBRA)
    assert not is_held_out("whisperseg", BENGALESE)  # cut from bfsongrepo: a trained species
    assert is_held_out("frog_degradation_ots2021", "audio/frog_degradation_ots2021/x.flac")
    assert not is_held_out("koumura_bird0", "audio/koumura/x.flac")
    assert {g.annotation for g in HELD_OUT} == {"full", "partial"}


def test_recall_at_count_keeps_the_best_scored_events():
    ref = make_events([{"start_s": 1.0, "end_s": 1.2, "label": "call"}], recording="r")
    pred = make_events(
        [
            {"start_s": 1.0, "end_s": 1.2, "label": "call", "score": 0.4},
            {"start_s": 3.0, "end_s": 3.2, "label": "call", "score": 0.9},
        ],
        recording="r",
    )
    assert recall_at_count(pred, ref, 2, 0.3) == 1.0
    assert recall_at_count(pred, ref, 1, 0.3) == 0.0  # only the 0.9-scored false alarm is kept


def _shared_layout(root):
    """A tiny shared data folder holding one recording per held-out group (plus a Bengalese
    finch file of whisperseg that is not held out)."""
    files, events = [], []
    for file, (source, annotation, spans) in FILES.items():
        t_s = np.arange(4 * RATE) / RATE
        audio = 0.001 * np.random.default_rng(0).standard_normal(len(t_s))
        for start_s, end_s in spans:
            inside = (t_s >= start_s) & (t_s < end_s)
            audio[inside] += 0.3 * np.sin(2 * np.pi * 2000 * t_s[inside])
            events.append({"source": source, "file": file, "onset_s": start_s,
                           "offset_s": end_s, "low_hz": "", "high_hz": "", "label": "call",
                           "taxon": "", "note": ""})  # fmt: skip
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / file, audio.astype(np.float32), RATE)
        files.append({"source": source, "file": file, "duration_s": 4.0, "sr": RATE,
                      "channels": 1, "annotation": annotation, "task": "detection", "taxon": "",
                      "regions": "", "license": "", "note": ""})  # fmt: skip
    (root / "index").mkdir()
    pd.DataFrame(files).to_csv(root / "index" / "files.csv", index=False)
    pd.DataFrame(events).to_csv(root / "index" / "events.csv", index=False)
    pd.DataFrame(columns=["source", "file", "duration_s", "label"]).to_csv(
        root / "index" / "clips.csv", index=False
    )


class Oracle:
    name = "oracle"

    def __init__(self, root):
        self.root = root

    def detect_file(self, path, recording=None):
        file = str(path)[len(str(self.root)) + 1 :]
        rows = [
            {"start_s": a, "end_s": b, "label": "call", "score": 1.0} for a, b in FILES[file][2]
        ]
        return make_events(rows, recording=str(path) if recording is None else recording)


def test_an_oracle_scores_one_on_every_held_out_group(tmp_path):
    root = tmp_path / "shared"
    _shared_layout(root)
    out = tmp_path / "out"
    assert benchmarks.run(Oracle(root), "leave-taxa-out", out, data_root=root) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["scope"]: r for r in summary["rows"]}
    assert set(rows) == {g.name for g in HELD_OUT} | {"macro"}
    zebra = rows["zebra finch (other lab)"]
    assert zebra["n_recordings"] == 1 and zebra["event_f1"] == pytest.approx(1.0)  # no Bengalese
    for name in ("field frogs, 17 species", "bellbird and neighbours"):
        assert rows[name]["recall"] == pytest.approx(1.0)
        assert rows[name]["event_f1"] is None and rows[name]["precision"] is None
        assert rows[name]["per_min"] == pytest.approx(15.0)  # 1 event in 4 s
        assert rows[name]["energy_per_min"] >= 15.0  # the energy detector hears the tone too
        assert rows[name]["recall_at_energy_rate"] == pytest.approx(1.0)
    assert rows["macro"]["event_f1"] == pytest.approx(1.0)


def test_the_suite_is_listed_in_evaluate_help(capsys):
    from biomae.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "leave-taxa-out" in capsys.readouterr().out
