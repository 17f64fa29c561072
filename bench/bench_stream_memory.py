"""Peak memory of ``biomae.audio.stream`` on a long recording, against its decoded size.

Writes a synthetic recording of low-amplitude noise (default 2 h at 8 kHz, 16-bit WAV: 57.6 M
samples, 230 MB as float32) into a temporary folder, or uses ``--path``; streams it in
``--block-s`` blocks (optionally resampled) and prints the peak Python/numpy heap (tracemalloc
tracks numpy buffers), the growth of the process's max RSS, and the speed in multiples of real time.

Usage: ``python bench/bench_stream_memory.py [--hours 2] [--sample-rate 8000] [--format wav|flac]
[--block-s 60] [--hop-s 30] [--resample-to 16000] [--path long.flac]``
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile

from biomae import audio


def write_noise(path: Path, hours: float, sample_rate: int) -> None:
    """Write ``hours`` of low-amplitude noise, one minute at a time (PCM_16)."""
    minute = np.random.default_rng(0).normal(0, 300, 60 * sample_rate).astype(np.int16)  # (n,)
    n_total = round(hours * 3600 * sample_rate)
    with soundfile.SoundFile(path, "w", sample_rate, 1, subtype="PCM_16") as handle:
        for start in range(0, n_total, len(minute)):
            handle.write(minute[: n_total - start])


def measure(path: Path, block_s: float, hop_s: float | None, resample_to: int | None) -> dict:
    """Stream ``path`` once; return peak memory figures, block count and timing."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    start = time.perf_counter()
    n_blocks, n_out, checksum = 0, 0, 0.0
    for block in audio.stream(path, block_s=block_s, hop_s=hop_s, sample_rate=resample_to):
        n_blocks += 1
        n_out = block.end_sample
        checksum += float(np.abs(block.audio).sum())
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "blocks": n_blocks,
        "n_out": n_out,
        "seconds": seconds,
        "peak_bytes": peak,
        "rss_growth_bytes": rss_after - rss_before,
        "checksum": checksum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--format", choices=["wav", "flac"], default="wav")
    parser.add_argument("--block-s", type=float, default=60.0)
    parser.add_argument("--hop-s", type=float, default=None)
    parser.add_argument("--resample-to", type=int, default=None)
    parser.add_argument("--path", type=Path, default=None, help="stream this file instead")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_stream_") as folder:
        path = args.path
        if path is None:
            path = Path(folder) / f"noise.{args.format}"
            start = time.perf_counter()
            write_noise(path, args.hours, args.sample_rate)
            print(f"wrote {path.name}: {time.perf_counter() - start:.1f} s")
        meta = audio.info(path)
        decoded = meta.n_samples * meta.channels * 4
        result = measure(path, args.block_s, args.hop_s, args.resample_to)
    rate = args.resample_to or meta.sample_rate
    block_bytes = round(args.block_s * rate) * 4
    mib = 2**20
    print(
        f"recording: {meta.duration_s / 3600:.2f} h, {meta.sample_rate} Hz, {meta.channels} ch, "
        f"{meta.format}/{meta.subtype}; decoded float32 {decoded / mib:.1f} MiB"
    )
    print(
        f"stream: block {args.block_s} s, hop {args.hop_s or args.block_s} s, out {rate} Hz -> "
        f"{result['blocks']} blocks, {result['n_out']} samples; "
        f"one block {block_bytes / mib:.2f} MiB"
    )
    print(
        f"peak traced heap {result['peak_bytes'] / mib:.2f} MiB "
        f"({result['peak_bytes'] / decoded:.2%} of decoded, "
        f"{result['peak_bytes'] / block_bytes:.1f} blocks); "
        f"max-RSS growth {result['rss_growth_bytes'] / mib:.1f} MiB"
    )
    print(
        f"time {result['seconds']:.2f} s = {meta.duration_s / result['seconds']:.0f}x real time "
        "(under tracemalloc)"
    )


if __name__ == "__main__":
    main()
