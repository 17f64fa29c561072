"""Audacity label tracks (``*.txt``): one ``start<TAB>end<TAB>label`` line per label, times in s.

A label with a frequency selection is followed by a *spectral line* ``\\<TAB>low<TAB>high`` (Hz);
``-1`` or an empty cell means "undefined" (Audacity's convention), so a spectral line with both
undefined, or none at all, gives a label without a frequency box (NaN). A spectral line with only
one of the two defined is a malformed row (the schema needs both or neither).

Audacity has no score, channel or metadata: they read back as defaults. The label is the rest of the
line after the second tab (it may hold spaces). ``recording`` defaults to the file name without
``.txt`` and a ``.labels`` / ``.audacity`` tail (option ``recording``). Crowsetta's ``aud-seq`` and
``aud-bbox`` readers would also work, but they reject a mix of box and non-box labels.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import (
    finish_events,
    format_float,
    parse_float,
    read_text,
    sanitise_strings,
)
from biomae.annotations.schema import validate_events
from biomae.atomic_io import atomic_open

SUFFIX = ".labels.txt"
OUTPUT_SUFFIX = ".audacity.txt"  # ending of `biomae annotate`'s per-recording table


def default_recording(path: Path) -> str:
    """``a.labels.txt`` / ``a.audacity.txt`` / ``a.txt`` -> ``a``."""
    name = path.name.removesuffix(".txt")
    for tail in (".labels", ".audacity"):
        name = name.removesuffix(tail)
    return name


def read(
    path: str | Path,
    *,
    recording: str | None = None,
    sample_rate: int | None = None,
    lenient: bool = False,
) -> pd.DataFrame:
    """Read an Audacity label track into an event table (``source="audacity"``).

    Args:
        path: the label ``.txt`` file.
        recording: recording name (default: from the file name, see the module docstring).
        sample_rate: when given, frequencies above Nyquist are errors.
        lenient: skip malformed lines (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: a malformed line, naming file and line.
    """
    path = Path(path)
    rows: list[dict] = []
    lines: list[int] = []
    problems: dict[int, str] = {}
    orphans: list[tuple[int, str]] = []  # spectral lines with no label line before them
    for number, text in enumerate(read_text(path).split("\n"), start=1):
        text = text.rstrip("\r")
        if not text.strip():
            continue
        fields = text.split("\t")
        if fields[0].strip() == "\\":
            if not rows or "low_hz" in rows[-1]:
                orphans.append((number, "spectral line without a label line before it"))
                continue
            try:
                low, high = (_frequency(f) for f in (fields + ["", ""])[1:3])
            except ValueError as error:
                problems[len(rows) - 1] = f"spectral line {number}: {error}"
                low = high = math.nan
            if math.isnan(low) != math.isnan(high):
                problems[len(rows) - 1] = (
                    f"spectral line {number}: only one of low/high frequency is set"
                )
            rows[-1]["low_hz"], rows[-1]["high_hz"] = low, high
            continue
        row = {"label": "\t".join(fields[2:])}
        try:
            row["start_s"] = parse_float(fields[0], "start time")
            row["end_s"] = parse_float(fields[1] if len(fields) > 1 else fields[0], "end time")
        except ValueError as error:
            row["start_s"] = row["end_s"] = math.nan
            problems[len(rows)] = str(error)
        rows.append(row)
        lines.append(number)
    table = pd.DataFrame(rows, columns=["start_s", "end_s", "low_hz", "high_hz", "label"])
    return finish_events(
        table,
        lines=lines,
        where=str(path),
        lenient=lenient,
        problems=problems,
        sample_rate=sample_rate,
        constant_columns={
            "recording": default_recording(path) if recording is None else recording,
            "source": "audacity",
        },
        unparsed=orphans,
    )


def _frequency(text: str) -> float:
    value = parse_float(text, "frequency")
    return math.nan if value == -1 else value


def write(events: pd.DataFrame, path: str | Path) -> None:
    """Write an event table as an Audacity label track, atomically.

    Events with a frequency box get a spectral line. Recording, score, channel and metadata are not
    stored (Audacity has no place for them): write one file per recording.

    Raises:
        EventTableError: the table breaks the schema.
        ValueError: the table holds several recordings.

    Tabs and line breaks in labels are written escaped (``\\t``), with a warning.
    """
    where = str(path)
    validate_events(events, where=where)
    events = sanitise_strings(events, where)
    recordings = events["recording"].unique()
    if len(recordings) > 1:
        raise ValueError(
            f"{where}: {len(recordings)} recordings ({list(recordings[:3])}...) in one Audacity "
            "label track; write one file per recording"
        )
    out = []
    for row in events.itertuples(index=False):
        out.append(f"{format_float(row.start_s)}\t{format_float(row.end_s)}\t{row.label}")
        if not math.isnan(row.low_hz):
            out.append(f"\\\t{format_float(row.low_hz)}\t{format_float(row.high_hz)}")
    with atomic_open(path) as handle:
        handle.write("".join(line + "\n" for line in out))
