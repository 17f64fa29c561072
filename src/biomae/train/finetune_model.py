"""The fine-tuning model: a ViT encoder plus one task head, its optimizer groups and its file.

:func:`build_model` makes the model (:class:`~biomae.models.files.TaskModel`, named
``FinetuneModel`` here) from a ``FinetuneConfig``: a fresh ``model.preset``, or the encoder of the
model file ``finetune.init`` (an exported encoder, a fine-tuned model, or ``starter``: the shipped
starter detector) — and that file's head too when it has the same task and head; checked against
the front end and the window. :func:`param_groups` gives AdamW groups with layer-wise
learning-rate decay (patch embedding = layer 0, block ``i`` = layer ``i + 1``, final norm and head
= ``depth + 1``); :func:`save_finetuned` writes ``best.safetensors`` (a model file of
:mod:`biomae.models.files`: weights + spec, the run config as provenance) and
:func:`load_finetuned` reads it back with its run config (training-side: inference reads the spec
alone, :func:`biomae.models.files.load_model`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from biomae.models import files
from biomae.models.files import FINETUNED_FORMAT, MODEL_FORMAT, ModelSpec, TaskModel
from biomae.models.vit import Encoder
from biomae.train.common import NO_DECAY_NAMES
from biomae.train.finetune_config import FinetuneConfig, config_from_dict, config_to_dict
from biomae.train.pretrain_config import ConfigError
from biomae.train.tasks import TASKS


class FinetuneModel(TaskModel):
    """Encoder + one head, wired by its task (``TASKS[task].forward``): for the shipped tasks the
    same as :class:`~biomae.models.files.TaskModel`, which inference loads; a task added to
    :data:`~biomae.train.tasks.TASKS` brings its own."""

    def forward(self, spec: torch.Tensor):
        tokens = self.encoder.forward_features(spec)  # (B, N, D)
        return TASKS[self.task].forward(self.head, tokens, self.encoder.grid(spec.shape[-1]))


__all__ = ["FINETUNED_FORMAT", "MODEL_FORMAT", "FinetuneModel", "build_head", "build_model",
           "load_finetuned", "model_spec", "param_groups", "save_finetuned"]  # fmt: skip


def build_head(config: FinetuneConfig, vit_config) -> nn.Module:
    """The head of ``config.head.task`` for an encoder of ``vit_config``."""
    return TASKS[config.head.task].build_head(config, vit_config)


def model_spec(config: FinetuneConfig, vit_config) -> ModelSpec:
    """The spec a model of this run is saved with (front end, encoder, head, window, decode)."""
    task, head = config.head.task, config_to_dict(config)["head"]
    return ModelSpec(
        task=task,
        front_end=config.front_end,
        encoder=vit_config,
        window_s=config.data.window_s,
        # a task added to training has no head params: it is rebuilt from the run config
        head=files.head_params(task, head, config.front_end.hop_s, vit_config)
        if task in files.TASKS
        else {},
        labels=list(config.head.labels),
        decode=config.decode if task == "detect" else None,
    )


def build_model(config: FinetuneConfig) -> FinetuneModel:
    """Encoder (a fresh ``model.preset``, or the encoder of the model file ``finetune.init``) plus
    the task's head — the init file's own head when its task and head equal this run's."""
    from safetensors.torch import load_file

    torch.manual_seed(config.train.seed)
    init_spec = None
    if config.finetune.init == "none":
        vit_config = config.model.build_config().encoder
        encoder = Encoder(vit_config)
    else:
        encoder, init_spec = files.load_encoder(config.finetune.init)
        vit_config = init_spec.encoder
        encoder.train()
    if vit_config.n_mels != config.front_end.n_mels:
        raise ConfigError(
            f"front_end.n_mels={config.front_end.n_mels} differs from the encoder's "
            f"n_mels={vit_config.n_mels} ({config.finetune.init})"
        )
    n_frames = config.data.window_s / config.front_end.hop_s
    if abs(n_frames - round(n_frames)) > 1e-6 or round(n_frames) % vit_config.patch_t:
        raise ConfigError(
            f"data.window_s={config.data.window_s} gives {n_frames:g} frames at hop "
            f"{config.front_end.hop_s} s; need a whole multiple of patch_t={vit_config.patch_t}"
        )
    model = FinetuneModel(encoder, build_head(config, vit_config), config.head.task)
    if init_spec is not None and _same_head(init_spec, model_spec(config, vit_config)):
        path = files.resolve_model_path(config.finetune.init)
        head = {k[5:]: v for k, v in load_file(str(path)).items() if k.startswith("head.")}
        model.head.load_state_dict(head)
    if config.finetune.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model


def _same_head(init: ModelSpec, run: ModelSpec) -> bool:
    """Whether the init file's head can start this run: same task, labels and head parameters."""
    return (init.task, init.labels, init.head) == (run.task, run.labels, run.head)


def param_groups(model: FinetuneModel, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups with layer-wise learning-rate decay (``lr_scale``) and no decay on norms,
    biases and embeddings; frozen parameters are left out."""

    depth = len(model.encoder.blocks)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("encoder.blocks."):
            layer = int(name.split(".")[2]) + 1
        elif name.startswith("encoder.") and not name.startswith("encoder.norm"):
            layer = 0
        else:
            layer = depth + 1
        decay = param.ndim >= 2 and not any(part in name for part in NO_DECAY_NAMES)
        group = groups.setdefault(
            (layer, decay),
            {
                "params": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr_scale": layer_decay ** (depth + 1 - layer),
            },
        )
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def save_finetuned(model: FinetuneModel, config: FinetuneConfig, path: Path, extra: dict) -> None:
    """Write encoder + head weights with the model's spec (:func:`model_spec`), the run config
    (``config``) and ``extra`` as provenance metadata, atomically."""
    spec = model_spec(config, model.encoder.config)
    files.save_model(path, spec, model.state_dict(), {"config": config_to_dict(config), **extra})


def load_finetuned(path: str | Path, device: str = "cpu") -> tuple[FinetuneModel, FinetuneConfig]:
    """A fine-tuned model file and the run config it was trained with, in eval mode.

    Raises:
        ValueError: the file is not a biomae fine-tuned model, or its weights do not fit its spec.
    """
    from safetensors.torch import load_file

    path = files.resolve_model_path(path)
    metadata = files.read_metadata(path, "fine-tuned model")
    spec = files.read_spec(path, metadata)
    if "config" not in metadata or spec.task == "encoder":
        raise files.ModelFileError(f"{path}: not a fine-tuned model (no run config in it)")
    config = config_from_dict(json.loads(metadata["config"]), where=str(path))
    model = FinetuneModel(Encoder(spec.encoder), build_head(config, spec.encoder), spec.task)
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.to(device).eval(), config
