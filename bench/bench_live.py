"""Benchmark: latency of ``biomae annotate - --live`` at 1x real time, 2 cores.

Stitches ``--minutes`` of real recordings (32 kHz) from ../shared/data, starts
``biomae annotate - --live`` (the default detector: the starter model; ``--detector energy`` or
``--model M`` to choose) and feeds it a WAV stream paced in real time by a feeder thread: the
samples of ``[k c, (k + 1) c)`` are written at ``t0 + (k + 1) c`` (``c`` = ``--chunk-s``), as a
sound card delivers them. A reader thread stamps each JSON line as it arrives. The latency of an
event is ``arrival - (t0 + end_s)``: from the moment the call's last sample exists to its line.
Events ending in the first ``--warmup-s`` are left out (the interpreter and torch start while the
audio already flows, as when a recorder is piped in).

Prints the number of events, the median / 90th percentile / maximum latency, the process's CPU
time per second of audio and the machine's load average before and after.

    python bench/bench_live.py [--minutes 3] [--chunk-s 0.02] [--threads N] [-- annotate options]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header with the unknown-size markers a recorder writes."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", 0xFFFFFFFF)
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--chunk-s", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=0, help="OMP threads (0: biomae's choice)")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("extra", nargs="*", help="more biomae annotate options (after --)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import bench_annotate
    from bench_annotate import stitch

    bench_annotate.SHARED = Path(os.environ.get("BIOMAE_SHARED_DATA", bench_annotate.SHARED))

    work = Path(tempfile.mkdtemp(prefix="bench_live_"))
    flac = work / "stitched.flac"
    duration_s = stitch(flac, args.minutes / 60)
    audio, rate = sf.read(flac, dtype="int16")
    chunk = round(args.chunk_s * rate)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if args.threads:
        env |= {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env["PYTHONPATH"] = str(REPO / "src")
    load_before = os.getloadavg()
    command = [sys.executable, "-m", "biomae", "annotate", "-", "--live", "--out", str(work / "o")]
    proc = subprocess.Popen(
        [*command, *args.extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    arrivals: list[tuple[float, dict]] = []

    def read() -> None:
        for line in proc.stdout:
            arrivals.append((time.perf_counter(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    t0 = time.perf_counter()
    proc.stdin.write(wav_header(rate))
    for k in range(0, len(audio), chunk):
        due = t0 + (k + chunk) / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        proc.stdin.write(audio[k : k + chunk].tobytes())
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait()
    reader.join()
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = child.ru_utime + child.ru_stime  # the annotate process, start-up included
    load_after = os.getloadavg()
    latency = np.array([t - (t0 + e["end_s"]) for t, e in arrivals if e["end_s"] >= args.warmup_s])
    options = " ".join(args.extra) or "(default)"
    options += f"; threads: {args.threads or 'biomae default'}"
    print(f"audio: {duration_s / 60:.1f} min of real recordings, {rate} Hz, paced at 1x in "
          f"{args.chunk_s * 1000:.0f}-ms chunks; options: {options}")  # fmt: skip
    print(f"events: {len(arrivals)} ({len(latency)} ending after the first {args.warmup_s:g} s)")
    if len(latency):
        print(
            f"latency, call end -> JSON line: median {np.median(latency):.2f} s, "
            f"p90 {np.percentile(latency, 90):.2f} s, max {latency.max():.2f} s"
        )
    print(f"CPU: {cpu_s:.1f} s for {duration_s:.0f} s of audio ({cpu_s / duration_s:.3f} s/s)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2 cores)")


if __name__ == "__main__":
    main()
