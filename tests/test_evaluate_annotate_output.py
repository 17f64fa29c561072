"""`biomae evaluate --pred OUT_DIR` on a `biomae annotate` output folder: every prediction counted
once, exactly as when the per-recording tables alone are scored."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import soundfile as sf

from biomae.annotations import write_annotations
from biomae.annotations.schema import make_events
from biomae.cli import main

SAMPLE_RATE = 16000


def _tones(path, at_s):
    rng = np.random.default_rng(0)
    audio = 0.002 * rng.standard_normal(3 * SAMPLE_RATE)
    for start_s in at_s:
        a = round(start_s * SAMPLE_RATE)
        t = np.arange(round(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
        audio[a : a + len(t)] += 0.1 * np.sin(2 * np.pi * 2000 * t)
    sf.write(path, audio.astype(np.float32), SAMPLE_RATE)


def _overall(out_dir):
    table = pd.read_csv(out_dir / "metrics.csv")
    row = table[(table["metric"] == "event_iou") & (table["scope"] == "overall")].iloc[0]
    return row["tp"], row["fp"], row["fn"], row["f1"]


def test_annotate_output_folder_is_scored_once(tmp_path, capsys):
    recordings, ref = tmp_path / "recordings", tmp_path / "ref"
    recordings.mkdir()
    tones = {"a": (0.5, 1.5), "b": (1.0,), "quiet": ()}
    truth = {"a": (0.5,), "b": (1.0, 2.2), "quiet": (1.2,)}  # a's 1.5 s tone is not in the truth
    for name, at_s in tones.items():
        _tones(recordings / f"{name}.wav", at_s)
        rows = [dict(start_s=s, end_s=s + 0.2) for s in truth[name]]
        write_annotations(make_events(rows, recording=f"{name}.wav"), ref / f"{name}.txt", "raven")
    out = tmp_path / "annotated"
    annotate = ["annotate", str(recordings), "--out", str(out), "--detector", "energy"]
    assert main([*annotate, "--format", "raven,csv,parquet", "--quiet"]) == 0
    assert (out / "run.json").exists() and (out / "events.parquet").exists()

    tables_only = tmp_path / "tables_only"
    tables_only.mkdir()
    for table in out.rglob("*.selections.txt"):  # under the input folder's name
        shutil.copy(table, tables_only)
    evaluate = ["evaluate", "--ref", str(ref), "--pred"]
    assert main([*evaluate, str(tables_only), "--out", str(tmp_path / "e1")]) == 0
    expected = _overall(tmp_path / "e1")
    assert expected[:3] == (2, 1, 2)  # tp a 0.5 + b 1.0; fp a 1.5; fn b 2.2 + quiet 1.2

    capsys.readouterr()
    assert main([*evaluate, str(out), "--out", str(tmp_path / "e2")]) == 0
    assert _overall(tmp_path / "e2") == expected
    assert "skipped" not in capsys.readouterr().err  # nothing of the run passed over


def test_a_recording_in_two_tables_of_a_folder_is_refused(tmp_path, capsys):
    events = make_events([dict(start_s=0.0, end_s=1.0, score=0.9)], recording="x.wav")
    write_annotations(events, tmp_path / "pred" / "x.selections.txt", "raven")
    write_annotations(events, tmp_path / "pred" / "events.csv", "csv")  # a run-wide table
    write_annotations(events, tmp_path / "ref" / "x.selections.txt", "raven")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'x' in" in err and "more than one file" in err and "events.csv" in err
    assert not (tmp_path / "out").exists()
