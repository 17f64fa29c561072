"""DCASE few-shot CSVs: POS / UNK / NEG semantics, validation "Q" files, round trip."""

from __future__ import annotations

import pytest

from annotations.helpers import assert_same_events
from biomae.annotations import dcase, read_annotations, write_annotations
from biomae.annotations.schema import EventTableError, make_events

TRAIN = """Audiofilename,Starttime,Endtime,CLASS_1,CLASS_2
a.wav,1.0,1.5,POS,NEG
a.wav,2.0,2.25,NEG,UNK
a.wav,3.0,3.5,POS,POS
b.wav,0.5,0.75,NEG,NEG
"""


def test_training_file_pos_unk_neg(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(TRAIN, "utf-8")
    events = dcase.read(path)
    assert list(events["label"]) == ["CLASS_1", "CLASS_2", "CLASS_1", "CLASS_2"]
    assert list(events["dcase_status"]) == ["POS", "UNK", "POS", "POS"]
    assert list(events["start_s"]) == [1.0, 2.0, 3.0, 3.0]
    assert events["score"].isna().all() and set(events["source"]) == {"dcase"}
    assert "b.wav" not in set(events["recording"])  # NEG everywhere: no event


def test_validation_q_column_and_prediction_layout(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("Audiofilename,Starttime,Endtime,Q\nx.wav,0.1,0.2,POS\nx.wav,1,2,UNK\n")
    events = dcase.read(path)
    assert list(events["label"]) == ["Q", "Q"] and list(events["dcase_status"]) == ["POS", "UNK"]
    path.write_text("Audiofilename,Starttime,Endtime\nx.wav,0.1,0.2\n")
    assert list(dcase.read(path)["label"]) == [""]


def test_bad_rows(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Audiofilename,Starttime,Endtime,Q\nx.wav,0.1,0.2,MAYBE\nx.wav,a,2,POS\n")
    with pytest.raises(EventTableError, match=r"bad\.csv:2: Q is 'MAYBE', not POS/NEG/UNK"):
        dcase.read(path)
    with pytest.warns(UserWarning, match="skipped 2"):
        events = dcase.read(path, lenient=True)
    assert len(events) == 0 and events.attrs["skipped"][1].endswith(
        "Starttime is not a number: 'a'"
    )
    path.write_text("file,start,end\n")
    with pytest.raises(EventTableError, match="header must start with"):
        dcase.read(path)


def test_round_trip(tmp_path):
    events = make_events(
        {
            "recording": ["a.wav", "a.wav", "b.wav"],
            "start_s": [0.1, 0.5, 1.0 / 3],
            "end_s": [0.2, 0.75, 0.5],
            "label": ["dog", "cat", "dog"],
            "dcase_status": ["POS", "UNK", "POS"],
        },
        source="dcase",
    )
    path = tmp_path / "rt.csv"
    write_annotations(events, path, "dcase")
    assert path.read_text().splitlines()[:2] == [
        "Audiofilename,Starttime,Endtime,dog,cat",
        "a.wav,0.1,0.2,POS,NEG",
    ]
    back = read_annotations(path, "dcase")
    assert_same_events(back, events)
    assert list(back["dcase_status"]) == ["POS", "UNK", "POS"]
    with pytest.warns(UserWarning, match="'' -> 'unlabelled', 'Starttime' -> 'Starttime_'"):
        dcase.write(events.assign(label=["", "Starttime", "y"]), path)
    assert list(read_annotations(path, "dcase")["label"]) == ["unlabelled", "Starttime_", "y"]
