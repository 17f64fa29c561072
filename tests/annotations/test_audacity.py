"""Audacity label tracks: fixtures with spectral lines, real tracks, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given

from annotations.helpers import ROUND_TRIP, assert_same_events, event_tables
from biomae.annotations import audacity, read_annotations, write_annotations
from biomae.annotations.schema import EventTableError, make_events

GIRAUDON = "formats/crowsetta/tests/data_for_tests/aud-seq/giraudon-et-al-2022/audacity-annotations"


def test_read_labels_with_and_without_spectral_lines(tmp_path):
    path = tmp_path / "song.labels.txt"
    path.write_text(
        "0.5\t1.25\tA note\n\\\t1000\t4000.5\n2\t3\tB\n3.5\t3.5\tpoint\n\\\t-1\t-1\n", "utf-8"
    )
    events = audacity.read(path)
    assert list(events["label"]) == ["A note", "B", "point"]
    assert list(events["start_s"]) == [0.5, 2.0, 3.5]
    assert events["low_hz"][0] == 1000.0 and events["high_hz"][0] == 4000.5
    assert events["low_hz"][1:].isna().all() and events["high_hz"][1:].isna().all()
    assert set(events["recording"]) == {"song"} and set(events["source"]) == {"audacity"}


def test_malformed_lines_raise_or_are_skipped(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("\\\t1\t2\n0\t1\tok\nx\t2\tbad\n3\t4\thalf\n\\\t-1\t800\n", "utf-8")
    with pytest.raises(EventTableError, match=r"bad\.txt:1: spectral line without a label"):
        audacity.read(path)
    with pytest.warns(UserWarning, match="skipped 3"):
        events = audacity.read(path, lenient=True)
    assert list(events["label"]) == ["ok"]
    assert [s.split(":")[1] for s in events.attrs["skipped"]] == ["1", "3", "4"]
    assert "start time is not a number: 'x'" in events.attrs["skipped"][1]
    assert "only one of low/high" in events.attrs["skipped"][2]


@ROUND_TRIP
@given(events=event_tables(max_rows=8, scores=False))
def test_round_trip(tmp_path, events):
    events = events.assign(recording="r", channel=1, taxon="", individual="", call_type="")
    path = tmp_path / "r.labels.txt"
    write_annotations(events, path, "audacity")
    back = read_annotations(path, "audacity")
    assert_same_events(back, events.assign(source="audacity"))


def test_writer_refuses_several_recordings_and_escapes_tabs(tmp_path):
    two = make_events([{"start_s": 0, "end_s": 1, "recording": r} for r in ("a", "b")])
    with pytest.raises(ValueError, match="one file per recording"):
        audacity.write(two, tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()
    tab = make_events([{"start_s": 0, "end_s": 1, "label": "a\tb"}])
    with pytest.warns(UserWarning, match=r"row 0: label 'a\\tb' -> 'a\\\\tb'"):
        audacity.write(tab, tmp_path / "x.txt")
    assert list(audacity.read(tmp_path / "x.txt")["label"]) == ["a\\tb"]


def test_real_box_track(shared_data):
    path = (
        shared_data
        / "formats/crowsetta/tests/data_for_tests/aud-bbox/cold_forest_daylight_label.txt"
    )
    events = audacity.read(path)
    assert len(events) == 160 and events["low_hz"].notna().all()
    assert events.loc[0, ["start_s", "end_s", "low_hz", "high_hz"]].tolist() == pytest.approx(
        [0.594519, 1.053147, 3324.873047, 5152.28418]
    )
    assert events["label"][0] == "1"


def test_real_giraudon_tracks(shared_data):
    paths = sorted((shared_data / GIRAUDON).glob("*.txt"))
    assert len(paths) == 459
    for path in paths[::20]:  # a sample; test_all_giraudon_tracks_parse reads them all
        events = audacity.read(path)
        assert len(events) > 0 and events["low_hz"].isna().all()
        assert (events["end_s"] >= events["start_s"]).all() and (events["label"] != "").all()
    first = audacity.read(paths[0])
    assert first.loc[0, ["start_s", "end_s", "label"]].tolist() == [0.0, 0.35, "SIL"]


@pytest.mark.slow
def test_all_giraudon_tracks_parse(shared_data):
    total = sum(len(audacity.read(p)) for p in sorted((shared_data / GIRAUDON).glob("*.txt")))
    assert total == 23308  # every line of every track is a label
