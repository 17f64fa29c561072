"""The fine-tuning config: eight typed sections, validated on construction, read from TOML.

:class:`FinetuneConfig` holds the pretraining sections it shares (``model``, ``front_end``,
``optim``, ``train`` from :mod:`biomae.train.pretrain_config`; ``decode`` from :mod:`biomae.decode`)
and three of its own: ``data`` (:class:`LabeledDataConfig`: where the labelled recordings are and
how windows are drawn), ``head`` (:class:`HeadConfig`: the task and its head) and ``finetune``
(:class:`FinetuneSection`: the initial encoder, freezing and layer-wise decay). Unknown sections or
keys are errors that name them; ``optim`` and ``train`` default to fine-tuning values (``lr=5e-4``,
``warmup_steps=20``, ``out_dir="runs/finetune"``) when absent."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomae.decode import DecodeConfig
from biomae.train.pretrain_config import (
    ConfigError,
    FrontEndConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    build_sections,
    check,
    read_toml,
    resolve_config,
)
from biomae.train.tasks import TASKS


@dataclass
class HeadConfig:
    """The task (a name in :data:`biomae.train.tasks.TASKS`) and its head. ``labels`` empty =
    class-agnostic detection (one activity class)."""

    task: str = "detect"
    labels: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=lambda: ["activity"])
    upsample: int = 8
    hidden_dim: int = 128
    conv_layers: int = 2
    loss: str = "bce"
    max_pos_weight: float = 20.0
    focal_gamma: float = 2.0
    embed_dim: int = 128
    temperature: float = 0.1

    def __post_init__(self) -> None:
        check(self.task in TASKS, f"head.task={self.task!r} not in {tuple(TASKS)}")
        check(self.loss in ("bce", "focal"), f"head.loss={self.loss!r} not in ('bce', 'focal')")
        check(len(set(self.labels)) == len(self.labels), f"head.labels={self.labels} repeat")
        n_labels = TASKS[self.task].min_labels
        check(
            len(self.labels) >= n_labels,
            f"head.task={self.task!r} needs >= {n_labels} head.labels; got {self.labels}",
        )
        check(self.max_pos_weight >= 1, f"head.max_pos_weight={self.max_pos_weight} must be >= 1")
        check(self.temperature > 0, f"head.temperature={self.temperature} must be > 0")


@dataclass
class FinetuneSection:
    """``init``: a model file to start from — an encoder ``.safetensors`` (``biomae pretrain``
    output), a fine-tuned model (its encoder, and its head when the task and head match this
    run's), ``starter`` (the shipped starter detector) — or "none" (random init of
    ``model.preset``); ``freeze_encoder``: train the head only; ``layer_decay`` in (0, 1];
    ``calibrate_threshold`` (detection): at each validation, pick ``decode.threshold_on`` from
    ``biomae.train.tasks.CALIBRATION_THRESHOLDS`` by validation event F1 (``threshold_off`` keeps
    its ratio to it) and save the best model with it."""

    init: str = "none"
    freeze_encoder: bool = False
    layer_decay: float = 0.75
    calibrate_threshold: bool = False

    def __post_init__(self) -> None:
        check(0 < self.layer_decay <= 1, f"finetune.layer_decay={self.layer_decay} not in (0, 1]")


@dataclass
class LabeledDataConfig:
    """Labelled windows from exactly one source: ``data_dir`` (audio + Raven tables) or ``catalog``
    (a ``biomae data`` catalog; ``datasets`` empty = all; only fully annotated recordings). The
    window must span a whole number of patches; ``positive_fraction`` of windows hold an event.
    ``prepared``: read a catalog's recordings prepared at ``front_end.sample_rate``
    (``biomae data prepare``, int16) from memory instead of decoding each window."""

    data_dir: str = ""
    catalog: str = ""
    datasets: list[str] = field(default_factory=list)
    prepared: bool = False
    window_s: float = 2.56
    batch_size: int = 16
    val_fraction: float = 0.2
    split_by: str = "recording"
    positive_fraction: float = 0.7

    def __post_init__(self) -> None:
        check(
            (self.data_dir != "") != (self.catalog != ""),
            f"set exactly one of data.data_dir (--data DIR) and data.catalog; got "
            f"data_dir={self.data_dir!r}, catalog={self.catalog!r}",
        )
        check(
            self.catalog != "" or not self.prepared,
            "data.prepared reads a catalog's prepared audio: set data.catalog",
        )
        check(0.1 <= self.window_s <= 60, f"data.window_s={self.window_s} not in [0.1, 60] s")
        check(self.batch_size >= 2, f"data.batch_size={self.batch_size} must be >= 2")
        check(0 < self.val_fraction < 1, f"data.val_fraction={self.val_fraction} not in (0, 1)")
        check(
            self.split_by in ("recording", "individual"),
            f"data.split_by={self.split_by!r} not in ('recording', 'individual')",
        )
        check(
            0 <= self.positive_fraction <= 1,
            f"data.positive_fraction={self.positive_fraction} not in [0, 1]",
        )


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "front_end": FrontEndConfig,
    "data": LabeledDataConfig,
    "head": HeadConfig,
    "finetune": FinetuneSection,
    "optim": OptimConfig,
    "decode": DecodeConfig,
    "train": TrainConfig,
}


@dataclass
class FinetuneConfig:
    """One fine-tuning run: the eight sections of :data:`SECTIONS`."""

    data: LabeledDataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    front_end: FrontEndConfig = field(default_factory=FrontEndConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=20))
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/finetune"))

    def __post_init__(self) -> None:
        check(self.train.parallel == "none", "finetune runs on one device: train.parallel='none'")

    @property
    def window_samples(self) -> int:
        return round(self.data.window_s * self.front_end.sample_rate)


def config_from_dict(raw: dict[str, Any], where: str = "config") -> FinetuneConfig:
    """Build and validate a :class:`FinetuneConfig` from nested dicts (unknown keys are errors)."""
    # [optim] and [train] left out take the fine-tuning defaults of FinetuneConfig
    sections = build_sections(raw, SECTIONS, where, defaults=("optim", "train"))
    try:
        return FinetuneConfig(**sections)
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


def config_to_dict(config: FinetuneConfig) -> dict[str, Any]:
    """Plain nested dict of ``config`` (JSON-serialisable); inverse of :func:`config_from_dict`."""
    raw = dataclasses.asdict(config)
    raw["optim"]["betas"] = list(raw["optim"]["betas"])
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> FinetuneConfig:
    """Read a TOML config (a path, a preset shipped in :mod:`biomae.configs` such as ``detect``,
    or None: all defaults) and apply dotted ``section.key=value`` overrides."""
    path = None if path is None else resolve_config(path, "finetune")
    raw: dict[str, Any] = {} if path is None else read_toml(path)
    where = "config" if path is None else str(path)
    return config_from_dict(apply_overrides(raw, list(overrides or [])), where=where)
