"""biomae's canonical Parquet of the event table: the columns of the schema, typed, then extras.

The file is the table itself (float64 times and frequencies, int64 channel, string labels and
metadata), so a round trip is exact. Reading checks the schema row by row like every reader;
messages name ``file:row`` with 1-based row numbers (Parquet has no lines).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import finish_events
from biomae.annotations.schema import EVENT_COLUMNS, EventTableError, validate_events
from biomae.atomic_io import atomic_path

SUFFIX = ".parquet"
OUTPUT_SUFFIX = ".events.parquet"  # ending of `biomae annotate`'s per-recording table


def read(
    path: str | Path, *, sample_rate: int | None = None, lenient: bool = False
) -> pd.DataFrame:
    """Read a Parquet event table (written by :func:`write` or any tool with the same columns).

    Args:
        path: the ``.parquet`` file.
        sample_rate: when given, frequencies above Nyquist are errors.
        lenient: skip bad rows (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: the file is missing, lacks start_s/end_s, or a row breaks the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise EventTableError(f"{path}: annotation file not found")
    table = pd.read_parquet(path)
    missing = [c for c in ("start_s", "end_s") if c not in table.columns]
    if missing:
        raise EventTableError(f"{path}: Parquet table lacks column(s) {missing}")
    table.attrs = {}
    return finish_events(
        table,
        lines=range(1, len(table) + 1),
        where=str(path),
        lenient=lenient,
        sample_rate=sample_rate,
    )


def write(events: pd.DataFrame, path: str | Path) -> None:
    """Write an event table as Parquet (canonical columns first, then extras), atomically.

    Raises:
        EventTableError: the table breaks the schema.
    """
    validate_events(events, where=str(path))
    names = list(EVENT_COLUMNS) + [c for c in events.columns if c not in EVENT_COLUMNS]
    table = events.loc[:, names].reset_index(drop=True)
    table.attrs = {}
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
