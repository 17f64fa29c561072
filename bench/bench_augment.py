"""Throughput of the augmentation pipeline on 10-s windows at 32 kHz, in multiples of real time.

Pipeline per window: mix one call snippet (with its event) at 0-20 dB SNR, add white/pink/brown
noise at 10-30 dB SNR (fresh noise per window, then crops of a 60-s noise bank), a dB-ramp
amplitude envelope, a circular time shift and a random gain; each window carries 8 events.
One process first, then ``--workers`` processes (default 2), each with its own seeded generator,
as DataLoader workers would run. Wall time depends on what else runs on the machine, so CPU time
(``time.process_time``) is reported beside it. Synthetic audio (tones + noise): no data needed.

Usage: ``python bench/bench_augment.py [--windows 200] [--workers 2]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from biomae.annotations.schema import make_events  # noqa: E402
from biomae.augment import (  # noqa: E402
    AddNoise,
    AmplitudeEnvelope,
    Compose,
    EnvelopeConfig,
    GainConfig,
    Mix,
    MixConfig,
    NoiseConfig,
    RandomGain,
    TimeShift,
    TimeShiftConfig,
    ensure_columns,
)

SAMPLE_RATE = 32_000
WINDOW_S = 10.0


def build(seed: int, bank_samples: int = 0):
    """The pipeline, a 10-s input window and its events (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    n_samples = round(WINDOW_S * SAMPLE_RATE)
    t = np.arange(n_samples) / SAMPLE_RATE
    audio = 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.01 * rng.standard_normal(n_samples)
    audio = audio.astype(np.float32)
    events = ensure_columns(
        make_events({"start_s": np.arange(8) + 0.2, "end_s": np.arange(8) + 0.5, "label": "a"})
    )
    snippet_t = np.arange(round(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    snippet = (0.5 * np.sin(2 * np.pi * 5000 * snippet_t)).astype(np.float32)
    snippet_events = make_events({"start_s": [0.05], "end_s": [0.35], "label": ["call"]})
    pipeline = Compose(
        [
            Mix(
                MixConfig(sample_rate=SAMPLE_RATE, snr_db=(0, 20)), pool=[(snippet, snippet_events)]
            ),
            AddNoise(NoiseConfig(snr_db=(10, 30), bank_samples=bank_samples)),
            AmplitudeEnvelope(EnvelopeConfig(sample_rate=SAMPLE_RATE, mode="db_ramp")),
            TimeShift(TimeShiftConfig(sample_rate=SAMPLE_RATE, max_shift_s=2.0)),
            RandomGain(GainConfig(-6, 6)),
        ]
    )
    return pipeline, audio, events


def run_windows(args: tuple[int, int, int]) -> tuple[float, float]:
    """Augment ``n_windows`` windows; returns (wall seconds, CPU seconds), setup excluded."""
    seed, n_windows, bank_samples = args
    pipeline, audio, events = build(seed, bank_samples)
    rng = np.random.default_rng(seed)
    pipeline(audio, events, rng)  # warm-up (and the noise bank, when there is one)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n_windows):
        pipeline(audio, events, rng)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200, help="windows per process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noise-bank-s", type=float, default=60.0, help="NoiseConfig.bank_samples")
    args = parser.parse_args()
    bank_samples = round(args.noise_bank_s * SAMPLE_RATE)
    audio_s = args.windows * WINDOW_S
    for label, bank in (("fresh noise", 0), (f"{args.noise_bank_s:g}-s noise bank", bank_samples)):
        wall, cpu = run_windows((0, args.windows, bank))
        print(
            f"{label}, 1 process: {args.windows} x {WINDOW_S:g}-s windows at {SAMPLE_RATE} Hz: "
            f"{1000 * cpu / args.windows:.2f} ms CPU/window = {audio_s / cpu:,.0f}x real time "
            f"per core (wall {audio_s / wall:,.0f}x)"
        )
        if args.workers > 1:
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.workers) as pool:
                pool.map(run_windows, [(s, 1, bank) for s in range(args.workers)])  # start-up
                start = time.perf_counter()
                results = pool.map(
                    run_windows, [(s, args.windows, bank) for s in range(args.workers)]
                )
                wall = time.perf_counter() - start
            per_core = args.workers * audio_s / sum(c for _, c in results)
            print(
                f"{label}, {args.workers} processes: {args.workers * audio_s / wall:,.0f}x real "
                f"time wall; CPU time {per_core:,.0f}x real time per core, i.e. "
                f"{args.workers * per_core:,.0f}x on {args.workers} idle cores"
            )


if __name__ == "__main__":
    main()
