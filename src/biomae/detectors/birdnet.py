"""BirdNET V2.4 as a class-agnostic detector: the peer baseline of the benchmark suites.

BirdNET classifies fixed 3-s windows; it has no onsets or offsets. To score it with the same event
metrics as every other model, its window rows (``bench/peers/birdnet_predict.py`` CSV: ``input,
start_time, end_time, species_name, confidence``, one row per window and species above
``--min-conf``) become events by :func:`merge_windows`:

1. keep the rows with ``confidence >= threshold`` (any species: the baseline is class-agnostic);
2. per recording, sort the kept windows by start and merge windows that overlap or touch
   (``next.start_s <= current.end_s + gap_s``) into one event spanning them;
3. an event's ``score`` is the highest confidence among its windows, its ``label`` ``"call"``.

BirdNET runs in its own virtual environment (``.peers/birdnet-venv``, set up by
``bench/peers/setup_birdnet.sh``; its model is CC BY-NC-SA 4.0 and is never shipped). When that
environment is absent, :class:`BirdNETDetector` raises :class:`BirdNETUnavailable` with the reason.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.annotations import make_events
from biomae.annotations.schema import empty_events

REPO = Path(__file__).resolve().parents[3]
BIRDNET_PYTHON = Path(
    os.environ.get("BIOMAE_BIRDNET_PYTHON", REPO / ".peers" / "birdnet-venv" / "bin" / "python")
)
BIRDNET_SCRIPT = REPO / "bench" / "peers" / "birdnet_predict.py"
# column names of birdnet's result table, and the names used by older versions of the script
_COLUMNS = {
    "recording": ("input", "file"),
    "start_s": ("start_time", "start_s"),
    "end_s": ("end_time", "end_s"),
    "confidence": ("confidence",),
}


class BirdNETUnavailable(RuntimeError):
    """BirdNET's environment or script is missing (the message says which)."""


def _column(rows: pd.DataFrame, key: str) -> pd.Series:
    for name in _COLUMNS[key]:
        if name in rows.columns:
            return rows[name]
    raise ValueError(
        f"BirdNET rows lack a {key} column (one of {_COLUMNS[key]}); have {list(rows.columns)}"
    )


def _seconds(values: pd.Series) -> np.ndarray:
    """Seconds from numbers or from birdnet's ``H:MM:SS.ff`` time strings."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=float)
    return pd.to_timedelta(values.astype(str)).dt.total_seconds().to_numpy(dtype=float)


def merge_windows(rows: pd.DataFrame, threshold: float = 0.1, gap_s: float = 0.0) -> pd.DataFrame:
    """Class-agnostic events from BirdNET window rows (see the module docstring).

    Args:
        rows: BirdNET rows (recording, start, end and confidence columns; species ignored).
        threshold: minimum confidence of a kept window, in [0, 1].
        gap_s: windows closer than this (s) are merged too; 0 merges overlapping or touching ones.

    Returns:
        A canonical event table, label ``"call"``, score = the best window confidence.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold} must lie in [0, 1]")
    if gap_s < 0:
        raise ValueError(f"gap_s={gap_s} must be >= 0 seconds")
    if len(rows) == 0:
        return empty_events()
    table = pd.DataFrame(
        {
            "recording": _column(rows, "recording").astype(str).to_numpy(),
            "start_s": _seconds(_column(rows, "start_s")),
            "end_s": _seconds(_column(rows, "end_s")),
            "score": pd.to_numeric(_column(rows, "confidence")).to_numpy(dtype=float),
        }
    )
    table = table[table["score"] >= threshold].sort_values(["recording", "start_s", "end_s"])
    merged = []
    for recording, windows in table.groupby("recording", sort=True):
        current = None
        for start_s, end_s, score in windows[["start_s", "end_s", "score"]].itertuples(index=False):
            if current is not None and start_s <= current[1] + gap_s:
                current = [current[0], max(current[1], end_s), max(current[2], score)]
                continue
            if current is not None:
                merged.append((recording, *current))
            current = [start_s, end_s, score]
        if current is not None:
            merged.append((recording, *current))
    if not merged:
        return empty_events()
    recording, start_s, end_s, score = zip(*merged, strict=True)
    return make_events(
        {
            "recording": list(recording),
            "start_s": list(start_s),
            "end_s": list(end_s),
            "score": list(score),
            "label": "call",
            "source": "birdnet-v2.4",
        }
    )


class BirdNETDetector:
    """BirdNET V2.4 windows merged into class-agnostic events; runs the peers' venv per batch."""

    name = "birdnet"

    def __init__(self, threshold: float = 0.1, python: Path | None = None, workers: int = 1):
        self.python = Path(python or BIRDNET_PYTHON)
        self.threshold = threshold
        self.workers = workers
        if not self.python.is_file():
            raise BirdNETUnavailable(
                f"BirdNET's venv python {self.python} is absent (set it up with "
                "bench/peers/setup_birdnet.sh, or point BIOMAE_BIRDNET_PYTHON at it)"
            )
        if not BIRDNET_SCRIPT.is_file():
            raise BirdNETUnavailable(f"BirdNET runner {BIRDNET_SCRIPT} is absent")

    def params(self) -> dict:
        return {"detector": self.name, "threshold": self.threshold, "python": str(self.python)}

    def detect_files(self, paths: list[str]) -> pd.DataFrame:
        """Events of every recording in ``paths`` (one BirdNET run; recordings named by path)."""
        with tempfile.TemporaryDirectory(prefix="biomae_birdnet_") as tmp:
            out_csv = Path(tmp) / "birdnet.csv"
            command = [str(self.python), str(BIRDNET_SCRIPT), str(out_csv), *map(str, paths)]
            command += ["--workers", str(self.workers), "--min-conf", str(self.threshold)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(
                    f"BirdNET failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
                )
            rows = pd.read_csv(out_csv) if out_csv.stat().st_size else pd.DataFrame()
        events = merge_windows(rows, self.threshold)
        # birdnet may report absolute or resolved paths: map them back to the names given
        by_resolved = {str(Path(p).resolve()): str(p) for p in paths}
        events["recording"] = [
            by_resolved.get(str(Path(r).resolve()), r) for r in events["recording"]
        ]
        return events

    def detect_file(self, path: str | Path, recording: str | None = None) -> pd.DataFrame:
        events = self.detect_files([str(path)])
        if recording is not None:
            events["recording"] = recording
        return events
