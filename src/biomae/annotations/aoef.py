"""soundevent's AOEF JSON (Acoustic Objects Exchange Format, version 1.1.0), without soundevent.

An AOEF file is ``{"version", "created_on", "data": {collection}}``; the collection lists
``recordings`` (uuid, path, duration, channels, samplerate), ``clips`` (uuid, recording,
start_time, end_time), ``tags`` (id, key, value), ``sound_events`` (uuid, recording, geometry,
features) and either ``sound_event_annotations`` (uuid, sound_event, tags: [tag id]) with
``clip_annotations`` (annotation_set, evaluation_set, ...) or ``sound_event_predictions`` (uuid,
sound_event, score, tags: [[tag id, score]]) with ``clip_predictions`` (prediction_set, model_run).

Mapping to the event table:
- recording = the recording's ``path``; times and box from the geometry: ``TimeInterval``
  [start, end] (no box), ``BoundingBox`` [start, low, end, high]; ``TimeStamp`` / ``Point`` give a
  zero-length event; lines, polygons and multi-geometries give their bounding box.
- label = the value of the tag with key ``label_key`` (default: the first present of "label",
  "species", "class", "event"; for predictions the best-scoring such tag); tags ``taxon``,
  ``individual``, ``call_type``, ``source`` fill those columns.
- source: the ``source`` tag, else "aoef".
- score: a prediction's ``score``; for annotations the sound event's feature ``score`` if present.
  A channel other than 1 is kept as the feature ``channel`` (AOEF has no per-event channel).

The writer makes an ``annotation_set`` (default) or a ``prediction_set`` (needs every score), one
clip per recording spanning the recording. AOEF recordings need a sample rate and duration:
``sample_rate`` is required (an int, or recording -> int); ``duration_s`` (or per recording
``durations_s``) defaults to the last event's end in each recording. Rows are named
``sound_event_annotations[i]`` in messages.
"""

from __future__ import annotations

import datetime
import json
import math
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pandas as pd

from biomae.annotations.format_helpers import finish_events, read_text
from biomae.annotations.schema import EventTableError, validate_events
from biomae.atomic_io import atomic_write_text

SUFFIX = ".aoef.json"
OUTPUT_SUFFIX = SUFFIX  # ending of `biomae annotate`'s per-recording table
WRITE_OPTIONS = ("sample_rate", "duration_s")  # header facts annotate passes to write()
AOEF_VERSION = "1.1.0"
LABEL_KEYS = ("label", "species", "class", "event")
META_KEYS = ("taxon", "individual", "call_type", "source")


def _extent(geometry: Mapping) -> tuple[float, float, float, float]:
    """(start_s, end_s, low_hz, high_hz) of a soundevent geometry; NaN box for time-only ones."""
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "TimeInterval":
        return float(coords[0]), float(coords[1]), math.nan, math.nan
    if kind == "TimeStamp":
        return float(coords), float(coords), math.nan, math.nan
    if kind == "BoundingBox":
        return float(coords[0]), float(coords[2]), float(coords[1]), float(coords[3])
    points: list = []
    stack = [coords]
    while stack:  # flatten nested coordinate lists down to [time, frequency] pairs
        item = stack.pop()
        if isinstance(item, list) and len(item) == 2 and not isinstance(item[0], list):
            points.append(item)
        elif isinstance(item, list):
            stack.extend(item)
        else:
            raise ValueError(f"unsupported geometry {kind!r}")
    if not points:
        raise ValueError(f"geometry {kind!r} has no coordinates")
    times, freqs = [float(p[0]) for p in points], [float(p[1]) for p in points]
    return min(times), max(times), min(freqs), max(freqs)


def read(path: str | Path, *, label_key: str | None = None, lenient: bool = False) -> pd.DataFrame:
    """Read the sound-event annotations or predictions of an AOEF file (``source="aoef"``).

    Args:
        path: the AOEF ``.json`` file.
        label_key: the tag key whose value is the label (default: see the module docstring).
        lenient: skip bad sound events (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: not JSON, no collection, a dangling reference or (strict) a bad event.
    """
    where = str(path)
    try:
        document = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise EventTableError(f"{where}: not valid JSON: {error}") from None
    data = document.get("data", document) if isinstance(document, dict) else None
    if not isinstance(data, dict) or "collection_type" not in data:
        raise EventTableError(f"{where}: not an AOEF file (no data.collection_type)")
    tags = {t["id"]: (t["key"], t["value"]) for t in data.get("tags") or []}
    recordings = {r["uuid"]: str(r["path"]) for r in data.get("recordings") or []}
    sound_events = {s["uuid"]: s for s in data.get("sound_events") or []}
    kind = "sound_event_predictions" if "sound_event_predictions" in data else None
    kind = kind or "sound_event_annotations"
    rows, places, problems = [], [], {}
    for i, item in enumerate(data.get(kind) or []):
        places.append(f"{kind}[{i}]")
        row = {"start_s": math.nan, "end_s": math.nan}
        rows.append(row)
        try:
            event = sound_events[item["sound_event"]]
            row["recording"] = recordings[event["recording"]]
            geometry = event.get("geometry")
            if not geometry:
                raise ValueError("sound event has no geometry")
            row["start_s"], row["end_s"], row["low_hz"], row["high_hz"] = _extent(geometry)
            scored = [(t, 1.0) for t in item.get("tags") or []]
            if kind == "sound_event_predictions":
                scored = [(t[0], float(t[1])) for t in item.get("tags") or []]
                row["score"] = float(item["score"])
            features = event.get("features") or {}
            if "score" in features and "score" not in row:
                row["score"] = float(features["score"])
            row["channel"] = int(features.get("channel", 1))
            _apply_tags(row, [(tags[t], s) for t, s in scored], label_key)
            row.setdefault("source", "aoef")
        except KeyError as error:
            problems[i] = f"refers to an unknown id {error}"
        except (ValueError, TypeError, IndexError) as error:
            problems[i] = str(error)
    return finish_events(
        pd.DataFrame(rows),
        lines=places,
        where=where,
        lenient=lenient,
        problems=problems,
    )


def _apply_tags(
    row: dict, tags: list[tuple[tuple[str, str], float]], label_key: str | None
) -> None:
    """Set label (best-scoring tag of the label key) and metadata columns from (key, value) tags."""
    keys = {key for (key, _), _ in tags}
    key = label_key or next((k for k in LABEL_KEYS if k in keys), None)
    labels = [(score, value) for (k, value), score in tags if k == key]
    row["label"] = max(labels, key=lambda x: x[0])[1] if labels else ""
    for (k, value), _ in tags:
        if k in META_KEYS and k != key:
            row[k] = value


def write(
    events: pd.DataFrame,
    path: str | Path,
    *,
    sample_rate: int | Mapping[str, int],
    duration_s: float | None = None,
    durations_s: Mapping[str, float] | None = None,
    label_key: str = "label",
    collection: Literal["annotation_set", "prediction_set"] = "annotation_set",
) -> None:
    """Write an event table as an AOEF annotation set (or prediction set), atomically.

    Args:
        events: a valid event table.
        path: the output ``.json``.
        sample_rate: samples per second of every recording (or recording -> rate).
        duration_s: duration (s) of every recording (usually the one recording of the table).
        durations_s: recording -> duration (s); default ``duration_s``, else its last event's end.
        label_key: the tag key that holds the label.
        collection: ``"annotation_set"`` or ``"prediction_set"`` (every score must be set).

    Raises:
        EventTableError: the table breaks the schema (or a box above a recording's Nyquist).
        ValueError: a missing sample rate or duration, or a NaN score in a prediction set.
    """
    where = str(path)
    validate_events(events, where=where)
    if collection not in ("annotation_set", "prediction_set"):
        raise ValueError(f"{where}: collection must be annotation_set or prediction_set")
    predictions = collection == "prediction_set"
    if predictions and events["score"].isna().any():
        row = int(events["score"].isna().to_numpy().argmax())
        raise ValueError(f"{where}: row {row}: a prediction_set needs a score on every event")
    now = datetime.datetime.now().isoformat()
    tag_ids: dict[tuple[str, str], int] = {}
    recordings, clips, sound_events, annotations = [], [], [], []
    ids: dict[str, tuple[str, list]] = {}  # recording -> (recording uuid, clip members)
    for name, group in events.groupby("recording", sort=False):
        rate = sample_rate.get(name) if isinstance(sample_rate, Mapping) else sample_rate
        if not rate:
            raise ValueError(f"{where}: no sample_rate for recording {name!r}")
        validate_events(group, sample_rate=int(rate), where=f"{where} ({name})")
        duration = (durations_s or {}).get(name, duration_s)
        duration = float(group["end_s"].max()) if duration is None else float(duration)
        if duration < float(group["end_s"].max()):
            raise ValueError(f"{where}: an event of {name!r} ends after its duration {duration} s")
        recording_id, clip_id = str(uuid.uuid4()), str(uuid.uuid4())
        recordings.append(
            {"uuid": recording_id, "path": name, "duration": float(duration)}
            | {"channels": int(group["channel"].max()), "samplerate": int(rate), "owners": []}
        )
        clips.append(
            {"uuid": clip_id, "recording": recording_id, "start_time": 0.0}
            | {"end_time": float(duration)}
        )
        ids[name] = (recording_id, [])
    for row in events.itertuples(index=False):  # in table order, so reading restores it
        recording_id, members = ids[row.recording]
        event_id, item_id = str(uuid.uuid4()), str(uuid.uuid4())
        if math.isnan(row.low_hz):
            geometry = {"type": "TimeInterval", "coordinates": [row.start_s, row.end_s]}
        else:
            box = [row.start_s, row.low_hz, row.end_s, row.high_hz]
            geometry = {"type": "BoundingBox", "coordinates": box}
        features = {"channel": float(row.channel)} if row.channel != 1 else {}
        if not predictions and not math.isnan(row.score):
            features["score"] = float(row.score)
        sound_events.append(
            {"uuid": event_id, "recording": recording_id, "geometry": geometry}
            | ({"features": features} if features else {})
        )
        pairs = [(label_key, row.label)] if row.label else []
        pairs += [(k, getattr(row, k)) for k in META_KEYS if getattr(row, k)]
        tags = [tag_ids.setdefault(pair, len(tag_ids)) for pair in pairs]
        item = {"uuid": item_id, "sound_event": event_id}
        if predictions:
            item |= {"score": float(row.score), "tags": [[t, float(row.score)] for t in tags]}
        else:
            item |= {"tags": tags, "created_on": now}
        annotations.append(item)
        members.append(item_id)
    clip_items = [
        {"uuid": str(uuid.uuid4()), "clip": clip["uuid"], "sound_events": members}
        for clip, (_, members) in zip(clips, ids.values(), strict=True)
    ]
    kind = "sound_event_predictions" if predictions else "sound_event_annotations"
    data = {"uuid": str(uuid.uuid4()), "collection_type": collection, "created_on": now}
    data |= {"tags": [{"id": i, "key": k, "value": v} for (k, v), i in tag_ids.items()]}
    data |= {"recordings": recordings, "clips": clips, "sound_events": sound_events}
    data |= {kind: annotations}
    data |= {"clip_predictions" if predictions else "clip_annotations": clip_items}
    document = {"version": AOEF_VERSION, "created_on": now, "data": data}
    atomic_write_text(path, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
