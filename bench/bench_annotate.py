"""Benchmark: `biomae annotate` on a long recording stitched from real ones.

Stitches real recordings from ../shared/data (resampled to 32 kHz, cycled) into one FLAC of
``--hours`` hours (default 1), annotates it in a child process with the energy detector or, with
``--model``, a detection model, and prints the real-time factor (seconds of audio per second of
wall time) and the child's peak resident memory.

    python bench/bench_annotate.py [--hours 1] [--keep DIR] [--model starter.safetensors]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SAMPLE_RATE = 32000


def stitch(out_path: Path, hours: float) -> float:
    """Write ``hours`` of real audio (cycling through shared/data recordings) to ``out_path``."""
    import soxr

    files = pd.read_csv(SHARED / "index" / "files.csv")
    files = files[(files["sr"] >= 16000) & (files["sr"] <= 48000) & (files["duration_s"] >= 5)]
    target = round(hours * 3600 * SAMPLE_RATE)
    written = 0
    with sf.SoundFile(out_path, "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16") as handle:
        while written < target:
            for row in files.itertuples():
                audio, rate = sf.read(SHARED / row.file, dtype="float32", always_2d=True)
                audio = audio.mean(axis=1)
                if rate != SAMPLE_RATE:
                    audio = soxr.resample(audio, rate, SAMPLE_RATE)
                audio = np.clip(audio[: target - written], -1, 1)
                handle.write(audio)
                written += len(audio)
                if written >= target:
                    break
    return written / SAMPLE_RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the stitched file here")
    parser.add_argument("--model", type=Path, default=None, help="default: the energy detector")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"bench needs {SHARED}")
    work = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    audio_path = (args.keep or work) / f"stitched_{args.hours:g}h.flac"
    audio_path.parent.mkdir(parents=True, exist_ok=True)
    if not audio_path.exists():
        t0 = time.perf_counter()
        stitch(audio_path, args.hours)
        print(f"stitched {args.hours:g} h in {time.perf_counter() - t0:.0f} s -> {audio_path}")
    duration_s = sf.info(audio_path).duration
    cmd = [
        sys.executable,
        "-m",
        "biomae",
        "annotate",
        str(audio_path),
        "--out",
        str(work / "out"),
        "--format",
        "raven,csv",
        "--quiet",
        "--overwrite",
        *(["--model", str(args.model)] if args.model else ["--detector", "energy"]),
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall_s = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    n_events = len(pd.read_csv(work / "out" / "events.csv"))
    decoded_mib = duration_s * SAMPLE_RATE * 4 / 2**20
    print(
        f"audio: {duration_s / 3600:.2f} h at {SAMPLE_RATE} Hz "
        f"({decoded_mib:.0f} MiB decoded float32)"
    )
    detector = f"model {args.model}" if args.model else "energy detector"
    print(f"{detector}: {n_events} events, wall {wall_s:.1f} s (incl. start-up)")
    print(f"real-time factor: {duration_s / wall_s:.0f}x real time")
    print(f"peak memory (child RSS): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
