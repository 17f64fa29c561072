"""The registry of public bioacoustic datasets: one :class:`DatasetAdapter` per dataset.

An adapter knows where a dataset is published (users download it themselves; nothing is downloaded
at run time), how its local copy is laid out, and how to convert that copy into two tables:

- ``recordings``: one row per audio file, column ``path`` (absolute path string) plus any of
  :data:`RECORDING_METADATA` (``annotation`` is ``"full"`` — every sound in ``regions`` is boxed,
  ``"partial"`` — boxes exist but others may be missing, ``"clip"`` — one label for the whole file,
  or ``"none"`` — unlabeled; ``regions`` is a list of ``[start_s, end_s]`` spans annotated
  exhaustively, ``None`` meaning the whole file when ``annotation`` is ``"full"``; ``role`` is
  ``calls``, ``background`` or ``negative`` where the adapter knows it).
- ``events``: the canonical event table (:mod:`biomae.annotations.schema`) whose ``recording``
  column equals the ``path`` of its recording.

When the layout is wrong, ``convert`` raises :class:`LayoutError` naming the missing file or folder
and the layout the adapter expects. Adapters are defined in :mod:`biomae.datasets.adapters` using
the generic layouts of :mod:`biomae.datasets.layouts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from biomae import audio as audio_io

TASKS = ("detection", "classification", "unlabeled")
ANNOTATION_STATUS = ("full", "partial", "clip", "none")
# optional columns of a recordings table (the catalog fills what an adapter leaves out)
RECORDING_METADATA = (
    "annotation",
    "regions",
    "taxon",
    "site",
    "individual",
    "label",
    "split",
    "license",
    "role",
    "duplicate_of",
    "note",
)
# what libsndfile reads (biomae.audio), and evsonganaly's raw .cbin, which datasets pair by name
AUDIO_SUFFIXES = (*audio_io.AUDIO_SUFFIXES, ".cbin")

ConvertFn = Callable[[Path], tuple[pd.DataFrame, pd.DataFrame]]


class LayoutError(FileNotFoundError):
    """A dataset's local copy is not laid out as its adapter expects (the message says what)."""


@dataclass(frozen=True)
class DatasetAdapter:
    """One public dataset: honest metadata and a converter of its local copy.

    Attributes:
        name: short key used on the command line (``biomae data import NAME PATH``).
        title: the dataset's published title.
        citation: how to cite it ("see URL" where the reference could not be checked).
        license: the license of the data as published.
        taxa: what it records, scientific names where one taxon dominates.
        url: where to obtain it (download it yourself).
        annotation_format: the native annotation format (a key of ``biomae.annotations.FORMATS``,
            or a short description for dataset-specific tables).
        layout: the local layout ``convert`` expects, as a short text tree.
        task: ``detection`` (time boxes), ``classification`` (clip labels) or ``unlabeled``.
        convert: ``convert(root) -> (recordings, events)``; see the module docstring.
        note: anything a user should know (partial annotation, format caveats).
    """

    name: str
    title: str
    citation: str
    license: str
    taxa: str
    url: str
    annotation_format: str
    layout: str
    task: Literal["detection", "classification", "unlabeled"]
    convert: ConvertFn = field(repr=False)
    note: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in " /\\:"):
            raise ValueError(f"dataset name {self.name!r} must be non-empty without spaces, / or :")
        if self.task not in TASKS:
            raise ValueError(f"dataset {self.name}: task {self.task!r} is not one of {TASKS}")
        if not callable(self.convert):
            raise ValueError(f"dataset {self.name}: convert must be callable")

    def load(self, root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Convert the local copy at ``root``; checks that it exists and the tables are coherent.

        Raises:
            LayoutError: ``root`` is missing, or the layout does not match (naming the path).
        """
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise LayoutError(f"{self.name}: dataset folder {root} does not exist\n{self.layout}")
        recordings, events = self.convert(root)
        if "path" not in recordings.columns:
            raise ValueError(f"{self.name}: convert returned recordings without a 'path' column")
        if len(recordings) == 0:
            raise LayoutError(
                f"{self.name}: no audio files found under {root}; expected\n{self.layout}"
            )
        unknown = set(events["recording"]) - set(recordings["path"])
        if unknown:
            raise LayoutError(
                f"{self.name}: {len(unknown)} annotated recording(s) have no audio file, "
                f"e.g. {sorted(unknown)[0]}; expected layout\n{self.layout}"
            )
        return recordings, events


REGISTRY: dict[str, DatasetAdapter] = {}


def register_layout(
    name: str, title: str, citation: str, license: str, taxa: str, url: str, note: str, **layout
) -> DatasetAdapter:
    """Register a dataset read by a generic layout: its metadata, and ``annotation_format``,
    ``layout``, ``task`` and ``convert`` from the layout family (see ``layouts.py``)."""
    return register(
        DatasetAdapter(
            name=name, title=title, citation=citation, license=license, taxa=taxa, url=url,
            note=note, **layout,
        )
    )  # fmt: skip


def register(adapter: DatasetAdapter) -> DatasetAdapter:
    """Add ``adapter`` to :data:`REGISTRY` (a name may be registered once)."""
    if adapter.name in REGISTRY:
        raise ValueError(f"dataset {adapter.name!r} is already registered")
    REGISTRY[adapter.name] = adapter
    return adapter


def ensure_loaded() -> None:
    # the adapter modules register themselves on import
    from biomae.datasets import adapters, adapters_sources, adapters_tables, shared  # noqa: F401


def get_adapter(name: str) -> DatasetAdapter:
    """The adapter called ``name``.

    Raises:
        KeyError: naming the unknown dataset and the known ones.
    """
    ensure_loaded()
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def list_adapters() -> list[DatasetAdapter]:
    """All registered adapters, sorted by name."""
    ensure_loaded()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


# ---- helpers for adapters -------------------------------------------------------------------


def require(path: Path, what: str, layout: str) -> Path:
    """``path`` if it exists, else :class:`LayoutError` naming it, what it is and the layout."""
    if not path.exists():
        raise LayoutError(f"missing {what}: {path}\nexpected layout:\n{layout}")
    return path


def audio_files(root: Path, suffixes: Iterable[str] = AUDIO_SUFFIXES) -> list[Path]:
    """Every audio file under ``root`` (recursive, case-insensitive suffixes), sorted."""
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file())


def find_audio(folder: Path, stem: str, layout: str) -> Path:
    """The audio file ``folder/stem.<any audio suffix>`` (a converted copy may be FLAC, not WAV).

    ``stem`` may carry its own suffix (``"a.wav"``): that exact name is preferred, then the same
    stem with any other audio suffix.

    Raises:
        LayoutError: naming the file looked for.
    """
    exact = folder / stem
    if exact.suffix.lower() in AUDIO_SUFFIXES and exact.is_file():
        return exact
    base = exact.stem if exact.suffix.lower() in AUDIO_SUFFIXES else exact.name
    for suffix in AUDIO_SUFFIXES:
        for candidate in (folder / f"{base}{suffix}", folder / f"{base}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    raise LayoutError(
        f"missing audio file {folder / stem} (also tried {base}.wav/.flac/...)\n"
        f"expected layout:\n{layout}"
    )


def recordings_table(paths: Iterable[Path], **columns) -> pd.DataFrame:
    """A recordings table for ``paths``; each of ``columns`` is a scalar for every row (e.g.
    ``annotation="full"``) or a list with one value per path."""
    table = pd.DataFrame({"path": [str(p) for p in paths]})
    for name, value in columns.items():
        if isinstance(value, list) and len(value) != len(table):
            raise ValueError(f"column {name}: {len(value)} values for {len(table)} recordings")
        table[name] = value
    return table
