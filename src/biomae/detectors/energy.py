"""The energy detector: band-limited spectrogram energy against an adaptive noise floor.

The always-available baseline, and the detector of ``biomae annotate --detector energy``. It needs
no model and works at any sample rate, ultrasonic bat recordings included. Per recording:

1. Stream the audio in blocks of ``block_s`` with ``context_s`` of extra audio on each side (memory
   is bounded whatever the length); blocks start at multiples of the hop, so frame ``j`` of every
   block is a global frame index and times are ``frame * hop_samples / sample_rate`` — never
   accumulated floats.
2. Power spectrogram (Hann window, ``n_fft`` samples, hop ``hop_s``) → energy inside
   ``[low_hz, high_hz]`` per frame, in dB.
3. Adaptive noise floor: a running ``noise_quantile`` of the band energy over ``noise_window_s``.
4. Hysteresis (:func:`biomae.decode.hysteresis_segments`, the decoder's own): an event is a run of
   frames whose excess over the floor stays at or above ``off_db`` and reaches ``on_db``; then the
   post-processing shared by every detector (:mod:`biomae.detectors.postprocess`): events closer
   than ``merge_gap_s`` are merged (across block boundaries too), then those shorter than
   ``min_duration_s`` dropped.
5. A frequency box per event: the narrowest band holding ``1 - 2 * box_quantile`` of the event's
   per-bin excess over the noise spectrum (:func:`biomae.decode.narrowest_band`, as for a model's
   events; the excess is in dB, less ``on_db``, and the event's spectrum is the 80th percentile
   over its frames, so brief broadband clicks don't count), within the detection band.

Scores are ``1 - exp(-peak_excess_db / 10)``: a monotone map of the peak SNR (dB) into [0, 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.annotations.schema import concat_events, empty_events, make_events
from biomae.audio import AudioInfo
from biomae.decode import hysteresis_segments, narrowest_band
from biomae.detectors.postprocess import PostProcess

# Recordings sampled above this rate are ultrasonic ones (bat detectors record at 192-500 kHz): the
# energy detector's auto settings then assume bat-like calls, and the ``auto`` detector of
# ``biomae annotate`` (biomae.detectors.auto) sends them here. 96 kHz, a common rate for audible
# recordings, stays below it.
ULTRASONIC_RATE_HZ = 100_000


@dataclass
class EnergyDetectorConfig:
    """Settings of the energy detector. ``None`` means "auto", chosen from the sample rate.

    ``post`` is the post-processing every detector shares (:mod:`biomae.detectors.postprocess`:
    band, merge gap, minimum duration, label); its band is also where this detector searches, and
    its label defaults to ``"call"``. Auto values: at sample rates up to ``ULTRASONIC_RATE_HZ``
    (100 kHz), ``hop_s`` 10 ms, ``n_fft`` the power of two ≥ one hop, ``post.low_hz`` 150 Hz,
    ``post.min_duration_s`` 30 ms, ``post.merge_gap_s`` 50 ms; above (bat detectors), ``hop_s``
    0.5 ms, ``post.low_hz`` 15 kHz, ``post.min_duration_s`` 1 ms, ``post.merge_gap_s`` 2 ms;
    ``post.high_hz`` the Nyquist frequency.
    """

    hop_s: float | None = None
    n_fft: int | None = None
    on_db: float = 8.0
    off_db: float = 4.0
    noise_window_s: float = 10.0
    noise_quantile: float = 0.25
    max_duration_s: float | None = None
    box_quantile: float = 0.05
    block_s: float = 120.0
    denoise: bool = False  # spectral gating (biomae.augment.reduce_noise) of each block first
    post: PostProcess = field(default_factory=PostProcess)

    def __post_init__(self) -> None:
        if self.post.label is None:
            self.post = replace(self.post, label="call")
        if self.off_db > self.on_db:
            raise ValueError(f"off_db ({self.off_db}) must not exceed on_db ({self.on_db})")
        if not 0 < self.noise_quantile < 1:
            raise ValueError(f"noise_quantile must lie in (0, 1), got {self.noise_quantile}")
        if not 0 <= self.box_quantile < 0.5:
            raise ValueError(f"box_quantile must lie in [0, 0.5), got {self.box_quantile}")
        if self.block_s <= 0 or self.noise_window_s <= 0:
            raise ValueError("block_s and noise_window_s must be positive")

    def params(self) -> dict:
        """The settings as flat plain data (``post``'s fields beside the others, as in
        ``run.json``)."""
        settings = asdict(self)
        post = settings.pop("post")
        return {**settings, **post}

    def resolved(self, sample_rate: int) -> EnergyDetectorConfig:
        """A copy with every auto setting fixed for ``sample_rate``; checks the band against
        Nyquist."""
        ultrasonic = sample_rate > ULTRASONIC_RATE_HZ
        nyquist_hz = sample_rate / 2
        hop_s = self.hop_s or (0.0005 if ultrasonic else 0.01)
        hop_samples = max(1, round(hop_s * sample_rate))
        n_fft = self.n_fft or int(2 ** math.ceil(math.log2(max(16, hop_samples))))
        post = self.post
        low_hz = post.low_hz if post.low_hz is not None else (15_000.0 if ultrasonic else 150.0)
        high_hz = post.high_hz if post.high_hz is not None else nyquist_hz
        if low_hz >= nyquist_hz:
            if post.low_hz is not None:
                raise ValueError(
                    f"low_hz {low_hz:g} Hz is at or above the Nyquist frequency {nyquist_hz:g} Hz"
                )
            low_hz = 0.0
        default_duration_s, default_gap_s = (0.001, 0.002) if ultrasonic else (0.03, 0.05)
        post = replace(
            post,
            low_hz=low_hz,
            high_hz=min(high_hz, nyquist_hz),
            min_duration_s=default_duration_s
            if post.min_duration_s is None
            else post.min_duration_s,
            merge_gap_s=default_gap_s if post.merge_gap_s is None else post.merge_gap_s,
        )
        return replace(self, hop_s=hop_samples / sample_rate, n_fft=n_fft, post=post)


class EnergyDetector:
    """Find events in a recording by band energy. ``detect_file`` streams; ``detect`` takes an
    array."""

    name = "energy"

    def __init__(self, config: EnergyDetectorConfig | None = None):
        self.config = config or EnergyDetectorConfig()

    def params(self) -> dict:
        return {"detector": self.name, **self.config.params()}

    def name_for(self, path: str | Path, info: AudioInfo | None = None) -> str:
        """The detector that annotates ``path``: this one, whatever the recording."""
        return self.name

    def detect(self, audio: np.ndarray, sample_rate: int, recording: str = "") -> pd.DataFrame:
        """Events in ``audio`` (float, (n_samples,)) sampled at ``sample_rate``."""
        cfg = self.config.resolved(sample_rate)
        hop = round(cfg.hop_s * sample_rate)
        n_frames = len(audio) // hop + 1
        segments = _segments_in_block(audio, sample_rate, 0, 0, n_frames, cfg)
        return _finish(segments, sample_rate, hop, cfg, recording, len(audio))

    def detect_file(
        self, path: str | Path, recording: str | None = None, info: AudioInfo | None = None
    ) -> pd.DataFrame:
        """Events in the recording at ``path``, streamed block by block (bounded memory);
        ``info``: its header, when read already."""
        info = audio_io.info(path) if info is None else info
        sample_rate = info.sample_rate
        cfg = self.config.resolved(sample_rate)
        hop = round(cfg.hop_s * sample_rate)
        # Core blocks of whole hops; each read with `context` frames of audio on both sides so the
        # noise floor and hysteresis see across block edges.
        core_frames = max(1, round(cfg.block_s * sample_rate / hop))
        context_frames = round(min(cfg.noise_window_s, cfg.block_s) * sample_rate / hop)
        n_total_frames = info.n_samples // hop + 1
        segments = []
        for core_start in range(0, n_total_frames, core_frames):
            core_end = min(core_start + core_frames, n_total_frames)
            first = max(0, core_start - context_frames)
            last = min(n_total_frames, core_end + context_frames)
            start_sample = first * hop
            n_samples = min(info.n_samples, last * hop) - start_sample
            block, _ = audio_io.load(
                path,
                start_s=start_sample / sample_rate,
                duration_s=n_samples / sample_rate,
                info=info,
            )
            segments.extend(
                _segments_in_block(
                    block, sample_rate, first, core_start - first, core_end - first, cfg
                )
            )
        name = recording if recording is not None else str(path)
        return _finish(segments, sample_rate, hop, cfg, name, info.n_samples)


def band_power(audio: np.ndarray, sample_rate: int, cfg: EnergyDetectorConfig):
    """Power spectrogram inside the band: (n_frames, n_bins) and the bins' frequencies in Hz."""
    # torch: imported when used, so that `import biomae.detectors.energy` stays without it
    from biomae.spectral import power_spectrogram

    n_fft = cfg.n_fft
    power = power_spectrogram(audio, n_fft, round(cfg.hop_s * sample_rate)).T  # (n_frames, F)
    freqs_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    band_low_hz, band_high_hz = cfg.post.low_hz, cfg.post.high_hz
    in_band = (freqs_hz >= band_low_hz) & (freqs_hz <= band_high_hz)
    if not in_band.any():
        in_band[np.argmin(np.abs(freqs_hz - (band_low_hz + band_high_hz) / 2))] = True
    return power[:, in_band], freqs_hz[in_band]


def _running_quantile(x_db: np.ndarray, window: int, q: float) -> np.ndarray:
    """A running quantile of ``x_db`` over ``window`` frames, computed on a decimated grid."""
    from scipy.ndimage import percentile_filter

    step = max(1, window // 20)
    n = len(x_db)
    n_coarse = -(-n // step)
    padded = np.pad(x_db, (0, n_coarse * step - n), mode="edge")
    coarse = np.quantile(padded.reshape(n_coarse, step), q, axis=1)  # (n_coarse,)
    size = max(1, window // step) | 1
    floor = percentile_filter(coarse, 100 * q, size=size, mode="nearest")
    return np.interp(np.arange(n), np.arange(n_coarse) * step + (step - 1) / 2, floor)


def _segments_in_block(audio, sample_rate, frame0, core_lo, core_hi, cfg) -> list[dict]:
    """Hysteresis segments whose frames fall in [core_lo, core_hi) of a block starting at global
    frame ``frame0``; each with global frame span, peak excess (dB) and a frequency box."""
    if cfg.denoise and len(audio) >= 4096:
        from biomae.augment import reduce_noise

        audio = reduce_noise(audio, sample_rate)
    power, freqs_hz = band_power(audio, sample_rate, cfg)
    n_frames = power.shape[0]
    core_hi = min(core_hi, n_frames)
    band_db = 10 * np.log10(power.sum(axis=1) + 1e-20)  # (n_frames,)
    window = max(3, round(cfg.noise_window_s / cfg.hop_s))
    excess_db = band_db - _running_quantile(band_db, window, cfg.noise_quantile)
    events = hysteresis_segments(excess_db, cfg.on_db, cfg.off_db)  # (K, 2) [first, last) frames
    active = np.zeros(n_frames, dtype=bool)
    for lo, hi in events:
        active[lo:hi] = True
    # The noise spectrum is the same statistic as an event's spectrum (80th percentile over frames,
    # see below), taken over the block's quiet frames, so that pure noise has ~0 dB excess.
    quiet = power[~active] if (~active).sum() >= 10 else power
    noise_spectrum = np.quantile(quiet, 0.8, axis=0)  # (n_bins,)
    bin_hz = sample_rate / cfg.n_fft
    bin_edges_hz = np.append(freqs_hz - bin_hz / 2, freqs_hz[-1] + bin_hz / 2)  # (n_bins + 1,)
    segments = []
    for lo, hi in events:
        lo, hi = max(int(lo), core_lo), min(int(hi), core_hi)  # the part in the block's core
        if lo >= hi:
            continue
        # Per-bin excess (dB) of the event's spectrum over the noise spectrum; bins less than
        # `on_db` above the noise weigh nothing, so hum and stationary noise never widen the box.
        # The event's spectrum is the 80th percentile over its frames: a bin the call occupies for
        # a fifth of its duration counts, a broadband click of a frame or two does not.
        event_spectrum = np.quantile(power[lo:hi], 0.8, axis=0)  # (n_bins,)
        bin_excess_db = 10 * np.log10((event_spectrum + 1e-20) / (noise_spectrum + 1e-20))
        excess = np.clip(bin_excess_db - cfg.on_db, 0, None)
        if not excess.any():  # a faint event: fall back to the hysteresis' lower threshold
            excess = np.clip(bin_excess_db - cfg.off_db, 0, None)
        segments.append(
            {
                "first": frame0 + lo,
                "last": frame0 + hi,  # exclusive
                "peak_db": float(excess_db[lo:hi].max()),
                "box": _box(excess, freqs_hz, bin_edges_hz, cfg.box_quantile),
            }
        )
    return segments


def _box(excess, freqs_hz, bin_edges_hz, box_quantile: float) -> tuple[float, float]:
    """The narrowest band holding ``1 - 2 * box_quantile`` of the excess
    (:func:`biomae.decode.narrowest_band`), within the detection band's bin centres; the whole
    band when nothing rises above the noise."""
    low_hz, high_hz = narrowest_band(excess, bin_edges_hz, 1 - 2 * box_quantile)
    if math.isnan(low_hz):
        return float(freqs_hz[0]), float(freqs_hz[-1])
    return max(low_hz, float(freqs_hz[0])), min(high_hz, float(freqs_hz[-1]))


def _finish(segments, sample_rate, hop, cfg, recording, n_samples) -> pd.DataFrame:
    """Segments to events in seconds, then the shared post-processing
    (:mod:`biomae.detectors.postprocess`: merge across gaps and block edges, drop short ones, label)
    and ``max_duration_s``."""
    if not segments:
        return empty_events()
    rows = []
    for seg in sorted(segments, key=lambda s: s["first"]):
        # Frame f is centred on sample f * hop; an event covers its frames' centres ± half a hop.
        rows.append(
            {
                "start_s": max(0, seg["first"] * hop - hop // 2) / sample_rate,
                "end_s": min(n_samples, (seg["last"] - 1) * hop + hop // 2) / sample_rate,
                "low_hz": seg["box"][0],
                "high_hz": seg["box"][1],
                "score": 1.0 - math.exp(-max(seg["peak_db"], 0.0) / 10.0),
                "label": cfg.post.label,
            }
        )
    events = make_events(rows, recording=recording, source="biomae-energy")
    # boundaries are whole samples, ± half a hop: with an odd hop a gap of whole frames is one
    # sample longer, which must still merge (1.5 samples: float rounding included)
    events = cfg.post.apply(events, gap_tolerance_s=1.5 / sample_rate)
    if cfg.max_duration_s is not None:
        events = events[(events["end_s"] - events["start_s"]) <= cfg.max_duration_s]
    if not len(events):
        return empty_events()
    return concat_events([events])
