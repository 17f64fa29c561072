"""WhisperSeg JSON: round trip, bad files, and the real files (read in place, research use only)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given

from annotations.helpers import ROUND_TRIP, assert_same_events, event_tables
from biomae.annotations import read_annotations, whisperseg, write_annotations
from biomae.annotations.schema import EventTableError


@ROUND_TRIP
@given(events=event_tables(max_rows=6, boxes=False, scores=False))
def test_round_trip(tmp_path, events):
    events = events.assign(recording="r", channel=1, taxon="", individual="", call_type="")
    path = tmp_path / "r.json"
    write_annotations(events, path, "whisperseg", species="zebra_finch", sample_rate=32000)
    back = read_annotations(path, "whisperseg")
    assert_same_events(back, events.assign(source="whisperseg"))
    assert set(back["species"]) <= {"zebra_finch"} and set(back["sample_rate"]) <= {32000}


def test_integer_clusters_and_errors(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"onset": [0.5, 2], "offset": [1, 1], "cluster": [3, 4]}))
    with pytest.raises(EventTableError, match=r"a\.json:segment 2: end_s is before start_s"):
        whisperseg.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        events = whisperseg.read(path, lenient=True)
    assert list(events["label"]) == ["3"] and list(events["recording"]) == ["a"]
    path.write_text(json.dumps({"onset": [0.5], "offset": [1, 2]}))
    with pytest.raises(EventTableError, match="1 onsets, 2 offsets"):
        whisperseg.read(path)
    path.write_text("{")
    with pytest.raises(EventTableError, match="not valid JSON"):
        whisperseg.read(path)


def test_real_files_match_the_index(shared_data):
    paths = sorted((shared_data / "audio/whisperseg").rglob("*.json"))
    events = pd.concat([whisperseg.read(p) for p in paths], ignore_index=True)
    index = pd.read_csv(shared_data / "index/events.csv")
    assert len(paths) == 40 and len(events) == (index["source"] == "whisperseg").sum() == 791
    assert set(events["species"]) == {"zebra_finch", "bengalese_finch"}
    assert (events["end_s"] > events["start_s"]).all()
