"""biomae's canonical CSV of the event table, and "simple CSVs" with other column names.

Writing: one header line with the columns of :data:`~biomae.annotations.schema.EVENT_COLUMNS` (then
any extra columns of the table), one row per event; floats as the shortest text that reads back
exactly, NaN as an empty cell; RFC-4180 quoting, so labels may hold commas, quotes and line breaks.

Reading: ``columns`` maps canonical names to the file's column names, e.g.
``columns={"start_s": "onset", "end_s": "offset", "label": "name"}``; names it does not map are
looked up in the file's header under the canonical name, then under the common aliases of
:data:`ALIASES` (crowsetta's generic and simple CSVs: ``onset_s``/``offset_s``, DAS's
``start_seconds``/``stop_seconds``/``name``, ``notated_path``, ...). ``time_unit`` says what the
time columns count: ``"s"``, ``"ms"`` or ``"samples"`` (then ``sample_rate`` is needed). Columns
that map to nothing are kept as extra (string) columns; an unnamed column (a pandas index) is
dropped. ``recording`` fills the recording where the file has no such column; else it is "".
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pandas as pd

from biomae.annotations.format_helpers import finish_events, format_float, parse_float, read_text
from biomae.annotations.schema import (
    EVENT_COLUMNS,
    FLOAT_COLUMNS,
    EventTableError,
    validate_events,
)
from biomae.atomic_io import atomic_open

SUFFIX = ".csv"
OUTPUT_SUFFIX = ".events.csv"  # ending of `biomae annotate`'s per-recording table
TimeUnit = Literal["s", "ms", "samples"]
ALIASES: dict[str, tuple[str, ...]] = {
    "start_s": ("onset_s", "start_seconds", "onset", "start", "begin_time_s", "t_min"),
    "end_s": ("offset_s", "stop_seconds", "end_seconds", "offset", "end", "stop", "end_time_s"),
    "low_hz": ("low_freq_hz", "f_min", "low_freq", "min_frequency"),
    "high_hz": ("high_freq_hz", "f_max", "high_freq", "max_frequency"),
    "label": ("name", "class", "species", "annotation"),
    "recording": ("notated_path", "source_file", "audio_file", "filename", "file"),
}
_TIME_COLUMNS = ("start_s", "end_s")


def resolve_columns(header: list[str], columns: Mapping[str, str] | None, where: str) -> dict:
    """Canonical name -> file column, from ``columns``, the canonical name, then :data:`ALIASES`.

    Raises:
        EventTableError: ``columns`` names a column the file lacks, or start/end cannot be found.
    """
    columns = dict(columns or {})
    unknown = [c for c in columns if c not in EVENT_COLUMNS]
    if unknown:
        raise EventTableError(f"{where}: columns= keys {unknown} are not event columns")
    missing = {k: v for k, v in columns.items() if v not in header}
    if missing:
        raise EventTableError(f"{where}:1: column(s) {missing} not in the header {header}")
    lower = {h.lower(): h for h in header}
    for name in EVENT_COLUMNS:
        if name in columns:
            continue
        for candidate in (name, *ALIASES.get(name, ())):
            if candidate.lower() in lower and lower[candidate.lower()] not in columns.values():
                columns[name] = lower[candidate.lower()]
                break
    for name in _TIME_COLUMNS:
        if name not in columns:
            raise EventTableError(
                f"{where}:1: no {name} column in {header}; name it with columns={{{name!r}: ...}}"
            )
    return columns


def read(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    time_unit: TimeUnit = "s",
    sample_rate: int | None = None,
    recording: str | None = None,
    delimiter: str = ",",
    lenient: bool = False,
) -> pd.DataFrame:
    """Read a canonical or simple CSV into an event table (see the module docstring).

    Args:
        path: the CSV file.
        columns: canonical name -> the file's column name.
        time_unit: unit of the time columns: "s", "ms" or "samples".
        sample_rate: samples per second; needed for ``time_unit="samples"``, and checks Nyquist.
        recording: recording name for files without a recording column.
        delimiter: the field separator (``"\\t"`` for TSV).
        lenient: skip malformed rows (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: a malformed row (file and line), or a column that cannot be found.
        ValueError: ``time_unit="samples"`` without ``sample_rate``, or an unknown unit.
    """
    where = str(path)
    if time_unit not in ("s", "ms", "samples"):
        raise ValueError(f"{where}: time_unit must be 's', 'ms' or 'samples', got {time_unit!r}")
    if time_unit == "samples" and not sample_rate:
        raise ValueError(f"{where}: time_unit='samples' needs sample_rate (got {sample_rate!r})")
    scale = {"s": 1.0, "ms": 1e-3, "samples": 1.0 / (sample_rate or 1)}[time_unit]
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    header = next(reader, [])
    if not header:
        raise EventTableError(f"{where}:1: empty file, no header")
    mapping = resolve_columns(header, columns, where)
    taken = set(mapping.values())
    extras = [h for h in header if h and h not in taken]
    rows: list[dict] = []
    lines: list[int] = []
    problems: dict[int, str] = {}
    line = 1
    for fields in reader:
        number, line = line + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        cells = dict(zip(header, fields, strict=False))
        row = {h: cells.get(h, "") for h in extras}
        if len(fields) > len(header):
            problems[len(rows)] = f"{len(fields)} fields but the header has {len(header)}"
        for name, column in mapping.items():
            value = cells.get(column, "")
            if name in FLOAT_COLUMNS:
                try:
                    value = parse_float(value, column)
                except ValueError as error:
                    problems.setdefault(len(rows), str(error))
                    value = math.nan
                if name in _TIME_COLUMNS:
                    value *= scale
            elif name == "channel":
                value = _channel(value, column, problems, len(rows))
            row[name] = value
        rows.append(row)
        lines.append(number)
    table = pd.DataFrame(rows) if rows else pd.DataFrame()
    constant = {}
    if recording is not None and "recording" not in mapping:
        constant["recording"] = recording
    return finish_events(
        table,
        lines=lines,
        where=where,
        lenient=lenient,
        problems=problems,
        sample_rate=sample_rate,
        constant_columns=constant,
    )


def write(events: pd.DataFrame, path: str | Path, *, delimiter: str = ",") -> None:
    """Write an event table as biomae's canonical CSV (all columns), atomically.

    Raises:
        EventTableError: the table breaks the schema.
    """
    validate_events(events, where=str(path))
    names = list(EVENT_COLUMNS) + [c for c in events.columns if c not in EVENT_COLUMNS]
    with atomic_open(path) as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(names)
        for row in events.loc[:, names].itertuples(index=False):
            writer.writerow([_cell(v) for v in row])


def _channel(text: str, column: str, problems: dict[int, str], position: int) -> int:
    """A 1-based channel number; "" gives 1; anything but a positive integer is a row problem."""
    try:
        value = parse_float(text, column)
    except ValueError as error:
        problems.setdefault(position, str(error))
        return 1
    if math.isnan(value):
        return 1
    if value != int(value) or value < 1:
        problems.setdefault(position, f"{column} must be a positive integer, got {text!r}")
        return 1
    return int(value)


def _cell(value) -> str:
    if isinstance(value, float):
        return format_float(value)
    return "" if value is None else str(value)
