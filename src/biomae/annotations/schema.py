"""The one event table that every part of biomae speaks.

An *event* is one vocalization (or other sound) in one recording: a time span and, optionally, a
frequency band, a label and a score. A table of events is a ``pandas.DataFrame`` with the columns of
:data:`EVENT_COLUMNS`, in that order. Coordinates:

- ``start_s`` / ``end_s``: seconds from the recording's first sample, ``0 <= start_s <= end_s``.
- ``low_hz`` / ``high_hz``: the frequency band in Hz, ``0 <= low_hz <= high_hz <= nyquist``; NaN
  when the annotation has no frequency box (both NaN, or both set).
- ``label``: the dataset's own label ("" when an annotation has none, e.g. class-agnostic).
- ``score``: detector confidence in [0, 1]; NaN for human annotations.
- ``recording``: the recording's path or ID as given by the reader (a string).
- ``channel``: 1-based channel (Raven's convention), default 1.
- optional metadata: ``taxon`` (scientific name where known), ``individual``, ``call_type``,
  ``source`` (dataset or tool that produced the row) — "" when unknown.

Readers and writers of every format live beside this file; they build tables with
:func:`make_events` and check them with :func:`validate_events`, which raises
:class:`EventTableError` naming the row and the problem. Nothing is ever dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FLOAT_COLUMNS = ("start_s", "end_s", "low_hz", "high_hz", "score")
STRING_COLUMNS = ("recording", "label", "taxon", "individual", "call_type", "source")
EVENT_COLUMNS = (
    "recording",
    "start_s",
    "end_s",
    "low_hz",
    "high_hz",
    "label",
    "score",
    "channel",
    "taxon",
    "individual",
    "call_type",
    "source",
)
REQUIRED_COLUMNS = ("start_s", "end_s")
_DEFAULTS: dict[str, Any] = {
    "recording": "",
    "low_hz": math.nan,
    "high_hz": math.nan,
    "label": "",
    "score": math.nan,
    "channel": 1,
    "taxon": "",
    "individual": "",
    "call_type": "",
    "source": "",
}


class EventTableError(ValueError):
    """An event table (or an annotation file) breaks the schema. The message names file and row."""


@dataclass(frozen=True)
class Event:
    """One event, for code that builds tables row by row (see :func:`make_events`)."""

    start_s: float
    end_s: float
    low_hz: float = math.nan
    high_hz: float = math.nan
    label: str = ""
    score: float = math.nan
    recording: str = ""
    channel: int = 1
    taxon: str = ""
    individual: str = ""
    call_type: str = ""
    source: str = ""


def empty_events() -> pd.DataFrame:
    """An event table with no rows and the canonical columns and dtypes."""
    return make_events([])


def make_events(
    rows: pd.DataFrame | Iterable[Mapping[str, Any] | Event] | Mapping[str, Iterable[Any]],
    **constant_columns: Any,
) -> pd.DataFrame:
    """Build a canonical event table: canonical column order and dtypes, defaults filled in.

    Args:
        rows: a DataFrame, an iterable of dicts / :class:`Event`, or a dict of columns. Extras
            are kept after the canonical ones (readers use this for format-specific fields).
        **constant_columns: values set on every row, e.g. ``recording="a.wav", source="raven"``.

    Returns:
        A new DataFrame; it is not validated (call :func:`validate_events`).
    """
    if isinstance(rows, pd.DataFrame):
        if not constant_columns and _is_canonical_table(rows):
            return rows.copy()  # what the conversions below would give, without their cost
        df = rows.copy()
    elif isinstance(rows, Mapping):
        df = pd.DataFrame(dict(rows))
    else:
        records = [r.__dict__ if isinstance(r, Event) else dict(r) for r in rows]
        df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for name, value in constant_columns.items():
        df[name] = value
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing and len(df):
        raise EventTableError(f"event table lacks required column(s) {missing}")
    for name in EVENT_COLUMNS:
        if name not in df.columns:
            df[name] = _DEFAULTS.get(name, math.nan)
    columns: dict[str, Any] = {}
    for name in EVENT_COLUMNS:
        col = df[name].reset_index(drop=True)
        if _is_canonical(col, name):  # already so (a table made here): no conversion to pay
            columns[name] = col
        elif name in FLOAT_COLUMNS:
            columns[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif name == "channel":
            columns[name] = pd.to_numeric(col, errors="coerce").fillna(1).astype("int64")
        else:
            columns[name] = col.where(col.notna(), "").astype(str).astype(object)
    for name in df.columns:
        if name not in EVENT_COLUMNS:  # format-specific extras, kept after the canonical columns
            columns[name] = df[name].reset_index(drop=True)
    return pd.DataFrame(columns, index=range(len(df)))


def _is_canonical_table(table: pd.DataFrame) -> bool:
    """``table`` is already what :func:`make_events` makes of it (columns, dtypes, index)."""
    return (
        tuple(table.columns[: len(EVENT_COLUMNS)]) == EVENT_COLUMNS
        and isinstance(table.index, pd.RangeIndex)
        and table.index.start == 0
        and table.index.step == 1
        and all(_is_canonical(table[name], name) for name in EVENT_COLUMNS)
    )


def _is_canonical(column: pd.Series, name: str) -> bool:
    """``column`` already has the dtype (and, for strings, only ``str`` values) that
    :func:`make_events` would give it."""
    if name in FLOAT_COLUMNS:
        return column.dtype == np.float64
    if name == "channel":
        return column.dtype == np.int64
    return column.dtype == object and all(type(v) is str for v in column.array)


def validate_events(
    events: pd.DataFrame,
    *,
    sample_rate: int | None = None,
    duration_s: float | None = None,
    where: str = "event table",
    row_offset: int = 0,
) -> pd.DataFrame:
    """Check an event table against the schema; raise on the first bad row, return it unchanged.

    Args:
        events: a table from :func:`make_events`.
        sample_rate: when given, frequencies must not exceed Nyquist, ``sample_rate / 2``.
        duration_s: when given, events must end within the recording (a tolerance of one ms).
        where: what to name in errors (usually the annotation file's path).
        row_offset: added to the 0-based row index in messages (readers pass the line of row 0).

    Raises:
        EventTableError: naming ``where``, the row and the problem.
    """
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise EventTableError(f"{where}: missing columns {missing}")
    start = events["start_s"].to_numpy(dtype=np.float64)
    end = events["end_s"].to_numpy(dtype=np.float64)
    low = events["low_hz"].to_numpy(dtype=np.float64)
    high = events["high_hz"].to_numpy(dtype=np.float64)
    score = events["score"].to_numpy(dtype=np.float64)
    checks: list[tuple[np.ndarray, str]] = [
        (~np.isfinite(start) | ~np.isfinite(end), "start_s/end_s must be finite numbers"),
        (start < 0, "start_s is negative"),
        (end < start, "end_s is before start_s"),
        (np.isnan(low) != np.isnan(high), "low_hz and high_hz must both be set or both be empty"),
        (np.isinf(low) | np.isinf(high), "low_hz/high_hz must be finite"),
        (low < 0, "low_hz is negative"),
        (high < low, "high_hz is below low_hz"),
        (~np.isnan(score) & ((score < 0) | (score > 1)), "score must lie in [0, 1]"),
    ]
    if sample_rate is not None:
        nyquist_hz = sample_rate / 2
        checks.append(
            (high > nyquist_hz * (1 + 1e-6), f"high_hz is above Nyquist ({nyquist_hz:g} Hz)")
        )
    if duration_s is not None:
        checks.append(
            (end > duration_s + 1e-3, f"end_s is after the recording ends ({duration_s:g} s)")
        )
    with np.errstate(invalid="ignore"):
        for bad, message in checks:
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                row = events.iloc[i]
                raise EventTableError(
                    f"{where}: row {i + row_offset}: {message} "
                    f"(start_s={row['start_s']}, end_s={row['end_s']}, low_hz={row['low_hz']}, "
                    f"high_hz={row['high_hz']}, score={row['score']}, label={row['label']!r})"
                    + (f"; {int(bad.sum()) - 1} more such row(s)" if bad.sum() > 1 else "")
                )
    return events


def concat_events(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate event tables (canonical dtypes; an empty iterable gives an empty table)."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return empty_events()
    return make_events(pd.concat(tables, ignore_index=True))


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Sort by recording, then start, then end, with a fresh index."""
    return events.sort_values(["recording", "start_s", "end_s"], kind="stable").reset_index(
        drop=True
    )
