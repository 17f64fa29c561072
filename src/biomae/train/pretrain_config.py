"""Typed configs for pretraining, loaded from TOML with dotted ``key=value`` overrides.

A run is one :class:`PretrainConfig` with five sections, each a dataclass validated in
``__post_init__``::

    [model]      preset name + overrides            -> biomae.models MAEConfig
    [front_end]  log-mel front end                  -> biomae.features SpectrogramConfig
    [data]       where windows come from, batch, augmentation, held-out split
    [optim]      AdamW, warmup + cosine schedule, accumulation, clipping
    [train]      output, seed, cadence of logs/eval/checkpoints, precision, parallelism

``load_config("tiny", ["optim.lr=3e-4", "train.bf16=false"])`` reads the file (a path, or a preset
shipped in :mod:`biomae.configs`),
applies the overrides (values parsed as TOML, so ``3e-4``, ``true``, ``[256, 512]`` and ``"x"`` all
work; a bare word is a string) and validates. The config is stored as a plain dict in every
checkpoint (``config_to_dict`` / ``config_from_dict``) so that loading never unpickles.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomae.features import FrontEndConfig as FrontEndConfig  # re-exported: [front_end]
from biomae.models.presets import get_preset
from biomae.train.config_values import (  # re-exported (``as``): their home used to be here
    ConfigError as ConfigError,
)
from biomae.train.config_values import (
    apply_overrides,
    check,
    read_toml,
    type_problem,
)
from biomae.train.config_values import (
    parse_override as parse_override,
)
from biomae.train.config_values import (
    resolve_config as resolve_config,
)

_check = check  # the name the sections below use

PARALLEL_MODES = ("none", "ddp", "fsdp")


@dataclass
class ModelConfig:
    """Which MAE to build: a preset from ``biomae.models.presets`` plus field overrides.

    Attributes:
        preset: preset name (``tiny``, ``small``, ``base``, ``large``, ``huge``, ``vit1b``).
        overrides: keyword overrides passed to ``get_preset`` (e.g. ``{"mask_ratio": 0.75}``).
    """

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(isinstance(self.preset, str) and self.preset != "", f"model.preset={self.preset!r}")
        _check(
            isinstance(self.overrides, dict),
            f"model.overrides must be a table, got {self.overrides!r}",
        )

    def build_config(self):
        """The ``MAEConfig`` of this preset with the overrides applied."""

        return get_preset(self.preset, **self.overrides)


@dataclass
class DataConfig:
    """Where pretraining windows come from.

    Exactly one source: ``catalog`` (a ``biomae.datasets.catalog`` path; its recordings without
    flagged duplicates) or ``audio_globs`` (audio files, e.g.
    ``["../shared/data/audio/**/*.flac"]``).
    Recordings are split into train / held-out by a hash of their path (``eval_fraction``).

    Attributes:
        audio_globs: glob patterns (``**`` recursive), relative to the working directory.
        catalog: catalog path; used instead of ``audio_globs`` when set.
        prepared: with ``catalog``, read the recordings prepared at ``front_end.sample_rate``
            (``biomae data prepare --sample-rate RATE --catalog …``, int16) from the memory-mapped
            store instead of decoding every window; recordings not prepared are decoded.
        window_s: window length in seconds.
        batch_size: windows per micro-batch per process.
        num_workers: DataLoader workers per process (0 = load in the main process).
        eval_fraction: fraction of recordings held out for the eval loss (by path hash).
        n_eval_windows: fixed held-out windows scored at every eval.
        mix_prob: probability of mixing a second window in (``biomae.augment.Mix``).
        noise_prob: probability of adding noise (``biomae.augment.AddNoise``).
        n_fft_choices: FFT sizes drawn per batch in the front end (empty = ``front_end.n_fft``).
    """

    audio_globs: list[str] = field(default_factory=list)
    catalog: str | None = None
    prepared: bool = False
    window_s: float = 2.56
    batch_size: int = 16
    num_workers: int = 0
    eval_fraction: float = 0.1
    n_eval_windows: int = 32
    mix_prob: float = 0.0
    noise_prob: float = 0.0
    n_fft_choices: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.audio_globs = list(self.audio_globs)
        self.n_fft_choices = [int(n) for n in self.n_fft_choices]
        _check(
            bool(self.audio_globs) != bool(self.catalog),
            "data: set exactly one of data.audio_globs and data.catalog "
            f"(got audio_globs={self.audio_globs!r}, catalog={self.catalog!r})",
        )
        _check(
            bool(self.catalog) or not self.prepared,
            "data.prepared reads a catalog's prepared audio: set data.catalog",
        )
        _check(
            0.1 <= self.window_s <= 60.0, f"data.window_s={self.window_s} must be in [0.1, 60] s"
        )
        _check(self.batch_size >= 1, f"data.batch_size={self.batch_size} must be >= 1")
        _check(self.num_workers >= 0, f"data.num_workers={self.num_workers} must be >= 0")
        _check(
            0.0 < self.eval_fraction < 1.0, f"data.eval_fraction={self.eval_fraction} not in (0, 1)"
        )
        _check(self.n_eval_windows >= 1, f"data.n_eval_windows={self.n_eval_windows} must be >= 1")
        for name in ("mix_prob", "noise_prob"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"data.{name}={value} must be in [0, 1]")
        for n_fft in self.n_fft_choices:
            _check(n_fft >= 16, f"data.n_fft_choices holds {n_fft}; each must be >= 16 samples")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr`` at ``max_steps``.

    Attributes:
        lr: peak learning rate (after warmup).
        betas: AdamW betas.
        weight_decay: decoupled weight decay on matrices only (not norms, biases, tokens).
        warmup_steps: optimizer steps of linear warmup from 0 to ``lr``.
        max_steps: total optimizer steps of the run.
        min_lr: learning rate at ``max_steps``.
        grad_accum: micro-batches per optimizer step (global batch = batch_size x grad_accum x
            world_size).
        clip_norm: global gradient-norm clip (0 = no clipping).
    """

    lr: float = 1.5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_steps: int = 1000
    min_lr: float = 0.0
    grad_accum: int = 1
    clip_norm: float = 1.0

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        _check(len(self.betas) == 2, f"optim.betas={self.betas} must hold two values")
        _check(all(0.0 <= b < 1.0 for b in self.betas), f"optim.betas={self.betas} not in [0, 1)")
        _check(0.0 < self.lr < 1.0, f"optim.lr={self.lr} must be in (0, 1)")
        _check(
            0.0 <= self.min_lr <= self.lr, f"optim.min_lr={self.min_lr} not in [0, lr={self.lr}]"
        )
        _check(self.weight_decay >= 0.0, f"optim.weight_decay={self.weight_decay} must be >= 0")
        _check(self.max_steps >= 1, f"optim.max_steps={self.max_steps} must be >= 1")
        _check(
            0 <= self.warmup_steps <= self.max_steps,
            f"optim.warmup_steps={self.warmup_steps} not in [0, max_steps={self.max_steps}]",
        )
        _check(self.grad_accum >= 1, f"optim.grad_accum={self.grad_accum} must be >= 1")
        _check(self.clip_norm >= 0.0, f"optim.clip_norm={self.clip_norm} must be >= 0")


@dataclass
class TrainConfig:
    """Run bookkeeping, precision and parallelism.

    Attributes:
        out_dir: run folder (checkpoints, metrics.csv, pictures/, tensorboard/).
        seed: seeds the data stream, the masks and the model init.
        log_every: optimizer steps between log lines.
        eval_every: optimizer steps between held-out evals (and pictures); 0 = only at the end.
        ckpt_every: optimizer steps between checkpoints; 0 = only at the end.
        bf16: bfloat16 autocast for forward/backward (CPU and CUDA).
        compile: ``torch.compile`` the model.
        activation_checkpointing: recompute each transformer block in backward.
        parallel: ``none``, ``ddp`` or ``fsdp`` (FSDP2 ``fully_shard``); needs ``torchrun`` for
            more than one process.
        max_bad_steps: abort after this many consecutive steps with a non-finite loss or gradient.
        time_budget_s: stop (with a checkpoint) after this much wall time; 0 = no limit.
        n_pictures: eval windows drawn as input / masked / reconstruction pictures.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    out_dir: str = "runs/pretrain"
    seed: int = 0
    log_every: int = 10
    eval_every: int = 200
    ckpt_every: int = 200
    bf16: bool = False
    compile: bool = False
    activation_checkpointing: bool = False
    parallel: str = "none"
    max_bad_steps: int = 5
    time_budget_s: float = 0.0
    n_pictures: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        _check(self.out_dir != "", "train.out_dir is empty")
        for name in ("log_every", "eval_every", "ckpt_every", "n_pictures"):
            value = getattr(self, name)
            _check(value >= 0, f"train.{name}={value} must be >= 0")
        _check(self.log_every >= 1, f"train.log_every={self.log_every} must be >= 1")
        _check(
            self.parallel in PARALLEL_MODES,
            f"train.parallel={self.parallel!r} not in {PARALLEL_MODES}",
        )
        _check(self.max_bad_steps >= 1, f"train.max_bad_steps={self.max_bad_steps} must be >= 1")
        _check(self.time_budget_s >= 0, f"train.time_budget_s={self.time_budget_s} must be >= 0")
        _check(self.device in ("auto", "cpu", "cuda"), f"train.device={self.device!r}")


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "front_end": FrontEndConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}


@dataclass
class PretrainConfig:
    """One pretraining run: the five sections above."""

    model: ModelConfig = field(default_factory=ModelConfig)
    front_end: FrontEndConfig = field(default_factory=FrontEndConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(audio_globs=["*.flac"]))
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def window_samples(self) -> int:
        """Window length in samples at the model rate."""
        return round(self.data.window_s * self.front_end.sample_rate)


def build_sections(
    raw: dict[str, Any], sections: dict[str, type], where: str, defaults: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Each section's dataclass built from ``raw[name]`` (shared by the pretraining and the
    fine-tuning configs). Sections named in ``defaults`` that ``raw`` lacks are left out, so that
    the caller's own defaults for them apply.

    Raises:
        ConfigError: an unknown section or key, or an invalid value, named with ``where``.
    """
    unknown = set(raw) - set(sections)
    _check(not unknown, f"{where}: unknown section(s) {sorted(unknown)}; expected {list(sections)}")
    built = {}
    for name, cls in sections.items():
        values = dict(raw.get(name, {}))
        allowed = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - allowed)
        _check(
            not bad,
            f"{where}: unknown key(s) {bad} in [{name}] "
            f"({', '.join(f'{name}.{k}' for k in bad)}); it accepts {sorted(allowed)}",
        )
        if name not in raw and name in defaults:
            continue
        for key, value in values.items():
            problem = type_problem(cls, name, key, value)
            _check(problem is None, f"{where}: {problem}")
        try:
            built[name] = cls(**values)
        except (ValueError, TypeError) as err:  # ConfigError is a ValueError
            raise ConfigError(f"{where}: [{name}] {err}") from None
    return built


def config_from_dict(raw: dict[str, Any], where: str = "config") -> PretrainConfig:
    """Build and validate a :class:`PretrainConfig` from nested plain dicts.

    Raises:
        ConfigError: an unknown section or key (named with ``where``), or an invalid value.
    """
    return PretrainConfig(**build_sections(raw, SECTIONS, where))


def config_to_dict(config: PretrainConfig) -> dict[str, Any]:
    """Plain nested dict (JSON-serialisable) of ``config``; inverse of :func:`config_from_dict`."""
    raw = dataclasses.asdict(config)
    raw["optim"]["betas"] = list(raw["optim"]["betas"])
    return raw


def config_to_json(config: PretrainConfig) -> str:
    """The config as a JSON string (stored in checkpoints and safetensors metadata)."""
    return json.dumps(config_to_dict(config), indent=2, sort_keys=True)


def load_config(path: str | Path, overrides: list[str] | None = None) -> PretrainConfig:
    """Read a TOML config, apply dotted ``key=value`` overrides and validate.

    Args:
        path: TOML file with ``[model]``, ``[front_end]``, ``[data]``, ``[optim]``, ``[train]``,
            or a shipped preset (``tiny``, ``vit1b`` …: :mod:`biomae.configs`).
        overrides: e.g. ``["optim.lr=3e-4", "train.out_dir=runs/x"]``.

    Raises:
        ConfigError: naming the file and the offending key or value.
    """
    path = resolve_config(path, "pretrain")
    raw = apply_overrides(read_toml(path), list(overrides or []))
    return config_from_dict(raw, where=str(path))
