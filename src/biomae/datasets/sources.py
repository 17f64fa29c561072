"""Where the clonable public sources come from, and the helpers their adapters share.

Each :data:`SOURCES` entry names a registered adapter (:mod:`biomae.datasets.adapters_sources`),
the folder names a copy may have under a folder of clones (``git clone`` names it after the
repository; ``OWNER+NAME`` is accepted too), and the commands that fetch it.
:func:`sources_status` says which are present under a folder and what to run for the others
(``biomae data sources --root DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from biomae.annotations import concat_events, make_events
from biomae.datasets.layouts import clip_events
from biomae.datasets.registry import (
    ConvertFn,
    DatasetAdapter,
    LayoutError,
    audio_files,
    recordings_table,
    register,
    require,
)

ROLES = ("calls", "background", "negative")


@dataclass(frozen=True)
class Source:
    """Where a registered dataset's copy comes from: ``folders`` (names of the copy under a
    folder of clones, first is the default) and ``get`` (shell commands run in that folder)."""

    dataset: str
    folders: tuple[str, ...]
    get: tuple[str, ...]


SOURCES: list[Source] = []


def _clips(
    audio: list[Path], labels: list[str], roles: list[str], taxa: list[str], licenses: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recordings + whole-clip events; ``calls`` clips get a clip label, the others none."""
    recordings = recordings_table(
        audio,
        annotation=["clip" if r == "calls" else "none" for r in roles],
        label=labels,
        role=roles,
        taxon=taxa,
        license=licenses,
    )
    called = [i for i, r in enumerate(roles) if r == "calls"]
    events = [clip_events([audio[i]], [labels[i]], taxa[i]) for i in called] or [make_events([])]
    return recordings, concat_events(events)


def _adapter(name: str, source: Source, *, convert: ConvertFn, layout: str, **meta) -> None:
    register(
        DatasetAdapter(
            name=name, layout=layout, convert=convert, task="classification",
            annotation_format="clip labels", **meta,
        )
    )  # fmt: skip
    SOURCES.append(source)


def _read_csv(path: Path, layout: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(require(path, "metadata table", layout), dtype=str, **kwargs).fillna("")


def _under(root: Path, folder: str, layout: str) -> list[Path]:
    found = audio_files(require(root / folder, "audio folder", layout))
    if not found:
        raise LayoutError(f"no audio files under {root / folder}\nexpected layout:\n{layout}")
    return found


def find_source(root: str | Path, source: Source) -> Path | None:
    """The folder under ``root`` holding ``source`` (the first of its folder names present)."""
    for name in source.folders:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return None


def sources_status(root: str | Path) -> list[dict]:
    """One row per source: ``dataset``, ``path`` (None when missing) and ``get`` (commands)."""
    from biomae.datasets.registry import ensure_loaded

    ensure_loaded()  # the adapters add their sources on import
    return [{"dataset": s.dataset, "path": find_source(root, s), "get": s.get} for s in SOURCES]
