"""BirdVox-full-night point annotations (Lostanlen et al. 2018): one row per flight call.

The dataset's ``BirdVox-full-night_csv-annotations_unitNN.csv`` files give each nocturnal flight
call as a *point*: ``Time (s)`` (its centre in the night-long recording) and ``Center Freq (Hz)``.
Points become intervals of ``width_s`` centred on the time - by default 0.15 s, the order of a
flight call's duration (BirdVox's detectors score 150-ms windows); this is a convention, not a
measured extent. An interval that would start before 0 starts at 0 (its end is unchanged). The
annotated point is kept in the extra column ``time_s`` and the centre frequency in ``center_hz``;
with ``band_hz`` the event also gets a box ``center +- band_hz / 2`` (bottom at 0 Hz at most).
Label: a ``Species`` / ``Family`` / ``Order`` / ``Label`` / ``Class`` column when present, else the
option ``label`` (default ""). ``recording`` defaults to the unit name (``unit03``) found in the
file name, else the file name without ``.csv``. Read-only format.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import csv_records, finish_events, parse_float, read_text
from biomae.annotations.schema import EventTableError

DEFAULT_WIDTH_S = 0.15
LABEL_COLUMNS = ("Species", "Family", "Order", "Label", "Class")


def read(
    path: str | Path,
    *,
    width_s: float = DEFAULT_WIDTH_S,
    band_hz: float | None = None,
    label: str = "",
    recording: str | None = None,
    lenient: bool = False,
) -> pd.DataFrame:
    """Read a BirdVox-full-night CSV into an event table (``source="birdvox"``).

    Args:
        path: the CSV file (``Time (s)`` required, ``Center Freq (Hz)`` optional).
        width_s: length (s) of the interval centred on each annotated time.
        band_hz: when given, height (Hz) of a box centred on the centre frequency.
        label: label for every event when the file has no label column.
        recording: recording name (default: from the file name, see the module docstring).
        lenient: skip bad rows (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: no ``Time (s)`` column, or (strict) a bad row.
        ValueError: ``width_s`` not positive or ``band_hz`` negative.
    """
    path = Path(path)
    where = str(path)
    if not width_s > 0:
        raise ValueError(f"{where}: width_s must be positive, got {width_s}")
    if band_hz is not None and not band_hz >= 0:
        raise ValueError(f"{where}: band_hz must be >= 0, got {band_hz}")
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    if "Time (s)" not in header:
        raise EventTableError(f"{where}:1: no 'Time (s)' column in {header}")
    label_column = next((c for c in LABEL_COLUMNS if c in header), None)
    rows, lines, problems = [], [], {}
    for number, cells in csv_records(reader, header):
        row = {"label": cells.get(label_column, "") if label_column else label}
        try:
            time_s = parse_float(cells.get("Time (s)", ""), "Time (s)")
            center_hz = parse_float(cells.get("Center Freq (Hz)", ""), "Center Freq (Hz)")
        except ValueError as error:
            time_s = center_hz = math.nan
            problems[len(rows)] = str(error)
        row |= {"time_s": time_s, "center_hz": center_hz}
        row |= {"start_s": max(0.0, time_s - width_s / 2), "end_s": time_s + width_s / 2}
        if band_hz is not None and not math.isnan(center_hz):
            row |= {"low_hz": max(0.0, center_hz - band_hz / 2), "high_hz": center_hz + band_hz / 2}
        rows.append(row)
        lines.append(number)
    if recording is None:
        unit = re.search(r"unit\d+", path.name)
        recording = unit.group(0) if unit else path.name.removesuffix(".csv")
    return finish_events(
        pd.DataFrame(
            rows,
            columns=["start_s", "end_s", "low_hz", "high_hz", "label"] + ["time_s", "center_hz"],
        ),
        lines=lines,
        where=where,
        lenient=lenient,
        problems=problems,
        constant_columns={"recording": recording, "source": "birdvox"},
    )
