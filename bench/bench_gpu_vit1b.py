"""GPU benchmark for issue 5: one ``vit1b`` MAE pretraining step in bf16 on one GPU.

Prepared for a session that has the device tool (an H100 or H200, ~15 minutes): one short run
prints the step time, model FLOP/s, MFU against both the card's nominal dense bf16 peak and a bf16
matmul peak measured in the same run, peak memory, and the largest batch of 10-s clips that fits.

    python bench/bench_gpu_vit1b.py [--preset vit1b] [--batch 8] [--compile] [--checkpointing]

Model FLOPs per step = 3 x analytic forward matmul FLOPs (``biomae.models.presets``), encoder on the
visible 20% of patches plus decoder on all of them; AdamW on fp32 master weights, bf16 autocast.
"""

from __future__ import annotations

import argparse
import time

import torch

NOMINAL_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


def measured_peak_tflops(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def build(preset: str, device, compile_blocks: bool, checkpointing: bool):
    from biomae import distributed
    from biomae.models.mae import MAE
    from biomae.models.presets import get_preset

    config = get_preset(preset)
    model = MAE(config).to(device)
    if checkpointing:
        distributed.apply_activation_checkpointing(model)
    distributed.maybe_compile(model, compile_blocks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    return config, model, optimizer


def step_time(model, optimizer, batch: int, n_mels: int, frames: int, device, repeats: int):
    spec = torch.randn(batch, n_mels, frames, device=device)  # (B, F, T) normalised log-mel

    def one_step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(spec)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        one_step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        one_step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="vit1b")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--clip-s", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--max-batch", type=int, default=256, help="search the largest batch up to")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu_vit1b needs CUDA")
    from biomae.models.presets import count_params, flops_per_second_of_audio

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    nominal = next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in name), None)
    peak = measured_peak_tflops(device)
    config, model, optimizer = build(args.preset, device, args.compile, args.checkpointing)
    frames = round(args.clip_s / 0.01) // config.encoder.patch_t * config.encoder.patch_t
    flops = flops_per_second_of_audio(config, clip_s=args.clip_s)
    step_flops = 3 * (flops["encoder_visible"] + flops["decoder"]) * args.clip_s * args.batch
    torch.cuda.reset_peak_memory_stats()
    seconds = step_time(
        model, optimizer, args.batch, config.encoder.n_mels, frames, device, args.repeats
    )
    achieved = step_flops / seconds / 1e12
    n_encoder, n_total = count_params(model.encoder) / 1e6, count_params(model) / 1e6
    print(
        f"device: {name}; torch {torch.__version__}; preset {args.preset}: encoder "
        f"{n_encoder:.0f}M, total {n_total:.0f}M params"
    )
    print(
        f"batch {args.batch} x {args.clip_s:g}-s clips: {seconds * 1e3:.0f} ms/step, "
        f"{args.batch / seconds:.1f} clips/s, {achieved:.0f} model TFLOP/s"
    )
    print(
        f"MFU: {achieved / peak:.1%} of the measured bf16 matmul peak ({peak:.0f} TFLOP/s)"
        + (f", {achieved / nominal:.1%} of the nominal {nominal:.0f}" if nominal else "")
    )
    print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB at batch {args.batch}")
    largest, batch = args.batch, args.batch * 2
    while batch <= args.max_batch:
        try:
            step_time(model, optimizer, batch, config.encoder.n_mels, frames, device, 1)
        except torch.OutOfMemoryError:
            break
        largest, batch = batch, batch * 2
        torch.cuda.empty_cache()
    torch.cuda.empty_cache()
    print(f"largest batch that fits (powers of two from {args.batch}): {largest}")


if __name__ == "__main__":
    main()
