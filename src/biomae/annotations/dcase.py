"""DCASE few-shot bioacoustic event detection CSVs (DCASE 2021-2024 Task 5).

Layout: ``Audiofilename,Starttime,Endtime`` (seconds) then one column per class holding ``POS``,
``NEG`` or ``UNK`` (training sets), or a single ``Q`` column with ``POS``/``UNK`` (validation
sets); a file of just the three first columns is a prediction/evaluation file (no classes).

Reading: each ``POS`` cell is an event labelled with its column's name (``Q`` for validation
sets); each ``UNK`` cell is also an event, marked ``"UNK"`` in the extra column ``dcase_status``
("POS" for the others) - the annotators could not tell, so the span is neither a positive nor a
negative and training code must decide (filter on ``dcase_status``). ``NEG`` cells say the class is
absent from that span and give no event. Rows of a file without class columns are events with an
empty label. One row may give several events (POS in several columns). Score is NaN.

Writing: one row per event, its label's column ``POS`` (``UNK`` when ``dcase_status`` says so)
and ``NEG`` in the other class columns; all-unlabelled tables give the three-column layout.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import (
    csv_records,
    finish_events,
    format_float,
    parse_float,
    read_text,
)
from biomae.annotations.schema import EventTableError, validate_events
from biomae.atomic_io import atomic_open

SUFFIX = ".csv"
FIXED = ("Audiofilename", "Starttime", "Endtime")
STATUSES = ("POS", "NEG", "UNK")


def read(path: str | Path, *, lenient: bool = False) -> pd.DataFrame:
    """Read a DCASE few-shot CSV into an event table (``source="dcase"``).

    Raises:
        EventTableError: a header without Audiofilename/Starttime/Endtime, or (strict) a bad row:
            a time that is not a number, or a class cell other than POS/NEG/UNK.
    """
    where = str(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    if tuple(header[:3]) != FIXED:
        raise EventTableError(f"{where}:1: header must start with {','.join(FIXED)}, got {header}")
    classes = [h for h in header[3:] if h]
    rows, lines, unparsed = [], [], []
    for number, cells in csv_records(reader, header):
        try:
            start_s = parse_float(cells.get("Starttime", ""), "Starttime")
            end_s = parse_float(cells.get("Endtime", ""), "Endtime")
            bad = [c for c in classes if cells.get(c, "") not in STATUSES]
            if bad:
                raise ValueError(f"{bad[0]} is {cells.get(bad[0], '')!r}, not POS/NEG/UNK")
        except ValueError as error:
            unparsed.append((number, str(error)))
            continue
        base = {"recording": cells["Audiofilename"], "start_s": start_s, "end_s": end_s}
        found = [(c, cells[c]) for c in classes if cells[c] != "NEG"] if classes else [("", "POS")]
        for label, status in found:
            rows.append(base | {"label": label, "dcase_status": status})
            lines.append(number)
    table = pd.DataFrame(rows, columns=["recording", "start_s", "end_s", "label", "dcase_status"])
    return finish_events(
        table,
        lines=lines,
        where=where,
        lenient=lenient,
        unparsed=unparsed,
        constant_columns={"source": "dcase"},
    )


def write(events: pd.DataFrame, path: str | Path) -> None:
    """Write an event table as a DCASE few-shot CSV, atomically.

    Labels a class column cannot carry are renamed, with a warning: an empty label beside others
    becomes ``unlabelled``; a label named like a fixed column (``Starttime``) gets a ``_`` appended.

    Raises:
        EventTableError: the table breaks the schema.
    """
    where = str(path)
    validate_events(events, where=where)
    events = _class_column_labels(events, where)
    labels = list(dict.fromkeys(events["label"]))
    classes = [] if labels == [""] else labels
    status = (
        events["dcase_status"] if "dcase_status" in events else pd.Series(["POS"] * len(events))
    )
    with atomic_open(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*FIXED, *classes])
        for row, state in zip(events.itertuples(index=False), status, strict=True):
            state = "UNK" if str(state) == "UNK" else "POS"
            cells = [state if c == row.label else "NEG" for c in classes]
            times = [format_float(row.start_s), format_float(row.end_s)]
            writer.writerow([row.recording, *times, *cells])


def _class_column_labels(events: pd.DataFrame, where: str) -> pd.DataFrame:
    """Labels renamed (warned) where they cannot name a class column (see :func:`write`)."""
    labels = list(dict.fromkeys(events["label"]))
    mapping = {}
    if "" in labels and len(labels) > 1:
        mapping[""] = "unlabelled"
    for label in labels:
        new = mapping.get(label, label)
        while new in FIXED or (new != label and new in labels and new not in mapping):
            new += "_"
        if new != label:
            mapping[label] = new
    if not mapping:
        return events
    warnings.warn(
        f"{where}: label(s) that cannot name a DCASE class column written as "
        + ", ".join(f"{k!r} -> {v!r}" for k, v in mapping.items()),
        stacklevel=3,
    )
    return events.assign(label=[mapping.get(label, label) for label in events["label"]])
