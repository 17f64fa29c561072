"""Detectors that wrap another one and rework its events per recording (the noise-floor gate,
labels from examples, few-shot detection) share one ``detect_many``: :func:`map_events`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from biomae.audio import AudioInfo


def map_events(
    detector,
    paths: Iterable[str | Path],
    infos: Sequence[AudioInfo | None] | None,
    rework: Callable[[str | Path, pd.DataFrame, AudioInfo | None], pd.DataFrame],
) -> Iterator[tuple[str | Path, object]]:
    """``detector.detect_many(paths, infos)`` with each recording's events passed through
    ``rework(path, events, info)``. A recording's error (the inner detector's, or one raised by
    ``rework``) is yielded in place of its events; the other recordings go on."""
    paths = list(paths)
    infos = [None] * len(paths) if infos is None else list(infos)
    for info, (path, events) in zip(infos, detector.detect_many(paths, infos), strict=True):
        if isinstance(events, Exception):
            yield path, events
            continue
        try:
            yield path, rework(path, events, info)
        except Exception as err:  # reported for this recording; the others go on
            yield path, err
