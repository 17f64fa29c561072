"""Koumura & Okanoya's BirdsongRecognition ``Annotation.xml`` (Bengalese finch song).

Structure: ``<Sequences><Sequence>`` per song bout, each with ``WaveFileName``, ``Position`` (the
bout's first sample in the wave file), ``Length`` (samples) and ``<Note>`` elements whose
``Position`` (samples, relative to the bout) / ``Length`` (samples) / ``Label`` give one syllable.

Each note becomes an event in recording ``WaveFileName``: ``start_s = (bout + note position) /
sample_rate`` and ``end_s = start_s + length / sample_rate``; the bout's 0-based number is kept in
the extra column ``sequence``. The XML has no sample rate: the dataset's is 32 kHz (the default,
option ``sample_rate``). Rows are named ``sequence S note N`` (1-based) in messages, since the file
is usually one long line. Read-only format.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pandas as pd

from biomae.annotations.format_helpers import finish_events, parse_float, read_text
from biomae.annotations.schema import EventTableError

DEFAULT_SAMPLE_RATE = 32000


def _number(element: ElementTree.Element, tag: str) -> float:
    child = element.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"no <{tag}>")
    return parse_float(child.text, f"<{tag}>")


def read(
    path: str | Path, *, sample_rate: int = DEFAULT_SAMPLE_RATE, lenient: bool = False
) -> pd.DataFrame:
    """Read an ``Annotation.xml`` into an event table (``source="koumura"``).

    Args:
        path: the XML file.
        sample_rate: samples per second of the wave files (32000 in the dataset).
        lenient: skip bad notes (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: not well-formed XML, no ``<Sequences>`` root, or (strict) a bad note.
        ValueError: a sample rate that is not positive.
    """
    where = str(path)
    if sample_rate <= 0:
        raise ValueError(f"{where}: sample_rate must be positive, got {sample_rate}")
    try:
        root = ElementTree.fromstring(read_text(path).encode("utf-8"))
    except ElementTree.ParseError as error:
        raise EventTableError(f"{where}: not well-formed XML: {error}") from None
    if root.tag != "Sequences":
        raise EventTableError(f"{where}: root element is <{root.tag}>, expected <Sequences>")
    rows: list[dict] = []
    places: list[str] = []
    problems: dict[int, str] = {}
    for s, sequence in enumerate(root.iter("Sequence")):
        wave = (sequence.findtext("WaveFileName") or "").strip()
        try:
            offset = _number(sequence, "Position")
        except ValueError as error:
            offset, problem = float("nan"), f"sequence {s + 1}: {error}"
        else:
            problem = "" if wave else f"sequence {s + 1}: no <WaveFileName>"
        for n, note in enumerate(sequence.iter("Note")):
            row = {"recording": wave, "label": (note.findtext("Label") or "").strip()}
            row["sequence"] = s
            try:
                start = offset + _number(note, "Position")
                length = _number(note, "Length")
                row["start_s"], row["end_s"] = start / sample_rate, (start + length) / sample_rate
            except ValueError as error:
                row["start_s"] = row["end_s"] = float("nan")
                problems[len(rows)] = str(error)
            if problem:
                problems[len(rows)] = problem
            rows.append(row)
            places.append(f"sequence {s + 1} note {n + 1}")
    return finish_events(
        pd.DataFrame(rows, columns=["recording", "start_s", "end_s", "label", "sequence"]),
        lines=places,
        where=where,
        lenient=lenient,
        problems=problems,
        constant_columns={"source": "koumura"},
    )
