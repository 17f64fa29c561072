"""Benchmark: ``biomae annotate`` on torch vs on ONNX Runtime, each as a whole process.

What ``--runtime auto`` decides between (biomae.onnx_scorer). The same model (``--model``, else
the starter) annotates, with ``--runtime torch`` and with ``--runtime onnx`` (its graph exported
beforehand into a temporary cache, untimed), in turn so that other load on the machine falls on
both alike:

1. start-up: one 10-s file, the median of ``--repeats`` runs;
2. ``--files`` 10-s files (cut from real recordings, repeating) in one process;
3. ``--minutes`` of real recordings stitched into one 32-kHz WAV.

Each figure is the wall time and the CPU seconds (user + system) of the child process: on a
shared machine the CPU seconds are the steadier figure. Threads: ``OMP_NUM_THREADS=2``.

    python bench/bench_runtimes.py [--files 1000] [--minutes 10] [--repeats 5] [--model M]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = ("torch", "onnx")


def run(args: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of ``python -m biomae ARGS`` as a whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "biomae", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall_s, cpu_s


def compare(name: str, inputs: list[str], audio_s: float, model: str, env: dict, work: Path,
            repeats: int = 1) -> None:  # fmt: skip
    """Annotate ``inputs`` on each runtime ``repeats`` times, alternating; print medians."""
    figures = {runtime: [] for runtime in RUNTIMES}
    for _ in range(repeats):
        for runtime in RUNTIMES:
            out = work / f"{name.replace(' ', '_')}_{runtime}"
            args = ["annotate", *inputs, "--out", str(out), "--model", model, "--runtime",
                    runtime, "--quiet", "--overwrite", "--format", "csv"]  # fmt: skip
            figures[runtime].append(run(args, env))
    for runtime, runs in figures.items():
        wall_s = statistics.median(w for w, _ in runs)
        cpu_s = statistics.median(c for _, c in runs)
        walls = ", ".join(f"{w:.2f}" for w, _ in runs)
        print(f"{name:34s} {runtime:5s} wall {wall_s:7.2f} s ({audio_s / wall_s:6.1f}x real "
              f"time), CPU {cpu_s:7.2f} s  [runs: {walls}]", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000, help="10-s files (0: skip)")
    parser.add_argument("--minutes", type=float, default=10.0, help="stitched recording (0: skip)")
    parser.add_argument("--repeats", type=int, default=5, help="start-up runs")
    parser.add_argument("--model", default="starter")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import bench_annotate
    from bench_annotate import stitch

    bench_annotate.SHARED = Path(os.environ.get("BIOMAE_SHARED_DATA", bench_annotate.SHARED))
    work = Path(tempfile.mkdtemp(prefix="bench_runtimes_"))
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
           "BIOMAE_CACHE": str(work / "cache")}  # fmt: skip
    env.pop("BIOMAE_RUNTIME", None)
    subprocess.run([sys.executable, "-m", "biomae", "export", args.model, "--onnx"], check=True,
                   env=env, capture_output=True)  # fmt: skip  # untimed, as `biomae export` does
    flac = work / "stitched.flac"
    duration_s = stitch(flac, max(args.minutes, 10 / 60 * max(1, min(args.files, 60))) / 60)
    audio, rate = sf.read(flac, dtype="float32")
    one = work / "one.wav"
    sf.write(one, audio[: 10 * rate], rate)
    print(f"load average before: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores", flush=True)
    compare("start-up, one 10-s file", [str(one)], 10.0, args.model, env, work, args.repeats)
    if args.files:
        folder = work / "many"
        folder.mkdir()
        n_clips = max(1, len(audio) // (10 * rate))
        for i in range(args.files):
            k = i % n_clips
            sf.write(folder / f"f{i:05d}.wav", audio[k * 10 * rate : (k + 1) * 10 * rate], rate)
        compare(f"{args.files} files of 10 s", [str(folder)], args.files * 10.0, args.model, env,
                work)  # fmt: skip
    if args.minutes:
        wav = work / "stitched.wav"
        sf.write(wav, audio, rate)
        compare(f"{duration_s / 60:.0f} min stitched", [str(wav)], duration_s, args.model, env,
                work)  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
