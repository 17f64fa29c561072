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
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from biomae._io import atomic_path, atomic_write_text
from biomae.decode import DecodeConfig
from biomae.train.config import (
    ConfigError,
    FrontEndConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    _check,
    apply_overrides,
)

TASKS = ("detect", "classify", "embed")
MODEL_FORMAT = "biomae-finetuned/1"
CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.safetensors"


@dataclass
class HeadConfig:
    """The task and its head. ``labels`` empty = class-agnostic detection (one activity class)."""

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
        _check(self.task in TASKS, f"head.task={self.task!r} not in {TASKS}")
        _check(self.loss in ("bce", "focal"), f"head.loss={self.loss!r} not in ('bce', 'focal')")
        _check(len(set(self.labels)) == len(self.labels), f"head.labels={self.labels} repeat")
        _check(
            self.task == "detect" or len(self.labels) >= 2,
            f"head.task={self.task!r} needs >= 2 head.labels; got {self.labels}",
        )
        _check(self.max_pos_weight >= 1, f"head.max_pos_weight={self.max_pos_weight} must be >= 1")
        _check(self.temperature > 0, f"head.temperature={self.temperature} must be > 0")


@dataclass
class FinetuneSection:
    """``init``: an encoder ``.safetensors`` (``biomae pretrain`` output) or "none" (random init of
    ``model.preset``); ``freeze_encoder``: train the head only; ``layer_decay`` in (0, 1]."""

    init: str = "none"
    freeze_encoder: bool = False
    layer_decay: float = 0.75

    def __post_init__(self) -> None:
        _check(0 < self.layer_decay <= 1, f"finetune.layer_decay={self.layer_decay} not in (0, 1]")


@dataclass
class LabeledDataConfig:
    """Labelled windows from exactly one source: ``data_dir`` (audio + Raven tables) or ``catalog``
    (a ``biomae data`` catalog; ``datasets`` empty = all; only fully annotated recordings). The
    window must span a whole number of patches; ``positive_fraction`` of windows hold an event."""

    data_dir: str = ""
    catalog: str = ""
    datasets: list[str] = field(default_factory=list)
    window_s: float = 2.56
    batch_size: int = 16
    val_fraction: float = 0.2
    split_by: str = "recording"
    positive_fraction: float = 0.7

    def __post_init__(self) -> None:
        _check(
            (self.data_dir != "") != (self.catalog != ""),
            f"set exactly one of data.data_dir (--data DIR) and data.catalog; got "
            f"data_dir={self.data_dir!r}, catalog={self.catalog!r}",
        )
        _check(0.1 <= self.window_s <= 60, f"data.window_s={self.window_s} not in [0.1, 60] s")
        _check(self.batch_size >= 2, f"data.batch_size={self.batch_size} must be >= 2")
        _check(0 < self.val_fraction < 1, f"data.val_fraction={self.val_fraction} not in (0, 1)")
        _check(
            self.split_by in ("recording", "individual"),
            f"data.split_by={self.split_by!r} not in ('recording', 'individual')",
        )
        _check(
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
        _check(self.train.parallel == "none", "finetune runs on one device: train.parallel='none'")

    @property
    def window_samples(self) -> int:
        return round(self.data.window_s * self.front_end.sample_rate)


def config_from_dict(raw: dict[str, Any], where: str = "config") -> FinetuneConfig:
    """Build and validate a :class:`FinetuneConfig` from nested dicts (unknown keys are errors)."""
    unknown = set(raw) - set(SECTIONS)
    _check(not unknown, f"{where}: unknown section(s) {sorted(unknown)}; expected {list(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        values = dict(raw.get(name, {}))
        allowed = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - allowed)
        _check(not bad, f"{where}: unknown key(s) {bad} in [{name}]; it accepts {sorted(allowed)}")
        if name not in raw and name in ("optim", "train"):
            continue  # the fine-tuning defaults of FinetuneConfig
        try:
            sections[name] = cls(**values)
        except (ConfigError, ValueError, TypeError) as err:
            raise ConfigError(f"{where}: [{name}] {err}") from None
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
    """Read a TOML config (None: all defaults) and apply dotted ``section.key=value`` overrides."""
    import tomllib

    raw: dict[str, Any] = {}
    where = "config"
    if path is not None:
        path, where = Path(path), str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: invalid TOML: {err}") from None
    return config_from_dict(apply_overrides(raw, list(overrides or [])), where=where)


# ----------------------------------------------------------------------------------------------
# Model


class FinetuneModel(nn.Module):
    """Encoder + one head. ``forward(spec (B, F, T))`` returns the head's output: a dict of
    ``(B, T_out, C)`` logits (detect), ``(B, C)`` logits (classify) or ``(B, E)`` unit vectors."""

    def __init__(self, encoder: nn.Module, head: nn.Module, task: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.task = task

    def forward(self, spec: torch.Tensor):
        tokens = self.encoder.forward_features(spec)  # (B, N, D)
        if self.task == "detect":
            return self.head(tokens, self.encoder.grid(spec.shape[-1]))
        return self.head(tokens)


def build_head(config: FinetuneConfig, vit_config) -> nn.Module:
    """The head of ``config.head.task`` for an encoder of ``vit_config``."""
    from biomae.models import heads

    h, dim = config.head, vit_config.dim
    if h.task == "detect":
        head_config = heads.DetectionHeadConfig(
            dim=dim,
            patch_t=vit_config.patch_t,
            hop_s=config.front_end.hop_s,
            n_classes=max(1, len(h.labels)),
            outputs=tuple(h.outputs),
            upsample=h.upsample,
            hidden_dim=h.hidden_dim,
            conv_layers=h.conv_layers,
        )
        head = heads.DetectionHead(head_config)
        heads.init_output_bias(head.out, prior=0.1)
        return head
    if h.task == "classify":
        return heads.ClassificationHead(dim, len(h.labels), pool=heads.AttentionPool(dim))
    return heads.ProjectionHead(dim, out_dim=h.embed_dim)


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
        ValueError: the file is not a biomae fine-tuned model, or its weights do not fit its config.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from biomae.models.vit import Encoder, ViTConfig

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fine-tuned model {path} not found")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: format {metadata.get('format')!r} is not {MODEL_FORMAT}")
    config = config_from_dict(json.loads(metadata["config"]), where=str(path))
    vit_config = ViTConfig(**json.loads(metadata["vit_config"]))
    model = FinetuneModel(Encoder(vit_config), build_head(config, vit_config), config.head.task)
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.to(device).eval(), config


# ----------------------------------------------------------------------------------------------
# Labelled data: audio + one Raven table per recording

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".aif", ".aiff")


@dataclass(frozen=True)
class LabeledRecording:
    """A recording (``biomae.train.data.Recording``), its events (seconds from its start; the
    ``recording`` column is ``name``) and ``name``, its path relative to the data folder."""

    recording: Any
    events: pd.DataFrame
    name: str
    individuals: frozenset[str] = frozenset()


def find_labeled(data_dir: str | Path) -> list[LabeledRecording]:
    """Every audio file under ``data_dir`` with its Raven table beside it
    (``<stem>.selections.txt`` or ``<stem>.Table.1.selections.txt``; an empty table = no events).

    Raises:
        FileNotFoundError: no audio under ``data_dir``, or an audio file without a table (named).
    """
    from biomae.annotations import read_annotations, validate_events
    from biomae.train.data import find_recordings

    root = Path(data_dir)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"--data {root}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    items = []
    for rec in find_recordings([str(p) for p in paths]):
        path = Path(rec.path)
        tables = [
            path.with_name(path.stem + s) for s in (".selections.txt", ".Table.1.selections.txt")
        ]
        table = next((t for t in tables if t.is_file()), None)
        if table is None:
            raise FileNotFoundError(
                f"{path}: no Raven table beside it (looked for {tables[0].name}); every recording "
                "under --data needs one (an empty table for a recording without events)"
            )
        name = path.relative_to(root.resolve()).as_posix()
        events = read_annotations(table, "raven").assign(recording=name)
        validate_events(events, duration_s=rec.duration_s, where=str(table))
        individuals = frozenset(events["individual"]) - {""}
        items.append(LabeledRecording(rec, events.reset_index(drop=True), name, individuals))
    return items


def catalog_labeled(catalog: str, datasets: list[str]) -> tuple[list[LabeledRecording], list[str]]:
    """The fully annotated recordings of a catalog (``datasets`` empty = all) with their events.

    Returns:
        ``(items, left_out)``: ``left_out`` names the recordings not annotated over their whole
        duration (their unannotated parts cannot serve as negatives); the caller reports them.
    """
    from biomae.datasets.catalog import Catalog
    from biomae.train.data import Recording

    cat = Catalog(catalog)
    recordings, events = cat.recordings(), cat.events()
    if datasets:
        unknown = sorted(set(datasets) - set(recordings["dataset"]))
        if unknown:
            raise ValueError(f"catalog {catalog}: no dataset(s) {unknown}")
        recordings = recordings[recordings["dataset"].isin(datasets)]
    items, left_out = [], []
    by_id = dict(tuple(events.groupby("recording_id")))
    for row in recordings.itertuples():
        spans = json.loads(row.regions) if row.regions else []
        if not (len(spans) == 1 and spans[0][0] <= 1e-3 and spans[0][1] >= row.duration_s - 1e-3):
            left_out.append(row.path)
            continue
        rec = Recording(str(row.path), int(row.sample_rate), int(row.n_samples))
        table = by_id.get(row.recording_id, events.iloc[:0]).assign(recording=row.path)
        individuals = (frozenset(table["individual"]) | {row.individual or ""}) - {""}
        items.append(LabeledRecording(rec, table.reset_index(drop=True), row.path, individuals))
    if not items:
        raise ValueError(f"catalog {catalog}: no fully annotated recording in {datasets or 'it'}")
    return items, left_out


def split_labeled(
    items: list[LabeledRecording], val_fraction: float, by: str = "recording"
) -> tuple[list[LabeledRecording], list[LabeledRecording]]:
    """Train / validation split by a stable hash of each group's name: a group is one recording, or
    (``by="individual"``) the recordings linked by a shared ``individual``. Both sides non-empty."""
    import hashlib

    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    if by == "individual":
        first_seen: dict[str, int] = {}
        for i, item in enumerate(items):
            for individual in item.individuals:
                j = first_seen.setdefault(individual, i)
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(root(i), []).append(i)
    if len(groups) < 2:
        raise ValueError(
            f"need >= 2 groups ({by}) for a train / validation split, got {len(groups)}"
        )

    def unit(members: list[int]) -> float:
        key = "|".join(sorted(items[i].name for i in members))
        return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64

    ranked = sorted(groups.values(), key=unit)
    n_val = min(max(1, sum(unit(g) < val_fraction for g in ranked)), len(ranked) - 1)
    val = sorted(i for g in ranked[:n_val] for i in g)
    train = sorted(i for g in ranked[n_val:] for i in g)
    return [items[i] for i in train], [items[i] for i in val]


class LabeledWindows:
    """Deterministic micro-batches of windows: batch ``index`` draws from
    ``default_rng([seed, index])``. With probability ``positive_fraction`` a window is placed around
    a random event (uniformly, so the event lies inside when it fits), else uniformly in a recording
    drawn by duration (such a window may run up to half its length past the end of the recording,
    zero-padded, so that the model learns that padding holds nothing). ``pairs=True`` gives two
    independently placed windows per event (rows ``2k``, ``2k + 1``: the views of SupCon).
    Items: ``{"audio": (B, n_samples), "offsets_s": [B], "items": [B] LabeledRecording,
    "labels": [B] event label or None}``."""

    def __init__(
        self, items, n_samples, sample_rate, batch_size, seed, positive_fraction, pairs=False
    ):
        self.items, self.n_samples, self.sample_rate = items, n_samples, sample_rate
        self.batch_size, self.seed = batch_size, seed
        self.positive_fraction = 1.0 if pairs else positive_fraction
        self.pairs = pairs
        self.events = [(i, r) for i, item in enumerate(items) for r in range(len(item.events))]
        if pairs and not self.events:
            raise ValueError("LabeledWindows: pairs of views need events; the split has none")
        durations = np.array([it.recording.duration_s for it in items])
        self.weights = durations / durations.sum()

    def _window(self, rng, item, start_s: float) -> tuple[np.ndarray, float]:
        from biomae.train.data import read_window

        rec = item.recording
        window_s = self.n_samples / self.sample_rate
        latest = max(0, rec.n_frames - math.ceil(window_s * rec.sample_rate / 2))
        start = min(max(round(start_s * rec.sample_rate), 0), latest)
        return read_window(rec, start, self.n_samples, self.sample_rate), start / rec.sample_rate

    def batch(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        window_s = self.n_samples / self.sample_rate
        audio = np.empty((self.batch_size, self.n_samples), dtype=np.float32)  # (B, n)
        offsets, items, labels = [], [], []
        event = None
        for row in range(self.batch_size):
            if self.pairs and row % 2:
                pass  # second view of the same event
            elif self.events and rng.random() < self.positive_fraction:
                event = self.events[int(rng.integers(len(self.events)))]
            else:
                event = None
            if event is None:
                item = self.items[int(rng.choice(len(self.items), p=self.weights))]
                # may run half a window past the end: padded windows are seen in training too
                start_s = rng.uniform(0, max(0.0, item.recording.duration_s - window_s / 2))
            else:
                item = self.items[event[0]]
                ev = item.events.iloc[event[1]]
                slack = window_s - (ev.end_s - ev.start_s)
                start_s = ev.start_s - rng.uniform(0, slack if slack > 0 else window_s / 2)
            audio[row], offset_s = self._window(rng, item, start_s)
            offsets.append(offset_s)
            items.append(item)
            labels.append(None if event is None else item.events.label.iloc[event[1]])
        return {
            "audio": torch.from_numpy(audio),
            "offsets_s": offsets,
            "items": items,
            "labels": labels,
        }


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


@torch.no_grad()
def validate(model, front_end, val_items, val_batch, config: FinetuneConfig, device) -> float:
    """The validation score (higher is better): event F1 (detect), clip micro F1 (classify) or
    minus the SupCon loss (embed)."""
    from biomae.annotations.schema import concat_events
    from biomae.decode import decode_events
    from biomae.evaluate.metrics import MatchConfig, event_f1

    model.eval()
    h = config.head
    if h.task == "detect":
        labels = h.labels or [""]
        preds = []
        for it in val_items:
            probs = predict_recording(model, front_end, it, config, device)
            preds.append(
                decode_events(
                    probs["activity"],
                    model.head.frame_hop_s,
                    labels,
                    config.decode,
                    onset=probs.get("onset"),
                    offset=probs.get("offset"),
                    recording=it.name,
                )
            )
        ref = concat_events(it.events for it in val_items)
        match = MatchConfig(iou_threshold=0.3, match_labels=bool(h.labels))
        return float(event_f1(concat_events(preds), ref, match).overall.f1)
    spec = front_end(val_batch["audio"])
    if h.task == "classify":
        predicted = (model(spec).float() > 0).cpu().numpy()
        truth = _clip_targets(val_batch, h.labels, config.data.window_s) > 0
        tp = int((predicted & truth).sum())
        return 2 * tp / max(1, int(predicted.sum() + truth.sum()))
    return -float(task_loss(model, spec, val_batch, config))


# ----------------------------------------------------------------------------------------------
# The loop


def finetune(config: FinetuneConfig, log=print) -> dict:
    """Run (or resume) fine-tuning; returns ``{"step", "best_score", "best_path"}``."""
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
        items, left_out = catalog_labeled(config.data.catalog, config.data.datasets)
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
        for section in ("model", "front_end", "head", "finetune"):
            if saved[section] != config_to_dict(config)[section]:
                raise ConfigError(
                    f"{ckpt_path}: [{section}] differs from the run being resumed; "
                    "use a new train.out_dir"
                )
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        common.set_rng_state(payload["rng"])
        step, best = payload["step"], payload["metrics"]["best_score"]
        log(f"finetune: resumed from {ckpt_path} at step {step} (best {best:.4f})")
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
            score = validate(model, front_end, val_items, val_batch, config, device)
            row["val_score"] = score
            if score > best:
                best = score
                save_finetuned(model, config, best_path, {"step": step, "val_score": score})
            log(f"finetune: step {step}: validation {score:.4f} (best {best:.4f})")
        if step % config.train.log_every == 0 or last:
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
