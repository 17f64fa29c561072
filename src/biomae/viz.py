"""Pictures of recordings with their events: a spectrogram with every call numbered, a green bar at
its start and a red bar at its end, and its frequency box outlined (the seed paper's Figure 3).

matplotlib is imported lazily (Agg backend), so ``import biomae`` stays light.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.atomic_io import atomic_path
from biomae.audio import AudioInfo
from biomae.spectral import power_spectrogram


def spectrogram_db(
    audio: np.ndarray, sample_rate: int, n_fft: int | None = None, hop_s: float = 0.005
):
    """Power spectrogram in dB for display:
    ((n_bins, n_frames) array, frame times s, bin freqs Hz)."""
    hop = max(1, round(hop_s * sample_rate))
    n_fft = n_fft or int(2 ** math.ceil(math.log2(max(64, 4 * hop))))
    power_db = 10 * np.log10(power_spectrogram(audio, n_fft, hop) + 1e-12)  # (n_bins, n_frames)
    times_s = np.arange(power_db.shape[1]) * hop / sample_rate
    freqs_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    return power_db, times_s, freqs_hz


LABEL_FONT_PT = 9
LABEL_CHAR_IN = LABEL_FONT_PT * 0.75 / 72 + 0.02  # bold digit width plus the box's padding, inches
AXES_WIDTH_FRACTION = 0.85  # the plot's share of the figure width
LABEL_ROW_FRACTION = 0.09  # height of a staggered row of numbers, as a fraction of the plot
MAX_LABEL_ROWS = 6


def label_rows(
    centers_s: list[float], widths_s: list[float], max_rows: int = MAX_LABEL_ROWS
) -> list[int | None]:
    """The row (0 = on the event's box, then downwards from the top) of each event's number so
    that no two numbers overlap: each goes to the first row whose last number ends before it
    starts; ``None`` when all ``max_rows`` rows are taken there (the number is not drawn).
    Inputs in time order give a left-to-right fill."""
    row_end_s = [-math.inf] * max_rows
    rows: list[int | None] = []
    for center_s, width_s in zip(centers_s, widths_s, strict=True):
        left_s = center_s - width_s / 2
        row = next((r for r in range(max_rows) if row_end_s[r] <= left_s), None)
        if row is not None:
            row_end_s[row] = center_s + width_s / 2
        rows.append(row)
    return rows


def events_figure(
    audio: np.ndarray,
    sample_rate: int,
    events: pd.DataFrame,
    *,
    title: str = "",
    offset_s: float = 0.0,
    numbers: list[int] | None = None,
    dynamic_range_db: float = 70.0,
    width_in: float | None = None,
    show_labels: bool = False,
) -> Path:
    """A spectrogram of ``audio`` with ``events`` drawn on it (a matplotlib Figure; close it).

    Numbers sit over the events' part on the page and are clipped to the plot; where they would
    overlap they are staggered in up to ``MAX_LABEL_ROWS`` rows, and those that still do not fit
    are left out, the title saying how many.

    Args:
        audio: (n_samples,) float samples; its first sample is at ``offset_s`` in the recording.
        sample_rate: samples per second.
        events: event table (recording times, seconds); events outside the page are skipped.
        title: picture title.
        offset_s: recording time of ``audio[0]`` (for pages of a long recording).
        numbers: the number printed for each event (default 1..n in table order).
        dynamic_range_db: dB below the page's maximum shown as black.
        width_in: figure width in inches (default grows with duration).
        show_labels: print each event's label after its number (``3 song``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration_s = len(audio) / sample_rate
    power_db, times_s, freqs_hz = spectrogram_db(audio, sample_rate)
    vmax = float(power_db.max())
    width_in = width_in or float(np.clip(4 + duration_s * 0.8, 6, 24))
    fig, ax = plt.subplots(figsize=(width_in, 4.2), dpi=100)
    ax.imshow(
        power_db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=vmax - dynamic_range_db,
        vmax=vmax,
        extent=(offset_s, offset_s + duration_s, 0, freqs_hz[-1] / 1000),
    )
    numbers = numbers if numbers is not None else list(range(1, len(events) + 1))
    top_khz = freqs_hz[-1] / 1000
    page_end_s = offset_s + duration_s
    shown = []  # (text: number [label], label x, label row) of events on the page
    for number, (_, event) in zip(numbers, events.iterrows(), strict=True):
        start_s, end_s = float(event["start_s"]), float(event["end_s"])
        if end_s < offset_s or start_s > page_end_s:
            continue
        has_box = not (math.isnan(event["low_hz"]) or math.isnan(event["high_hz"]))
        low_khz = event["low_hz"] / 1000 if has_box else 0.0
        high_khz = event["high_hz"] / 1000 if has_box else top_khz
        ax.add_patch(
            plt.Rectangle(
                (start_s, low_khz),
                end_s - start_s,
                high_khz - low_khz,
                fill=False,
                edgecolor="white",
                linewidth=0.8,
                alpha=0.8,
            )
        )
        ax.axvline(start_s, color="lime", linewidth=1.6)
        ax.axvline(end_s, color="red", linewidth=1.6)
        # the label sits over the event's part on the page, so it never leaves the plot
        text = f"{number} {event['label']}" if show_labels and event["label"] else str(number)
        shown.append((text, (max(start_s, offset_s) + min(end_s, page_end_s)) / 2, high_khz))
    seconds_per_char = duration_s * LABEL_CHAR_IN / (width_in * AXES_WIDTH_FRACTION)
    rows = label_rows(
        [x for _, x, _ in shown], [len(str(n)) * seconds_per_char for n, _, _ in shown]
    )
    row_khz = top_khz * LABEL_ROW_FRACTION
    staggered = any(row != 0 for row in rows)  # then every number sits in a row from the top
    for (number, x_s, high_khz), row in zip(shown, rows, strict=True):
        if row is None:
            continue
        y_khz = top_khz * 0.97 - row * row_khz if staggered else min(high_khz, top_khz * 0.97)
        ax.text(
            x_s,
            y_khz,
            number,
            color="white",
            fontsize=LABEL_FONT_PT,
            fontweight="bold",
            ha="center",
            va="top" if staggered else "bottom",
            clip_on=True,
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"},
        )
    n_hidden = sum(row is None for row in rows)
    if n_hidden:
        title = f"{title} ({n_hidden} numbers not shown: too crowded, see the table)"
    ax.set_xlim(offset_s, offset_s + duration_s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_events(audio: np.ndarray, sample_rate: int, events: pd.DataFrame, path, **options) -> Path:
    """Save :func:`events_figure` of ``audio`` and ``events`` as PNG at ``path``, atomically
    (``options``: those of :func:`events_figure`)."""
    import matplotlib.pyplot as plt

    fig = events_figure(audio, sample_rate, events, **options)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def plot_recording_pages(
    path: str | Path,
    events: pd.DataFrame,
    out_stem: str | Path,
    *,
    page_s: float = 30.0,
    title: str = "",
    max_pages: int | None = None,
    info: AudioInfo | None = None,
    show_labels: bool | None = None,
) -> list[Path]:
    """Pictures of a whole recording, one PNG per page of ``page_s`` seconds (read page by page);
    with ``max_pages``, only the first ``max_pages`` pages (``biomae annotate`` says so in the
    summary's warning column).

    Events are numbered 1..n over the whole recording in start order, so page numbers match the
    table.
    Files: ``{out_stem}.png`` for a single page, else ``{out_stem}.page001.png`` …
    ``info``: the recording's header (:func:`biomae.audio.info`) when read already.
    ``show_labels``: labels after the numbers; None (default) = when some event's label is
    neither "" nor "call" (labels from examples, a classifier's classes).
    """
    info = audio_io.info(path) if info is None else info
    events = events.sort_values("start_s", kind="stable")
    numbers = list(range(1, len(events) + 1))
    if show_labels is None:
        show_labels = bool((~events["label"].astype(str).isin(["", "call"])).any())
    n_pages = max(1, math.ceil(info.duration_s / page_s))
    if max_pages is not None:
        n_pages = min(n_pages, max_pages)
    written = []
    for page in range(n_pages):
        start_sample = round(page * page_s * info.sample_rate)
        n_samples = min(info.n_samples - start_sample, round(page_s * info.sample_rate))
        audio, sample_rate = audio_io.load(
            path,
            start_s=start_sample / info.sample_rate,
            duration_s=n_samples / info.sample_rate,
            info=info,
        )
        offset_s = start_sample / sample_rate
        on_page = (events["end_s"] >= offset_s) & (
            events["start_s"] <= offset_s + len(audio) / sample_rate
        )
        out = Path(f"{out_stem}.png" if n_pages == 1 else f"{out_stem}.page{page + 1:03d}.png")
        page_title = title if n_pages == 1 else f"{title} — page {page + 1}/{n_pages}"
        written.append(
            plot_events(
                audio,
                sample_rate,
                events[on_page],
                out,
                title=page_title,
                offset_s=offset_s,
                numbers=[n for n, keep in zip(numbers, on_page, strict=True) if keep],
                show_labels=show_labels,
            )
        )
    return written
