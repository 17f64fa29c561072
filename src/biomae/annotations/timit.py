"""TIMIT ``.phn`` / ``.wrd`` transcriptions: ``start_sample end_sample label`` per line, 16 kHz.

Sample offsets become seconds (``sample / sample_rate``; TIMIT is 16 kHz, option
``sample_rate``). Every line is an event, the silence markers ``h#`` / ``pau`` / ``epi`` too (they
are annotated segments; filter them by label when needed). ``recording`` defaults to the file name
with its ``.phn`` / ``.wrd`` ending replaced by ``.wav``. The writer rounds times to the nearest
sample, the format's resolution.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.annotations.format_helpers import finish_events, read_text, sanitise_strings
from biomae.annotations.schema import validate_events
from biomae.atomic_io import atomic_write_text

SUFFIX = ".phn"
WRITE_OPTIONS = ("sample_rate",)  # header facts annotate passes to write()
DEFAULT_SAMPLE_RATE = 16000


def read(
    path: str | Path,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    recording: str | None = None,
    lenient: bool = False,
) -> pd.DataFrame:
    """Read a TIMIT ``.phn`` / ``.wrd`` file into an event table (``source="timit"``).

    Raises:
        EventTableError: (strict) a line that is not two integers and a label, or a bad span.
        ValueError: a sample rate that is not positive.
    """
    path = Path(path)
    where = str(path)
    if sample_rate <= 0:
        raise ValueError(f"{where}: sample_rate must be positive, got {sample_rate}")
    rows, lines, problems = [], [], {}
    for number, text in enumerate(read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        fields = text.split(maxsplit=2)
        row = {"label": fields[2].strip() if len(fields) > 2 else ""}
        try:
            if len(fields) < 3:
                raise ValueError(f"expected 'start end label', got {text.strip()!r}")
            start, end = int(fields[0]), int(fields[1])
            row["start_s"], row["end_s"] = start / sample_rate, end / sample_rate
        except ValueError as error:
            row["start_s"] = row["end_s"] = math.nan
            problems[len(rows)] = str(error)
        rows.append(row)
        lines.append(number)
    if recording is None:
        recording = path.with_suffix(".wav").name if path.suffix in (".phn", ".wrd") else path.name
    return finish_events(
        pd.DataFrame(rows, columns=["start_s", "end_s", "label"]),
        lines=lines,
        where=where,
        lenient=lenient,
        problems=problems,
        constant_columns={"recording": recording, "source": "timit"},
    )


def write(events: pd.DataFrame, path: str | Path, *, sample_rate: int = DEFAULT_SAMPLE_RATE):
    """Write one recording's events as a TIMIT transcription (sample offsets), atomically.

    Raises:
        EventTableError: the table breaks the schema.
        ValueError: several recordings.

    Line breaks in labels are written escaped (``\\n``) and empty labels as ``?`` (a TIMIT line
    needs one), with a warning.
    """
    where = str(path)
    validate_events(events, where=where)
    events = sanitise_strings(events, where, forbidden="\r\n")
    blank = (events["label"].str.strip() == "").to_numpy()
    if blank.any():
        warnings.warn(f"{where}: {int(blank.sum())} empty label(s) written as '?'", stacklevel=2)
        events = events.assign(label=np.where(blank, "?", events["label"]))
    if events["recording"].nunique() > 1:
        raise ValueError(f"{where}: several recordings; write one TIMIT file per recording")
    out = [
        f"{round(row.start_s * sample_rate)} {round(row.end_s * sample_rate)} {row.label}"
        for row in events.itertuples(index=False)
    ]
    atomic_write_text(path, "".join(line + "\n" for line in out))
