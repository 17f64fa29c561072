"""The review store: a ``biomae annotate`` folder's detections with the reviewer's decisions.

Decisions live in ``OUT/review.csv``, one row per reviewed event (the current values, the detector's
original values in ``orig_*`` columns, which fields changed, who and when, UTC), rewritten
atomically (temporary file, fsync, rename) on every decision, and appended to
``OUT/review.log.jsonl`` (the history, one fsynced line per decision). A killed server or a closed
browser loses nothing: each decision is on disk before its request is answered.

Event ids: ``<key>:<i>`` for the ``i``-th detection of recording ``key`` (its row order in the run's
``events.parquet``) and ``<key>:added-<n>`` for a call the reviewer drew. Statuses: ``""``
(unreviewed), ``accepted`` (values possibly corrected), ``rejected`` (the detection holds no call)
and ``added`` (a missed call). Times are seconds from the start of the recording.
"""

from __future__ import annotations

import json
import math
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REVIEW_TABLE = "review.csv"
REVIEW_LOG = "review.log.jsonl"
VALUES = ("start_s", "end_s", "low_hz", "high_hz", "label")
STATUSES = ("accepted", "rejected", "added")
REVIEW_COLUMNS = (
    "event_id", "key", "status", *VALUES, "score",
    *(f"orig_{v}" for v in VALUES), "changed", "reviewer", "updated_utc",
)  # fmt: skip


class ReviewError(ValueError):
    """A decision that cannot be applied (unknown event, bad value); the message says which."""


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); ``(nan, nan)`` for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ReviewStore:
    """All detections of an annotate folder ``out_dir`` merged with ``review.csv``.

    Raises:
        FileNotFoundError: ``out_dir`` is not a finished ``biomae annotate`` folder.
    """

    def __init__(self, out_dir: str | Path, reviewer: str = "") -> None:
        self.out_dir = Path(out_dir).resolve()
        self.reviewer = reviewer or os.environ.get("USER", "") or "reviewer"
        self._lock = threading.Lock()
        summary_path, events_path = self.out_dir / "summary.csv", self.out_dir / "events.parquet"
        for path in (summary_path, events_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: give the --out folder of a finished `biomae annotate` run "
                    "(one written with --format parquet or the default formats)"
                )
        from biomae.annotate.files import read_manifests

        summary = pd.read_csv(summary_path, keep_default_na=False)
        summary = summary[summary["status"] == "done"]
        resolved = {e["key"]: e["resolved"] for e in read_manifests(self.out_dir).values()}
        self.recordings = {
            str(r.key): {
                "key": str(r.key),
                "path": resolved.get(str(r.key), str(r.path)),
                "duration_s": float(r.duration_s),
                "sample_rate": int(r.sample_rate),
            }  # fmt: skip
            for r in summary.itertuples()
        }
        key_of = {str(r.path): str(r.key) for r in summary.itertuples()}
        events = pd.read_parquet(events_path)
        events = events[events["recording"].isin(key_of)].reset_index(drop=True)
        keys = events["recording"].map(key_of)
        table = pd.DataFrame(
            {
                "event_id": keys + ":" + keys.groupby(keys).cumcount().astype(str),
                "key": keys,
                **{v: events[v] for v in VALUES},
                "score": events["score"].astype(float),
                "status": "",
                **{f"orig_{v}": events[v] for v in VALUES},
                "changed": "",
                "reviewer": "",
                "updated_utc": "",
            }  # fmt: skip
        )
        table["label"] = table["label"].astype(str)
        self.table = self._merge_saved(table).set_index("event_id", drop=False)

    # ------------------------------------------------------------------------------ reading

    def _merge_saved(self, table: pd.DataFrame) -> pd.DataFrame:
        path = self.out_dir / REVIEW_TABLE
        if not path.is_file():
            return table
        saved = pd.read_csv(path, keep_default_na=False, dtype={"label": str, "orig_label": str})
        numeric = ("start_s", "end_s", "low_hz", "high_hz")
        for column in (*numeric, *(f"orig_{v}" for v in numeric), "score"):
            saved[column] = pd.to_numeric(saved[column], errors="coerce")
        known = saved["event_id"].isin(table["event_id"]) | (saved["status"] == "added")
        if not known.all():
            lost = saved.loc[~known, "event_id"].tolist()
            raise ReviewError(
                f"{path}: {len(lost)} reviewed event(s) (e.g. {lost[0]}) are no longer in the "
                "run's events.parquet (the run was redone?); move review.csv away to start over"
            )
        rest = table[~table["event_id"].isin(saved["event_id"])]
        merged = pd.concat([rest, saved[list(table.columns)]], ignore_index=True)
        return merged.sort_values(["key", "start_s"], kind="stable").reset_index(drop=True)

    def events(
        self,
        min_score: float | None = None,
        max_score: float | None = None,
        label: str | None = None,
        recording: str | None = None,
        reviewed: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> dict:
        """Events matching the filters (``reviewed``: ``yes``, ``no``, or a status), in recording
        and time order: ``{"total": n, "events": [row dicts from offset, at most limit]}``."""
        t = self.table
        mask = np.ones(len(t), dtype=bool)
        if min_score is not None:
            mask &= (t["score"] >= min_score).to_numpy()
        if max_score is not None:
            mask &= (t["score"] <= max_score).to_numpy()
        if label:
            mask &= (t["label"] == label).to_numpy()
        if recording:
            mask &= (t["key"] == recording).to_numpy()
        if reviewed == "yes":
            mask &= (t["status"] != "").to_numpy()
        elif reviewed == "no":
            mask &= (t["status"] == "").to_numpy()
        elif reviewed:
            mask &= (t["status"] == reviewed).to_numpy()
        hits = t[mask]
        page = hits.iloc[max(0, offset) : max(0, offset) + max(0, limit)]
        return {"total": int(mask.sum()), "events": _records(page)}

    def event(self, event_id: str) -> dict:
        """One event's row (current and original values, status)."""
        if event_id not in self.table.index:
            raise KeyError(event_id)
        row = _records(self.table.loc[[event_id]])[0]
        return row | {"recording": self.recordings[row["key"]]}

    def labels(self) -> list[str]:
        return sorted((set(self.table["label"]) | set(self.table["orig_label"])) - {""})

    # ------------------------------------------------------------------------------ writing

    def decide(self, event_id: str, status: str | None = None, **values) -> dict:
        """Record a decision on ``event_id``: ``status`` (accepted / rejected; None keeps the
        current one, or accepts an unreviewed event being corrected) and corrected ``values``
        (any of start_s, end_s, low_hz, high_hz, label). Saved before returning."""
        with self._lock:
            if event_id not in self.table.index:
                raise KeyError(event_id)
            row = self.table.loc[event_id].to_dict()
            if row["status"] == "added" and status == "accepted":
                status = "added"
            if status is None:
                status = row["status"] or "accepted"
            if status not in STATUSES:
                raise ReviewError(f"status {status!r}: use one of {', '.join(STATUSES)}")
            row.update(self._checked(row["key"], row, values))
            row["status"] = status
            return self._save(row, action="decide")

    def add(self, key: str, **values) -> dict:
        """Record a call the detector missed (start_s, end_s, low_hz, high_hz, label)."""
        with self._lock:
            if key not in self.recordings:
                raise ReviewError(f"no recording {key!r} in {self.out_dir}")
            n = int(self.table["event_id"].str.startswith(f"{key}:added-").sum())
            row = dict.fromkeys(self.table.columns, "") | {"event_id": f"{key}:added-{n}"}
            row |= {"key": key, "score": math.nan, "status": "added", "label": "call"}
            row |= {f"orig_{v}": math.nan for v in VALUES if v != "label"}
            missing = [v for v in VALUES[:4] if v not in values]
            if missing:
                raise ReviewError(f"a drawn call needs {', '.join(missing)}")
            row.update(self._checked(key, row, values))
            return self._save(row, action="add")

    def undo(self, event_id: str) -> dict:
        """Forget the decision on ``event_id`` (back to the detector's values; an added call is
        removed). Saved before returning."""
        with self._lock:
            if event_id not in self.table.index:
                raise KeyError(event_id)
            row = self.table.loc[event_id].to_dict()
            if row["status"] == "added":
                self.table = self.table.drop(index=event_id)
                self._persist({"action": "undo", "event_id": event_id})
                return row | {"status": "removed"}
            row |= {v: row[f"orig_{v}"] for v in VALUES}
            row |= {"status": "", "changed": "", "reviewer": "", "updated_utc": ""}
            return self._save(row, action="undo")

    def _checked(self, key: str, row: dict, values: dict) -> dict:
        unknown = set(values) - set(VALUES)
        if unknown:
            raise ReviewError(f"unknown field(s) {sorted(unknown)}; editable: {', '.join(VALUES)}")
        rec = self.recordings[key]
        new = {v: row[v] for v in VALUES} | values
        try:
            start_s, end_s = float(new["start_s"]), float(new["end_s"])
            low_hz, high_hz = float(new["low_hz"]), float(new["high_hz"])
        except (TypeError, ValueError) as err:
            raise ReviewError(f"times and frequencies must be numbers: {err}") from None
        if not 0 <= start_s < end_s <= rec["duration_s"] + 1e-6:
            raise ReviewError(
                f"start_s {start_s:g} / end_s {end_s:g}: need 0 <= start < end <= "
                f"{rec['duration_s']:g} s (the recording's duration)"
            )
        nyquist = rec["sample_rate"] / 2
        if not 0 <= low_hz < high_hz <= nyquist + 1e-6:
            raise ReviewError(
                f"low_hz {low_hz:g} / high_hz {high_hz:g}: need 0 <= low < high <= {nyquist:g} Hz"
            )
        label = str(new["label"]).strip()
        if not label or any(c in label for c in "\t\r\n"):
            raise ReviewError(f"label {new['label']!r}: give a non-empty label without tabs")
        return {"start_s": start_s, "end_s": end_s, "low_hz": low_hz, "high_hz": high_hz} | {
            "label": label
        }

    def _save(self, row: dict, action: str) -> dict:
        changed = [
            v for v in VALUES if row["status"] != "added" and _differs(row[v], row[f"orig_{v}"])
        ]
        if row["status"]:
            row["changed"] = ";".join(changed)
            row["reviewer"] = self.reviewer
            row["updated_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
        if row["event_id"] in self.table.index:
            for column in self.table.columns:
                self.table.at[row["event_id"], column] = row[column]
        else:
            new = pd.DataFrame([row], index=[row["event_id"]])[list(self.table.columns)]
            table = pd.concat([self.table, new.astype(self.table.dtypes.to_dict())])
            self.table = table.sort_values(["key", "start_s"], kind="stable")
        self._persist({"action": action} | {k: row[k] for k in REVIEW_COLUMNS})
        return _records(self.table.loc[[row["event_id"]]])[0]

    def _persist(self, entry: dict) -> None:
        reviewed = self.table[self.table["status"] != ""]
        text = reviewed[list(REVIEW_COLUMNS)].to_csv(index=False)
        _atomic_write_text(self.out_dir / REVIEW_TABLE, text)
        entry = {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in entry.items()
        }
        with open(self.out_dir / REVIEW_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _differs(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) != str(b)
    return not math.isclose(float(a), float(b), abs_tol=1e-6)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN -> None)."""
    out = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in out:
        for k, v in row.items():
            if isinstance(v, np.generic):
                row[k] = v.item()
    return out
