"""Inputs of the synthesizer: call snippets cut from annotated recordings, and backgrounds.

See :mod:`biomae.datasets.synth` (step 1) for how snippets are cut and what is skipped.
"""

from __future__ import annotations

import glob
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from biomae.annotations.schema import make_events
from biomae.audio import AUDIO_SUFFIXES

if TYPE_CHECKING:
    from biomae.datasets.synth.place import SynthConfig


@dataclass(frozen=True)
class Snippet:
    """One call cut from a recording: ``audio`` ``(n,)`` float32 at the synth sample rate.

    The event runs from ``event_offset_s`` to ``event_offset_s + event_duration_s`` in the snippet.
    """

    audio: np.ndarray
    event_offset_s: float
    event_duration_s: float
    label: str
    taxon: str = ""
    low_hz: float = math.nan
    high_hz: float = math.nan
    origin: str = ""
    origin_start_s: float = 0.0

    def as_pair(self) -> tuple[np.ndarray, pd.DataFrame]:
        """``(audio, one-row event table)``, e.g. for a :class:`biomae.augment.Mix` pool."""
        row = {
            "recording": self.origin,
            "start_s": self.event_offset_s,
            "end_s": self.event_offset_s + self.event_duration_s,
            "low_hz": self.low_hz,
            "high_hz": self.high_hz,
            "label": self.label,
            "taxon": self.taxon,
        }
        return self.audio, make_events([row])


def read_event_csv(path: str | Path) -> pd.DataFrame:
    """Events from index/events.csv style (source, file, onset_s, offset_s, ...) or canonical CSV.

    Index-style rows become ``recording=file``, ``start_s=onset_s``, ``end_s=offset_s`` and keep
    ``source``.
    """
    table = pd.read_csv(path, keep_default_na=False, na_values={"low_hz": [""], "high_hz": [""]})
    if {"file", "onset_s", "offset_s"}.issubset(table.columns):
        table = table.rename(
            columns={"file": "recording", "onset_s": "start_s", "offset_s": "end_s"}
        )
    elif not {"recording", "start_s", "end_s"}.issubset(table.columns):
        raise ValueError(
            f"{path}: neither index-style (file, onset_s, offset_s) nor canonical "
            f"(recording, start_s, end_s) columns; found {list(table.columns)}"
        )
    return make_events(table)


def cut_snippets(
    events: pd.DataFrame, audio_root: str | Path, config: SynthConfig, rng: np.random.Generator
) -> tuple[list[Snippet], Counter]:
    """Cut snippets (module docstring, step 1) for at most ``config.max_snippets`` events.

    Returns:
        ``(snippets, skipped)``: ``skipped`` counts the events left out, by reason.
    """
    from biomae.audio import load

    skipped: Counter = Counter()
    keep = np.ones(len(events), dtype=bool)
    if config.sources:
        in_source = events["source"].isin(config.sources)
        if "dataset" in events.columns:
            in_source |= events["dataset"].isin(config.sources)
        keep &= in_source.to_numpy()
    if config.labels:
        keep &= events["label"].isin(config.labels).to_numpy()
    events = events[keep].reset_index(drop=True)
    if len(events) == 0:
        raise ValueError(
            f"no events left after filters sources={config.sources} labels={config.labels}"
        )
    chosen = np.zeros(len(events), dtype=bool)
    chosen[rng.permutation(len(events))[: config.max_snippets]] = True
    rate, nyquist_hz = config.sample_rate, config.sample_rate / 2
    snippets: list[Snippet] = []
    for recording, group in events.groupby("recording", sort=True):
        if not chosen[group.index].any():
            continue
        path = Path(audio_root) / recording
        audio, _ = load(path, sample_rate=rate)
        audio -= audio.mean()  # DC offset would count as signal power
        starts, ends = group["start_s"].to_numpy(), group["end_s"].to_numpy()
        picked = chosen[group.index]
        for i, row in zip(np.flatnonzero(picked), group[picked].itertuples(), strict=True):
            start_s, end_s = starts[i], ends[i]
            others = np.arange(len(group)) != i
            if np.any(others & (starts < end_s) & (ends > start_s)):
                skipped["overlaps another event"] += 1
                continue
            duration_s = end_s - start_s
            if not config.min_call_s <= duration_s <= config.max_call_s:
                skipped["duration outside min_call_s..max_call_s"] += 1
                continue
            if np.isfinite(row.low_hz) and config.band_hz is not None:
                if row.low_hz < config.band_hz[0] or row.high_hz > config.band_hz[1]:
                    skipped["band outside band_hz"] += 1
                    continue
            if np.isfinite(row.high_hz) and row.high_hz > nyquist_hz:
                skipped["band above the output Nyquist"] += 1
                continue
            if end_s * rate > len(audio) + 1:
                skipped["event past the end of its recording"] += 1
                continue
            before = ends[others & (ends <= start_s)]
            after = starts[others & (starts >= end_s)]
            margin_before = min(config.margin_s, start_s - (before.max() if len(before) else 0.0))
            margin_after = min(config.margin_s, (after.min() if len(after) else np.inf) - end_s)
            first = min(math.floor(start_s * rate), math.ceil((start_s - margin_before) * rate))
            last = max(math.ceil(end_s * rate), math.floor((end_s + margin_after) * rate))
            first, last = max(0, first), min(len(audio), last)
            piece = audio[first:last].copy()
            offset_s = start_s - first / rate
            event = slice(math.floor(offset_s * rate), math.ceil((offset_s + duration_s) * rate))
            if not np.any(piece[event]):
                skipped["silent"] += 1
                continue
            _fade_margins(piece, event, round(config.fade_s * rate))
            snippets.append(
                Snippet(
                    audio=piece,
                    event_offset_s=offset_s,
                    event_duration_s=duration_s,
                    label=str(row.label),
                    taxon=str(row.taxon),
                    low_hz=float(row.low_hz),
                    high_hz=float(row.high_hz),
                    origin=str(recording),
                    origin_start_s=float(start_s),
                )
            )
    return snippets, skipped


def _fade_margins(piece: np.ndarray, event: slice, fade_samples: int) -> None:
    """Raised-cosine fade-in before ``event.start`` and fade-out after ``event.stop``, in place."""
    n_in = min(fade_samples, max(event.start, 0))
    n_out = min(fade_samples, max(len(piece) - event.stop, 0))
    if n_in:
        piece[:n_in] *= 0.5 - 0.5 * np.cos(np.pi * (np.arange(n_in) + 0.5) / n_in)
    if n_out:
        piece[len(piece) - n_out :] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(n_out) + 0.5) / n_out)


def find_backgrounds(specs: tuple[str, ...] | list[str]) -> list[Path]:
    """Audio files under each folder (recursively) or matching each glob pattern, sorted."""
    paths: set[Path] = set()
    for spec in specs:
        if Path(spec).is_dir():
            found = [p for p in Path(spec).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES]
        else:
            found = [Path(p) for p in glob.glob(spec, recursive=True)]
        if not found:
            raise FileNotFoundError(
                f"backgrounds: {spec!r} matches no audio file ({AUDIO_SUFFIXES})"
            )
        paths.update(found)
    return sorted(paths)


def catalog_backgrounds(
    catalog_dir: str | Path, roles: tuple[str, ...], min_s: float
) -> list[Path]:
    """Paths of a catalog's recordings whose ``role`` is in ``roles`` and that last ``min_s``.

    Raises:
        FileNotFoundError: the catalog has none (naming the roles it does have).
    """
    from biomae.datasets.catalog import Catalog

    recordings = Catalog(catalog_dir).recordings()
    chosen = recordings[recordings["role"].isin(roles) & (recordings["duration_s"] >= min_s)]
    if chosen.empty:
        have = sorted(set(recordings["role"]) - {""})
        raise FileNotFoundError(
            f"backgrounds: catalog {catalog_dir} has no recording of role {list(roles)} lasting "
            f"{min_s:g} s or more (roles there: {have}); import sources with "
            "`biomae data sources --root DIR --import`"
        )
    return sorted(Path(p) for p in chosen["path"])


def load_backgrounds(
    paths: list[Path], config: SynthConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Load up to ``max_backgrounds`` randomly chosen files, resampled to ``config.sample_rate``."""
    from biomae.audio import load

    chosen = sorted(rng.permutation(len(paths))[: config.max_backgrounds])
    shortest = 2 * round(config.crossfade_s * config.sample_rate) + 1
    out = []
    for i in chosen:
        audio, _ = load(paths[i], sample_rate=config.sample_rate)
        audio -= audio.mean()  # a DC offset (common in field recorders) would count as noise power
        if len(audio) < shortest:
            raise ValueError(
                f"{paths[i]}: background of {len(audio)} samples is shorter than {shortest}"
            )
        out.append(audio)
    return out
