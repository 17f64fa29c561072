"""``biomae data add``: a local folder of recordings with annotation files beside them.

**Matching rule**: the annotation of ``dir/NAME.wav`` (any audio suffix) is ``dir/NAME<SUFFIX>``,
where ``<SUFFIX>`` is the format module's ``SUFFIX`` (``.selections.txt`` for Raven, which also
accepts Raven's own ``NAME.Table.1.selections.txt``; ``.labels.txt`` for Audacity, ...). Audio
without an annotation file is registered as unlabeled (annotation ``"none"``); a recording with one
counts as fully annotated. Adding again replaces the rows of the same (dataset, path) and keeps the
rest of the dataset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from biomae.annotations import make_events
from biomae.datasets.catalog import Catalog, ImportSummary


def import_paths(
    catalog: Catalog,
    paths: list[str | Path],
    fmt: str,
    *,
    dataset: str = "local",
    lenient: bool = False,
) -> ImportSummary:
    """Add audio files (or folders of them, searched recursively) to ``catalog`` under
    ``dataset``, each with its annotation file of format ``fmt`` (see the module docstring).
    A malformed annotation row raises (naming file and line); ``lenient=True`` skips it and lists
    it in the summary's ``skipped``.

    Raises:
        FileNotFoundError: a path that is neither an audio file nor a folder, or no audio at all.
    """
    from biomae.annotations import format_module, read_annotations
    from biomae.datasets.registry import AUDIO_SUFFIXES, audio_files

    module = format_module(fmt)
    suffixes = [getattr(module, "SUFFIX", "")] + (
        [".Table.1.selections.txt"] if fmt == "raven" else []
    )
    suffixes = [s for s in suffixes if s] or [".txt"]
    audio: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            audio += audio_files(given.resolve())
        elif given.is_file() and given.suffix.lower() in AUDIO_SUFFIXES:
            audio.append(given.resolve())
        else:
            raise FileNotFoundError(
                f"{given}: not an audio file ({', '.join(AUDIO_SUFFIXES)}) or folder"
            )
    if not audio:
        raise FileNotFoundError(f"no audio files in {', '.join(map(str, paths))}")
    statuses, tables, skipped = [], [], []
    for path in audio:
        stem = path.name[: -len(path.suffix)]
        candidates = [path.parent / f"{stem}{suffix}" for suffix in suffixes]
        match = next((c for c in candidates if c.is_file()), None)
        statuses.append("none" if match is None else "full")
        if match is not None:
            events = read_annotations(match, fmt, lenient=lenient)
            skipped += events.attrs.get("skipped", [])
            events["recording"] = str(path)
            tables.append(events)
    recordings = pd.DataFrame({"path": [str(p) for p in audio], "annotation": statuses})
    events = make_events(pd.concat(tables, ignore_index=True)) if tables else make_events([])
    summary = catalog.add(dataset, recordings, events, replace="paths")
    return replace(summary, skipped=tuple(skipped))
