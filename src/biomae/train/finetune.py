"""Supervised fine-tuning of a (pretrained) encoder with a head: one flat, step-based loop.

``finetune(config)`` trains ``encoder → head`` on labelled recordings (audio + one Raven table per
recording, found by :func:`find_labeled`) for one of three tasks:

- ``detect``: :class:`~biomae.models.heads.DetectionHead`, frame targets from
  :func:`biomae.decode.frame_targets`, class-balanced BCE (or focal loss); validated by **event F1
  at IoU >= 0.3** (:func:`biomae.evaluate.metrics.event_f1`) on whole held-out recordings, decoded
  with the ``[decode]`` settings;
- ``classify``: :class:`~biomae.models.heads.ClassificationHead` (attention pooling), multi-label
  BCE on the labels of events whose midpoint lies in the window; validated by micro F1 at 0.5;
- ``embed``: :class:`~biomae.models.heads.ProjectionHead` and SupCon over pairs of windows around
  the same event (two views); validated by minus the held-out SupCon loss.

Every step: learning rate from :func:`~biomae.train.common.lr_at` scaled per parameter group by
**layer-wise decay** (``finetune.layer_decay ** (depth + 1 - layer)``: patch embedding = layer 0,
block ``i`` = layer ``i + 1``, final norm and head = ``depth + 1``), or a frozen-encoder probe
(``finetune.freeze_encoder``: only the head trains); log-mel with per-clip standardisation (the
pretraining front end, :class:`biomae.train.pretrain.FrontEnd`); a NaN guard; every
``train.eval_every`` steps validation, keeping the best model as ``best.safetensors`` (encoder +
head weights, the run config in its metadata: :func:`load_finetuned`); every ``train.ckpt_every``
steps a resumable ``checkpoint.pt`` (:func:`~biomae.train.common.save_checkpoint`). A rerun with
the same ``out_dir`` resumes from it. Recordings are split into train / validation by a hash of
their path, or of their group of individuals (``data.split_by = "individual"``: recordings that
share an individual stay on one side).

The pieces live beside this loop: the config in :mod:`biomae.train.finetune_config`, the labelled
data (discovery, split, windows) in :mod:`biomae.train.finetune_data`, the model, its parameter
groups and its file in :mod:`biomae.train.finetune_model`; their public names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biomae._io import atomic_path, atomic_write_text
from biomae.train.config import ConfigError
from biomae.train.config_values import config_changes
from biomae.train.finetune_config import (
    SECTIONS,
    TASKS,
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

__all__ = [
    "AUDIO_SUFFIXES",
    "BEST_NAME",
    "CHECKPOINT_NAME",
    "MODEL_FORMAT",
    "SECTIONS",
    "TASKS",
    "FinetuneConfig",
    "FinetuneModel",
    "FinetuneSection",
    "HeadConfig",
    "LabeledDataConfig",
    "LabeledRecording",
    "LabeledWindows",
    "build_head",
    "build_model",
    "catalog_labeled",
    "config_from_dict",
    "config_to_dict",
    "find_labeled",
    "finetune",
    "load_config",
    "load_finetuned",
    "param_groups",
    "predict_recording",
    "save_finetuned",
    "split_labeled",
    "task_loss",
    "validate",
]

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.safetensors"
RESUME_KEYS = ("model", "front_end", "head", "finetune")  # must not change when resuming


# ----------------------------------------------------------------------------------------------
# Losses and validation per task


def _n_out(model: FinetuneModel, n_frames: int) -> int:
    return model.head.n_frames(n_frames // model.encoder.config.patch_t)


def task_loss(model: FinetuneModel, spec: torch.Tensor, batch: dict, config: FinetuneConfig):
    """The training loss of one micro-batch; ``spec`` is ``(B, F, T)`` normalised log-mel."""
    from biomae import decode, losses

    h = config.head
    labels = h.labels or None
    out = model(spec)
    if h.task == "detect":
        n_out, hop_s = out["activity"].shape[1], model.head.frame_hop_s
        terms, weights = {}, {}
        targets = {"activity": [], "onset": [], "offset": []}
        for item, offset_s in zip(batch["items"], batch["offsets_s"], strict=True):
            targets["activity"].append(
                decode.frame_targets(item.events, n_out, hop_s, labels, offset_s)
            )
            onset, offset = decode.boundary_targets(item.events, n_out, hop_s, labels, offset_s)
            targets["onset"].append(onset)
            targets["offset"].append(offset)
        for name, logits in out.items():
            target = torch.from_numpy(np.stack(targets[name])).to(logits.device)  # (B, T, C)
            if h.loss == "focal":
                terms[name] = losses.focal_loss(logits.float(), target, gamma=h.focal_gamma)
            else:
                pos_weight = losses.pos_weight_from_targets(target, max_weight=h.max_pos_weight)
                terms[name] = losses.detection_bce(logits.float(), target, pos_weight)
            weights[name] = 1.0 if name == "activity" else 0.5
        return losses.combined_loss(terms, weights)
    if h.task == "classify":
        target = torch.from_numpy(_clip_targets(batch, h.labels, config.data.window_s))
        return losses.multilabel_bce(out.float(), target.to(out.device))
    index = {label: i for i, label in enumerate(h.labels)}
    unknown = sorted({lab for lab in batch["labels"] if lab not in index})
    if unknown:
        raise ValueError(f"embed: event labels {unknown} are not among head.labels {h.labels}")
    ids = torch.tensor([index[lab] for lab in batch["labels"]], device=out.device)
    return losses.supcon_loss(out.float(), ids, h.temperature)


def _clip_targets(batch: dict, labels: list[str], window_s: float) -> np.ndarray:
    """``(B, C)`` multi-hot: the labels of events whose midpoint lies in each window."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(batch["items"]), len(labels)), dtype=np.float32)
    for row, (item, offset_s) in enumerate(zip(batch["items"], batch["offsets_s"], strict=True)):
        mid = (item.events.start_s + item.events.end_s) / 2 - offset_s
        for label in item.events.label[(mid >= 0) & (mid < window_s)]:
            if label not in index:
                raise ValueError(f"{item.name}: label {label!r} is not among head.labels {labels}")
            out[row, index[label]] = 1.0
    return out


@torch.no_grad()
def predict_recording(model, front_end, item: LabeledRecording, config: FinetuneConfig, device):
    """Frame probabilities over a whole recording at ``model.head.frame_hop_s``: a dict with an
    ``(n_frames, C)`` array per head output ("activity", and "onset" / "offset" when trained).

    Windows follow each other without overlap, except the last, which is moved back to end at the
    recording's end (to the frame) so that windows hold no padding unless the recording is shorter
    than one window; its frames overwrite the overlapped ones.
    """
    from biomae.train.data import read_window

    rec, hop_s = item.recording, model.head.frame_hop_s
    n_keep = max(1, math.ceil(rec.duration_s / hop_s - 1e-9))
    n_out = round(config.data.window_s / hop_s)  # head frames per window
    starts = list(range(0, max(1, n_keep - n_out), n_out))
    if n_keep > n_out and starts[-1] + n_out < n_keep:
        starts.append(n_keep - n_out)
    shape = (n_keep, model.head.config.n_classes)
    probs = {name: np.zeros(shape, dtype=np.float32) for name in model.head.config.outputs}
    for first in range(0, len(starts), config.data.batch_size):
        chunk = starts[first : first + config.data.batch_size]
        audio = np.stack(
            [
                read_window(
                    rec,
                    round(f * hop_s * rec.sample_rate),
                    config.window_samples,
                    config.front_end.sample_rate,
                )
                for f in chunk
            ]
        )  # (b, n)
        out = model(front_end(torch.from_numpy(audio).to(device)))  # {name: (b, T_out, C)}
        for name, logits in out.items():
            window_probs = torch.sigmoid(logits.float()).cpu().numpy()
            for f, frames in zip(chunk, window_probs, strict=True):
                keep = min(n_out, n_keep - f)
                probs[name][f : f + keep] = frames[:keep]
    return probs


CALIBRATION_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def calibrated(decode, threshold_on: float):
    """``decode`` with ``threshold_on`` and ``threshold_off`` scaled to keep its ratio to it."""
    from dataclasses import replace

    on, off = decode.thresholds("")
    return replace(decode, threshold_on=threshold_on, threshold_off=threshold_on * off / on)


@torch.no_grad()
def validate(model, front_end, val_items, val_batch, config: FinetuneConfig, device):
    """``(score, decode)``: the validation score (higher is better) — event F1 (detect), clip
    micro F1 (classify) or minus the SupCon loss (embed) — and the decode settings it was reached
    with (calibrated when ``finetune.calibrate_threshold``)."""
    from biomae.annotations.schema import concat_events
    from biomae.decode import decode_events
    from biomae.metrics.events import MatchConfig, event_f1

    model.eval()
    h = config.head
    if h.task == "detect":
        labels = h.labels or [""]
        probs = [predict_recording(model, front_end, it, config, device) for it in val_items]
        ref = concat_events(it.events for it in val_items)
        match = MatchConfig(iou_threshold=0.3, match_labels=bool(h.labels))
        candidates = [config.decode]
        if config.finetune.calibrate_threshold:
            candidates = [calibrated(config.decode, t) for t in CALIBRATION_THRESHOLDS]
        best = (-math.inf, config.decode)
        for decode in candidates:
            preds = [
                decode_events(
                    p["activity"],
                    model.head.frame_hop_s,
                    labels,
                    decode,
                    onset=p.get("onset"),
                    offset=p.get("offset"),
                    recording=it.name,
                )
                for p, it in zip(probs, val_items, strict=True)
            ]
            score = float(event_f1(concat_events(preds), ref, match).overall.f1)
            best = max(best, (score, decode), key=lambda pair: pair[0])
        return best
    spec = front_end(val_batch["audio"])
    if h.task == "classify":
        predicted = (model(spec).float() > 0).cpu().numpy()
        truth = _clip_targets(val_batch, h.labels, config.data.window_s) > 0
        tp = int((predicted & truth).sum())
        return 2 * tp / max(1, int(predicted.sum() + truth.sum())), config.decode
    return -float(task_loss(model, spec, val_batch, config)), config.decode


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
    from biomae.train import common
    from biomae.train.pretrain import FrontEnd, autocast

    out_dir = Path(config.train.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(
        "cuda"
        if config.train.device == "auto" and torch.cuda.is_available()
        else ("cpu" if config.train.device == "auto" else config.train.device)
    )
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
    if config.head.task == "detect" and not sum(len(it.events) for it in val_items):
        raise ValueError(
            f"the validation split ({[it.name for it in val_items]}) holds no events: event F1 is "
            "undefined; change data.val_fraction or add annotated recordings"
        )
    log(
        f"finetune: {len(train_items)} train / {len(val_items)} validation recordings "
        f"({config.data.split_by} split) from {config.data.catalog or config.data.data_dir}"
    )
    model = build_model(config).to(device)
    front_end = FrontEnd(config, model.encoder.config.patch_t, device)
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
    pairs = config.head.task == "embed"
    windows = LabeledWindows(
        train_items,
        config.window_samples,
        config.front_end.sample_rate,
        config.data.batch_size,
        config.train.seed,
        config.data.positive_fraction,
        pairs,
    )
    val_batch = None
    if config.head.task != "detect":
        val_batch = LabeledWindows(
            val_items,
            config.window_samples,
            config.front_end.sample_rate,
            max(2, 4 * config.data.batch_size),
            config.train.seed + 1,
            config.data.positive_fraction,
            pairs,
        ).batch(0)
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
