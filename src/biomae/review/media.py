"""What the review page shows and plays for one event: a spectrogram PNG of the event with context
before and after, and a WAV clip of the same span (slowed down for ultrasonic recordings).

Only the span is read from disk (``soundfile`` seeks), so an event of a multi-hour recording costs
the same as one of a short clip. The box and the start / end bars are drawn by the page over the
image, from :func:`view` (the image's time and frequency extent).
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np

CONTEXT_S = 1.0  # shown and played before and after an event
MIN_VIEW_S = 1.0  # a shorter event is shown in at least this much audio
MAX_VIEW_S = 30.0  # a longer one is shown from its start, this much at most
IMAGE_WIDTH = 800  # spectrogram columns, at most
ULTRASONIC_HZ = 96_000  # recordings sampled above this are played slowed down
SLOW_FACTOR = 10  # ... by this factor (time expansion: 10x longer, 10x lower in pitch)


def view(event: dict, recording: dict) -> dict:
    """The span ``[t0_s, t1_s)`` shown for ``event``, the top frequency, and the playback factor."""
    duration_s = recording["duration_s"]
    length_s = min(event["end_s"] - event["start_s"] + 2 * CONTEXT_S, MAX_VIEW_S)
    length_s = min(max(length_s, MIN_VIEW_S), duration_s)
    centre = (event["start_s"] + event["end_s"]) / 2
    t0 = centre - length_s / 2 if length_s < MAX_VIEW_S else event["start_s"] - CONTEXT_S
    t0 = min(max(0.0, t0), max(0.0, duration_s - length_s))
    slow = SLOW_FACTOR if recording["sample_rate"] > ULTRASONIC_HZ else 1
    return {
        "t0_s": t0,
        "t1_s": t0 + length_s,
        "max_hz": recording["sample_rate"] / 2,
        "slow": slow,
    }


def _read(path: str, sample_rate: int, t0_s: float, t1_s: float) -> np.ndarray:
    import soundfile as sf

    start, stop = math.floor(t0_s * sample_rate), math.ceil(t1_s * sample_rate)
    audio = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)[0]
    return audio.mean(axis=1)  # (n,) mixed down


@lru_cache(maxsize=1)
def _colormap() -> np.ndarray:
    """A 256-entry RGB lookup table (matplotlib's magma), ``(256, 3)`` uint8."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def spectrogram_png(event: dict, recording: dict, dynamic_range_db: float = 80.0) -> bytes:
    """PNG of the power spectrogram over :func:`view` (0 Hz at the bottom, Nyquist at the top)."""
    from PIL import Image

    from biomae.spectral import power_spectrogram

    span = view(event, recording)
    sample_rate = recording["sample_rate"]
    audio = _read(recording["path"], sample_rate, span["t0_s"], span["t1_s"])
    n_fft = max(256, 2 ** round(math.log2(sample_rate * 0.016)))
    hop = max(n_fft // 8, math.ceil(len(audio) / IMAGE_WIDTH))
    power = power_spectrogram(audio, n_fft, hop)  # (F, T)
    db = 10 * np.log10(power + 1e-12)
    top = float(db.max())
    scaled = np.clip((db - (top - dynamic_range_db)) / dynamic_range_db, 0, 1)
    rgb = _colormap()[(scaled[::-1] * 255).astype(np.uint8)]  # (F, T, 3), high bins on top
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def clip_wav(event: dict, recording: dict) -> bytes:
    """16-bit WAV of :func:`view`'s span, peak-normalised, its header rate divided by ``slow``."""
    import soundfile as sf

    span = view(event, recording)
    sample_rate = recording["sample_rate"]
    audio = _read(recording["path"], sample_rate, span["t0_s"], span["t1_s"])
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > 0:
        audio = audio * (0.9 / peak)
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate // span["slow"], format="WAV", subtype="PCM_16")
    return buffer.getvalue()
