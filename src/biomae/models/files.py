"""Model files: encoders and fine-tuned models as safetensors with a small self-describing spec.

A model file is the weights plus, in the safetensors metadata, ``format`` and ``spec``: a JSON
:class:`ModelSpec` holding everything needed to run the model — the front end
(:class:`~biomae.features.FrontEndConfig`), the encoder's :class:`~biomae.models.vit.ViTConfig`,
the task and its head's parameters, the labels, the window length and, for detection, the decode
settings with the calibrated threshold. Loading reads the spec only: it never rebuilds a training
config and never reads a run's ``[data]`` section. Other metadata keys (the run config, the step,
the validation score) are provenance, written as JSON and never read back here.

Formats read by :func:`load_model` / :func:`load_encoder`:

- ``biomae-model/1`` (written by :func:`save_model`): encoder + head, or an encoder alone
  (``task="encoder"``, what ``biomae pretrain`` exports);
- ``biomae-finetuned/1`` (older fine-tuned models, such as the first shipped starter model): the
  spec is derived from the run config stored in the file;
- ``biomae-encoder/1`` (older exported encoders): the ``ViTConfig`` under ``config``; the front end
  and window come from the stored run config when the file has no spec.

:data:`STARTER_MODEL` is the shipped starter detector; ``resolve_model_path("starter")`` names it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biomae.atomic_io import atomic_path
from biomae.decode import DecodeConfig
from biomae.features import FrontEndConfig
from biomae.models import heads
from biomae.models.vit import Encoder, ViTConfig

MODEL_FORMAT = "biomae-model/1"
FINETUNED_FORMAT = "biomae-finetuned/1"  # read only: the run config in the metadata
ENCODER_FORMAT = "biomae-encoder/1"  # read only: ViTConfig under "config"
FORMATS = (MODEL_FORMAT, FINETUNED_FORMAT, ENCODER_FORMAT)
TASKS = ("detect", "classify", "embed")  # tasks with a head; "encoder" has none
STARTER_MODEL = Path(__file__).resolve().parents[1] / "data" / "starter.safetensors"


class ModelFileError(ValueError):
    """A file that is not a biomae model, is unreadable, or whose weights do not fit its spec."""


@dataclass
class ModelSpec:
    """What a model file says about itself (all of it JSON in the ``spec`` metadata key).

    Attributes:
        task: "detect", "classify", "embed", or "encoder" (an encoder without a head); another
            name is a task added to training (``biomae.train.tasks``) that inference cannot run.
        front_end: the log-mel front end the encoder was trained with.
        encoder: the encoder's hyper-parameters.
        window_s: the window the model was trained on, in seconds (inference uses the same).
        head: the head's parameters: detect — the :class:`~biomae.models.heads.DetectionHeadConfig`
            fields; classify — ``{"n_classes"}``; embed — ``{"out_dim"}``; encoder — empty.
        labels: class names (empty: class-agnostic detection, one "call" class).
        decode: the decode settings of a detection model (its calibrated threshold included).
    """

    task: str
    front_end: FrontEndConfig
    encoder: ViTConfig
    window_s: float
    head: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    decode: DecodeConfig | None = None

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("spec: task is empty")
        if self.front_end.n_mels != self.encoder.n_mels:
            raise ValueError(
                f"spec: front_end.n_mels={self.front_end.n_mels} differs from the encoder's "
                f"n_mels={self.encoder.n_mels}"
            )
        if self.task == "detect" and self.decode is None:
            self.decode = DecodeConfig()

    @property
    def window_samples(self) -> int:
        """The window in samples at the front end's rate."""
        return round(self.window_s * self.front_end.sample_rate)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        raw = json.loads(text)
        decode = raw.pop("decode", None)
        return cls(
            task=raw.pop("task"),
            front_end=FrontEndConfig(**raw.pop("front_end")),
            encoder=ViTConfig(**raw.pop("encoder")),
            decode=None if decode is None else DecodeConfig(**decode),
            **raw,
        )


def head_params(
    task: str, head: dict[str, Any], hop_s: float, vit_config: ViTConfig
) -> dict[str, Any]:
    """The spec's ``head`` of a ``[head]`` section (``biomae.train.finetune_config.HeadConfig`` as
    a dict) for an encoder of ``vit_config`` and a front end of frame hop ``hop_s``."""
    labels = list(head.get("labels", []))
    if task == "detect":
        params = dataclasses.asdict(
            heads.DetectionHeadConfig(
                dim=vit_config.dim,
                patch_t=vit_config.patch_t,
                hop_s=hop_s,
                n_classes=max(1, len(labels)),
                outputs=tuple(head.get("outputs", ("activity",))),
                upsample=head.get("upsample", 8),
                hidden_dim=head.get("hidden_dim", 128),
                conv_layers=head.get("conv_layers", 2),
            )
        )
        return {**params, "outputs": list(params["outputs"])}  # as JSON reads it back
    if task == "classify":
        return {"n_classes": len(labels)}
    if task == "embed":
        return {"out_dim": head.get("embed_dim", 128)}
    raise ValueError(f"task {task!r} has no head; use one of {TASKS}")


def build_head(task: str, params: dict[str, Any], vit_config: ViTConfig) -> nn.Module:
    """The (freshly initialised) head of ``task`` with the spec's ``params``."""
    if task == "detect":
        return heads.DetectionHead(heads.DetectionHeadConfig(**params))
    if task == "classify":
        dim = vit_config.dim
        return heads.ClassificationHead(dim, params["n_classes"], pool=heads.AttentionPool(dim))
    if task == "embed":
        return heads.ProjectionHead(vit_config.dim, out_dim=params["out_dim"])
    raise ModelFileError(f"task {task!r}: no head known to biomae.models; use one of {TASKS}")


class TaskModel(nn.Module):
    """Encoder + one head. ``forward(spec (B, F, T))`` gives the head's output: a dict of
    ``(B, T_out, C)`` logits (detect: the head also takes the patch grid), ``(B, C)`` logits
    (classify) or ``(B, E)`` unit vectors (embed). ``task`` names the task."""

    def __init__(self, encoder: nn.Module, head: nn.Module, task: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.task = task

    def forward(self, spec: torch.Tensor):
        tokens = self.encoder.forward_features(spec)  # (B, N, D)
        if isinstance(self.head, heads.DetectionHead):
            return self.head(tokens, self.encoder.grid(spec.shape[-1]))
        return self.head(tokens)


# ----------------------------------------------------------------------------------------------
# Reading and writing


def resolve_model_path(name: str | os.PathLike) -> Path:
    """``"starter"`` → :data:`STARTER_MODEL`; anything else is a path."""
    return STARTER_MODEL if str(name) == "starter" else Path(name)


def read_metadata(path: str | os.PathLike, what: str = "model") -> dict[str, str]:
    """The metadata of a ``.safetensors`` file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelFileError: the file is truncated or not safetensors (naming it, with the fix).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except SafetensorError as err:
        raise ModelFileError(
            f"{what} file {path} is unreadable (truncated or corrupt: {err}); export or copy it "
            "again (pretraining writes encoder.safetensors, fine-tuning best.safetensors)"
        ) from None


def read_spec(path: str | os.PathLike, metadata: dict[str, str] | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of a model file of any format in :data:`FORMATS`.

    Raises:
        ModelFileError: not a biomae model file (its format named).
    """
    metadata = read_metadata(path) if metadata is None else metadata
    fmt = metadata.get("format")
    try:
        if "spec" in metadata:
            return ModelSpec.from_json(metadata["spec"])
        if fmt == FINETUNED_FORMAT:
            return _spec_of_run(
                json.loads(metadata["config"]), ViTConfig(**json.loads(metadata["vit_config"]))
            )
        if fmt == ENCODER_FORMAT:
            vit_config = ViTConfig(**json.loads(metadata["config"]))
            if "run_config" not in metadata:  # front end unknown: the defaults at its n_mels
                front_end = FrontEndConfig(n_mels=vit_config.n_mels)
                return ModelSpec("encoder", front_end, vit_config, window_s=2.56)
            return dataclasses.replace(
                _spec_of_run(json.loads(metadata["run_config"]), vit_config), task="encoder"
            )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: a {fmt} file with an unreadable spec ({err})") from None
    raise ModelFileError(
        f"{path}: metadata format is {fmt!r}, not one of {FORMATS}; give a model written by "
        "biomae pretrain or biomae finetune"
    )


def _spec_of_run(run: dict[str, Any], vit_config: ViTConfig) -> ModelSpec:
    """The spec of an older file from the run config stored in it (its sections as dicts)."""
    head = run.get("head", {})
    task = head.get("task", "encoder") if "head" in run else "encoder"
    front_end = FrontEndConfig(**run.get("front_end", {}))
    labels = list(head.get("labels", []))
    return ModelSpec(
        task=task,
        front_end=front_end,
        encoder=vit_config,
        window_s=float(run["data"]["window_s"]),
        head=head_params(task, head, front_end.hop_s, vit_config) if task in TASKS else {},
        labels=labels,
        decode=DecodeConfig(**run["decode"]) if task == "detect" and "decode" in run else None,
    )


def save_model(
    path: str | os.PathLike,
    spec: ModelSpec,
    state: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights (``encoder.*`` and ``head.*``; an encoder alone unprefixed) with the spec, and
    ``extra`` provenance as JSON metadata, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    metadata = {
        "format": MODEL_FORMAT,
        "spec": spec.to_json(),
        **{k: json.dumps(v) for k, v in (extra or {}).items()},
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def _load_weights(path: Path, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: weights do not fit its spec: missing {missing}, unexpected {unexpected}"
        )


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[TaskModel, ModelSpec]:
    """A fine-tuned model (encoder + head) and its spec, in eval mode on ``device``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: unreadable, not a biomae model, an encoder without a head, or weights
            that do not fit the spec.
    """
    from safetensors.torch import load_file

    path = resolve_model_path(path)
    spec = read_spec(path, read_metadata(path))
    if spec.task == "encoder":
        raise ModelFileError(
            f"{path}: an encoder without a head; fine-tune it first (biomae finetune --init {path})"
        )
    model = TaskModel(
        Encoder(spec.encoder), build_head(spec.task, spec.head, spec.encoder), spec.task
    )
    _load_weights(path, model, load_file(str(path)))
    return model.to(device).eval(), spec


def load_encoder(
    path: str | os.PathLike, device: str | torch.device = "cpu", what: str = "encoder"
) -> tuple[Encoder, ModelSpec]:
    """The encoder of any model file (an exported encoder, or the encoder of a fine-tuned model)
    and the file's spec, in eval mode on ``device``. ``what`` names the file in errors.

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: unreadable, not a biomae model, or weights that do not fit the spec.
    """
    from safetensors.torch import load_file

    path = resolve_model_path(path)
    metadata = read_metadata(path, what)
    spec = read_spec(path, metadata)
    tensors = load_file(str(path))
    if spec.task != "encoder":  # a fine-tuned model: its encoder.* weights
        tensors = {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")}
    encoder = Encoder(spec.encoder)
    _load_weights(path, encoder, tensors)
    return encoder.to(device).eval(), spec
