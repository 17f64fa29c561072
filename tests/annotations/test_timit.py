"""TIMIT .phn / .wrd: sample offsets at 16 kHz; round trip on the sample grid; the real sa1.phn."""

from __future__ import annotations

import pytest

from annotations.helpers import assert_same_events
from biomae.annotations import read_annotations, timit, write_annotations
from biomae.annotations.schema import EventTableError, make_events


def test_read_and_round_trip(tmp_path):
    path = tmp_path / "sa1.wrd"
    path.write_text("3050 5723 she\n5723 10337 had\n\n10337 11517 your dark\n", "utf-8")
    events = read_annotations(path, "timit")
    assert list(events["label"]) == ["she", "had", "your dark"]
    assert list(events["start_s"]) == [3050 / 16000, 5723 / 16000, 10337 / 16000]
    assert set(events["recording"]) == {"sa1.wav"} and set(events["source"]) == {"timit"}
    out = tmp_path / "out.phn"
    write_annotations(events, out, "timit")
    assert out.read_text().splitlines()[0] == "3050 5723 she"
    assert_same_events(timit.read(out, recording="sa1.wav"), events)


def test_bad_lines(tmp_path):
    path = tmp_path / "x.phn"
    path.write_text("0 10 h#\n10 2.5 sh\n20\n", "utf-8")
    with pytest.raises(EventTableError, match=r"x\.phn:2: invalid literal"):
        timit.read(path)
    with pytest.warns(UserWarning, match="skipped 2"):
        events = timit.read(path, lenient=True)
    assert list(events["label"]) == ["h#"]
    assert events.attrs["skipped"][1] == f"{path}:3: expected 'start end label', got '20'"
    with pytest.raises(ValueError, match="several recordings"):
        timit.write(make_events([{"start_s": 0, "end_s": 1, "recording": r} for r in "ab"]), path)


def test_real_sa1(shared_data):
    events = timit.read(shared_data / "formats/crowsetta/src/crowsetta/examples/sa1.phn")
    assert events["label"].iloc[0] == "h#" and events["end_s"].iloc[0] == 7812 / 16000
    assert (events["start_s"].to_numpy()[1:] == events["end_s"].to_numpy()[:-1]).all()
