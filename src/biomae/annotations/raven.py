"""Raven Pro selection tables (``*.selections.txt``): tab-separated, one row per selection.

Read by hand rather than with crowsetta, whose Raven reader rejects empty tables, integer frequency
columns and duplicate view rows; every written table still reads back with
``crowsetta.formats.bbox.Raven`` (tested).

Reading:
- label: column ``label_column`` if given, else the first present of :data:`LABEL_COLUMNS`, else "".
- Raven writes one row per *view* (Waveform 1, Spectrogram 1, ...) of a selection: rows that share
  ``Selection`` and ``Channel`` are one event; the Spectrogram row is kept (its box is drawn).
- tables over many files: when ``Begin File`` (or ``Begin Path`` with ``recording_from="path"``) is
  present it names the recording, and with ``File Offset (s)`` the event starts at the offset into
  that file (``end_s = offset + End Time - Begin Time``); otherwise ``recording`` is the option
  ``recording``, else the table's name without ``.Table.1.selections.txt`` / ``.selections.txt``.
  A table over several files without ``File Offset (s)`` is refused (its times run over all files).
- ``Score`` (or BirdNET's ``Confidence``), ``Taxon``, ``Individual``, ``Call Type``, ``Source``
  columns fill those fields; other columns are kept as extra columns. An empty table (header only)
  gives an empty event table.
  Cells are stripped of surrounding blanks (labels included); CRLF line ends are fine.

Writing (columns Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz),
High Freq (Hz), [Begin File], label, Score, [Taxon, Individual, Call Type, Source when non-empty],
[Similarity when the table has a ``similarity`` column: labels from examples]):
- events without a frequency box: with ``sample_rate`` they span 0 Hz to Nyquist (Raven needs a box)
  and a ``Freq Box`` column says ``no``, so reading restores NaN; without ``sample_rate`` the cells
  are left empty (reads back as NaN, but Raven and crowsetta cannot draw such a selection).
- one recording per table (``Begin File`` column when it is non-empty); several recordings need
  ``durations_s`` (Raven's multi-file tables: Begin Time runs over the files in that order).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import pandas as pd

from biomae.annotations.format_helpers import (
    finish_events,
    format_float,
    parse_float,
    read_text,
    sanitise_strings,
)
from biomae.annotations.schema import EventTableError, concat_events, validate_events
from biomae.atomic_io import atomic_open

SUFFIX = ".selections.txt"
OUTPUT_SUFFIX = SUFFIX  # ending of `biomae annotate`'s per-recording table
WRITE_OPTIONS = ("sample_rate",)  # header facts annotate passes to write()
LABEL_COLUMNS = (
    "Annotation",
    "Species",
    "Label",
    "Class",
    "Sound Type",
    "Call Type",
    "Tags",
    "Type",
    "ID",
    "Common Name",  # BirdNET's Raven output
    "Species Code",
)
BOX_COLUMN = "Freq Box"
_META = {"Taxon": "taxon", "Individual": "individual", "Call Type": "call_type", "Source": "source"}
_USED = {
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "File Offset (s)",
    "Score",
    "Confidence",
    BOX_COLUMN,
    *_META,
}


def _default_recording(path: Path) -> str:
    name = path.name
    for tail in (".BirdNET.selection.table.txt", ".selections.txt", ".txt"):
        if name.endswith(tail):
            name = name[: -len(tail)]
            break
    head, sep, _ = name.rpartition(".Table.")
    return head if sep else name


def read(
    path: str | Path,
    *,
    label_column: str | None = None,
    recording: str | None = None,
    recording_from: Literal["file", "path"] = "file",
    sample_rate: int | None = None,
    lenient: bool = False,
) -> pd.DataFrame:
    """Read one Raven selection table into an event table (see the module docstring).

    Args:
        path: the ``.txt`` table.
        label_column: the column holding labels (default: first of :data:`LABEL_COLUMNS`).
        recording: recording name for tables without a ``Begin File`` column.
        recording_from: ``"file"`` (Begin File, a file name) or ``"path"`` (Begin Path).
        sample_rate: when given, boxes above Nyquist are errors.
        lenient: skip malformed rows (listed in ``events.attrs["skipped"]``) instead of raising.

    Returns:
        Event table, ``source="raven"`` unless a ``Source`` column says otherwise.

    Raises:
        EventTableError: a malformed row (naming file and line), a missing time column, or an
            unknown ``label_column``.
    """
    path = Path(path)
    where = str(path)
    lines = read_text(path).split("\n")
    header = [h.strip() for h in lines[0].rstrip("\r").split("\t")] if lines else []
    while header and not header[-1]:
        header.pop()  # Raven often ends the header with a tab
    for needed in ("Begin Time (s)", "End Time (s)"):
        if needed not in header:
            raise EventTableError(f"{where}:1: not a Raven selection table: no {needed!r} column")
    if label_column is not None and label_column not in header:
        raise EventTableError(f"{where}:1: label column {label_column!r} not in {header}")
    label_col = label_column or next((c for c in LABEL_COLUMNS if c in header), None)
    file_col = {"file": "Begin File", "path": "Begin Path"}[recording_from]
    parsed: list[tuple[int, dict, str]] = []  # (line, row, problem)
    best: dict[tuple, int] = {}  # (Selection, Channel) -> position in parsed of the row kept
    for number, text in enumerate(lines[1:], start=2):
        text = text.rstrip("\r")
        if not text.strip():
            continue
        fields = [f.strip() for f in text.split("\t")]
        cells = dict(zip(header, fields + [""] * len(header), strict=False))
        row, problem = _parse_row(cells, label_col, file_col)
        if len(fields) > len(header) and any(fields[len(header) :]):
            problem = f"{len(fields)} fields but the header has {len(header)}"
        selection = (cells.get("Selection", ""), cells.get("Channel", ""))
        row["_spectrogram"] = cells.get("View", "").startswith("Spectrogram")
        if selection in best:  # another view of a selection already seen
            kept = parsed[best[selection]][1]
            if not row["_spectrogram"] or kept["_spectrogram"]:
                continue
            parsed[best[selection]] = (number, row, problem)
            continue
        if selection[0]:
            best[selection] = len(parsed)
        parsed.append((number, row, problem))
    rows = [row for _, row, _ in parsed]
    line_numbers = [number for number, _, _ in parsed]
    problems = {i: problem for i, (_, _, problem) in enumerate(parsed) if problem}
    table = pd.DataFrame(rows).drop(columns="_spectrogram") if rows else pd.DataFrame()
    n_files = table["recording"].nunique() if "recording" in table else 0
    if "File Offset (s)" not in header and n_files > 1:
        raise EventTableError(
            f"{where}: the table spans {n_files} files ({file_col}) but has no 'File Offset (s)' "
            "column: its Begin Time runs over all files, so times per file are unknown; export "
            "the table with File Offset (s)"
        )
    if len(table) and recording is not None and "recording" not in table:
        table["recording"] = recording
    elif len(table) and "recording" not in table:
        table["recording"] = _default_recording(path)
    constant = {} if len(table) and "source" in table else {"source": "raven"}
    return finish_events(
        table,
        lines=line_numbers,
        where=where,
        lenient=lenient,
        problems=problems,
        sample_rate=sample_rate,
        constant_columns=constant,
    )


def _parse_row(cells: dict[str, str], label_col: str | None, file_col: str) -> tuple[dict, str]:
    """One selection's fields (canonical names) and a problem ("" when it parsed)."""
    row: dict = {"label": cells.get(label_col, "") if label_col else ""}
    try:
        begin = parse_float(cells["Begin Time (s)"], "Begin Time (s)")
        end = parse_float(cells["End Time (s)"], "End Time (s)")
        row["low_hz"] = parse_float(cells.get("Low Freq (Hz)", ""), "Low Freq (Hz)")
        row["high_hz"] = parse_float(cells.get("High Freq (Hz)", ""), "High Freq (Hz)")
        score_column = "Score" if "Score" in cells else "Confidence"  # BirdNET: Confidence
        row["score"] = parse_float(cells.get(score_column, ""), score_column)
        channel = parse_float(cells.get("Channel", ""), "Channel")
        offset = parse_float(cells.get("File Offset (s)", ""), "File Offset (s)")
    except ValueError as error:
        return {**row, "start_s": math.nan, "end_s": math.nan}, str(error)
    if file_col in cells:
        row["recording"] = cells[file_col]
        if not math.isnan(offset):
            begin, end = offset, offset + (end - begin)
    row["start_s"], row["end_s"] = begin, end
    if not math.isnan(channel) and (channel != int(channel) or channel < 1):
        return {**row, "start_s": begin, "end_s": end}, f"Channel {channel:g} is not 1, 2, ..."
    row["channel"] = 1 if math.isnan(channel) else int(channel)
    if cells.get(BOX_COLUMN, "").lower() == "no":
        row["low_hz"] = row["high_hz"] = math.nan
    for column, name in _META.items():
        if column in cells and column != label_col:
            row[name] = cells[column]
    for column, value in cells.items():
        if column not in _USED and column not in (label_col, file_col) and column:
            row[column] = value
    return row, ""


def read_many(paths: Iterable[str | Path], **options) -> pd.DataFrame:
    """Read several selection tables (same options as :func:`read`) into one event table.

    ``attrs["skipped"]`` concatenates the skipped rows of every table.
    """
    tables = [read(p, **options) for p in paths]
    events = concat_events(tables)
    events.attrs["skipped"] = [s for t in tables for s in t.attrs.get("skipped", [])]
    return events


def write(
    events: pd.DataFrame,
    path: str | Path,
    *,
    label_column: str = "Annotation",
    sample_rate: int | None = None,
    durations_s: Mapping[str, float] | None = None,
) -> None:
    """Write an event table as a Raven selection table, atomically (see the module docstring).

    Args:
        events: a valid event table.
        path: output ``.txt`` (conventionally ``<audio stem>.selections.txt``).
        label_column: name of the label column.
        sample_rate: lets time-only events span 0 Hz..Nyquist (Raven and crowsetta need a box).
        durations_s: recording -> duration (s), in file order; needed when the table holds several
            recordings (Raven's Begin Time then runs over the concatenated files).

    Raises:
        EventTableError: the table breaks the schema (or has a box above Nyquist).
        ValueError: several recordings without ``durations_s``.

    Tabs and line breaks in string cells are written escaped (``\\t``), with a warning.
    """
    where = str(path)
    validate_events(events, sample_rate=sample_rate, where=where)
    events = sanitise_strings(events, where)
    recordings = list(dict.fromkeys(events["recording"]))
    file_start_s = {r: 0.0 for r in recordings}
    if len(recordings) > 1:
        if durations_s is None:
            raise ValueError(
                f"{where}: {len(recordings)} recordings ({recordings[:3]}...) in one Raven table; "
                "pass durations_s={recording: seconds} or write one table per recording"
            )
        missing = [r for r in recordings if r not in durations_s]
        if missing:
            raise ValueError(f"{where}: durations_s lacks recording(s) {missing[:5]}")
        total = 0.0
        for name, duration in durations_s.items():
            file_start_s[name], total = total, total + float(duration)
    with_file = any(recordings)
    multi = len(recordings) > 1
    no_box = events["low_hz"].isna().to_numpy()
    meta = [(c, n) for c, n in _META.items() if (events[n] != "").any()]
    header = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)"]
    header += ["Low Freq (Hz)", "High Freq (Hz)"]
    header += ["Begin File"] * with_file + ["File Offset (s)"] * multi
    header += [label_column, "Score"] + [c for c, _ in meta]
    similar = "similarity" in events.columns  # labels from examples / shots (biomae.examples)
    header += ["Similarity"] * similar
    header += [BOX_COLUMN] * bool(no_box.any() and sample_rate is not None)
    out = ["\t".join(header)]
    for i, row in enumerate(events.itertuples(index=False)):
        shift = file_start_s[row.recording]
        low, high = row.low_hz, row.high_hz
        if no_box[i] and sample_rate is not None:
            low, high = 0.0, sample_rate / 2
        cells = [str(i + 1), "Spectrogram 1", str(row.channel)]
        cells += [format_float(row.start_s + shift), format_float(row.end_s + shift)]
        cells += [format_float(low), format_float(high)]
        cells += [row.recording] * with_file + [format_float(row.start_s)] * multi
        cells += [row.label, format_float(row.score)] + [getattr(row, n) for _, n in meta]
        if similar:
            cells.append(format_float(row.similarity))
        if BOX_COLUMN in header:
            cells.append("no" if no_box[i] else "yes")
        out.append("\t".join(cells))
    with atomic_open(path) as handle:
        handle.write("\n".join(out) + "\n")
