"""``biomae data add``: evsonganaly's file names pair with their audio, unpaired files are reported,
and an event past the end of its recording names its file and line (clipped with --lenient)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import soundfile as sf

from biomae.annotations import make_events, read_annotations, write_annotations
from biomae.cli import main

BFSONGREPO = "audio/hvc/tests/data_for_tests/cbins/gy6or6/032312"


def _events_per_recording(catalog: str, capsys) -> dict[str, int]:
    sql = (
        "SELECT r.path, count(e.recording_id) AS n FROM recordings r "
        "LEFT JOIN events e USING (recording_id) GROUP BY 1"
    )
    capsys.readouterr()
    assert main(["data", "query", sql, "--csv", "--catalog", catalog]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    return {path.rsplit("/", 1)[1]: n for path, n in zip(table["path"], table["n"], strict=True)}


def test_evsonganaly_names_pair_with_their_audio(shared_data, tmp_path, capsys):
    source = sorted((shared_data / BFSONGREPO).glob("*.cbin.flac"))[:4]
    stems = [p.name.removesuffix(".cbin.flac") for p in source]
    folder = tmp_path / "song"
    folder.mkdir()
    audio, rate = sf.read(source[0])  # 1: a .wav converted from the .cbin, X.wav.not.mat
    sf.write(folder / f"{stems[0]}.wav", audio, rate)
    shutil.copy(f"{str(source[0])[:-5]}.not.mat", folder / f"{stems[0]}.wav.not.mat")
    shutil.copy(source[1], folder / f"{stems[1]}.flac")  # 2: X.flac beside X.cbin.not.mat
    shutil.copy(f"{str(source[1])[:-5]}.not.mat", folder)
    shutil.copy(source[2], folder)  # 3: as shipped, X.cbin.flac + X.cbin.not.mat
    shutil.copy(f"{str(source[2])[:-5]}.not.mat", folder)
    shutil.copy(f"{str(source[3])[:-5]}.not.mat", folder)  # 4: annotation, no audio
    sf.write(folder / "unannotated.wav", np.zeros(3200), 32000)  # 5: audio, no annotation
    expected = [len(read_annotations(f"{str(p)[:-5]}.not.mat", "notmat")) for p in source[:3]]
    assert min(expected) > 0

    catalog = str(tmp_path / "cat")
    assert main(["data", "add", str(folder), "--format", "notmat", "--catalog", catalog]) == 0
    captured = capsys.readouterr()
    assert "4 recordings (0.0" in captured.out and f"{sum(expected)} events" in captured.out
    assert "1 of 4 recording(s) have no notmat annotation file" in captured.err
    assert "unannotated.wav" in captured.err
    assert "1 notmat annotation file(s) pair with no audio file and are not added: " in captured.err
    assert f"{stems[3]}.cbin.not.mat" in captured.err
    counts = _events_per_recording(catalog, capsys)
    assert counts == {
        f"{stems[0]}.wav": expected[0],
        f"{stems[1]}.flac": expected[1],
        f"{stems[2]}.cbin.flac": expected[2],
        "unannotated.wav": 0,
    }


def test_an_event_past_the_end_names_its_line_and_is_clipped_with_lenient(tmp_path, capsys):
    folder = tmp_path / "field"
    folder.mkdir()
    sf.write(folder / "a.wav", 0.1 * np.sin(np.arange(16000) * 0.3), 8000)  # 2.0 s
    rows = {"start_s": [0.1, 1.5, 2.5], "end_s": [0.4, 2.004, 2.6], "label": ["x", "y", "z"]}
    table = write_annotations(make_events(rows), folder / "a.selections.txt", "raven")
    args = ["data", "add", str(folder), "--format", "raven", "--catalog", str(tmp_path / "cat")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{table}:3: end_s=2.004 is after the end of a.wav (2 s)" in err
    assert "row 0" not in err and "--lenient" in err

    assert main([*args, "--lenient"]) == 0
    captured = capsys.readouterr()
    assert f"clipped {table}:3: end_s=2.004 is after the end of a.wav (2 s): clipped to 2 s" in (
        captured.err
    )
    assert f"skipped {table}:4: end_s=2.6 is after the end of a.wav (2 s) and so is its start" in (
        captured.err
    )
    assert "2 events" in captured.out and "1 event(s) clipped" in captured.out
    assert "1 malformed annotation row(s) skipped" in captured.out
    sql = "SELECT end_s, note FROM events ORDER BY start_s"
    assert main(["data", "query", sql, "--csv", "--catalog", str(tmp_path / "cat")]) == 0
    events = pd.read_csv(io.StringIO(capsys.readouterr().out)).fillna("")
    assert events["end_s"].tolist() == [0.4, 2.0]
    assert events["note"].tolist() == ["", "end_s 2.004 clipped to the recording's end 2"]
