"""A noise-floor gate on a detector's events: an event is kept only where some frequency band
stands clearly above that band's noise floor around it, and above an absolute level.

A model sees each window through a per-clip standardised spectrogram, so it cannot tell a quiet
hiss from a call: in white noise or dithered silence it may report calls at any level. The gate
checks each event against the audio itself (:func:`measure_events`):

1. The recording is read around each event (``context_s`` on each side; events close together
   share one read of at most ``max_span_s``) and turned into band powers: a Hann power spectrogram
   (``hop_s`` frames, windows of ~32 ms) summed into ``n_bands`` bands equally spaced on the mel
   scale from ``low_hz`` to the Nyquist frequency (bands too narrow to hold ``min_bins`` FFT bins
   are joined to their upper neighbour), then smoothed over ``smooth_frames`` frames.
2. Each band's **noise floor** is the median over the context frames that lie in no event of the
   recording (so a dense bout does not raise it; with fewer than ``min_noise_frames`` such frames,
   the ``fallback_quantile`` of all the context frames).
3. The event's level in a band is the 80th percentile over its frames (a call filling a fifth of
   the event counts). Its **SNR** is the largest band excess over the floor (dB); its **level**
   (dBFS: dB re a full-scale RMS of 1, a full-scale sine is −3 dBFS) is that of the same band.
4. The event is kept when ``snr_db >= min_snr_db`` and ``level_dbfs >= min_level_dbfs``.

Stationary noise of any colour and level gives every band ~1-2 dB of "excess" (the spread of a
smoothed band power); digital silence has no level at all. The defaults were calibrated on the
starter model's events (``bench/bench_false_alarms.py``): every event matching a real call
(IoU >= 0.3) of the held-out Bengalese finch, zebra finch, field frog and bellbird recordings
stood >= 17 dB above its floor (1st percentile) and above −60 dBFS, so the margin of 10 dB and
the floor of −90 dBFS keep them all while white, pink and brown noise at −80 to −10 dBFS and
dithered silence give no event. The limits: a call as steady as the noise around it (an unbroken
insect chorus longer than the context) looks like noise too, and loud transients that are not
calls — wind gusts, water drops, breaking waves — pass.

:class:`GatedDetector` wraps any detector (the ``auto`` default wraps the starter model with it,
:func:`biomae.detectors.make_detector`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.audio import AudioInfo
from biomae.detectors.wrapping import map_events

EPS_POWER = 1e-30  # power floor before taking logs (digital silence has none)


@dataclass(frozen=True)
class GateConfig:
    """Settings of the gate (module docstring); times in seconds, frequencies in Hz.

    Attributes:
        min_snr_db: an event's best band must stand this far above its noise floor.
        min_level_dbfs: ... and be at least this loud (dB re full-scale RMS).
        context_s: audio read on each side of an event to measure the floor.
        n_bands: mel-spaced bands between ``low_hz`` and the Nyquist frequency.
        low_hz: the lowest frequency looked at (wind and handling rumble lie below).
        min_bins: fewest FFT bins in a band (narrower bands are joined).
        hop_s: frame hop.
        smooth_frames: frames averaged before the statistics.
        min_noise_frames: fewest event-free context frames for the median floor.
        fallback_quantile: floor quantile over all context frames when too few are event-free.
        max_span_s: longest stretch read at once.
    """

    min_snr_db: float = 10.0
    min_level_dbfs: float = -90.0
    context_s: float = 5.0
    n_bands: int = 16
    low_hz: float = 150.0
    min_bins: int = 6
    hop_s: float = 0.01
    smooth_frames: int = 3
    min_noise_frames: int = 50
    fallback_quantile: float = 0.1
    max_span_s: float = 60.0

    def __post_init__(self) -> None:
        positive = ("context_s", "hop_s", "max_span_s")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"GateConfig: {name}={value} must be a finite number > 0")
        for name in ("n_bands", "min_bins", "smooth_frames", "min_noise_frames"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GateConfig: {name}={getattr(self, name)} must be >= 1")
        if not 0 < self.fallback_quantile < 1:
            raise ValueError(f"GateConfig: fallback_quantile={self.fallback_quantile} not in (0,1)")
        if not (math.isfinite(self.min_snr_db) and self.low_hz >= 0):
            raise ValueError("GateConfig: min_snr_db must be finite and low_hz >= 0")


def band_matrix(sample_rate: int, n_fft: int, config: GateConfig) -> np.ndarray:
    """``(n_bands', n_fft // 2 + 1)`` 0/1 matrix summing FFT bins into mel-spaced bands from
    ``low_hz`` to Nyquist, each at least ``min_bins`` bins wide (narrow ones joined upwards; the
    last, if narrow, joined downwards). A band of a rate whose Nyquist is below ``low_hz``
    covers every bin."""
    from biomae.spectral import hz_to_mel, mel_to_hz  # numpy: the ONNX path imports no torch

    n_bins = n_fft // 2 + 1
    nyquist_hz = sample_rate / 2
    low_hz = config.low_hz if config.low_hz < nyquist_hz else 0.0
    mels = np.linspace(float(hz_to_mel(low_hz)), float(hz_to_mel(nyquist_hz)), config.n_bands + 1)
    edges_hz = mel_to_hz(mels)  # (n_bands + 1,)
    edges = np.unique(np.round(edges_hz * n_fft / sample_rate).astype(int).clip(0, n_bins))
    edges[-1] = n_bins
    bands: list[list[int]] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if bands and bands[-1][1] - bands[-1][0] < config.min_bins:
            bands[-1][1] = hi  # the previous band is too narrow: widen it
        else:
            bands.append([int(lo), int(hi)])
    if len(bands) > 1 and bands[-1][1] - bands[-1][0] < config.min_bins:
        bands[-2][1] = bands.pop()[1]
    matrix = np.zeros((len(bands), n_bins), dtype=np.float32)
    for b, (lo, hi) in enumerate(bands):
        matrix[b, lo:hi] = 1.0
    return matrix


def moving_average(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over ``size`` frames along the last axis, edges repeated: what
    ``scipy.ndimage.uniform_filter1d(x, size, axis=-1, mode="nearest")`` computes (tested), without
    importing scipy.ndimage (0.3 s of every run's start-up)."""
    left = size // 2  # the window of frame t is [t - size // 2, t + (size - 1) // 2]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(left, size - 1 - left)], mode="edge")
    sums = np.cumsum(padded, axis=-1, dtype=np.float64)
    sums = np.concatenate([np.zeros_like(sums[..., :1]), sums], axis=-1)
    return ((sums[..., size:] - sums[..., :-size]) / size).astype(x.dtype)


def band_powers(audio: np.ndarray, sample_rate: int, config: GateConfig):
    """``(n_bands, n_frames)`` smoothed band powers in full-scale units (a unit-RMS signal sums
    to 1 over all bands), the hop in samples and the ``(n_bands, 2)`` band edges in Hz."""
    from biomae.spectral import power_spectrogram

    hop = max(1, round(config.hop_s * sample_rate))
    n_fft = int(2 ** math.ceil(math.log2(max(64, 0.032 * sample_rate, 2 * hop))))
    power = power_spectrogram(audio, n_fft, hop)  # (F, T)
    window_energy = float((np.hanning(n_fft + 1)[:-1] ** 2).sum())
    scale = 2.0 / (n_fft * window_energy)  # one-sided |STFT|^2 -> mean square
    matrix = band_matrix(sample_rate, n_fft, config)  # (B, F)
    bands = matrix @ power * scale  # (B, T)
    if config.smooth_frames > 1:
        bands = moving_average(bands, config.smooth_frames)
    bins = np.arange(matrix.shape[1])
    edges_hz = np.stack([bins[matrix[b] > 0][[0, -1]] for b in range(len(matrix))]) * (
        sample_rate / n_fft
    )  # (B, 2) lowest and highest bin centre of each band
    return bands, hop, edges_hz


def measure_events(
    path: str | Path,
    events: pd.DataFrame,
    config: GateConfig | None = None,
    info: AudioInfo | None = None,
) -> pd.DataFrame:
    """``snr_db`` and ``level_dbfs`` of each event (module docstring), and ``band_low_hz``,
    ``band_high_hz`` of the band they were measured in, in ``events``' order.

    Args:
        path: the recording the events belong to.
        events: its events (``start_s``, ``end_s`` in seconds).
        config: the gate's settings.
        info: the recording's header, when read already.

    Returns:
        a table with those four columns and the index of ``events`` (NaN where the recording
        has no audio in an event's span).
    """
    config = config or GateConfig()
    columns = ("snr_db", "level_dbfs", "band_low_hz", "band_high_hz")
    out = pd.DataFrame({c: np.nan for c in columns}, index=events.index)
    if not len(events):
        return out
    info = audio_io.info(path) if info is None else info
    starts_s = events["start_s"].to_numpy(np.float64)
    ends_s = np.maximum(events["end_s"].to_numpy(np.float64), starts_s)
    lo_s = np.maximum(0.0, starts_s - config.context_s)
    hi_s = np.minimum(info.duration_s, ends_s + config.context_s)
    order = np.argsort(lo_s, kind="stable")
    measured = np.full((len(events), 4), np.nan)  # the four columns
    i = 0
    while i < len(order):  # a group: events whose context fits in one span from order[i]
        group_lo, group_hi, j = lo_s[order[i]], hi_s[order[i]], i + 1
        while j < len(order) and max(group_hi, hi_s[order[j]]) - group_lo <= config.max_span_s:
            group_hi = max(group_hi, hi_s[order[j]])
            j += 1
        # whole samples, so that float rounding never reads past the end of the recording
        first_sample = min(round(group_lo * info.sample_rate), info.n_samples - 1)
        end_sample = max(min(round(group_hi * info.sample_rate), info.n_samples), first_sample + 1)
        audio, rate = audio_io.load(
            path,
            start_s=first_sample / info.sample_rate,
            duration_s=(end_sample - first_sample) / info.sample_rate,
            info=info,
        )
        group_lo = first_sample / info.sample_rate
        bands, hop, edges_hz = band_powers(np.asarray(audio, dtype=np.float32), rate, config)
        n_frames = bands.shape[1]

        def frame(t_s: float, n_frames=n_frames, rate=rate, hop=hop, group_lo=group_lo) -> int:
            return int(np.clip(round((t_s - group_lo) * rate / hop), 0, n_frames))

        busy = np.zeros(n_frames, dtype=bool)  # frames inside any event of the recording
        inside = (ends_s >= group_lo) & (starts_s <= group_hi)
        for k in np.flatnonzero(inside):
            busy[frame(starts_s[k]) : max(frame(ends_s[k]), frame(starts_s[k]) + 1)] = True
        for k in order[i:j]:
            first = min(frame(starts_s[k]), n_frames - 1)
            last = max(frame(ends_s[k]), first + 1)
            c_lo, c_hi = frame(lo_s[k]), max(frame(hi_s[k]), last)
            context = bands[:, c_lo:c_hi]
            quiet = context[:, ~busy[c_lo:c_hi]]
            if quiet.shape[1] >= config.min_noise_frames:
                floor = np.median(quiet, axis=1)
            else:
                floor = np.quantile(context, config.fallback_quantile, axis=1)
            loud = np.quantile(bands[:, first:last], 0.8, axis=1)  # (B,)
            excess_db = 10 * np.log10((loud + EPS_POWER) / (floor + EPS_POWER))
            level_db = 10 * np.log10(loud + EPS_POWER)
            passing = level_db >= config.min_level_dbfs
            best = int(np.argmax(np.where(passing, excess_db, -np.inf))) if passing.any() else 0
            measured[k] = excess_db[best], level_db[best], *edges_hz[best]
        i = j
    out[list(columns)] = measured
    return out


def gate_events(
    path: str | Path,
    events: pd.DataFrame,
    config: GateConfig | None = None,
    info: AudioInfo | None = None,
) -> pd.DataFrame:
    """The events of ``path`` that pass the gate (module docstring), in their order."""
    config = config or GateConfig()
    if not len(events):
        return events
    measured = measure_events(path, events, config, info)
    keep = (measured["snr_db"] >= config.min_snr_db) & (
        measured["level_dbfs"] >= config.min_level_dbfs
    )
    return events[keep.to_numpy()].reset_index(drop=True)


class GatedDetector:
    """``detector`` with :func:`gate_events` applied to each recording's events; other
    attributes (``front_end``, ``config`` …) are the wrapped detector's.

    Args:
        detector: any :class:`biomae.detectors.Detector`.
        config: the gate's settings.
    """

    def __init__(self, detector, config: GateConfig | None = None):
        self.detector = detector
        self.gate = config or GateConfig()
        self.name = detector.name

    def __getattr__(self, name: str):
        if name == "detector":  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.detector, name)

    def params(self) -> dict:
        return {**self.detector.params(), "gate": asdict(self.gate)}

    def name_for(self, path: str | Path, info: AudioInfo | None = None) -> str:
        return self.detector.name_for(path, info)

    def detect_file(
        self, path: str | Path, recording: str | None = None, info: AudioInfo | None = None
    ) -> pd.DataFrame:
        events = self.detector.detect_file(path, recording, info)
        return gate_events(path, events, self.gate, info)

    def detect_many(
        self, paths: Iterable[str | Path], infos: Sequence[AudioInfo | None] | None = None
    ) -> Iterator[tuple[str | Path, object]]:
        yield from map_events(
            self.detector, paths, infos, lambda p, e, i: gate_events(p, e, self.gate, i)
        )
