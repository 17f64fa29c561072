"""Shared training pieces: optimizer, LR schedule, checkpoints, RNG state, encoder export.

* :func:`build_optimizer` — AdamW; weight decay only on matrices (not on norms, biases, position
  embeddings or mask / cls tokens).
* :func:`lr_at` — linear warmup then cosine decay, a pure function of the step.
* :func:`save_checkpoint` / :func:`load_checkpoint` — one ``.pt`` file written atomically
  (temp file, then ``os.replace``) holding plain data only (tensors, numbers, strings, lists,
  dicts), so it is read back with ``torch.load(weights_only=True)``. Contents: ``model`` and
  ``optimizer`` state (full, keyed by parameter name), ``step``, ``data`` (the data iterator's
  position), ``rng`` (python, numpy, torch, cuda), ``metrics`` (counters of the loop) and
  ``config`` (JSON string).
* :func:`export_encoder` — the encoder as a model file (:mod:`biomae.models.files`: safetensors
  with a self-describing spec; read back by its ``load_encoder``, which never unpickles).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biomae.atomic_io import atomic_path
from biomae.models.files import ModelSpec, save_model
from biomae.train.pretrain_config import config_from_dict

CHECKPOINT_FORMAT = "biomae-pretrain-checkpoint/1"
# Parameter-name fragments that never get weight decay (besides every tensor with ndim < 2).
NO_DECAY_NAMES = ("pos_embed", "pos_emb", "mask_token", "cls_token", "norm")
# Wrapper prefixes that may appear in parameter names (compile, activation checkpointing, DDP).
WRAPPER_PREFIXES = ("_orig_mod.", "_checkpoint_wrapped_module.", "module.")


def build_optimizer(
    model: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with two groups: decayed matrices and undecayed norms / biases / tokens.

    Args:
        model: the (possibly wrapped or sharded) model; only trainable parameters are used.
        lr: initial learning rate (the loop sets it every step from :func:`lr_at`).
        betas: AdamW betas.
        weight_decay: decoupled weight decay of the first group.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim < 2 or any(part in name for part in NO_DECAY_NAMES)
        (no_decay if skip else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def lr_at(step: int, lr: float, warmup_steps: int, max_steps: int, min_lr: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to ``min_lr``.

    ``lr_at(0) = lr / warmup_steps`` (never 0, so the first step moves), ``lr`` at the end of
    warmup, ``min_lr`` from ``max_steps`` on.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) global RNG states as plain data."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            np_pos,
            np_has_gauss,
            np_gauss,
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(
        (np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss)
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model_state: dict[str, torch.Tensor],
    optim_state: dict[str, Any],
    step: int,
    data_state: dict[str, int],
    config_json: str,
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write a resumable checkpoint atomically (a crash mid-write leaves the old one intact).

    Args:
        path: destination ``.pt`` file.
        model_state: full model state dict (``distributed.full_state_dicts``).
        optim_state: full optimizer state dict keyed by parameter name.
        step: number of optimizer steps completed.
        data_state: the data iterator's position, e.g. ``{"seed": 0, "micro_batches": 120}``.
        config_json: the run's config as JSON (``config_to_json``).
        metrics: counters of the loop (e.g. consecutive bad steps), plain floats.
    """
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": {_strip(k): v for k, v in model_state.items()},
        "optimizer": optim_state,
        "step": int(step),
        "data": {k: int(v) for k, v in data_state.items()},
        "rng": rng_state(),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "config": config_json,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (truncated, garbage) or is not a biomae checkpoint."""


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no unpickling).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is unreadable (truncated, corrupt) or not a biomae checkpoint;
            the message names it and says how to go on.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    fix = (
        "delete it to restart the run from step 0, put back an earlier copy, or train into "
        "another folder (--out DIR)"
    )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError … by damage
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupt: {reason}); {fix}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} file; {fix}")
    return payload


def _strip(name: str) -> str:
    """Remove wrapper prefixes (``_orig_mod.``, ``module.`` …) from a parameter name."""
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def export_encoder(checkpoint: str | os.PathLike | dict, path: str | os.PathLike) -> Path:
    """Write the encoder of a pretraining checkpoint to ``path``: a model file
    (:func:`biomae.models.files.save_model`, task "encoder") whose spec holds the front end, the
    ``ViTConfig`` and the window; the ``ViTConfig`` also under ``config``, the full run config
    under ``run_config`` and the step under ``step`` (provenance).

    Args:
        checkpoint: a checkpoint path or the dict returned by :func:`load_checkpoint`.
        path: destination ``.safetensors`` file.
    """

    payload = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    run_config = config_from_dict(json.loads(payload["config"]))
    vit_config = run_config.model.build_config().encoder
    tensors = {
        name.removeprefix("encoder."): tensor
        for name, tensor in payload["model"].items()
        if name.startswith("encoder.")
    }
    if not tensors:
        raise ValueError("checkpoint holds no 'encoder.*' weights to export")
    spec = ModelSpec("encoder", run_config.front_end, vit_config, run_config.data.window_s)
    extra = {
        "config": dataclasses.asdict(vit_config),
        "run_config": json.loads(payload["config"]),
        "step": payload["step"],
    }
    return save_model(path, spec, tensors, extra)
