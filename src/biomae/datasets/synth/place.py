"""Placing calls: the generation config, the background, and one soundscape with its table.

See :mod:`biomae.datasets.synth` for the conventions (density, overlap, SNR, exact table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from biomae.annotations.schema import make_events, sort_events
from biomae.augment.mixing import snr_gain, stitch
from biomae.datasets.synth.sources import Snippet


@dataclass(frozen=True)
class SynthConfig:
    """How soundscapes are generated (module docstring) and, for the CLI, where inputs come from.

    Attributes:
        duration_s, sample_rate: length (s) and rate (Hz) of each soundscape.
        density_per_min: mean number of calls per minute (Poisson).
        overlap: probability in [0, 1] that a call is placed overlapping a placed call.
        snr_db: (low, high) dB, uniform per call.
        label_weights: label -> relative weight; None weighs the snippets' labels equally.
        margin_s, fade_s: context cut around each event and the fade within it (s).
        min_call_s, max_call_s: event duration filter (s).
        band_hz: (low, high); events with a band outside it are skipped (bandless events pass).
        crossfade_s: crossfade between background crops (s).
        floor_db: background power floor for the SNR, dB re full scale.
        max_tries: onset draws before a non-overlapping call is given up.
        events_path, audio_root: event CSV and the folder its file paths are relative to.
        catalog: a catalog folder (``biomae.datasets.catalog``) to take events from instead;
            its recording paths are absolute.
        backgrounds: folders or glob patterns of background recordings.
        sources, labels: keep only events of these sources (``source`` or, in a catalog,
            ``dataset``) / labels (empty keeps all).
        max_snippets, max_backgrounds: random subsets (by seed) to bound loading time.
        procedural_calls: generated calls added to the snippet pool
            (:func:`biomae.datasets.synth.calls.procedural_snippets`, labelled by kind).
        noise_background_prob: probability that a soundscape's background is generated coloured
            noise (:func:`biomae.datasets.synth.calls.noise_background`) instead of recordings.
        negative_prob: probability that a soundscape is a hard negative: a generated call-free
            sound (:func:`biomae.datasets.synth.negatives.hard_negative`: noise from −80 to −10
            dBFS, dithered silence, handling clicks, rain-like impulses), no call, empty table.
        background_catalog: a catalog folder whose recordings with a ``role`` in
            ``background_roles`` are backgrounds too (``biomae data sources --import`` sets roles).
        background_roles: the roles taken from ``background_catalog``.
        boundaries_only: with ``catalog``, cut snippets only from events with real boundaries:
            skip the whole-clip events of recordings whose annotation is still ``clip`` (derive
            boundaries first with ``biomae data derive``).
    """

    duration_s: float = 60.0
    sample_rate: int = 32000
    density_per_min: float = 20.0
    overlap: float = 0.2
    snr_db: tuple[float, float] = (-5.0, 20.0)
    label_weights: dict[str, float] | None = None
    margin_s: float = 0.02
    fade_s: float = 0.005
    min_call_s: float = 0.01
    max_call_s: float = 10.0
    band_hz: tuple[float, float] | None = None
    crossfade_s: float = 0.1
    floor_db: float = -100.0
    max_tries: int = 50
    events_path: str | None = None
    audio_root: str | None = None
    catalog: str | None = None
    backgrounds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    max_snippets: int = 500
    max_backgrounds: int = 50
    procedural_calls: int = 0
    noise_background_prob: float = 0.0
    negative_prob: float = 0.0
    background_catalog: str | None = None
    background_roles: tuple[str, ...] = ("background", "negative")
    boundaries_only: bool = False

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"SynthConfig: {message}")

        if (
            not self.duration_s > 0
            or int(self.sample_rate) != self.sample_rate
            or self.sample_rate <= 0
        ):
            fail(
                "need duration_s > 0 and an integer sample_rate > 0, got "
                f"{self.duration_s}, {self.sample_rate}"
            )
        if not self.density_per_min >= 0:
            fail(f"density_per_min must be >= 0, got {self.density_per_min}")
        if not 0 <= self.overlap <= 1:
            fail(f"overlap must lie in [0, 1], got {self.overlap}")
        if not self.snr_db[0] <= self.snr_db[1]:
            fail(f"snr_db low exceeds high in {self.snr_db}")
        if min(self.margin_s, self.fade_s, self.min_call_s, self.crossfade_s) < 0:
            fail("margin_s, fade_s, min_call_s and crossfade_s must be >= 0")
        if not self.min_call_s <= self.max_call_s:
            fail(f"min_call_s {self.min_call_s} exceeds max_call_s {self.max_call_s}")
        if self.label_weights and any(w < 0 for w in self.label_weights.values()):
            fail(f"label_weights must be >= 0, got {self.label_weights}")
        if self.max_tries < 1 or self.max_snippets < 1 or self.max_backgrounds < 0:
            fail("max_tries and max_snippets must be >= 1, max_backgrounds >= 0")
        if not 0 <= self.negative_prob <= 1:
            fail(f"negative_prob must lie in [0, 1], got {self.negative_prob}")
        if self.procedural_calls < 0 or not 0 <= self.noise_background_prob <= 1:
            fail(
                f"procedural_calls must be >= 0 and noise_background_prob in [0, 1], got "
                f"{self.procedural_calls}, {self.noise_background_prob}"
            )


def _background(
    config: SynthConfig, backgrounds: list[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """``(n_samples,)``: random crops stitched with crossfades, or zeros without backgrounds.

    A background at least ``duration_s`` long gives one crop (no crossfade); shorter ones are
    joined, each new crop overlapping the previous one by ``crossfade_s``.
    """
    n_samples = round(config.duration_s * config.sample_rate)
    if config.noise_background_prob > 0 and rng.random() < config.noise_background_prob:
        from biomae.datasets.synth.calls import noise_background

        return noise_background(n_samples, config.sample_rate, rng)
    if not backgrounds:
        return np.zeros(n_samples, dtype=np.float32)
    n_cross = round(config.crossfade_s * config.sample_rate)
    shortest = min(len(b) for b in backgrounds)
    if shortest < 2 * n_cross + 1:
        raise ValueError(
            f"synthesize: a background of {shortest} samples is shorter than two crossfades "
            f"({2 * n_cross + 1} samples at crossfade_s={config.crossfade_s})"
        )
    pieces, stitched = [], 0  # stitched: length of the pieces joined so far, in samples
    empty = make_events([])
    while stitched < n_samples:
        overlap = n_cross if pieces else 0  # a later piece overlaps the previous one
        source = backgrounds[int(rng.integers(len(backgrounds)))]
        length = max(min(len(source), n_samples - stitched + overlap), 2 * n_cross + 1)
        start = int(rng.integers(len(source) - length + 1))
        pieces.append((source[start : start + length], empty))
        stitched += length - overlap
    audio, _ = stitch(pieces, config.crossfade_s, config.sample_rate)
    return audio[:n_samples]


def synthesize(
    config: SynthConfig,
    snippets: list[Snippet],
    backgrounds: list[np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, pd.DataFrame]:
    """One soundscape (module docstring, steps 2-4).

    Returns:
        ``(audio (n_samples,) float32, events)``; ``events.attrs["synth"]`` holds ``n_requested``,
        ``n_placed`` and ``n_unplaced``.
    """
    if not snippets:
        raise ValueError("synthesize: no snippets")
    rate = config.sample_rate
    if config.negative_prob > 0 and rng.random() < config.negative_prob:
        return _negative(config, rng)
    background = _background(config, backgrounds, rng)
    audio = background.copy()
    n_samples = len(audio)
    by_label: dict[str, list[Snippet]] = {}
    for snippet in snippets:
        by_label.setdefault(snippet.label, []).append(snippet)
    labels = sorted(by_label)
    weights = config.label_weights or {label: 1.0 for label in labels}
    unknown = sorted(set(weights) - set(labels))
    if unknown:
        raise ValueError(
            f"synthesize: label_weights name {unknown}, not among snippet labels {labels}"
        )
    p = np.array([weights.get(label, 0.0) for label in labels], dtype=np.float64)
    if not p.sum() > 0:
        raise ValueError(f"synthesize: label_weights {weights} give no weight to any label")
    n_requested = int(rng.poisson(config.density_per_min * config.duration_s / 60))
    placed: list[tuple[int, int]] = []  # event spans in samples
    rows = []
    for _ in range(n_requested):
        label = labels[int(rng.choice(len(labels), p=p / p.sum()))]
        snippet = by_label[label][int(rng.integers(len(by_label[label])))]
        onset = _choose_onset(snippet, placed, n_samples, rate, config, rng)
        if onset is None:
            continue
        m = len(snippet.audio)
        first = math.floor(snippet.event_offset_s * rate)
        last = math.ceil((snippet.event_offset_s + snippet.event_duration_s) * rate)
        active = np.zeros(m, dtype=bool)
        active[first:last] = True
        snr_db = float(rng.uniform(*config.snr_db))
        gain = snr_gain(
            snippet.audio, background[onset : onset + m], active, snr_db, config.floor_db
        )
        audio[onset : onset + m] += np.float32(gain) * snippet.audio
        placed.append((onset + first, onset + last))
        start_s = onset / rate + snippet.event_offset_s
        rows.append(
            {
                "start_s": start_s,
                "end_s": start_s + snippet.event_duration_s,
                "low_hz": snippet.low_hz,
                "high_hz": snippet.high_hz,
                "label": snippet.label,
                "taxon": snippet.taxon,
                "source": "synth",
                "kept_fraction": 1.0,
                "snr_db": snr_db,
                "origin": snippet.origin,
                "origin_start_s": snippet.origin_start_s,
            }
        )
    events = _table(rows)
    events.attrs["synth"] = {
        "n_requested": n_requested,
        "n_placed": len(rows),
        "n_unplaced": n_requested - len(rows),
        "negative": "",
    }
    return audio, events


def _table(rows: list[dict]) -> pd.DataFrame:
    columns = ["start_s", "end_s", "kept_fraction", "snr_db", "origin", "origin_start_s"]
    return sort_events(make_events(rows if rows else pd.DataFrame(columns=columns)))


def _negative(config: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """A hard-negative soundscape: generated call-free audio and an empty table."""
    from biomae.datasets.synth.negatives import hard_negative

    n_samples = round(config.duration_s * config.sample_rate)
    audio, kind = hard_negative(n_samples, config.sample_rate, rng)
    events = _table([])
    events.attrs["synth"] = {"n_requested": 0, "n_placed": 0, "n_unplaced": 0, "negative": kind}
    return audio, events


def _choose_onset(
    snippet: Snippet,
    placed: list[tuple[int, int]],
    n_samples: int,
    rate: int,
    config: SynthConfig,
    rng: np.random.Generator,
) -> int | None:
    """The snippet's first sample in the soundscape, or None when it finds no room."""
    m = len(snippet.audio)
    if m > n_samples:
        return None
    first = math.floor(snippet.event_offset_s * rate)
    last = math.ceil((snippet.event_offset_s + snippet.event_duration_s) * rate)
    if placed and rng.random() < config.overlap:
        other_start, other_end = placed[int(rng.integers(len(placed)))]
        low = max(0, other_start - last + 1)  # event [onset+first, onset+last) meets the other
        high = min(n_samples - m, other_end - first - 1)
        return int(rng.integers(low, high + 1)) if low <= high else None
    for _ in range(config.max_tries):
        onset = int(rng.integers(0, n_samples - m + 1))
        if all(onset + last <= a or onset + first >= b for a, b in placed):
            return onset
    return None
