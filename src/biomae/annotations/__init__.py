"""Annotation formats: one event table (:mod:`.schema`) and a reader/writer pair per format.

Each format is a module here defining ``read(path, **options) -> events`` and, when the format is
writable, ``write(events, path, **options)`` plus ``SUFFIX`` (the file ending a writer uses, by
which ``biomae data add`` pairs tables with recordings). A writable module may also declare
``WRITE_OPTIONS``, the recording facts its ``write`` takes (names of
:class:`biomae.audio.AudioInfo` fields, e.g. ``("sample_rate",)``), and ``OUTPUT_SUFFIX``, which
offers it to ``biomae annotate`` under that ending (:func:`output_suffixes`): adding an output
format is one module. The registry maps a format name to its module; modules are imported only
when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from biomae.annotations.format_helpers import lenient_reading
from biomae.annotations.schema import (
    EVENT_COLUMNS,
    Event,
    EventTableError,
    concat_events,
    empty_events,
    make_events,
    sort_events,
    validate_events,
)

# format name -> module in biomae.annotations
FORMATS: dict[str, str] = {
    "raven": "raven",  # Raven Pro selection table (.txt, tab-separated)
    "audacity": "audacity",  # Audacity label track (.txt), with spectral lines
    "csv": "tabular",  # biomae's canonical CSV (configurable column names when reading)
    "parquet": "tabular_parquet",  # biomae's canonical Parquet
    "textgrid": "textgrid",  # Praat TextGrid, interval tiers
    "koumura": "koumura",  # Koumura / BirdsongRecognition Annotation.xml
    "notmat": "notmat",  # evsonganaly .not.mat
    "whisperseg": "whisperseg",  # WhisperSeg JSON {onset, offset, cluster}
    "aoef": "aoef",  # soundevent AOEF JSON
    "dcase": "dcase",  # DCASE few-shot bioacoustic CSV
    "birdvox": "birdvox",  # BirdVox-full-night point annotations
    "rfcx": "rfcx",  # Rainforest Connection train_tp / train_fp CSV
    "cliplabels": "cliplabels",  # clip-label tables (ESC-50) and one-label-per-folder layouts
    "timit": "timit",  # TIMIT .phn / .wrd
}


def format_module(name: str) -> ModuleType:
    """The module that implements format ``name`` (a key of :data:`FORMATS`: a module of this
    package, or a dotted path such as ``"my_package.my_format"`` for a format kept elsewhere)."""
    if name not in FORMATS:
        raise ValueError(f"unknown annotation format {name!r}; known: {', '.join(sorted(FORMATS))}")
    module = FORMATS[name]
    return importlib.import_module(module if "." in module else f"biomae.annotations.{module}")


def read_annotations(path: str | Path, fmt: str, **options):
    """Read an annotation file of format ``fmt`` into an event table (see :mod:`.schema`)."""
    return format_module(fmt).read(path, **options)


def output_suffixes() -> dict[str, str]:
    """The formats ``biomae annotate`` writes, ``{name: per-recording file ending}``: those whose
    module declares ``OUTPUT_SUFFIX``, in :data:`FORMATS` order (imports every format module)."""
    modules = {name: format_module(name) for name in FORMATS}
    return {name: m.OUTPUT_SUFFIX for name, m in modules.items() if hasattr(m, "OUTPUT_SUFFIX")}


def write_annotations(events, path: str | Path, fmt: str, **options) -> Path:
    """Write ``events`` to ``path`` in format ``fmt``, atomically. Returns the path written."""
    module = format_module(fmt)
    if not hasattr(module, "write"):
        raise ValueError(f"annotation format {fmt!r} is read-only")
    module.write(events, Path(path), **options)
    return Path(path)


__all__ = [
    "EVENT_COLUMNS",
    "FORMATS",
    "Event",
    "EventTableError",
    "concat_events",
    "empty_events",
    "format_module",
    "lenient_reading",
    "make_events",
    "output_suffixes",
    "read_annotations",
    "sort_events",
    "validate_events",
    "write_annotations",
]
