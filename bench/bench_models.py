"""Pretraining throughput of the MAE presets and achieved FLOP/s against this machine's matmul peak.

For each preset: 10-s clips (1000 frames at a 10 ms hop, padded to 1008 -> 504 patches),
forward + backward + AdamW step under autocast in the chosen dtype. Model FLOPs per clip are
``3 x`` the analytic forward matmul FLOPs (``biomae.models.presets.flops_per_second_of_audio``)
of the encoder on visible patches plus the decoder on all patches. The peak is a large square
matmul in the same dtype, timed in the same run with the same thread count, and timed again
after each preset (averaged with the previous figure) because the machine may be shared.

``--dtype auto`` (default) measures the bf16 and fp32 peaks and trains in the faster one: bf16
needs AVX512-BF16/AMX (or a GPU); on AVX2-only CPUs bf16 matmuls fall back to a slow path.

    .venv/bin/python bench/bench_models.py                       # tiny, small, base
    .venv/bin/python bench/bench_models.py --presets tiny --steps 5 --compile
"""

from __future__ import annotations

import argparse
import time

import torch

from biomae.models.mae import MAE
from biomae.models.presets import flops_per_second_of_audio, get_preset

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
BATCH = {"tiny": 16, "small": 8, "base": 4, "large": 2, "huge": 1, "vit1b": 1}
CLIP_FRAMES = 1008  # 10 s at 10 ms = 1000 frames, padded to a multiple of 16


def matmul_peak(dtype: torch.dtype, max_n: int = 4096, max_s: float = 2.0) -> tuple[float, int]:
    """Best FLOP/s of an ``n x n @ n x n`` matmul, growing ``n`` while one takes < ``max_s``."""
    best, best_n, n = 0.0, 0, 256
    while n <= max_n:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        a @ b  # warm up
        repeats = 3
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        elapsed = (time.perf_counter() - start) / repeats
        if 2 * n**3 / elapsed > best:
            best, best_n = 2 * n**3 / elapsed, n
        if elapsed * 8 > max_s:  # the next size would take 8x longer
            break
        n *= 2
    return best, best_n


def train_flops_per_clip(name: str) -> float:
    """3 x forward matmul FLOPs of one 10.08-s clip (encoder on visible + decoder on all)."""
    clip_s = CLIP_FRAMES / 100
    flops = flops_per_second_of_audio(get_preset(name), clip_s=clip_s)
    return 3.0 * (flops["encoder_visible"] + flops["decoder"]) * clip_s


def bench_preset(
    name: str, batch: int, steps: int, dtype: torch.dtype, compile_model: bool
) -> tuple[float, float]:
    """Returns (clips per second, seconds of the first step incl. compilation)."""
    torch.manual_seed(0)
    model = MAE(get_preset(name))
    step_model = torch.compile(model) if compile_model else model
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), foreach=True)
    spec = torch.randn(batch, 128, CLIP_FRAMES)  # (B, F, T), already normalised

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = step_model(spec)["loss"]
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    start = time.perf_counter()
    step()  # warm-up (and compilation)
    first_s = time.perf_counter() - start
    step()  # the allocator and the optimizer state settle in the second step
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start), first_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="tiny,small,base")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--dtype", default="auto", choices=["auto", *DTYPES])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--batch", type=int, default=None, help="clips per step (default per preset)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    peaks = {}
    for key in DTYPES if args.dtype == "auto" else [args.dtype]:
        peaks[key] = matmul_peak(DTYPES[key])
        print(
            f"{key} matmul peak: {peaks[key][0] / 1e9:8.1f} GFLOP/s ({peaks[key][1]}^3, "
            f"{args.threads} threads)"
        )
    key = max(peaks, key=lambda k: peaks[k][0]) if args.dtype == "auto" else args.dtype
    print(f"training dtype: {key}{' (compiled)' if args.compile else ''}")
    print(
        f"{'preset':<7} {'batch':>5} {'clips/s':>8} {'GFLOP/clip':>11} {'GFLOP/s':>8} "
        f"{'peak':>7} {'of peak':>8} {'1st step s':>10}"
    )
    for name in args.presets.split(","):
        batch = args.batch or BATCH[name]
        clips_s, first_s = bench_preset(name, batch, args.steps, DTYPES[key], args.compile)
        # the machine may be shared: take the peak again right after, average the two
        peak = (peaks[key][0] + matmul_peak(DTYPES[key])[0]) / 2
        peaks[key] = (peak, peaks[key][1])
        flops = train_flops_per_clip(name)
        achieved = clips_s * flops
        print(
            f"{name:<7} {batch:>5} {clips_s:>8.2f} {flops / 1e9:>11.1f} {achieved / 1e9:>8.1f} "
            f"{peak / 1e9:>7.1f} {achieved / peak:>8.1%} {first_s:>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
