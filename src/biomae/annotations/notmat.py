"""evsonganaly ``.not.mat`` files (MATLAB): ``onsets`` / ``offsets`` in ms, ``labels`` a string.

One syllable per character of ``labels`` (evsonganaly labels are single characters); the sample
rate ``Fs`` is kept in the extra column ``sample_rate``. ``recording`` defaults to the file name
without ``.not.mat`` (``song.cbin.not.mat`` annotates ``song.cbin``). Times in ms are divided by
1000; writing multiplies by 1000, so a round trip is exact to about 1e-15 relative. Rows are named
``syllable N`` (1-based) in messages.
"""

from __future__ import annotations

import string
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.annotations.format_helpers import finish_events
from biomae.annotations.schema import EventTableError, validate_events
from biomae.atomic_io import atomic_path

SUFFIX = ".not.mat"
WRITE_OPTIONS = ("sample_rate",)  # header facts annotate passes to write()


def read(path: str | Path, *, recording: str | None = None, lenient: bool = False) -> pd.DataFrame:
    """Read a ``.not.mat`` into an event table (``source="notmat"``).

    Raises:
        EventTableError: unreadable file, missing keys, or ``labels`` not matching ``onsets``.
    """
    import scipy.io

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise EventTableError(f"{where}: annotation file not found")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True)
    except (ValueError, OSError, TypeError) as error:
        raise EventTableError(f"{where}: not a readable .mat file: {error}") from None
    missing = [k for k in ("onsets", "offsets", "labels") if k not in mat]
    if missing:
        raise EventTableError(f"{where}: no {missing} in the .not.mat (keys: {sorted(mat)})")
    onsets_ms = np.atleast_1d(np.asarray(mat["onsets"], dtype=np.float64))
    offsets_ms = np.atleast_1d(np.asarray(mat["offsets"], dtype=np.float64))
    labels = mat["labels"]
    labels = "".join(map(str, np.atleast_1d(labels))) if not isinstance(labels, str) else labels
    if not (len(onsets_ms) == len(offsets_ms) == len(labels)):
        raise EventTableError(
            f"{where}: {len(onsets_ms)} onsets, {len(offsets_ms)} offsets and {len(labels)} "
            "labels; they must match (one character per syllable)"
        )
    table = pd.DataFrame(
        {"start_s": onsets_ms / 1000, "end_s": offsets_ms / 1000, "label": list(labels)}
    )
    if "Fs" in mat:
        table["sample_rate"] = int(mat["Fs"])
    return finish_events(
        table,
        lines=[f"syllable {i + 1}" for i in range(len(table))],
        where=where,
        lenient=lenient,
        constant_columns={
            "recording": path.name.removesuffix(".not.mat") if recording is None else recording,
            "source": "notmat",
        },
    )


def write(events: pd.DataFrame, path: str | Path, *, sample_rate: int = 32000) -> None:
    """Write one recording's events as a ``.not.mat`` (evsonganaly's fields), atomically.

    Args:
        events: a valid event table; every label one character.
        path: the output, conventionally ``<audio file>.not.mat``.
        sample_rate: the audio's sample rate, stored as ``Fs``.

    Labels that are not one character (evsonganaly's labels are) are written as single characters
    not used by the other labels, and a warning gives the mapping (``'song' -> 'a'``).

    Raises:
        EventTableError: the table breaks the schema.
        ValueError: several recordings.
    """
    import scipy.io

    where = str(path)
    validate_events(events, where=where)
    events = _single_character_labels(events, where)
    if events["recording"].nunique() > 1:
        raise ValueError(f"{where}: several recordings; write one .not.mat per recording")
    fname = events["recording"].iloc[0] if len(events) else ""
    mat = {
        "Fs": float(sample_rate),
        "fname": fname,
        "labels": "".join(events["label"]),
        "onsets": events["start_s"].to_numpy(np.float64) * 1000,
        "offsets": events["end_s"].to_numpy(np.float64) * 1000,
        "min_int": 5.0,  # evsonganaly's segmentation settings: not known here, its defaults
        "min_dur": 20.0,
        "threshold": 0.0,
        "sm_win": 2.0,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        scipy.io.savemat(handle, mat)


def _single_character_labels(events: pd.DataFrame, where: str) -> pd.DataFrame:
    """``events`` with each label of another length replaced by a free character (warned)."""
    labels = list(dict.fromkeys(events["label"]))
    long = [label for label in labels if len(label) != 1]
    if not long:
        return events
    taken = {label for label in labels if len(label) == 1}
    free = [c for c in string.ascii_letters + string.digits + string.punctuation if c not in taken]
    if len(long) > len(free):
        raise ValueError(
            f"{where}: {len(long)} labels are not one character and only {len(free)} characters "
            "are free to stand for them; map the labels to single characters first"
        )
    mapping = dict(zip(long, free, strict=False))
    shown = ", ".join(f"{k!r} -> {v!r}" for k, v in list(mapping.items())[:10])
    warnings.warn(
        f"{where}: {len(long)} label(s) are not one character, as evsonganaly needs; written as "
        f"{shown}" + (", ..." if len(mapping) > 10 else ""),
        stacklevel=3,
    )
    return events.assign(label=[mapping.get(label, label) for label in events["label"]])
