"""Supervised fine-tuning of a (pretrained) encoder with a head: one flat, step-based loop.

``finetune(config)`` trains ``encoder → head`` on labelled recordings (audio + one Raven table per
recording, found by :func:`find_labeled`) for one task, ``TASKS[config.head.task]``
(:mod:`biomae.train.tasks`): its head, targets, loss and validation score. The shipped tasks are
``detect`` (frame activity, validated by event F1 at IoU >= 0.3 on whole held-out recordings),
``classify`` (multi-label clips, micro F1) and ``embed`` (SupCon embeddings, minus the held-out
loss); the loop itself holds nothing task-specific.

Every step: learning rate from :func:`~biomae.train.common.lr_at` scaled per parameter group by
**layer-wise decay** (``finetune.layer_decay ** (depth + 1 - layer)``: patch embedding = layer 0,
block ``i`` = layer ``i + 1``, final norm and head = ``depth + 1``), or a frozen-encoder probe
(``finetune.freeze_encoder``: only the head trains); log-mel with per-clip standardisation (the
front end of :class:`biomae.features.FrontEnd`); a NaN guard; every
``train.eval_every`` steps validation, keeping the best model as ``best.safetensors`` (encoder +
head weights, the run config in its metadata: :func:`load_finetuned`); every ``train.ckpt_every``
steps a resumable ``checkpoint.pt`` (:func:`~biomae.train.common.save_checkpoint`). A rerun with
the same ``out_dir`` resumes from it. Recordings are split into train / validation by a hash of
their path, or of their group of individuals (``data.split_by = "individual"``: recordings that
share an individual stay on one side).

The pieces live beside this loop: the config in :mod:`biomae.train.finetune_config`, the labelled
data (discovery, split, windows) in :mod:`biomae.train.finetune_data`, the model, its parameter
groups and its file in :mod:`biomae.train.finetune_model`, the tasks in :mod:`biomae.train.tasks`;
their public names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import pandas as pd
import torch

from biomae.atomic_io import atomic_path, atomic_write_text
from biomae.devices import autocast, resolve_device
from biomae.features import FrontEnd
from biomae.train import common
from biomae.train.config_values import config_changes
from biomae.train.finetune_config import (
    SECTIONS,
    FinetuneConfig,
    FinetuneSection,
    HeadConfig,
    LabeledDataConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from biomae.train.finetune_data import (
    AUDIO_SUFFIXES,
    LabeledRecording,
    LabeledWindows,
    catalog_labeled,
    find_labeled,
    split_labeled,
)
from biomae.train.finetune_model import (
    MODEL_FORMAT,
    FinetuneModel,
    build_head,
    build_model,
    load_finetuned,
    param_groups,
    save_finetuned,
)
from biomae.train.pretrain_config import ConfigError
from biomae.train.tasks import (
    CALIBRATION_THRESHOLDS,
    TASKS,
    Task,
    calibrated,
    clip_targets,
    predict_recording,
    predict_recordings,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "BEST_NAME",
    "CALIBRATION_THRESHOLDS",
    "CHECKPOINT_NAME",
    "MODEL_FORMAT",
    "SECTIONS",
    "TASKS",
    "Task",
    "FinetuneConfig",
    "FinetuneModel",
    "FinetuneSection",
    "HeadConfig",
    "LabeledDataConfig",
    "LabeledRecording",
    "LabeledWindows",
    "build_head",
    "build_model",
    "calibrated",
    "catalog_labeled",
    "clip_targets",
    "config_from_dict",
    "config_to_dict",
    "find_labeled",
    "finetune",
    "load_config",
    "load_finetuned",
    "param_groups",
    "predict_recording",
    "predict_recordings",
    "save_finetuned",
    "split_labeled",
    "task_loss",
    "validate",
]

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.safetensors"
RESUME_KEYS = ("model", "front_end", "head", "finetune")  # must not change when resuming


# ----------------------------------------------------------------------------------------------
# The task's loss and validation


def task_loss(model: FinetuneModel, spec: torch.Tensor, batch: dict, config: FinetuneConfig):
    """The training loss of one micro-batch; ``spec`` is ``(B, F, T)`` normalised log-mel."""
    task = TASKS[config.head.task]
    out = model(spec)
    return task.loss(out, task.targets(model.head, out, batch, config), config)


@torch.no_grad()
def validate(model, front_end, val_items, val_batch, config: FinetuneConfig, device):
    """``(score, decode)``: the task's validation score (higher is better) — event F1 (detect),
    clip micro F1 (classify) or minus the SupCon loss (embed) — and the decode settings it was
    reached with (calibrated when ``finetune.calibrate_threshold``)."""
    model.eval()
    task = TASKS[config.head.task]
    return task.score(model, front_end, val_items, val_batch, config, device)


# ----------------------------------------------------------------------------------------------
# The loop


def finetune(config: FinetuneConfig, log=print, progress: bool = True) -> dict:
    """Run (or resume) fine-tuning; returns ``{"step", "best_score", "best_path"}``.

    ``log`` gets one line per event (resuming, validation, the time budget) and, with
    ``progress``, one every ``train.log_every`` steps.

    Raises:
        ConfigError: the run folder's checkpoint was trained with another model, front end, head
            or finetune section (each changed field named, old → new).
        CheckpointError: the checkpoint is unreadable.
    """

    out_dir = Path(config.train.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.train.device)
    if config.data.catalog:
        prepared_rate = config.front_end.sample_rate if config.data.prepared else None
        items, left_out = catalog_labeled(config.data.catalog, config.data.datasets, prepared_rate)
        if left_out:
            log(
                f"finetune: {len(left_out)} partially annotated catalog recordings left out, "
                f"e.g. {left_out[0]}"
            )
    else:
        items = find_labeled(config.data.data_dir)
    train_items, val_items = split_labeled(items, config.data.val_fraction, config.data.split_by)
    task = TASKS[config.head.task]
    task.check_split(val_items)
    log(
        f"finetune: {len(train_items)} train / {len(val_items)} validation recordings "
        f"({config.data.split_by} split) from {config.data.catalog or config.data.data_dir}"
    )
    model = build_model(config).to(device)
    front_end = FrontEnd(config.front_end, model.encoder.config.patch_t, device)
    o = config.optim
    groups = param_groups(model, o.weight_decay, config.finetune.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas)
    params = [p for g in groups for p in g["params"]]
    step, best, bad = 0, -math.inf, 0
    ckpt_path, best_path = out_dir / CHECKPOINT_NAME, out_dir / BEST_NAME
    config_json = json.dumps(config_to_dict(config), indent=2, sort_keys=True)
    if ckpt_path.exists():
        payload = common.load_checkpoint(ckpt_path)
        saved = json.loads(payload["config"])
        changed = config_changes(saved, config_to_dict(config), list(RESUME_KEYS))
        if changed:
            raise ConfigError(
                f"{ckpt_path}: cannot resume from step {payload['step']}, the config changed: "
                f"{'; '.join(changed)}; put the old values back (the run's config is "
                f"{out_dir / 'config.json'}) or start a new run with --out DIR"
            )
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        common.set_rng_state(payload["rng"])
        step, best = payload["step"], payload["metrics"]["best_score"]
        log(f"finetune: resuming from step {step} of {ckpt_path} (best {best:.4f})")
        if step >= o.max_steps:
            log(
                f"finetune: already complete at step {step} (optim.max_steps={o.max_steps}); "
                "raise optim.max_steps to train on"
            )
    atomic_write_text(out_dir / "config.json", config_json + "\n")
    windows = LabeledWindows(
        train_items,
        config.window_samples,
        config.front_end.sample_rate,
        config.data.batch_size,
        config.train.seed,
        config.data.positive_fraction,
        task.pairs,
    )
    val_batch = task.validation_batch(val_items, config)
    rows, started = [], time.time()
    while step < o.max_steps:
        lr = common.lr_at(step, o.lr, o.warmup_steps, o.max_steps, o.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        model.train()
        if config.finetune.freeze_encoder:
            model.encoder.eval()
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for micro in range(o.grad_accum):
            batch = windows.batch(step * o.grad_accum + micro)
            with autocast(device, config.train.bf16):
                loss = task_loss(model, front_end(batch["audio"]), batch, config) / o.grad_accum
            loss.backward()
            loss_sum += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, o.clip_norm or math.inf))
        if math.isfinite(loss_sum) and math.isfinite(grad_norm):
            optimizer.step()
            bad = 0
        else:
            bad += 1
            log(f"finetune: step {step}: loss {loss_sum}, grad norm {grad_norm}: skipped")
            if bad >= config.train.max_bad_steps:
                raise FloatingPointError(f"{bad} consecutive non-finite steps; stopping at {step}")
        step += 1
        out_of_time = 0 < config.train.time_budget_s < time.time() - started
        last = step == o.max_steps or out_of_time
        row = {"step": step, "lr": lr, "loss": loss_sum, "grad_norm": grad_norm, "val_score": ""}
        every = config.train.eval_every
        if (every and step % every == 0) or last:
            score, decode = validate(model, front_end, val_items, val_batch, config, device)
            row["val_score"] = score
            if score > best:
                best = score
                chosen = dataclasses.replace(config, decode=decode)
                save_finetuned(model, chosen, best_path, {"step": step, "val_score": score})
            note = (
                f" at threshold {decode.threshold_on:g}"
                if config.finetune.calibrate_threshold
                else ""
            )
            log(f"finetune: step {step}: validation {score:.4f}{note} (best {best:.4f})")
        if progress and (step % config.train.log_every == 0 or last):
            log(f"finetune: step {step}/{o.max_steps} loss {loss_sum:.4f} lr {lr:.2e}")
        rows.append(row)
        if (config.train.ckpt_every and step % config.train.ckpt_every == 0) or last:
            common.save_checkpoint(
                ckpt_path,
                model_state=model.state_dict(),
                optim_state=optimizer.state_dict(),
                step=step,
                data_state={"seed": config.train.seed, "step": step},
                config_json=config_json,
                metrics={"best_score": best, "bad_steps": bad},
            )
            _write_metrics(out_dir / "metrics.csv", rows)
        if out_of_time:
            log(f"finetune: time budget {config.train.time_budget_s} s spent at step {step}")
            break
    return {"step": step, "best_score": best, "best_path": best_path}


def _write_metrics(path: Path, rows: list[dict]) -> None:
    """Append this session's rows to ``metrics.csv`` (dropping rows a resumed run redoes)."""
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if len(old):
        old = old[old["step"] < rows[0]["step"]]
    table = pd.concat([old, pd.DataFrame(rows)], ignore_index=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
