"""Rainforest Connection species audio detection (Kaggle 2020-21): ``train_tp`` / ``train_fp``.

Columns ``recording_id, species_id, songtype_id, t_min, f_min, t_max, f_max`` (seconds, Hz): one
box per row. label = ``species_id``, call_type = ``songtype_id``, recording = ``recording_id``
(the audio is ``<recording_id>.flac``). ``train_fp.csv`` lists *false positives* of the
organisers' template detector: boxes where the species is known to be absent. They are returned
as events too, marked ``True`` in the extra column ``negative`` (``False`` for true positives), so
that nothing is lost and training code can use them as hard negatives. ``negative`` is taken from
the file name (``*_fp*`` -> True) unless given. Read-only format.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import csv_records, finish_events, parse_float, read_text
from biomae.annotations.schema import EventTableError

COLUMNS = ("recording_id", "species_id", "songtype_id", "t_min", "f_min", "t_max", "f_max")
_NUMBERS = {"t_min": "start_s", "t_max": "end_s", "f_min": "low_hz", "f_max": "high_hz"}


def read(
    path: str | Path,
    *,
    negative: bool | None = None,
    sample_rate: int | None = None,
    lenient: bool = False,
) -> pd.DataFrame:
    """Read an RFCx ``train_tp.csv`` / ``train_fp.csv`` into an event table (``source="rfcx"``).

    Args:
        path: the CSV file.
        negative: whether the rows are false positives (default: ``"_fp"`` in the file name).
        sample_rate: when given, boxes above Nyquist are errors (the dataset is 48 kHz).
        lenient: skip bad rows (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: a missing column, or (strict) a bad row.
    """
    path = Path(path)
    where = str(path)
    if negative is None:
        negative = "_fp" in path.name
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise EventTableError(f"{where}:1: missing column(s) {missing}; header is {header}")
    rows, lines, problems = [], [], {}
    for number, cells in csv_records(reader, header):
        row = {"recording": cells.get("recording_id", ""), "label": cells.get("species_id", "")}
        row["call_type"] = cells.get("songtype_id", "")
        for column, name in _NUMBERS.items():
            try:
                row[name] = parse_float(cells.get(column, ""), column)
            except ValueError as error:
                row[name] = math.nan
                problems.setdefault(len(rows), str(error))
        rows.append(row)
        lines.append(number)
    return finish_events(
        pd.DataFrame(rows),
        lines=lines,
        where=where,
        lenient=lenient,
        problems=problems,
        sample_rate=sample_rate,
        constant_columns={"source": "rfcx", "negative": bool(negative)},
    )
