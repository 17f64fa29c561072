"""The catalog: every imported dataset in one folder of Parquet tables, queried with DuckDB.

A catalog directory holds

- ``recordings.parquet``: one row per audio file — :data:`RECORDING_COLUMNS`. ``checksum`` is the
  SHA-1 of the file's size (8 bytes, little-endian) followed by its first and last MiB (the whole
  file when it is under 2 MiB): fast on long recordings and enough to spot duplicated audio.
  ``regions`` is a JSON list of the ``[start_s, end_s]`` spans annotated exhaustively and
  ``annotated_s`` their total; ``duplicate_of`` is the ``recording_id`` of a row with the same
  checksum imported earlier (in this import, or already in the catalog): kept, but flagged.
  ``role`` is what a recording serves for in training — ``calls``, ``background`` or
  ``negative`` (:mod:`biomae.datasets.adapters_sources`), empty when unstated; ``license`` may
  hold per-file terms. Catalogs written before ``role`` existed read with an empty one.
- ``events.parquet``: the canonical event table plus ``dataset``, ``recording_id`` and ``note``.
- ``prepared/<rate>hz-<dtype>/``: recordings decoded and resampled once for the window samplers
  (:mod:`biomae.datasets.prepared`, :meth:`Catalog.prepare_audio`), keyed by checksum.
- ``label_map.csv``: ``dataset, source, label, taxon, n_events`` — maps each dataset's own label
  (``source`` tells apart the sub-datasets of a collection) to a scientific name, so labels from
  different datasets train together. Edit the ``taxon`` column by
  hand; re-imports keep your edits.

``recording_id`` is derived from dataset, path and checksum, so importing the same data twice gives
the same IDs. Importing a dataset replaces all of its rows; :meth:`Catalog.add` with
``replace="paths"`` replaces only the rows of the same (dataset, path). Every file is written
atomically; concurrent writers to one catalog are not supported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.annotations import EVENT_COLUMNS, make_events, validate_events
from biomae.atomic_io import atomic_open, atomic_path

RECORDING_COLUMNS = (
    "recording_id",
    "dataset",
    "path",
    "checksum",
    "size_bytes",
    "duration_s",
    "sample_rate",
    "channels",
    "n_samples",
    "format",
    "annotation",
    "regions",
    "annotated_s",
    "taxon",
    "site",
    "individual",
    "label",
    "split",
    "source",
    "license",
    "role",
    "duplicate_of",
    "note",
)
CATALOG_EVENT_COLUMNS = (*EVENT_COLUMNS, "dataset", "recording_id", "note")
_STRING_METADATA = (
    "taxon", "site", "individual", "label", "split", "source", "license", "role", "note",
)  # fmt: skip
_MIB = 1 << 20


def file_checksum(path: str | Path) -> str:
    """SHA-1 (hex) of the size and the first and last MiB of ``path`` (see module docstring)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha1(size.to_bytes(8, "little"))
    with open(path, "rb") as handle:
        if size <= 2 * _MIB:
            digest.update(handle.read())
        else:
            digest.update(handle.read(_MIB))
            handle.seek(size - _MIB)
            digest.update(handle.read(_MIB))
    return digest.hexdigest()


def _describe(path: str) -> dict:
    from biomae.audio import info

    meta = info(path)
    return {
        "checksum": file_checksum(path),
        "size_bytes": Path(path).stat().st_size,
        "duration_s": float(meta.duration_s),
        "sample_rate": int(meta.sample_rate),
        "channels": int(meta.channels),
        "n_samples": int(meta.n_samples),
        "format": str(meta.format),
    }


def _regions_json(status: str, regions: object, duration_s: float, where: str) -> str:
    if regions is None or (isinstance(regions, float) and np.isnan(regions)):
        regions = [[0.0, duration_s]] if status == "full" else []
    if isinstance(regions, str):
        regions = json.loads(regions)
    spans = [[float(a), float(b)] for a, b in regions]
    for start_s, end_s in spans:
        if not 0 <= start_s <= end_s <= duration_s + 1e-3:
            raise ValueError(
                f"{where}: annotated region [{start_s}, {end_s}] is outside the recording "
                f"(0 to {duration_s:g} s)"
            )
    return json.dumps(spans)


def describe_recordings(
    recordings: pd.DataFrame, dataset: str, *, license: str = "", threads: int = 2
) -> pd.DataFrame:
    """Complete an adapter's recordings table to :data:`RECORDING_COLUMNS`.

    Reads each file's header (``biomae.audio.info``) and checksum, fills defaults (annotation
    ``"none"``, whole-file regions for ``"full"``), assigns ``recording_id`` and flags duplicates.

    Raises:
        ValueError: a duplicated path, an unknown annotation status, or a region outside its file.
    """
    from biomae.datasets.registry import ANNOTATION_STATUS

    table = recordings.reset_index(drop=True).copy()
    dupes = table["path"][table["path"].duplicated()]
    if len(dupes):
        raise ValueError(f"{dataset}: recording {dupes.iloc[0]} is listed twice")
    with ThreadPoolExecutor(max(1, threads)) as pool:
        described = pd.DataFrame(list(pool.map(_describe, table["path"])), index=table.index)
    for column in described.columns:
        table[column] = described[column]
    table["dataset"] = dataset
    if "annotation" not in table:
        table["annotation"] = "none"
    bad = ~table["annotation"].isin(ANNOTATION_STATUS)
    if bad.any():
        row = table[bad].iloc[0]
        raise ValueError(
            f"{row['path']}: annotation {row['annotation']!r} not in {ANNOTATION_STATUS}"
        )
    regions = table["regions"] if "regions" in table else pd.Series([None] * len(table))
    table["regions"] = [
        _regions_json(s, r, d, p)
        for s, r, d, p in zip(
            table["annotation"], regions, table["duration_s"], table["path"], strict=False
        )
    ]
    table["annotated_s"] = [sum(b - a for a, b in json.loads(r)) for r in table["regions"]]
    for column in _STRING_METADATA:
        values = table[column] if column in table else pd.Series([""] * len(table))
        table[column] = values.where(values.notna(), "").astype(str)
    if license:
        table.loc[table["license"] == "", "license"] = license
    keys = dataset + "\0" + table["path"] + "\0" + table["checksum"]
    table["recording_id"] = [f"{dataset}-{hashlib.sha1(k.encode()).hexdigest()[:12]}" for k in keys]
    first_by_sum = dict(zip(table["checksum"][::-1], table["recording_id"][::-1], strict=False))
    by_path = dict(zip(table["path"], table["recording_id"], strict=False))
    given = table["duplicate_of"] if "duplicate_of" in table else pd.Series([""] * len(table))
    table["duplicate_of"] = [by_path.get(g, g) if isinstance(g, str) and g else "" for g in given]
    same = table["recording_id"] != table["checksum"].map(first_by_sum)
    table.loc[same & (table["duplicate_of"] == ""), "duplicate_of"] = table["checksum"].map(
        first_by_sum
    )
    return table[list(RECORDING_COLUMNS)]


def attach_events(events: pd.DataFrame, recordings: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Events with ``dataset`` and ``recording_id``, each validated against its recording.

    Raises:
        ValueError: an event names a recording not in ``recordings``.
        EventTableError: an event breaks the schema or lies outside its recording.
    """
    table = make_events(events)
    ids = dict(zip(recordings["path"], recordings["recording_id"], strict=False))
    unknown = ~table["recording"].isin(ids)
    if unknown.any():
        raise ValueError(
            f"{dataset}: event for unknown recording {table['recording'][unknown].iloc[0]}"
        )
    table["dataset"] = dataset
    table["recording_id"] = table["recording"].map(ids)
    table["note"] = (
        table["note"].where(table["note"].notna(), "").astype(str) if "note" in table else ""
    )
    info = recordings.set_index("recording_id")
    _clip_above_nyquist(table, table["recording_id"].map(info["sample_rate"]), dataset)
    for rid, group in table.groupby("recording_id", sort=False):
        row = info.loc[rid]
        validate_events(
            group,
            sample_rate=int(row["sample_rate"]),
            duration_s=float(row["duration_s"]),
            where=f"{dataset}: {row['path']}",
        )
    return table[list(CATALOG_EVENT_COLUMNS)].reset_index(drop=True)


def _clip_above_nyquist(table: pd.DataFrame, sample_rate: pd.Series, dataset: str) -> None:
    """Boxes drawn above Nyquist (audio resampled after annotation) end at Nyquist; each such
    row says so in ``note`` and a warning gives the count. Any other schema problem raises."""
    nyquist_hz = sample_rate.to_numpy(dtype=float) / 2
    high = table["high_hz"].to_numpy(dtype=float)
    above = high > nyquist_hz * (1 + 1e-6)
    if not above.any():
        return
    notes = [
        f"high_hz {h:g} clipped to Nyquist {n:g}"
        for h, n in zip(high[above], nyquist_hz[above], strict=False)
    ]
    table.loc[above, "note"] = [
        f"{old}; {new}" if old else new
        for old, new in zip(table.loc[above, "note"], notes, strict=False)
    ]
    table.loc[above, "high_hz"] = nyquist_hz[above]
    table.loc[above, "low_hz"] = np.minimum(table.loc[above, "low_hz"], nyquist_hz[above])
    warnings.warn(
        f"{dataset}: {int(above.sum())} event(s) reach above Nyquist (audio resampled after "
        "annotation?); their high_hz is set to Nyquist and their note says so",
        stacklevel=3,
    )


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: rows written for ``dataset`` and rows it replaced."""

    dataset: str
    n_recordings: int
    n_events: int
    hours: float
    replaced_recordings: int
    n_duplicates: int
    skipped: tuple[str, ...] = ()  # malformed annotation rows skipped (lenient), "file:line: why"
    clipped: tuple[str, ...] = ()  # events clipped to their recording's end (lenient), likewise


class Catalog:
    """A catalog directory (see module docstring). Cheap to construct; reads files on demand."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self.recordings_path = self.root / "recordings.parquet"
        self.events_path = self.root / "events.parquet"
        self.label_map_path = self.root / "label_map.csv"

    # ---- reading --------------------------------------------------------------------------
    def recordings(self) -> pd.DataFrame:
        """All recordings (an empty table with the catalog's columns when nothing is imported)."""
        if not self.recordings_path.exists():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RECORDING_COLUMNS})
        table = pd.read_parquet(self.recordings_path)
        for column in set(RECORDING_COLUMNS) - set(table.columns):  # a catalog from before `role`
            table[column] = ""
        return table

    def events(self) -> pd.DataFrame:
        """All events (canonical columns plus ``dataset``, ``recording_id``, ``note``)."""
        if not self.events_path.exists():
            table = make_events([])
            for column in ("dataset", "recording_id", "note"):
                table[column] = pd.Series(dtype=object)
            return table
        return pd.read_parquet(self.events_path)

    def label_map(self) -> pd.DataFrame:
        """``dataset, source, label, taxon, n_events`` (empty when nothing is imported)."""
        if not self.label_map_path.exists():
            return pd.DataFrame(columns=["dataset", "source", "label", "taxon", "n_events"])
        return pd.read_csv(self.label_map_path, dtype=str, keep_default_na=False).astype(
            {"n_events": int}
        )

    def query(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` in DuckDB over the views ``recordings``, ``events`` and ``label_map``.

        Raises:
            FileNotFoundError: the catalog has no tables yet (naming the folder).
        """
        import duckdb

        if not self.recordings_path.exists():
            raise FileNotFoundError(f"catalog {self.root} is empty: run `biomae data import` first")
        with duckdb.connect() as con:
            for view, path in (("recordings", self.recordings_path), ("events", self.events_path)):
                con.execute(
                    f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{_sql_path(path)}')"
                )
            con.execute(  # empty CSV cells would read as NULL: keep them "" like the Parquet
                "CREATE VIEW label_map AS SELECT coalesce(dataset, '') AS dataset, "
                "coalesce(source, '') AS source, coalesce(label, '') AS label, "
                "coalesce(taxon, '') AS taxon, CAST(n_events AS BIGINT) AS n_events FROM "
                f"read_csv('{_sql_path(self.label_map_path)}', header=true, all_varchar=true)"
            )
            return con.execute(sql).df()

    def stats(self) -> pd.DataFrame:
        """Per dataset and taxon: recordings, hours, annotated hours, events, sample rates."""
        recordings, events = self.recordings(), self.events()
        counts = events.groupby("recording_id").size()
        recordings = recordings.assign(n_events=recordings["recording_id"].map(counts).fillna(0))
        grouped = recordings.groupby(["dataset", "taxon"], sort=True, dropna=False)
        table = grouped.agg(
            n_recordings=("recording_id", "size"),
            hours=("duration_s", lambda d: d.sum() / 3600),
            annotated_hours=("annotated_s", lambda d: d.sum() / 3600),
            n_events=("n_events", "sum"),
            sample_rates=("sample_rate", lambda r: ",".join(map(str, sorted(set(r))))),
        )
        return table.reset_index().astype({"n_events": int})

    def prepared_audio(self, sample_rate: int, dtype: str = "int16"):
        """The :class:`~biomae.datasets.prepared.PreparedAudio` store of this catalog at
        ``sample_rate`` Hz, which training memory-maps with ``data.prepared = true``."""
        from biomae.datasets.prepared import PreparedAudio

        return PreparedAudio(self.root / "prepared", sample_rate, dtype)

    # ---- writing --------------------------------------------------------------------------
    def prepare_audio(
        self,
        sample_rate: int,
        *,
        dtype: str = "int16",
        where: str | None = None,
        workers: int = 2,
        progress=None,
    ):
        """Decode and resample the catalog's recordings (those of the SQL condition ``where`` on
        the ``recordings`` view, e.g. ``"dataset = 'shared'"``) into the store of
        :meth:`prepared_audio`; already prepared ones are skipped, failures reported in the
        returned :class:`~biomae.datasets.prepared.PrepareSummary`.

        Raises:
            FileNotFoundError: the catalog is empty.
        """
        if not self.recordings_path.exists():
            raise FileNotFoundError(f"catalog {self.root} is empty: run `biomae data import` first")
        table = (
            self.query(f"SELECT * FROM recordings WHERE {where}") if where else self.recordings()
        )
        store = self.prepared_audio(sample_rate, dtype)
        return store.prepare(table, base=self.root, workers=workers, progress=progress)

    def import_dataset(
        self, name: str, path: str | Path, *, threads: int = 2, lenient: bool = False
    ) -> ImportSummary:
        """Import dataset ``name`` (a registered adapter) from its local copy at ``path``.

        Replaces every row of ``name`` already in the catalog. A malformed annotation row raises
        (naming file and line); ``lenient=True`` skips it and lists it in ``summary.skipped``.
        """
        from biomae.annotations import lenient_reading
        from biomae.datasets.registry import get_adapter

        adapter = get_adapter(name)
        with lenient_reading() if lenient else contextlib.nullcontext([]) as skipped:
            recordings, events = adapter.load(path)
        summary = self.add(name, recordings, events, license=adapter.license, threads=threads)
        return replace(summary, skipped=tuple(skipped))

    def add(
        self,
        dataset: str,
        recordings: pd.DataFrame,
        events: pd.DataFrame,
        *,
        replace: str = "dataset",
        license: str = "",
        threads: int = 2,
    ) -> ImportSummary:
        """Add an adapter-style ``(recordings, events)`` pair under ``dataset``.

        Args:
            replace: ``"dataset"`` drops all earlier rows of ``dataset``; ``"paths"`` drops only
                earlier rows of ``dataset`` with the same paths (adding files to a dataset).
            license: default for recordings whose ``license`` is empty.
        """
        if replace not in ("dataset", "paths"):
            raise ValueError(f"replace must be 'dataset' or 'paths', got {replace!r}")
        new_recordings = describe_recordings(recordings, dataset, license=license, threads=threads)
        new_events = attach_events(events, new_recordings, dataset)
        old_recordings, old_events = self.recordings(), self.events()
        if replace == "dataset":
            drop = old_recordings["dataset"] == dataset
        else:
            drop = (old_recordings["dataset"] == dataset) & old_recordings["path"].isin(
                new_recordings["path"]
            )
        dropped_ids = set(old_recordings.loc[drop, "recording_id"])
        kept_recordings = old_recordings[~drop]
        kept_events = old_events[~old_events["recording_id"].isin(dropped_ids)]
        earlier = dict(
            zip(kept_recordings["checksum"], kept_recordings["recording_id"], strict=True)
        )
        unflagged = new_recordings["duplicate_of"] == ""
        new_recordings.loc[unflagged, "duplicate_of"] = [  # same audio already in the catalog
            earlier.get(checksum, "") for checksum in new_recordings.loc[unflagged, "checksum"]
        ]
        all_recordings = _concat(kept_recordings, new_recordings)
        all_events = _concat(kept_events, new_events)
        self.root.mkdir(parents=True, exist_ok=True)
        _write_parquet(all_events, self.events_path)
        _write_parquet(all_recordings, self.recordings_path)
        self._write_label_map(all_events)
        return ImportSummary(
            dataset=dataset,
            n_recordings=len(new_recordings),
            n_events=len(new_events),
            hours=float(new_recordings["duration_s"].sum() / 3600),
            replaced_recordings=len(dropped_ids),
            n_duplicates=int((new_recordings["duplicate_of"] != "").sum()),
        )

    def _write_label_map(self, events: pd.DataFrame) -> None:
        keys = ["dataset", "source", "label"]
        labelled = events[events["label"] != ""]
        rows = []
        for (dataset, source, label), group in labelled.groupby(keys, sort=True):
            taxa = group["taxon"][group["taxon"] != ""]
            taxon = taxa.mode().iloc[0] if len(taxa) else ""
            rows.append((dataset, source, label, taxon, len(group)))
        table = pd.DataFrame(rows, columns=[*keys, "taxon", "n_events"])
        old = self.label_map()
        edited = {
            (d, s, lab): t
            for d, s, lab, t in zip(
                old["dataset"], old["source"], old["label"], old["taxon"], strict=False
            )
            if t
        }
        table["taxon"] = [
            edited.get(key, t)
            for key, t in zip(
                zip(table["dataset"], table["source"], table["label"], strict=False),
                table["taxon"],
                strict=False,
            )
        ]
        with atomic_open(self.label_map_path) as handle:
            table.to_csv(handle, index=False)


def _concat(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if len(old) == 0:
        return new.reset_index(drop=True)
    return pd.concat([old, new], ignore_index=True)


def _write_parquet(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
