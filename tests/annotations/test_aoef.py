"""AOEF (soundevent) JSON: annotation and prediction sets round trip; geometries; bad references."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given

from annotations.helpers import ROUND_TRIP, assert_same_events, event_tables
from biomae.annotations import aoef, read_annotations, write_annotations
from biomae.annotations.schema import EventTableError, make_events


def _expected(events):
    return events.assign(source=events["source"].where(events["source"] != "", "aoef"))


@ROUND_TRIP
@given(events=event_tables(max_rows=6, recordings=2))
def test_round_trip_annotation_set(tmp_path, events):
    path = tmp_path / "set.aoef.json"
    write_annotations(events, path, "aoef", sample_rate=48000)
    back = read_annotations(path, "aoef")
    assert_same_events(back, _expected(events))


def test_prediction_set_round_trip_and_structure(tmp_path):
    events = make_events(
        [
            {"start_s": 0.5, "end_s": 1.0, "low_hz": 2e3, "high_hz": 4e3, "label": "EATO"},
            {"start_s": 2.0, "end_s": 2.5, "label": "noise", "taxon": "Pipilo erythrophthalmus"},
        ],
        recording="site/a.wav",
        score=[0.9, 0.25],
        channel=[1, 2],
    )
    path = tmp_path / "pred.aoef.json"
    aoef.write(
        events,
        path,
        sample_rate={"site/a.wav": 22050},
        duration_s=10.0,
        collection="prediction_set",
    )
    document = json.loads(path.read_text())
    data = document["data"]
    assert document["version"] == "1.1.0" and data["collection_type"] == "prediction_set"
    assert data["recordings"][0] | {"uuid": None} == {
        "uuid": None,
        "path": "site/a.wav",
        "duration": 10.0,
        "channels": 2,
        "samplerate": 22050,
        "owners": [],
    }
    geometry = [e["geometry"] for e in data["sound_events"]]
    assert geometry == [
        {"type": "BoundingBox", "coordinates": [0.5, 2000.0, 1.0, 4000.0]},
        {"type": "TimeInterval", "coordinates": [2.0, 2.5]},
    ]
    assert [p["score"] for p in data["sound_event_predictions"]] == [0.9, 0.25]
    assert len(data["clip_predictions"][0]["sound_events"]) == 2
    assert_same_events(aoef.read(path), events.assign(source="aoef"))
    with pytest.raises(ValueError, match="ends after its duration 2.0 s"):
        aoef.write(events, path, sample_rate=22050, duration_s=2.0)
    with pytest.raises(ValueError, match="needs a score"):
        aoef.write(events.assign(score=math.nan), path, sample_rate=1, collection="prediction_set")


def test_other_geometries_and_label_keys(tmp_path):
    geometries = [
        {"type": "TimeStamp", "coordinates": 0.25},
        {"type": "LineString", "coordinates": [[0.1, 40e3], [0.2, 20e3]]},
        {"type": "Polygon", "coordinates": [[[0.3, 5], [0.4, 9], [0.35, 7]]]},
    ]
    recording = {"uuid": "r", "path": "bat.wav", "duration": 1, "channels": 1, "samplerate": 1}
    data = {
        "uuid": "s",
        "collection_type": "annotation_set",
        "tags": [
            {"id": 0, "key": "species", "value": "Myotis"},
            {"id": 1, "key": "x", "value": "y"},
        ],
        "recordings": [recording],
        "sound_events": [
            {"uuid": f"e{i}", "recording": "r", "geometry": g} for i, g in enumerate(geometries)
        ],
        "sound_event_annotations": [
            {"uuid": f"a{i}", "sound_event": f"e{i}", "tags": tags}
            for i, tags in enumerate([[0], [0, 1], [1]])
        ],
    }
    document = {"version": "1.1.0", "data": data}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(document))
    events = aoef.read(path)
    assert list(events["label"]) == ["Myotis", "Myotis", ""]
    assert list(events["start_s"]) == [0.25, 0.1, 0.3] and list(events["end_s"]) == [0.25, 0.2, 0.4]
    assert events["low_hz"].tolist()[1:] == [20e3, 5.0] and math.isnan(events["low_hz"][0])
    assert list(aoef.read(path, label_key="x")["label"]) == ["", "y", "y"]
    document["data"]["sound_event_annotations"][2]["sound_event"] = "missing"
    path.write_text(json.dumps(document))
    with pytest.raises(
        EventTableError, match=r"sound_event_annotations\[2\]: refers to an unknown"
    ):
        aoef.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(aoef.read(path, lenient=True)) == 2


def test_reads_a_file_saved_by_soundevent():
    # data/soundevent_annotation_set.json: our writer's output for these two events, loaded and
    # saved again by soundevent 2.10.0 (soundevent.io.load / io.save); soundevent also loads both
    # our annotation and prediction sets (checked when the writer was made; not a dependency).
    path = Path(__file__).parent / "data" / "soundevent_annotation_set.json"
    events = aoef.read(path)
    assert list(events["recording"]) == ["a.wav", "b.wav"]
    assert list(events["label"]) == ["EATO", "noise"] and list(events["score"]) == [0.9, 0.3]
    assert events["low_hz"][0] == 2000.0 and math.isnan(events["low_hz"][1])
    assert list(events["channel"]) == [1, 2] and list(events["taxon"]) == ["", "Pipilo"]
