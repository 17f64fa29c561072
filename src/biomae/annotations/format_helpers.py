"""Helpers shared by the format modules: text decoding, number parsing, and the one exit door.

Every reader collects its rows into a DataFrame (canonical column names, any extras), a parallel
list of source line numbers, and a dict of row problems found while parsing (row position ->
reason). It then calls :func:`finish_events`, which adds the schema problems of every row, and
either raises :class:`~biomae.annotations.schema.EventTableError` naming ``file:line`` (strict, the
default) or, with ``lenient=True``, drops the bad rows, lists them in ``events.attrs["skipped"]``
as ``"file:line: reason"`` strings and warns with their count. Nothing is dropped silently.
Inside :func:`lenient_reading` every reader is lenient (also those a dataset adapter calls) and
the block's list collects every skipped row.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.annotations.schema import (
    EVENT_COLUMNS,
    EventTableError,
    make_events,
    validate_events,
)

_SKIPPED: ContextVar[list[str] | None] = ContextVar("biomae_lenient_skipped", default=None)


@contextlib.contextmanager
def lenient_reading() -> Iterator[list[str]]:
    """Within the block every reader skips malformed rows as with ``lenient=True``, including
    the readers that dataset adapters call; the yielded list collects each skipped row as
    ``"file:line: reason"`` (``biomae data import / add --lenient`` print it)."""
    skipped: list[str] = []
    token = _SKIPPED.set(skipped)
    try:
        yield skipped
    finally:
        _SKIPPED.reset(token)


def read_text(path: str | Path) -> str:
    """The text of an annotation file: UTF-8 (BOM allowed), UTF-16 with a BOM, else Windows-1252.

    Raises:
        EventTableError: the file does not exist (naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise EventTableError(f"{path}: annotation file not found")
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def parse_float(text: object, what: str) -> float:
    """One number from a table cell; "" / None / NaN give NaN.

    Raises:
        ValueError: ``"<what> is not a number: '<text>'"`` (readers turn it into a row problem).
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return math.nan
    if isinstance(text, int | float | np.integer | np.floating):
        return float(text)
    stripped = str(text).strip()
    if not stripped:
        return math.nan
    try:
        return float(stripped)
    except ValueError:
        raise ValueError(f"{what} is not a number: {stripped!r}") from None


_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}


def sanitise_strings(events: pd.DataFrame, where: str, forbidden: str = "\t\r\n") -> pd.DataFrame:
    """The table with every tab / line break in its string cells written as ``\\t`` / ``\\n``
    (``\\r``), for formats that cannot hold them; a warning names the file, the count and the
    first change. The table itself is returned when nothing needs replacing.
    """
    changed, first = 0, ""
    events = events.copy()
    for name in ("recording", "label", "taxon", "individual", "call_type", "source"):
        values = events[name].astype(str)
        bad = values.map(lambda v: any(c in v for c in forbidden)).to_numpy()
        if not bad.any():
            continue
        fixed = values[bad].map(lambda v: "".join(_ESCAPES.get(c, c) for c in v))
        if not changed:
            i = int(np.flatnonzero(bad)[0])
            first = f"row {i}: {name} {values.iloc[i]!r} -> {fixed.iloc[0]!r}"
        changed += int(bad.sum())
        events.loc[bad, name] = fixed.to_numpy()
    if changed:
        warnings.warn(
            f"{where}: {changed} cell(s) held a tab or line break, which this format cannot hold; "
            f"written escaped ({first})",
            stacklevel=3,
        )
    return events


def format_float(value: float) -> str:
    """A float as the shortest text that reads back exactly; NaN as ""."""
    return "" if math.isnan(value) else repr(float(value))


def finish_events(
    rows: pd.DataFrame | Sequence[Mapping],
    *,
    lines: Sequence[int | str],
    where: str,
    lenient: bool,
    problems: Mapping[int, str] | None = None,
    sample_rate: int | None = None,
    constant_columns: Mapping[str, object] | None = None,
    unparsed: Sequence[tuple[int, str]] = (),
) -> pd.DataFrame:
    """Turn parsed rows into a validated event table, raising or skipping (lenient) bad rows.

    Args:
        rows: parsed rows (canonical column names; extras are kept).
        lines: the 1-based source line of each row (same length as ``rows``), or a place name
            such as ``"segment 3"`` for formats without lines.
        where: the file, for messages.
        lenient: skip and report bad rows instead of raising.
        problems: row position -> reason, for rows that already failed to parse.
        sample_rate: when given, frequencies above Nyquist are problems too.
        constant_columns: values set on every row (e.g. ``source="raven"``).
        unparsed: (line, reason) of lines that could not even become a row.

    Returns:
        The event table (fresh index) with ``attrs["skipped"]`` (list of "file:line: reason") and
        ``attrs["lines"]`` (the source line, or place, of each row kept).

    Raises:
        EventTableError: strict mode, naming the first bad row's file and line and how many more.
    """
    collector = _SKIPPED.get()
    lenient = lenient or collector is not None
    events = make_events(rows, **dict(constant_columns or {}))
    if len(lines) != len(events):
        raise AssertionError(f"{where}: {len(lines)} line numbers for {len(events)} rows")
    issues = dict(problems or {})
    good = [i for i in range(len(events)) if i not in issues]
    try:
        validate_events(events.iloc[good], sample_rate=sample_rate, where=where)
    except EventTableError:
        for i in good:  # slow path, only when some row is bad: find every bad row's reason
            try:
                validate_events(events.iloc[[i]], sample_rate=sample_rate, where="")
            except EventTableError as error:
                issues[i] = str(error).removeprefix(": row 0: ")
    bad = sorted([(lines[i], issues[i]) for i in issues] + list(unparsed))
    skipped = [f"{where}:{line}: {reason}" for line, reason in bad]
    if collector is not None:
        collector.extend(skipped)
    if skipped and not lenient:
        more = f" (and {len(skipped) - 1} more bad row(s))" if len(skipped) > 1 else ""
        raise EventTableError(skipped[0] + more)
    if skipped:
        warnings.warn(
            f"{where}: skipped {len(skipped)} malformed row(s) (lenient=True); "
            "see events.attrs['skipped']",
            stacklevel=3,
        )
        events = events.drop(index=sorted(issues)).reset_index(drop=True)
    events = validate_events(events, sample_rate=sample_rate, where=where)
    events.attrs["skipped"] = skipped
    events.attrs["lines"] = [lines[i] for i in range(len(lines)) if i not in issues]
    return events


def canonical_only(events: pd.DataFrame) -> pd.DataFrame:
    """The canonical columns of a table (extras dropped), for writers and comparisons."""
    return events.loc[:, list(EVENT_COLUMNS)]


def csv_records(reader, header: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, cells)`` for each non-blank row of a ``csv.reader`` whose header row was read:
    ``line`` is the file line the row starts on (1-based; quoted fields may span lines), ``cells``
    the stripped fields by column name."""
    previous = 1
    for fields in reader:
        number, previous = previous + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        yield number, dict(zip(header, (f.strip() for f in fields), strict=False))
