"""Self-supervised MAE pretraining: one flat, step-based loop (read it top to bottom).

``pretrain(config)`` sets up, then repeats for ``optim.max_steps`` optimizer steps:

1. learning rate from :func:`~biomae.train.common.lr_at` (a pure function of the step);
2. ``optim.grad_accum`` micro-batches: audio -> log-mel -> **per-clip normalisation** (each clip's
   log-mel is standardised to zero mean and unit variance over all its bins and frames, so
   recordings at any gain look alike) -> MAE loss under bf16 autocast (optional) -> backward;
3. gradient clipping; the NaN guard (a step whose loss or gradient norm is not finite on any rank
   is skipped — no update — and counted; ``train.max_bad_steps`` in a row abort the run);
4. optimizer step; logging (``metrics.csv``, TensorBoard, tqdm); every ``train.eval_every`` steps
   the reconstruction loss on fixed held-out windows (``eval.csv``) and pictures
   (``pictures/step_*.png``); every ``train.ckpt_every`` steps an atomic, resumable checkpoint.

Held-out baselines, scored on the same windows and masks as the eval loss (``eval.csv``):

* ``baseline_zero``: predict 0 for every masked patch — the per-patch normalised mean;
* ``baseline_mean_spec``: predict the dataset mean spectrogram (the mean per-clip-normalised
  log-mel profile over frequency of fixed training windows, repeated over time), per-patch
  normalised like the targets.

Masks are drawn from a generator seeded by ``(train.seed, micro-batch index)``, and the data stream
is indexed the same way (``biomae.train.data``), so a run is reproducible, resumes exactly, and
gives the same losses on one process as on several.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from biomae import distributed
from biomae.atomic_io import atomic_write_text
from biomae.devices import autocast
from biomae.features import FrontEnd
from biomae.models.mae import MAE
from biomae.train import common, data, logs
from biomae.train.config_values import config_changes
from biomae.train.pretrain_config import (
    ConfigError,
    PretrainConfig,
    config_to_dict,
    config_to_json,
)

CHECKPOINT_NAME = "checkpoint.pt"
ENCODER_NAME = "encoder.safetensors"
TRAIN_COLUMNS = ["step", "lr", "loss", "grad_norm", "bad_steps", "windows_per_s", "elapsed_s"]
EVAL_COLUMNS = ["step", "eval_loss", "baseline_zero", "baseline_mean_spec"]
# what must not change when resuming (the weights, the data stream and the masks depend on it)
RESUME_KEYS = ["model", "front_end", "data.batch_size", "data.window_s", "train.seed"]


class NonFiniteLossError(RuntimeError):
    """Too many consecutive optimizer steps with a non-finite loss or gradient norm."""


def mask_generator(seed: int, index: int) -> torch.Generator:
    """CPU generator for the mask of micro-batch ``index`` (see ``biomae.train.data``)."""
    state = np.random.SeedSequence([seed, index, 7]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def build_model(config: PretrainConfig, info: distributed.DistInfo):
    """The MAE on ``info.device``; checkpointing / compile / DDP / FSDP2 applied from outside."""

    mae_config = config.model.build_config()
    if mae_config.encoder.n_mels != config.front_end.n_mels:
        raise ConfigError(
            f"front_end.n_mels={config.front_end.n_mels} differs from the model's "
            f"encoder n_mels={mae_config.encoder.n_mels}"
        )
    torch.manual_seed(config.train.seed)  # identical init on every rank
    model = MAE(mae_config).to(info.device)
    if config.train.activation_checkpointing:
        distributed.apply_activation_checkpointing(model)
    distributed.maybe_compile(model, config.train.compile)
    if config.train.parallel == "ddp":
        model = distributed.wrap_ddp(model, info)
    elif config.train.parallel == "fsdp":
        policy = distributed.mixed_precision_policy(info.device, config.train.bf16)
        model = distributed.shard_fsdp(model, policy) if info.world_size > 1 else model
    return model


@torch.no_grad()
def evaluate(model, spec: torch.Tensor, seed: int, batch_size: int, bf16: bool, mean_spec):
    """Held-out loss and baselines on fixed windows ``spec (N, F, T)`` with fixed masks.

    Returns:
        ``({"eval_loss", "baseline_zero", "baseline_mean_spec"}, first outputs)`` — the losses are
        means over windows (every window has the same number of masked patches).
    """
    core = distributed.unwrap(model)  # the bare MAE (FSDP2 shards in place: itself)
    was_training = model.training
    model.eval()
    sums = {"eval_loss": 0.0, "baseline_zero": 0.0, "baseline_mean_spec": 0.0}
    first = None
    for start in range(0, spec.shape[0], batch_size):
        chunk = spec[start : start + batch_size]  # (b, F, T)
        gen = mask_generator(seed, data.EVAL_STREAM + start)
        with autocast(chunk.device, bf16):
            out = core(chunk, mask_generator=gen)
        baseline = core.target(mean_spec.expand_as(chunk))  # (b, N, P)
        n = chunk.shape[0]
        sums["eval_loss"] += float(out["loss"]) * n
        sums["baseline_zero"] += (
            float(core.masked_loss(torch.zeros_like(out["target"]), out["target"], out["mask"])) * n
        )
        sums["baseline_mean_spec"] += (
            float(core.masked_loss(baseline, out["target"], out["mask"])) * n
        )
        if first is None:
            first = {
                "pred": out["pred"].float().cpu(),
                "target": out["target"].float().cpu(),
                "mask": out["mask"].cpu(),
            }
    model.train(was_training)
    return {k: v / spec.shape[0] for k, v in sums.items()}, first


def pretrain(config: PretrainConfig, resume: bool = True, progress: bool = True, log=print) -> dict:
    """Run (or resume) pretraining as configured; see the module docstring.

    Args:
        config: the run.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (``log`` says so, with the
            step and the path).
        progress: show a tqdm bar on the main process.
        log: where the main process reports resuming (one line).

    Returns:
        Summary: ``step``, ``resumed_step`` (the step this call started from: 0, or the
        checkpoint's), ``losses`` (``{step: loss}`` of the steps run by this call), ``eval`` (last
        eval row: this call's, else the last row of ``eval.csv``, else empty), ``bad_steps``,
        ``out_dir``.

    Raises:
        ConfigError: the checkpoint's run differs in a field listed in ``RESUME_KEYS`` (each
            named, old → new), or the model and front end do not fit together.
        CheckpointError: the checkpoint is unreadable.
        FileNotFoundError: ``data.audio_globs`` or ``data.catalog`` find no recording.
    """
    cfg, tcfg, ocfg = config, config.train, config.optim
    info = distributed.init(tcfg.device)
    out_dir = Path(tcfg.out_dir)
    main = info.is_main
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)

    # --- data: train / held-out split by recording, fixed eval windows, baseline statistics
    if cfg.data.catalog:
        prepared_rate = cfg.front_end.sample_rate if cfg.data.prepared else None
        recordings = data.catalog_recordings(cfg.data.catalog, prepared_rate)
    else:
        recordings = data.find_recordings(cfg.data.audio_globs)
    train_recs, eval_recs = data.split_recordings(recordings, cfg.data.eval_fraction)
    model = build_model(cfg, info)
    core = distributed.unwrap(model)
    front = FrontEnd(cfg.front_end, core.config.encoder.patch_t, info.device)
    rate, n_samples = cfg.front_end.sample_rate, cfg.window_samples
    eval_spec = front(
        data.fixed_windows(eval_recs, cfg.data.n_eval_windows, n_samples, rate, tcfg.seed)
    )  # (N_eval, F, T)
    stats_spec = front(data.fixed_windows(train_recs, 64, n_samples, rate, tcfg.seed + 1))
    mean_spec = stats_spec.mean(dim=(0, 2))[None, :, None]  # (1, F, 1) dataset mean profile

    # --- optimizer and resume
    optimizer = common.build_optimizer(model, ocfg.lr, ocfg.betas, ocfg.weight_decay)
    step, consumed, bad_in_row, bad_total = 0, 0, 0, 0
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume and ckpt_path.exists():
        ckpt = common.load_checkpoint(ckpt_path)
        saved = json.loads(ckpt["config"])
        changed = config_changes(saved, config_to_dict(cfg), RESUME_KEYS)
        if changed:
            raise ConfigError(
                f"{ckpt_path}: cannot resume from step {ckpt['step']}, the config changed: "
                f"{'; '.join(changed)}; put the old values back (the run's config is "
                f"{out_dir / 'config.json'}) or start a new run with --out DIR"
            )
        distributed.load_full_state_dicts(model, optimizer, ckpt["model"], ckpt["optimizer"])
        step, consumed = ckpt["step"], ckpt["data"]["micro_batches"]
        bad_in_row = int(ckpt["metrics"].get("bad_in_row", 0))
        bad_total = int(ckpt["metrics"].get("bad_total", 0))
        common.set_rng_state(ckpt["rng"])
        del ckpt
        if main:
            logs.truncate_csv(out_dir / "metrics.csv", TRAIN_COLUMNS, step)
            logs.truncate_csv(out_dir / "eval.csv", EVAL_COLUMNS, step)
            others = config_changes(saved, config_to_dict(cfg), ["data", "optim", "train"])
            log(
                f"pretrain: resuming from step {step} of {ckpt_path}"
                + (f" (changed: {'; '.join(others)})" if others else "")
            )
    resumed_step = step
    if main:
        atomic_write_text(out_dir / "config.json", config_to_json(cfg) + "\n")

    stream = data.RandomWindows(
        train_recs,
        n_samples,
        rate,
        cfg.data.batch_size,
        tcfg.seed,
        info.rank,
        info.world_size,
        start=consumed,
        n_fft_choices=cfg.data.n_fft_choices,
        augment=data.make_augment(cfg.data.mix_prob, cfg.data.noise_prob, rate),
    )
    loader = iter(
        data.BatchLoader(stream, cfg.data.num_workers, pin_memory=info.device.type == "cuda")
    )
    writer = None
    if main:
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=step)
    bar = None
    if main and progress:
        from tqdm import tqdm

        bar = tqdm(total=ocfg.max_steps, initial=step, desc="pretrain", dynamic_ncols=True)

    # --- the loop
    params = [p for p in model.parameters() if p.requires_grad]
    losses: dict[int, float] = {}
    last_eval: dict = {}
    windows_per_step = cfg.data.batch_size * ocfg.grad_accum * info.world_size
    t_start = t_log = time.perf_counter()
    model.train()
    while step < ocfg.max_steps:
        lr = common.lr_at(step, ocfg.lr, ocfg.warmup_steps, ocfg.max_steps, ocfg.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=info.device)
        for micro in range(ocfg.grad_accum):
            batch = next(loader)
            consumed += 1
            spec = front(batch["audio"], batch["n_fft"])  # (B, F, T)
            last = micro == ocfg.grad_accum - 1
            sync = (
                model.no_sync()
                if hasattr(model, "no_sync") and not last
                else contextlib.nullcontext()
            )
            with sync:
                with autocast(info.device, tcfg.bf16):
                    out = model(spec, mask_generator=mask_generator(tcfg.seed, batch["index"]))
                (out["loss"] / ocfg.grad_accum).backward()
            loss_sum += out["loss"].detach() / ocfg.grad_accum
        max_norm = ocfg.clip_norm if ocfg.clip_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        local_bad = float(not (torch.isfinite(loss_sum) and torch.isfinite(grad_norm)))
        loss, bad = distributed.all_reduce_mean([loss_sum, local_bad], info.device)
        if bad > 0:  # NaN guard: any rank non-finite -> no update anywhere
            optimizer.zero_grad(set_to_none=True)
            bad_in_row, bad_total = bad_in_row + 1, bad_total + 1
            if bad_in_row >= tcfg.max_bad_steps:
                raise NonFiniteLossError(
                    f"{bad_in_row} consecutive steps up to step {step} had a "
                    f"non-finite loss or gradient (train.max_bad_steps="
                    f"{tcfg.max_bad_steps}); lower optim.lr or check the data"
                )
        else:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            bad_in_row = 0
        step += 1
        losses[step] = loss

        if main and (step % tcfg.log_every == 0 or step == ocfg.max_steps):
            now_t = time.perf_counter()
            row = {
                "step": step,
                "lr": f"{lr:.6g}",
                "loss": f"{loss:.6f}",
                "grad_norm": f"{float(grad_norm):.4f}",
                "bad_steps": bad_total,
                "windows_per_s": f"{windows_per_step * tcfg.log_every / (now_t - t_log):.2f}",
                "elapsed_s": f"{now_t - t_start:.1f}",
            }
            t_log = now_t
            logs.append_csv(out_dir / "metrics.csv", TRAIN_COLUMNS, row)
            if writer is not None:
                writer.add_scalar("train/loss", loss, step)
                writer.add_scalar("train/lr", lr, step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")

        out_of_time = tcfg.time_budget_s > 0 and time.perf_counter() - t_start > tcfg.time_budget_s
        out_of_time = distributed.all_reduce_mean([float(out_of_time)], info.device)[0] > 0
        done = step == ocfg.max_steps or out_of_time
        if (tcfg.eval_every and step % tcfg.eval_every == 0) or done:
            scores, first = evaluate(
                model, eval_spec, tcfg.seed, cfg.data.batch_size, tcfg.bf16, mean_spec
            )
            last_eval = {"step": step, **{k: round(v, 6) for k, v in scores.items()}}
            if main:
                logs.append_csv(out_dir / "eval.csv", EVAL_COLUMNS, last_eval)
                if writer is not None:
                    for key, value in scores.items():
                        writer.add_scalar(f"eval/{key}", value, step)
                if tcfg.n_pictures:
                    logs.save_pictures(
                        core,
                        eval_spec,
                        first,
                        out_dir / "pictures" / f"step_{step:07d}.png",
                        tcfg.n_pictures,
                    )
        if (tcfg.ckpt_every and step % tcfg.ckpt_every == 0) or done:
            model_state, optim_state = distributed.full_state_dicts(model, optimizer)
            if main:
                common.save_checkpoint(
                    ckpt_path,
                    model_state=model_state,
                    optim_state=optim_state,
                    step=step,
                    data_state={"seed": tcfg.seed, "micro_batches": consumed},
                    config_json=config_to_json(cfg),
                    metrics={"bad_in_row": bad_in_row, "bad_total": bad_total},
                )
            distributed.barrier()
        if out_of_time:
            break

    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if main and ckpt_path.exists():
        common.export_encoder(ckpt_path, out_dir / ENCODER_NAME)
    if not last_eval and main:
        last_eval = logs.last_row(out_dir / "eval.csv")
    distributed.barrier()
    return {
        "step": step,
        "resumed_step": resumed_step,
        "losses": losses,
        "eval": last_eval,
        "bad_steps": bad_total,
        "out_dir": str(out_dir),
        "rank": info.rank,
        "world_size": info.world_size,
    }
