"""`biomae evaluate --pred --ref` end to end: real Raven tables, shifted copies, BirdNET naming."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from biomae.annotations import read_annotations, write_annotations
from biomae.annotations.schema import make_events
from biomae.cli import main
from biomae.metrics.events import MatchConfig, event_f1

CHRONISTER = "formats/crowsetta/tests/data_for_tests/raven/chronister-at-al-2021/Annotation_Files"
TABLE = "Recording_1/Recording_1_Segment_05.Table.1.selections.txt"


def metrics(out_dir):
    table = pd.read_csv(out_dir / "metrics.csv")
    table["label"] = (
        table["label"].astype(object).fillna("")
    )  # overall and macro rows have no label
    return {(r.metric, r.scope, r.label): r for r in table.itertuples()}


@pytest.mark.slow
def test_real_tables_scored_against_themselves(shared_data, tmp_path, capsys):
    folder = shared_data / CHRONISTER / "Recording_1"
    rc = main(
        [
            "evaluate",
            "--pred",
            str(folder),
            "--ref",
            str(folder),
            "--match-labels",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    assert "event F1 1.000" in capsys.readouterr().out
    rows = metrics(tmp_path)
    for name in ("event_iou", "onset_offset", "frame"):
        row = rows[(name, "overall", "")]
        assert (row.f1, row.fp, row.fn) == (1.0, 0, 0)
        assert rows[(name, "macro", "")].f1 == 1.0
    n_events = len(read_annotations(folder / TABLE.split("/")[1], "raven"))
    per_recording = pd.read_csv(tmp_path / "per_recording.csv")
    assert len(per_recording) == 35
    assert per_recording.set_index("recording").loc["Recording_1_Segment_05", "tp"] == n_events
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["config"]["iou_threshold"] == 0.3 and summary["config"]["match_labels"]
    assert summary["metrics"]["event_iou"]["overall"]["f1"] == 1.0
    assert summary["ap"] is None  # human tables carry no scores
    assert not (tmp_path / "pr_curve.csv").exists()


@pytest.mark.parametrize("shift_s", [0.05, 0.5, 3.0])
def test_time_shifted_copy_drops_as_computed(shared_data, tmp_path, shift_s):
    ref_path = shared_data / CHRONISTER / TABLE
    ref = read_annotations(ref_path, "raven")
    shifted = ref.assign(start_s=ref["start_s"] + shift_s, end_s=ref["end_s"] + shift_s)
    pred_path = tmp_path / "pred" / "Recording_1_Segment_05.BirdNET.selection.table.txt"
    write_annotations(shifted, pred_path, "raven")
    out = tmp_path / "out"
    assert (
        main(
            ["evaluate", "--pred", str(pred_path.parent), "--ref", str(ref_path), "--out", str(out)]
        )
        == 0
    )
    row = metrics(out)[("event_iou", "overall", "")]
    expected = event_f1(shifted, ref, MatchConfig()).overall
    assert (row.tp, row.fp, row.fn) == (expected.tp, expected.fp, expected.fn)
    # by hand: a shifted event keeps IoU (d - s) / (d + s) with itself, d its duration
    duration_s = (ref["end_s"] - ref["start_s"]).to_numpy()
    self_match = ((duration_s - shift_s) / (duration_s + shift_s) >= 0.3).sum()
    assert row.tp >= self_match
    assert (row.f1 == 1.0) == (shift_s == 0.05)  # 50 ms keeps IoU >= 0.3 for every event here


def test_birdnet_style_scores_labels_and_pr_curve(tmp_path, capsys):
    ref = make_events(
        [dict(start_s=3.0 * i, end_s=3.0 * i + 1.0, label=lab) for i, lab in enumerate("AABBA")],
        recording="site1_0530.wav",
    )
    pred = make_events(
        [
            dict(start_s=0.1, end_s=1.1, label="Robin", score=0.9),
            dict(start_s=3.0, end_s=4.0, label="Robin", score=0.8),
            dict(start_s=6.0, end_s=7.0, label="Robin", score=0.7),  # wrong label
            dict(start_s=20.0, end_s=21.0, label="Thrush", score=0.6),  # nothing there
        ],
        recording="site1_0530.wav",
    )
    write_annotations(ref, tmp_path / "ref" / "site1_0530.Table.1.selections.txt", "raven")
    write_annotations(pred, tmp_path / "pred" / "site1_0530.BirdNET.selection.table.txt", "raven")
    (tmp_path / "map.csv").write_text("from,to\nRobin,A\nThrush,B\n")
    out = tmp_path / "out"
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]
    rc = main(
        [*args, "--match-labels", "--label-map", str(tmp_path / "map.csv"), "--out", str(out)]
    )
    assert rc == 0
    rows = metrics(out)
    assert (rows[("event_iou", "overall", "")].tp, rows[("event_iou", "overall", "")].fp) == (2, 2)
    assert rows[("event_iou", "class", "A")].fn == 1 and rows[("event_iou", "class", "B")].fn == 2
    # AP of class A: ranks .9 TP, .8 TP, .7 FP -> recall 2/3 at precision 1
    assert rows[("ap", "class", "A")].ap == pytest.approx(2 / 3)
    curve = pd.read_csv(out / "pr_curve.csv")
    assert set(curve["label"]) == {"(all)", "A", "B"}
    assert (out / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "AP" in capsys.readouterr().out


def test_single_files_pair_whatever_their_names_and_unpaired_are_noted(tmp_path, capsys):
    ref = make_events([dict(start_s=0, end_s=1)], recording="a")
    pred = make_events([dict(start_s=0, end_s=1, score=0.5)], recording="b")
    write_annotations(ref, tmp_path / "ref" / "a.selections.txt", "raven")
    write_annotations(pred, tmp_path / "pred" / "b.selections.txt", "raven")
    out = tmp_path / "out"
    single = [
        "--pred",
        str(tmp_path / "pred" / "b.selections.txt"),
        "--ref",
        str(tmp_path / "ref" / "a.selections.txt"),
    ]
    assert main(["evaluate", *single, "--out", str(out)]) == 0
    assert metrics(out)[("event_iou", "overall", "")].f1 == 1.0
    # folders pair by name: b has no reference (not scored), a has no prediction (all missed)
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(tmp_path / "pred"),
                "--ref",
                str(tmp_path / "ref"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    row = metrics(out)[("event_iou", "overall", "")]
    assert (row.tp, row.fp, row.fn) == (0, 0, 1)
    err = capsys.readouterr().err
    assert "without a reference table were not scored: ['b']" in err
    assert "have no prediction table" in err
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    assert len(notes) == 2


def test_regions_option(tmp_path):
    ref = make_events([dict(start_s=0, end_s=1), dict(start_s=50, end_s=51)], recording="r")
    pred = make_events([dict(start_s=0, end_s=1), dict(start_s=30, end_s=31)], recording="r")
    write_annotations(ref, tmp_path / "r.Table.1.selections.txt", "raven")
    write_annotations(pred, tmp_path / "r.BirdNET.selection.table.txt", "raven")
    (tmp_path / "regions.csv").write_text("recording,start_s,end_s\nr.wav,0,10\n")
    out = tmp_path / "out"
    files = [
        "--pred",
        str(tmp_path / "r.BirdNET.selection.table.txt"),
        "--ref",
        str(tmp_path / "r.Table.1.selections.txt"),
    ]
    assert (
        main(["evaluate", *files, "--regions", str(tmp_path / "regions.csv"), "--out", str(out)])
        == 0
    )
    row = metrics(out)[("event_iou", "overall", "")]
    assert (row.tp, row.fp, row.fn) == (1, 0, 0)
    assert main(["evaluate", *files, "--out", str(out)]) == 0
    assert metrics(out)[("event_iou", "overall", "")].f1 == 0.5


def test_usage_errors_exit_2(tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(tmp_path),
                "--ref",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "give --pred and --ref" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # --out is required, and the usage says so
        main(["evaluate", "--pred", str(tmp_path), "--ref", str(tmp_path)])
    assert exit_.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err
    assert (
        main(["evaluate", "--pred", "x", "--ref", "y", "--iou", "0", "--out", str(tmp_path / "o")])
        == 2
    )
    assert "iou_threshold=0.0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_metrics_csv_has_integer_counts_and_nan_free_json(tmp_path):
    ref = make_events([dict(start_s=0, end_s=1, label="a")], recording="r")
    write_annotations(ref, tmp_path / "r.selections.txt", "raven")
    out = tmp_path / "out"
    path = str(tmp_path / "r.selections.txt")
    assert (
        main(["evaluate", "--pred", path, "--ref", path, "--match-labels", "--out", str(out)]) == 0
    )
    text = (out / "metrics.csv").read_text()
    assert "1.0,0.0" not in text.splitlines()[1]  # counts are integers
    summary = json.loads((out / "metrics.json").read_text())  # NaN written as null (valid JSON)
    assert "NaN" not in (out / "metrics.json").read_text()
    assert math.isclose(summary["metrics"]["event_iou"]["macro_f1"], 1.0)
    assert np.isclose(summary["metrics"]["frame"]["overall"]["f1"], 1.0)


BIRDNET_HEADER = (
    "Selection\tView\tChannel\tBegin Path\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
    "High Freq (Hz)\tCommon Name\tSpecies Code\tConfidence\tFile Offset (s)\n"
)


def test_birdnet_selection_table_against_human_table(tmp_path):
    rows = [(0, 3, "American Robin", "amerob", 0.9), (3, 6, "Wood Thrush", "woothr", 0.4)]
    rows += [(9, 12, "American Robin", "amerob", 0.6)]
    lines = [
        "\t".join(map(str, [i, "Spectrogram 1", 1, "/data/site1_0530.wav", a, b, 0, 15000]))
        + f"\t{name}\t{code}\t{p}\t{a}\n"
        for i, (a, b, name, code, p) in enumerate(rows, start=1)
    ]
    pred = tmp_path / "birdnet" / "site1_0530.BirdNET.selection.table.txt"
    pred.parent.mkdir()
    pred.write_text(BIRDNET_HEADER + "".join(lines))
    human = make_events(
        [dict(start_s=0.5, end_s=2.5, label="AMRO"), dict(start_s=3.5, end_s=5.0, label="WOTH")],
        recording="site1_0530",
    )
    write_annotations(human, tmp_path / "human" / "site1_0530.Table.1.selections.txt", "raven")
    (tmp_path / "map.csv").write_text("from,to\nAmerican Robin,AMRO\nWood Thrush,WOTH\n")
    out = tmp_path / "out"
    args = ["evaluate", "--pred", str(pred.parent), "--ref", str(tmp_path / "human")]
    args += ["--match-labels", "--label-map", str(tmp_path / "map.csv"), "--out", str(out)]
    assert main(args) == 0
    rows_out = metrics(out)
    overall = rows_out[("event_iou", "overall", "")]
    assert (overall.tp, overall.fp, overall.fn) == (2, 1, 0)
    # Confidence became the score: AMRO ranks .9 TP then .6 FP -> AP 1; WOTH .4 TP -> AP 1
    assert rows_out[("ap", "class", "AMRO")].ap == 1.0
    assert rows_out[("ap", "macro", "")].ap == 1.0


def test_a_malformed_reference_row_stops_or_is_skipped_with_lenient(tmp_path, capsys):
    ref = make_events([dict(start_s=0, end_s=1), dict(start_s=2, end_s=3)], recording="r")
    pred = make_events([dict(start_s=0, end_s=1, score=0.9)], recording="r")
    table = write_annotations(ref, tmp_path / "ref" / "r.selections.txt", "raven")
    write_annotations(pred, tmp_path / "pred" / "r.selections.txt", "raven")
    lines = table.read_text().splitlines()
    lines[2] = lines[2].replace("\t3", "\t1.5", 1)  # the second box ends before it starts
    table.write_text("\n".join(lines) + "\n")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 2 and f"{table}:3: " in capsys.readouterr().err
    assert main([*args, "--lenient"]) == 0
    assert f"skipped {table}:3: " in capsys.readouterr().err
    row = metrics(tmp_path / "out")[("event_iou", "overall", "")]
    assert (row.tp, row.fp, row.fn) == (1, 0, 0)  # scored against the one good reference box
    notes = json.loads((tmp_path / "out" / "metrics.json").read_text())["notes"]
    assert any(note.startswith(f"skipped {table}:3: ") for note in notes)
