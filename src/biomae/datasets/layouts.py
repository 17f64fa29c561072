"""Generic dataset layouts: factories that build an adapter's ``convert(root)`` function.

Most public datasets use one of a few layouts:

- :func:`paired_files` — each audio file has an annotation file of one format somewhere under the
  root (Raven tables of the annotated-soundscape collections, Audacity labels, ``.not.mat``, TIMIT
  ``.phn``, WhisperSeg JSON, DCASE CSVs). **Matching rule**: an annotation file belongs to the
  audio file whose name without its audio suffix equals the annotation file's name without the
  annotation suffix (``a.wav`` <- ``a.Table.1.selections.txt``; ``a.cbin`` or ``a.cbin.flac`` <-
  ``a.cbin.not.mat``). Both are searched anywhere under the root, so annotation folders that mirror
  the audio folders work; a name seen twice is an error (it would be ambiguous). A file ending in
  the first (specific) suffix without audio is an error; one matching only a later, generic
  suffix (a ``README.txt`` beside ``.txt`` labels) is skipped with a warning naming it.
- :func:`one_table` — one CSV for the whole dataset with a file column and time columns (the Zenodo
  collections' ``annotations.csv``, RFCx, Orcasound, Egyptian fruit bats in samples).
- :func:`clip_folders` / :func:`clip_table` — one label per clip, from its folder or a metadata CSV.
- :func:`unlabeled` — audio only (pretraining).

Every factory returns ``convert(root) -> (recordings, events)`` as described in
:mod:`biomae.datasets.registry`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from biomae.annotations import concat_events, make_events, read_annotations
from biomae.datasets.registry import (
    AUDIO_SUFFIXES,
    ConvertFn,
    LayoutError,
    audio_files,
    find_audio,
    recordings_table,
    require,
)

PathMeta = Callable[[Path], str]


def parent_name(level: int = 1) -> PathMeta:
    """A function giving the name of the ``level``-th parent folder of a path (1 = its folder)."""
    if level < 1:
        raise ValueError(f"parent level must be >= 1, got {level}")
    return lambda path: path.parents[level - 1].name


def _audio_key(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix.lower() in AUDIO_SUFFIXES else path.name


def _annotation_key(path: Path, suffixes: Sequence[str]) -> str | None:
    lower = path.name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix.lower()) and len(lower) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def _index(paths: Sequence[Path], key: Callable[[Path], str | None], what: str) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in paths:
        name = key(path)
        if name is None:
            continue
        if name in index:
            raise LayoutError(f"two {what} files share the name {name!r}: {index[name]} and {path}")
        index[name] = path
    return index


def _durations_s(paths: Sequence[Path]) -> list[float]:
    from biomae.audio import info

    return [info(p).duration_s for p in paths]


def _apply_meta(table: pd.DataFrame, paths: Sequence[Path], meta: Mapping[str, PathMeta]) -> None:
    for column, fn in meta.items():
        table[column] = [fn(p) for p in paths]


def paired_files(
    fmt: str,
    suffixes: Sequence[str],
    layout: str,
    *,
    read_options: Mapping | None = None,
    annotation: str = "full",
    unpaired: str = "none",
    taxon: str = "",
    path_meta: Mapping[str, PathMeta] | None = None,
    audio_suffixes: Sequence[str] = AUDIO_SUFFIXES,
) -> ConvertFn:
    """Audio files with annotation files of format ``fmt`` matched by name (see module docstring).

    Args:
        fmt: annotation format (key of ``biomae.annotations.FORMATS``).
        suffixes: annotation file endings, e.g. ``(".Table.1.selections.txt",)``.
        layout: the expected layout (quoted in errors).
        read_options: passed to the format reader.
        annotation: status of paired recordings (``"full"`` or ``"partial"``).
        unpaired: what audio without annotation file is: ``"none"`` (registered unlabeled) or
            ``"error"`` (raise naming it).
        taxon: set on events that have none (single-species datasets).
        path_meta: recording columns computed from the audio path, e.g.
            ``{"individual": parent_name(2)}``.
        audio_suffixes: which files are audio.
    """
    if unpaired not in ("none", "error"):
        raise ValueError(f"unpaired must be 'none' or 'error', got {unpaired!r}")

    def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        audio = audio_files(root, audio_suffixes)
        annotations = _index(
            sorted(root.rglob("*")), lambda p: _annotation_key(p, suffixes), "annotation"
        )
        by_key = _index(audio, _audio_key, "audio")
        orphans = sorted(set(annotations) - set(by_key))
        main = [k for k in orphans if annotations[k].name.lower().endswith(suffixes[0].lower())]
        if main:
            raise LayoutError(
                f"annotation file {annotations[main[0]]} has no audio file named "
                f"{main[0]}.wav/.flac/... under {root} ({len(main)} such file(s))\n"
                f"expected layout:\n{layout}"
            )
        if orphans:  # e.g. a README.txt beside .txt label files: skipped, but not silently
            warnings.warn(
                f"{len(orphans)} file(s) ending in {'/'.join(suffixes[1:])} have no audio file of "
                f"the same name under {root} and are not imported, e.g. {annotations[orphans[0]]}",
                stacklevel=3,
            )
            for key in orphans:
                del annotations[key]
        status = [annotation if _audio_key(p) in annotations else "none" for p in audio]
        if unpaired == "error" and "none" in status:
            missing = audio[status.index("none")]
            raise LayoutError(
                f"audio file {missing} has no annotation file ({', '.join(suffixes)})"
            )
        tables = []
        for key, path in sorted(annotations.items()):
            events = read_annotations(path, fmt, **dict(read_options or {}))
            events["recording"] = str(by_key[key])
            tables.append(events)
        events = make_events(concat_events(tables))
        if taxon:
            events.loc[events["taxon"] == "", "taxon"] = taxon
        recordings = recordings_table(audio, annotation=status, taxon=taxon)
        _apply_meta(recordings, audio, path_meta or {})
        return recordings, events

    return convert


def one_table(
    table: str,
    layout: str,
    *,
    audio_dir: str = ".",
    file_column: str,
    start_column: str,
    end_column: str | None = None,
    duration_column: str | None = None,
    low_column: str | None = None,
    high_column: str | None = None,
    label_column: str | None = None,
    individual_column: str | None = None,
    file_suffix: str = "",
    time_unit: str = "s",
    sep: str = ",",
    annotation: str = "full",
    taxon: str = "",
    file_map: Callable[[Path], Mapping[str, str]] | None = None,
) -> ConvertFn:
    """One annotation table for the whole dataset (glob ``table`` under the root, concatenated).

    Args:
        table: glob of the table file(s) relative to the root, e.g. ``"annotations.csv"``.
        audio_dir: folder (relative to the root) holding the audio files named in ``file_column``.
        file_column / start_column / end_column or duration_column / low_column / high_column /
            label_column / individual_column: column names in the table.
        file_suffix: appended to the file column's values (tables that give IDs, not file names).
        time_unit: ``"s"`` or ``"samples"`` (converted with each file's sample rate).
        annotation: status of the audio files named in the table; other audio is unlabeled.
        file_map: ``file_map(root)`` maps the file column's values to file names (ID tables).
    """
    if (end_column is None) == (duration_column is None):
        raise ValueError("give exactly one of end_column and duration_column")
    if time_unit not in ("s", "samples"):
        raise ValueError(f"time_unit must be 's' or 'samples', got {time_unit!r}")

    def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        files = sorted(root.glob(table))
        if not files:
            raise LayoutError(
                f"missing annotation table {root / table}\nexpected layout:\n{layout}"
            )
        rows = pd.concat([pd.read_csv(f, sep=sep, dtype=str) for f in files], ignore_index=True)
        needed = [c for c in (file_column, start_column, end_column, duration_column) if c]
        needed += [c for c in (low_column, high_column, label_column, individual_column) if c]
        absent = [c for c in needed if c not in rows.columns]
        if absent:
            raise LayoutError(f"{files[0]}: missing column(s) {absent}; has {list(rows.columns)}")
        folder = require(root / audio_dir, "audio folder", layout)
        names = rows[file_column].astype(str).str.strip()
        if file_map is not None:
            mapping = file_map(root)
            names = names.map(lambda n: mapping.get(n, n))
        paths = {n: find_audio(folder, n + file_suffix, layout) for n in sorted(set(names))}
        start = pd.to_numeric(rows[start_column], errors="raise")
        if end_column:
            end = pd.to_numeric(rows[end_column], errors="raise")
        else:
            end = start + pd.to_numeric(rows[duration_column], errors="raise")
        if time_unit == "samples":
            from biomae.audio import info

            rate = names.map({n: info(p).sample_rate for n, p in paths.items()}).astype(float)
            start, end = start / rate, end / rate
        columns = {"recording": names.map(lambda n: str(paths[n])), "start_s": start, "end_s": end}
        if low_column and high_column:
            columns["low_hz"] = pd.to_numeric(rows[low_column], errors="raise")
            columns["high_hz"] = pd.to_numeric(rows[high_column], errors="raise")
        if label_column:
            columns["label"] = rows[label_column]
        if individual_column:
            columns["individual"] = rows[individual_column]
        events = make_events(columns, taxon=taxon)
        annotated = set(map(str, paths.values()))
        audio = sorted(set(audio_files(folder)) | set(paths.values()))
        status = [annotation if str(p) in annotated else "none" for p in audio]
        return recordings_table(audio, annotation=status, taxon=taxon), events

    return convert


def clip_events(paths: Sequence[Path], labels: Sequence[str], taxon: str) -> pd.DataFrame:
    durations = _durations_s(paths)
    return make_events(
        {
            "recording": [str(p) for p in paths],
            "start_s": [0.0] * len(paths),
            "end_s": durations,
            "label": list(labels),
        },
        taxon=taxon,
    )


def clip_folders(layout: str, *, taxon: str = "", label_level: int = 1) -> ConvertFn:
    """One label per clip, the name of its ``label_level``-th parent folder (1 = its folder).

    Each clip becomes one event spanning the whole file (annotation status ``"clip"``).
    """
    label_of = parent_name(label_level)

    def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        audio = audio_files(root)
        shallow = [p for p in audio if len(p.relative_to(root).parts) <= label_level]
        if shallow:
            raise LayoutError(
                f"audio file {shallow[0]} is not inside a label folder\nexpected layout:\n{layout}"
            )
        labels = [label_of(p) for p in audio]
        recordings = recordings_table(audio, annotation="clip", taxon=taxon)
        recordings["label"] = labels
        return recordings, clip_events(audio, labels, taxon)

    return convert


def clip_table(
    table: str,
    layout: str,
    *,
    audio_dir: str,
    file_column: str,
    label_column: str,
    split_column: str | None = None,
    file_suffix: str = "",
    taxon: str = "",
) -> ConvertFn:
    """One label per clip from a metadata table (ESC-50's ``meta/esc50.csv`` and the like).

    Clips not named in the table are registered as unlabeled.
    """

    def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        path = require(root / table, "metadata table", layout)
        rows = pd.read_csv(path, dtype=str)
        absent = [c for c in (file_column, label_column, split_column) if c and c not in rows]
        if absent:
            raise LayoutError(f"{path}: missing column(s) {absent}; has {list(rows.columns)}")
        folder = require(root / audio_dir, "audio folder", layout)
        paths = [
            find_audio(folder, str(n).strip() + file_suffix, layout) for n in rows[file_column]
        ]
        labels = rows[label_column].astype(str).tolist()
        recordings = recordings_table(paths, annotation="clip", taxon=taxon)
        recordings["label"] = labels
        if split_column:
            recordings["split"] = rows[split_column].astype(str).tolist()
        others = sorted(set(audio_files(folder)) - set(paths))
        if others:
            extra = recordings_table(others, annotation="none", taxon=taxon)
            recordings = pd.concat([recordings, extra], ignore_index=True)
        return recordings, clip_events(paths, labels, taxon)

    return convert


def unlabeled(layout: str, *, taxon: str = "") -> ConvertFn:
    """Audio files only, registered with annotation status ``"none"`` (for pretraining)."""

    def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        audio = audio_files(root)
        return recordings_table(audio, annotation="none", taxon=taxon), make_events([])

    return convert


def koumura(layout: str, *, taxon: str) -> ConvertFn:
    """Koumura & Okanoya's BirdsongRecognition: ``Bird*/Annotation.xml`` with ``Bird*/Wave/``."""

    def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        xmls = sorted(root.rglob("Annotation.xml"))
        if not xmls:
            raise LayoutError(f"no Annotation.xml under {root}\nexpected layout:\n{layout}")
        recordings, tables = [], []
        for xml in xmls:
            wave = require(xml.parent / "Wave", "Wave folder beside Annotation.xml", layout)
            events = read_annotations(xml, "koumura")
            names = sorted(set(events["recording"]))
            paths = {n: find_audio(wave, Path(n).name, layout) for n in names}
            events["recording"] = events["recording"].map(lambda n, p=paths: str(p[n]))
            tables.append(events)
            audio = audio_files(wave)
            status = ["full" if p in set(paths.values()) else "none" for p in audio]
            table = recordings_table(
                audio, annotation=status, taxon=taxon, individual=xml.parent.name
            )
            recordings.append(table)
        events = make_events(concat_events(tables))
        events.loc[events["taxon"] == "", "taxon"] = taxon
        return pd.concat(recordings, ignore_index=True), events

    return convert


def birdvox(layout: str) -> ConvertFn:
    """BirdVox-full-night: ``*_wav-audio_unitNN.*`` with ``*_csv-annotations_unitNN.csv``."""

    def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        tables = sorted(root.rglob("*csv-annotations_unit*.csv"))
        if not tables:
            raise LayoutError(f"no *csv-annotations_unitNN.csv under {root}\nexpected:\n{layout}")
        audio, events = [], []
        for table in tables:
            unit = table.stem.rsplit("_", 1)[-1]
            stem = table.name.replace("csv-annotations", "wav-audio")[: -len(".csv")]
            path = find_audio(table.parent, stem, layout)
            found = read_annotations(table, "birdvox")
            found["recording"] = str(path)
            found["individual"] = ""
            events.append(found)
            audio.append((path, unit))
        recordings = recordings_table([p for p, _ in audio], annotation="full")
        recordings["site"] = [u for _, u in audio]
        return recordings, make_events(concat_events(events))

    return convert
