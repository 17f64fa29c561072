"""WhisperSeg JSON: ``{"onset": [s...], "offset": [s...], "cluster": [label...]}`` per recording.

WhisperSeg's files may carry more keys (``species``, ``sr``, ``min_frequency``, segmentation
settings): ``species`` and ``sr`` are kept in the extra columns ``species`` and ``sample_rate``,
the rest is ignored. Labels (``cluster``) are turned into strings; a file without ``cluster`` gives
empty labels. ``recording`` defaults to the file name without ``.json``. Rows are named
``segment N`` (1-based) in messages. The writer stores ``onset``/``offset``/``cluster`` (and
``species``/``sr`` when given), floats exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import finish_events, parse_float, read_text
from biomae.annotations.schema import EventTableError, validate_events
from biomae.atomic_io import atomic_write_text

SUFFIX = ".json"
WRITE_OPTIONS = ("sample_rate",)  # header facts annotate passes to write()


def read(path: str | Path, *, recording: str | None = None, lenient: bool = False) -> pd.DataFrame:
    """Read a WhisperSeg JSON into an event table (``source="whisperseg"``).

    Raises:
        EventTableError: not JSON, no onset/offset lists, or lists of different lengths; (strict)
            a bad segment.
    """
    path = Path(path)
    where = str(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise EventTableError(f"{where}: not valid JSON: {error}") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("onset", "offset")
    ):
        raise EventTableError(f"{where}: expected an object with 'onset' and 'offset' lists")
    onsets, offsets = data["onset"], data["offset"]
    clusters = data.get("cluster", [""] * len(onsets))
    if not (len(onsets) == len(offsets) == len(clusters)):
        raise EventTableError(
            f"{where}: {len(onsets)} onsets, {len(offsets)} offsets, {len(clusters)} clusters; "
            "they must match"
        )
    rows, problems = [], {}
    for i, (onset, offset, cluster) in enumerate(zip(onsets, offsets, clusters, strict=True)):
        row = {"label": "" if cluster is None else str(cluster)}
        try:
            row["start_s"], row["end_s"] = (
                parse_float(onset, "onset"),
                parse_float(offset, "offset"),
            )
        except (ValueError, TypeError) as error:
            row["start_s"] = row["end_s"] = math.nan
            problems[i] = str(error)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["start_s", "end_s", "label"])
    if "species" in data:
        table["species"] = str(data["species"])
    if "sr" in data:
        table["sample_rate"] = int(data["sr"])
    return finish_events(
        table,
        lines=[f"segment {i + 1}" for i in range(len(table))],
        where=where,
        lenient=lenient,
        problems=problems,
        constant_columns={
            "recording": path.name.removesuffix(".json") if recording is None else recording,
            "source": "whisperseg",
        },
    )


def write(
    events: pd.DataFrame,
    path: str | Path,
    *,
    species: str | None = None,
    sample_rate: int | None = None,
) -> None:
    """Write one recording's events as WhisperSeg JSON, atomically.

    Raises:
        EventTableError: the table breaks the schema.
        ValueError: several recordings in the table.
    """
    where = str(path)
    validate_events(events, where=where)
    if events["recording"].nunique() > 1:
        raise ValueError(f"{where}: several recordings; write one WhisperSeg JSON per recording")
    data: dict = {
        "onset": [float(x) for x in events["start_s"]],
        "offset": [float(x) for x in events["end_s"]],
        "cluster": [str(x) for x in events["label"]],
    }
    if species is not None:
        data["species"] = species
    if sample_rate is not None:
        data["sr"] = int(sample_rate)
    atomic_write_text(path, json.dumps(data, ensure_ascii=False) + "\n")
