"""Reading and pairing tables for `biomae evaluate`: recording keys, formats, label maps."""

from __future__ import annotations

import pytest

from biomae.annotations.schema import make_events
from biomae.evaluate.tables import (
    apply_label_map,
    guess_format,
    read_label_map,
    read_regions,
    read_tables,
    recording_key,
)

CHRONISTER = "formats/crowsetta/tests/data_for_tests/raven/chronister-at-al-2021/Annotation_Files"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("X.BirdNET.selection.table.txt", "X"),
        ("X.BirdNET.selection.table", "X"),  # a reader naming the recording after the table
        ("405_marron1.audacity.txt", "405_marron1"),
        ("X.Table.1.selections.txt", "X"),
        ("X.Table.12.selections.txt", "X"),
        ("X.selections.txt", "X"),
        ("dir/sub/X.wav", "X"),
        ("C:\\data\\X.WAV", "X"),
        ("X.wav.TextGrid", "X"),
        ("X.BirdNET.results.csv", "X"),
        ("bl26lb16_190412_0721.20144.json", "bl26lb16_190412_0721.20144"),
        ("site1_20240501_053000.flac", "site1_20240501_053000"),
        ("gy6or6_032312_081416.cbin.not.mat", "gy6or6_032312_081416.cbin"),
    ],
)
def test_recording_key(name, key):
    assert recording_key(name) == key


def test_guess_format_on_real_files(shared_data):
    examples = shared_data / "formats/crowsetta/src/crowsetta/examples"
    assert guess_format(examples / "Recording_1_Segment_02.Table.1.selections.txt") == "raven"
    assert guess_format(examples / "405_marron1_June_14_2016_69640887.audacity.txt") == "audacity"
    assert guess_format(examples / "AVO-maea-basic.TextGrid") == "textgrid"
    assert guess_format(examples / "Annotation.xml-description.txt") is None


def test_read_tables_folder_declares_empty_tables(shared_data):
    folder = shared_data / CHRONISTER / "Recording_1"
    tables = read_tables(folder, "raven")
    assert len(tables.files) == 35 and len(tables.recordings) == 35
    assert "Recording_1_Segment_01" in tables.recordings  # an empty table still counts
    assert "Recording_1_Segment_01" not in set(tables.events["recording"])
    assert set(tables.events["recording"]) <= set(tables.recordings)
    guessed = read_tables(folder)
    assert len(guessed.events) == len(tables.events)


def test_read_tables_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_tables(tmp_path / "missing")
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(ValueError, match="no annotation file found"):
        read_tables(tmp_path)
    with pytest.raises(ValueError, match="unknown annotation format 'nope'"):
        read_tables(tmp_path, "nope")
    (tmp_path / "odd.txt").write_text("hello world\n")
    with pytest.raises(ValueError, match="cannot guess the annotation format"):
        read_tables(tmp_path / "odd.txt")


def test_label_map_and_regions(tmp_path):
    (tmp_path / "map.csv").write_text("from,to\nAmerican Robin,AMRO\nWood Thrush,WOTH\n")
    mapping = read_label_map(tmp_path / "map.csv")
    table = make_events(
        [dict(start_s=0, end_s=1, label="Wood Thrush"), dict(start_s=1, end_s=2, label="x")]
    )
    assert apply_label_map(table, mapping)["label"].tolist() == ["WOTH", "x"]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header 'from,to'"):
        read_label_map(tmp_path / "bad.csv")
    (tmp_path / "twice.csv").write_text("from,to\na,b\na,c\n")
    with pytest.raises(ValueError, match="line 3: label 'a' is mapped twice"):
        read_label_map(tmp_path / "twice.csv")
    (tmp_path / "regions.csv").write_text("recording,start_s,end_s\nX.wav,0,10\nX.wav,20,30\n")
    assert read_regions(tmp_path / "regions.csv") == {"X": [(0.0, 10.0), (20.0, 30.0)]}
    (tmp_path / "bad_regions.csv").write_text("recording,start_s,end_s\nX,5,1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_regions(tmp_path / "bad_regions.csv")
