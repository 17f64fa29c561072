"""GPU benchmark for issue 5: ``vit1b`` MAE pretraining steps in bf16 on one GPU.

Made for a session that has the device tool (an H100 or H200, ~15 minutes). One run:

1. checks that CUDA computes what the CPU computes (a tiny MAE's loss and gradients in fp32, the
   log-mel front end), so the timings below are of a correct model;
2. measures the card's bf16 matmul peak (8192^3 products) in the same process;
3. times pretraining steps of the preset at each ``--batches`` size: step time, clips/s, model
   FLOP/s, MFU against the measured and the nominal dense bf16 peak, peak memory;
4. searches the largest batch of ``--clip-s`` clips that fits (doubling, then one midpoint).

Modes: ``autocast`` (fp32 master weights, bf16 autocast, fused AdamW: what ``biomae pretrain``
does on one GPU) or ``fsdp`` (FSDP2 ``fully_shard`` per block with the bf16 parameter policy of
``biomae.distributed``, on a one-process group: the multi-GPU code path without communication).
``--compile`` compiles every block; ``--checkpointing`` recomputes block activations.

    python bench/bench_gpu_vit1b.py [--mode autocast|fsdp] [--batches 32,64,128] [--compile]
    python bench/bench_gpu_vit1b.py --device cpu --preset tiny --batches 2 --max-batch 4  # smoke

Model FLOPs per step = 3 x analytic forward matmul FLOPs (``biomae.models.presets``): the encoder
on the visible 20% of patches plus the decoder on all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch

NOMINAL_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM datasheets


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sanity_checks(device: torch.device) -> None:
    """Fail loudly if the model or the front end computes something else on ``device``."""
    from biomae.features import Spectrogram, SpectrogramConfig
    from biomae.models.mae import MAE
    from biomae.models.presets import get_preset

    torch.manual_seed(0)
    model = MAE(get_preset("tiny", **{"encoder.depth": 2}))
    spec = torch.randn(2, 128, 320)  # (B, F, T)
    results = []
    for dev in (torch.device("cpu"), device):
        m = model.to(dev)
        m.zero_grad(set_to_none=True)
        out = m(spec.to(dev), mask_generator=torch.Generator().manual_seed(1))
        out["loss"].backward()
        grad = m.encoder.blocks[0].attn.qkv.weight.grad.detach().cpu().clone()
        results.append((out["loss"].item(), grad))
    (loss_a, grad_a), (loss_b, grad_b) = results
    grad_err = ((grad_a - grad_b).norm() / grad_a.norm()).item()
    assert abs(loss_a - loss_b) < 1e-3 * abs(loss_a), (loss_a, loss_b)
    assert grad_err < 1e-3, grad_err
    front = Spectrogram(SpectrogramConfig(sample_rate=48_000))
    audio = 0.1 * torch.randn(2, 48_000 * 3)
    mel_cpu = front(audio)
    mel_dev = front.to(device)(audio.to(device)).cpu()
    mel_err = (mel_cpu - mel_dev).abs().max().item()
    assert mel_err < 1e-2, mel_err
    print(
        f"sanity on {device}: tiny MAE loss {loss_b:.5f} (cpu {loss_a:.5f}), qkv grad rel err "
        f"{grad_err:.1e}; log-mel max abs err {mel_err:.1e} dB-units"
    )


def measured_peak_tflops(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    """Dense bf16 matmul rate of this card (fp32 on CPU, smaller)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = n if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def build(preset: str, device: torch.device, mode: str, compile_blocks: bool, ckpt: bool):
    from biomae import distributed
    from biomae.models.mae import MAE
    from biomae.models.presets import get_preset

    config = get_preset(preset)
    with torch.device(device):
        model = MAE(config)  # initialised on the card: no 6-GB host copy
    if ckpt:
        distributed.apply_activation_checkpointing(model)
    distributed.maybe_compile(model, compile_blocks)
    if mode == "fsdp":
        import torch.distributed as dist

        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29531")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=0, world_size=1)
        policy = distributed.mixed_precision_policy(device, bf16=True)
        distributed.shard_fsdp(model, policy)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    return config, model, optimizer


def make_step(model, optimizer, device: torch.device, mode: str):
    use_autocast = device.type == "cuda" and mode == "autocast"

    def one_step(spec: torch.Tensor) -> None:
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if use_autocast
            else contextlib.nullcontext()
        )
        with ctx:
            loss = model(spec)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return one_step


def time_steps(one_step, batch: int, n_mels: int, frames: int, device, repeats: int) -> float:
    """Seconds per step, after two warm-up steps."""
    spec = torch.randn(batch, n_mels, frames, device=device)  # (B, F, T) normalised log-mel
    for _ in range(2):
        one_step(spec)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        one_step(spec)
    sync(device)
    return (time.perf_counter() - start) / repeats


def fits(one_step, batch: int, n_mels: int, frames: int, device) -> bool:
    try:
        spec = torch.randn(batch, n_mels, frames, device=device)
        one_step(spec)
        sync(device)
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        spec = None
        if device.type == "cuda":
            torch.cuda.empty_cache()


def peak_gib(device: torch.device) -> float:
    return (
        torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="vit1b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--mode", choices=["autocast", "fsdp"], default="autocast")
    parser.add_argument("--batches", default="32,64,128", help="comma-separated batch sizes")
    parser.add_argument("--clip-s", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--max-batch", type=int, default=512, help="largest-batch search bound")
    parser.add_argument("--skip-sanity", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu_vit1b: --device cuda but torch.cuda.is_available() is False")
    from biomae.models.presets import count_params, flops_per_second_of_audio

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    nominal = next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in name), None)
    extras = ["compiled blocks"] * args.compile + ["checkpointing"] * args.checkpointing
    print(f"device: {name}; torch {torch.__version__}; mode {', '.join([args.mode, *extras])}")
    if not args.skip_sanity:
        sanity_checks(device)
    peak = measured_peak_tflops(device)
    print(
        f"measured matmul peak: {peak:.0f} TFLOP/s"
        + (f" (nominal {nominal:.0f})" if nominal else "")
    )
    start = time.perf_counter()
    config, model, optimizer = build(
        args.preset, device, args.mode, args.compile, args.checkpointing
    )
    n_enc, n_all = count_params(model.encoder) / 1e6, count_params(model) / 1e6
    print(
        f"{args.preset}: encoder {n_enc:.0f}M, decoder {n_all - n_enc:.0f}M params; built in "
        f"{time.perf_counter() - start:.1f} s"
    )
    one_step = make_step(model, optimizer, device, args.mode)
    n_mels, patch_t = config.encoder.n_mels, config.encoder.patch_t
    frames = round(args.clip_s / 0.01) // patch_t * patch_t
    flops = flops_per_second_of_audio(config, clip_s=args.clip_s)
    clip_flops = 3 * (flops["encoder_visible"] + flops["decoder"]) * args.clip_s
    print(f"model FLOPs per {args.clip_s:g}-s clip and step: {clip_flops / 1e12:.2f} TFLOP")
    batches = [int(b) for b in args.batches.split(",")]
    largest, too_big = 0, None
    for batch in batches:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        try:
            seconds = time_steps(one_step, batch, n_mels, frames, device, args.repeats)
        except torch.OutOfMemoryError:
            print(f"batch {batch:4d}: out of memory")
            too_big = batch
            torch.cuda.empty_cache()
            break
        largest = batch
        achieved = clip_flops * batch / seconds / 1e12
        mfu = f"MFU {achieved / peak:.1%} of measured"
        if nominal:
            mfu += f", {achieved / nominal:.1%} of nominal"
        print(
            f"batch {batch:4d}: {seconds * 1e3:7.0f} ms/step, {batch / seconds:6.1f} clips/s, "
            f"{achieved:6.1f} TFLOP/s, {mfu}; peak memory {peak_gib(device):.1f} GiB "
            f"(timing incl. warm-up {time.perf_counter() - t0:.0f} s)"
        )
    # Largest batch: double from the last batch that ran until one fails, then one midpoint.
    while too_big is None and largest * 2 <= args.max_batch:
        if fits(one_step, largest * 2, n_mels, frames, device):
            largest *= 2
        else:
            too_big = largest * 2
    if too_big is not None and largest:
        middle = (largest + too_big) // 2
        if middle > largest and fits(one_step, middle, n_mels, frames, device):
            largest = middle
    bound = f"first failure {too_big}" if too_big else f"searched to {args.max_batch}"
    print(f"largest batch of {args.clip_s:g}-s clips that fits ({bound}): {largest}")


if __name__ == "__main__":
    main()
