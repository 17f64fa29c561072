"""The fine-tuning model: a ViT encoder plus one task head, its optimizer groups and its file.

:func:`build_model` makes :class:`FinetuneModel` from a ``FinetuneConfig`` (a fresh
``model.preset`` or the encoder of ``finetune.init``, checked against the front end and the
window); :func:`param_groups` gives AdamW groups with layer-wise learning-rate decay
(patch embedding = layer 0, block ``i`` = layer ``i + 1``, final norm and head = ``depth + 1``);
:func:`save_finetuned` / :func:`load_finetuned` write and read ``best.safetensors``: encoder + head
weights with the run config and the encoder's ``ViTConfig`` as JSON metadata.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from biomae._io import atomic_path
from biomae.train.config import ConfigError
from biomae.train.finetune_config import FinetuneConfig, config_from_dict, config_to_dict
from biomae.train.tasks import TASKS

MODEL_FORMAT = "biomae-finetuned/1"


class FinetuneModel(nn.Module):
    """Encoder + one head. ``forward(spec (B, F, T))`` returns the head's output, as its task
    (``TASKS[task]``) wires it: a dict of ``(B, T_out, C)`` logits (detect), ``(B, C)`` logits
    (classify) or ``(B, E)`` unit vectors (embed). ``task`` is the task's name."""

    def __init__(self, encoder: nn.Module, head: nn.Module, task: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.task = task

    def forward(self, spec: torch.Tensor):
        tokens = self.encoder.forward_features(spec)  # (B, N, D)
        return TASKS[self.task].forward(self.head, tokens, self.encoder.grid(spec.shape[-1]))


def build_head(config: FinetuneConfig, vit_config) -> nn.Module:
    """The head of ``config.head.task`` for an encoder of ``vit_config``."""
    return TASKS[config.head.task].build_head(config, vit_config)


def build_model(config: FinetuneConfig) -> FinetuneModel:
    """Encoder (loaded from ``finetune.init`` or a fresh ``model.preset``) plus the task's head."""
    from biomae.models.vit import Encoder
    from biomae.train.common import load_encoder

    torch.manual_seed(config.train.seed)
    if config.finetune.init == "none":
        vit_config = config.model.build_config().encoder
        encoder = Encoder(vit_config)
    else:
        encoder, vit_config = load_encoder(config.finetune.init)
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
    if config.finetune.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model


def param_groups(model: FinetuneModel, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups with layer-wise learning-rate decay (``lr_scale``) and no decay on norms,
    biases and embeddings; frozen parameters are left out."""
    from biomae.train.common import NO_DECAY_NAMES

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
    """Write encoder + head weights and the run config as safetensors metadata, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": MODEL_FORMAT,
        "config": json.dumps(config_to_dict(config)),
        "vit_config": json.dumps(dataclasses.asdict(model.encoder.config)),
        **{k: json.dumps(v) for k, v in extra.items()},
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def load_finetuned(path: str | Path, device: str = "cpu") -> tuple[FinetuneModel, FinetuneConfig]:
    """Load a model written by fine-tuning (``best.safetensors``), in eval mode.

    Raises:
        ValueError: the file is not a biomae fine-tuned model, or its weights do not fit its config
            (``biomae.train.common.CheckpointError``: unreadable).
    """
    from safetensors.torch import load_file

    from biomae.models.vit import Encoder, ViTConfig
    from biomae.train.common import read_metadata

    path = Path(path)
    metadata = read_metadata(path, "fine-tuned model")
    if metadata.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: format {metadata.get('format')!r} is not {MODEL_FORMAT}")
    config = config_from_dict(json.loads(metadata["config"]), where=str(path))
    vit_config = ViTConfig(**json.loads(metadata["vit_config"]))
    model = FinetuneModel(Encoder(vit_config), build_head(config, vit_config), config.head.task)
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.to(device).eval(), config
