"""Benchmark: how far live mode's events are from annotating the file, and how soon they come.

Stitches ``--minutes`` of real recordings (32 kHz) from ../shared/data, annotates them as a file
with the starter model (or ``--model``), then feeds the same audio to :class:`biomae.live.LiveModel`
in 20-ms reads for each ``--hops`` value (0: the file's windows) and prints, per hop, the event F1
against the file's events (one-to-one, IoU >= 0.5), the share of events identical to the file's,
and the delay from each event's end to the read that printed it, in audio seconds (compute time
left out: ``bench_live.py`` measures the wall-clock latency).

    python bench/bench_live_agreement.py [--minutes 2] [--hops 0 0.5 0.32 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--hops", type=float, nargs="+", default=[0.0, 0.5, 0.32, 1.0])
    parser.add_argument("--model", default="starter")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import bench_annotate
    from bench_annotate import stitch

    from biomae import audio as audio_io
    from biomae.detectors.model import ModelDetector
    from biomae.live import LiveModel
    from biomae.metrics.events import MatchConfig, event_f1

    bench_annotate.SHARED = Path(os.environ.get("BIOMAE_SHARED_DATA", bench_annotate.SHARED))
    wav = Path(tempfile.mkdtemp(prefix="bench_live_agreement_")) / "stitched.flac"
    duration_s = stitch(wav, args.minutes / 60)
    detector = ModelDetector(args.model)
    batch = detector.detect_file(wav)
    audio, rate = audio_io.load(wav)
    read = round(0.02 * rate)
    print(f"audio: {duration_s / 60:.1f} min of real recordings, {rate} Hz; model {args.model}; "
          f"the file's events: {len(batch)}")  # fmt: skip
    for hop_s in args.hops:
        live = LiveModel(detector, rate, str(wav), hop_s=hop_s or None)
        parts, delays_s = [], []
        for i in range(0, len(audio), read):
            events = live.feed(audio[i : i + read])
            parts.append(events)
            delays_s += list((i + read) / rate - events["end_s"])
        parts.append(live.finish())
        events = pd.concat(parts, ignore_index=True)
        f1 = event_f1(events, batch, MatchConfig(iou_threshold=0.5)).overall.f1
        same = events.merge(batch, on=["start_s", "end_s"], how="inner")
        print(
            f"live hop {hop_s:g} s: {len(events)} events, F1 {f1:.3f} against the file's, "
            f"{len(same) / max(len(batch), 1):.0%} with the file's exact times; delay after the "
            f"end, audio seconds: median {np.median(delays_s):.2f}, "
            f"p90 {np.percentile(delays_s, 90):.2f}"
        )


if __name__ == "__main__":
    main()
