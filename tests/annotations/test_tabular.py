"""Canonical CSV (round trip) and simple CSVs with other column names and time units."""

from __future__ import annotations

import pytest
from hypothesis import given

from annotations.helpers import ROUND_TRIP, assert_same_events, event_tables
from biomae.annotations import read_annotations, tabular, write_annotations
from biomae.annotations.schema import EventTableError, make_events

EXAMPLES = "formats/crowsetta/src/crowsetta/examples"


@ROUND_TRIP
@given(events=event_tables(max_rows=8, recordings=3))
def test_round_trip(tmp_path, events):
    path = tmp_path / "events.csv"
    write_annotations(events, path, "csv")
    assert_same_events(read_annotations(path, "csv"), events)


def test_labels_with_commas_quotes_and_newlines_round_trip(tmp_path):
    events = make_events(
        [{"start_s": 0.1, "end_s": 0.2, "label": 'a, "b"\nc', "taxon": " Parus major "}]
    )
    events["note"] = ["x"]
    path = tmp_path / "q.csv"
    tabular.write(events, path)
    back = tabular.read(path)
    assert_same_events(back, events)
    assert list(back["note"]) == ["x"]  # extra columns come back (as strings)


def test_simple_csv_with_column_map_and_units(tmp_path):
    path = tmp_path / "simple.csv"
    path.write_text("onset,offset,name,file\n1000,1500,a,x.wav\n\n3200,4000,b,y.wav\n", "utf-8")
    mapping = {"start_s": "onset", "end_s": "offset", "label": "name", "recording": "file"}
    ms = tabular.read(path, columns=mapping, time_unit="ms")
    assert list(ms["start_s"]) == [1.0, 3.2] and list(ms["end_s"]) == [1.5, 4.0]
    assert list(ms["label"]) == ["a", "b"] and list(ms["recording"]) == ["x.wav", "y.wav"]
    samples = tabular.read(path, columns=mapping, time_unit="samples", sample_rate=1000)
    assert list(samples["start_s"]) == [1.0, 3.2]
    with pytest.raises(ValueError, match="needs sample_rate"):
        tabular.read(path, time_unit="samples")
    with pytest.raises(EventTableError, match="not in the header"):
        tabular.read(path, columns={"start_s": "begin"})


def test_aliases_and_unmappable_header(tmp_path):
    path = tmp_path / "das.csv"
    path.write_text(",name,start_seconds,stop_seconds\n0,e,1.5,2.0\n", "utf-8")
    events = tabular.read(path, recording="bird.wav")
    assert list(events["label"]) == ["e"] and list(events["recording"]) == ["bird.wav"]
    assert "" not in events.columns  # the pandas index column is dropped
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", "utf-8")
    with pytest.raises(EventTableError, match="no start_s column"):
        tabular.read(bad)


def test_malformed_rows_name_the_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('start_s,end_s,label\n0,1,"two\nlines"\nzero,1,x\n2,1,y\n5,6,z\n', "utf-8")
    with pytest.raises(EventTableError, match=r"m\.csv:4: start_s is not a number: 'zero'"):
        tabular.read(path)
    with pytest.warns(UserWarning, match="skipped 2"):
        events = tabular.read(path, lenient=True)
    assert list(events["label"]) == ["two\nlines", "z"]
    assert events.attrs["skipped"][1].startswith(f"{path}:5: end_s is before start_s")


def test_real_simple_csvs(shared_data):
    bird1 = tabular.read(shared_data / EXAMPLES / "bird1.csv")
    assert len(bird1) == 151 and bird1["recording"][0].startswith("lbr3009_0005")
    assert bird1["start_s"][0] == pytest.approx(0.0029761904761904)
    deer_mouse = next((shared_data / EXAMPLES).glob("GO_24860*.csv"))
    mouse = tabular.read(deer_mouse)
    assert len(mouse) == 1562 and (mouse["end_s"] > mouse["start_s"]).all()
    assert mouse["duration"].astype(float).to_numpy() == pytest.approx(
        (mouse["end_s"] - mouse["start_s"]).to_numpy(), abs=1e-9
    )
    das = tabular.read(
        shared_data / EXAMPLES / "bl26lb16_190412_0721.20144_annotations.csv",
        columns={"start_s": "start_seconds", "end_s": "stop_seconds", "label": "name"},
    )
    assert len(das) == 79 and das["start_s"][0] == 23331.875 and das["label"][0] == "e"
    every = sorted((shared_data / "formats").rglob("*.csv"))
    assert len(every) >= 30
    assert all(len(tabular.read(p)) > 0 for p in every)
