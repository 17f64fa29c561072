"""Fine-tuning tasks: each one head, its targets, its loss and its validation metric, as one object.

The fine-tuning loop (:func:`biomae.train.finetune.finetune`) looks its task up once by name,
``TASKS[config.head.task]``, and calls the same methods for every task; adding a task is adding one
:class:`Task` subclass and its :data:`TASKS` entry, and its head to :mod:`biomae.models.files`
(which builds, saves and loads the heads, so that running a model never imports training). The
three shipped tasks:

- ``detect`` (:class:`DetectTask`): :class:`~biomae.models.heads.DetectionHead`, frame targets
  from :func:`biomae.decode.frame_targets` (and onset / offset targets), class-balanced BCE or
  focal loss; validated by **event F1 at IoU >= 0.3** on whole held-out recordings, decoded with
  the ``[decode]`` settings (or the best of :data:`CALIBRATION_THRESHOLDS`);
- ``classify`` (:class:`ClassifyTask`): :class:`~biomae.models.heads.ClassificationHead`
  (attention pooling), multi-label BCE on the labels of events whose midpoint lies in the window;
  validated by micro F1 at 0.5 on one held-out batch;
- ``embed`` (:class:`EmbedTask`): :class:`~biomae.models.heads.ProjectionHead` and SupCon over
  pairs of windows around the same event (two views); validated by minus the held-out SupCon loss.

A batch is a :class:`~biomae.train.finetune_data.LabeledWindows` item: ``{"audio" (B, n_samples),
"offsets_s", "items", "labels"}``. Imports torch only where a method needs it, so that reading a
config stays light.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from biomae import losses
from biomae.annotations.schema import concat_events
from biomae.decode import boundary_targets, decode_events, frame_targets
from biomae.infer import Scorer
from biomae.metrics.events import MatchConfig, event_f1
from biomae.models import files, heads
from biomae.train.finetune_data import LabeledWindows

if TYPE_CHECKING:
    import torch
    from torch import nn

    from biomae.train.finetune_config import FinetuneConfig

CALIBRATION_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class Task:
    """One fine-tuning task. Subclasses set ``name`` and implement :meth:`build_head`,
    :meth:`targets`, :meth:`loss` and :meth:`score`; the rest has defaults.

    Attributes:
        name: the ``head.task`` value that selects it.
        min_labels: the fewest ``head.labels`` it accepts (checked when the config is built).
        pairs: training windows come as two views per event (rows ``2k``, ``2k + 1``).
    """

    name: ClassVar[str] = ""
    min_labels: ClassVar[int] = 0
    pairs: ClassVar[bool] = False

    def build_head(self, config: FinetuneConfig, vit_config: Any) -> nn.Module:
        """The fresh head for an encoder of ``vit_config`` (a
        :class:`~biomae.models.vit.ViTConfig`): the one a model file of this task holds
        (:func:`biomae.models.files.build_head`, from its spec's head parameters)."""
        import dataclasses

        params = files.head_params(
            self.name, dataclasses.asdict(config.head), config.front_end.hop_s, vit_config
        )
        return files.build_head(self.name, params, vit_config)

    def forward(self, head: nn.Module, tokens: torch.Tensor, grid: tuple[int, int]) -> Any:
        """The head's output for encoder tokens ``(B, N, D)`` on a patch ``grid`` (for the shipped
        tasks what :class:`biomae.models.files.TaskModel` computes)."""
        return head(tokens)

    def targets(self, head: nn.Module, out: Any, batch: dict, config: FinetuneConfig) -> Any:
        """What :meth:`loss` compares ``out`` with, built from the batch's events."""
        raise NotImplementedError

    def loss(self, out: Any, targets: Any, config: FinetuneConfig) -> torch.Tensor:
        """The scalar training loss of one micro-batch."""
        raise NotImplementedError

    def check_split(self, val_items: list) -> None:
        """Raise ``ValueError`` when the validation recordings cannot give a score."""

    def validation_batch(self, val_items: list, config: FinetuneConfig) -> dict | None:
        """The fixed held-out batch :meth:`score` reads (``4 * batch_size`` windows), or None."""

        return LabeledWindows(
            val_items,
            config.window_samples,
            config.front_end.sample_rate,
            max(2, 4 * config.data.batch_size),
            config.train.seed + 1,
            config.data.positive_fraction,
            self.pairs,
        ).batch(0)

    def score(self, model, front_end, val_items, val_batch, config: FinetuneConfig, device):
        """``(score, decode)``: the validation score of ``model`` (in eval mode; higher is better)
        and the decode settings it was reached with (``config.decode`` unless calibrated)."""
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------
# Detection


class DetectTask(Task):
    """Frame-level detection. ``thresholds``: the ``threshold_on`` grid tried at validation when
    ``finetune.calibrate_threshold`` (``threshold_off`` keeps its ratio to it)."""

    name = "detect"

    def __init__(self, thresholds: tuple[float, ...] = CALIBRATION_THRESHOLDS):
        self.thresholds = tuple(thresholds)

    def build_head(self, config, vit_config):
        head = super().build_head(config, vit_config)
        heads.init_output_bias(head.out, prior=0.1)
        return head

    def forward(self, head, tokens, grid):
        return head(tokens, grid)

    def targets(self, head, out, batch, config):
        """``{name: (B, T_out, C)}`` frame targets for each head output."""
        import torch

        labels = config.head.labels or None
        n_out, hop_s = out["activity"].shape[1], head.frame_hop_s
        frames: dict[str, list] = {"activity": [], "onset": [], "offset": []}
        for item, offset_s in zip(batch["items"], batch["offsets_s"], strict=True):
            frames["activity"].append(frame_targets(item.events, n_out, hop_s, labels, offset_s))
            onset, offset = boundary_targets(item.events, n_out, hop_s, labels, offset_s)
            frames["onset"].append(onset)
            frames["offset"].append(offset)
        return {
            name: torch.from_numpy(np.stack(frames[name])).to(logits.device)  # (B, T, C)
            for name, logits in out.items()
        }

    def loss(self, out, targets, config):
        """Activity + half-weighted onset / offset terms, each class-balanced BCE or focal."""

        h = config.head
        terms, weights = {}, {}
        for name, logits in out.items():
            target = targets[name]
            if h.loss == "focal":
                terms[name] = losses.focal_loss(logits.float(), target, gamma=h.focal_gamma)
            else:
                pos_weight = losses.pos_weight_from_targets(target, max_weight=h.max_pos_weight)
                terms[name] = losses.detection_bce(logits.float(), target, pos_weight)
            weights[name] = 1.0 if name == "activity" else 0.5
        return losses.combined_loss(terms, weights)

    def check_split(self, val_items):
        if not sum(len(it.events) for it in val_items):
            raise ValueError(
                f"the validation split ({[it.name for it in val_items]}) holds no events: event "
                "F1 is undefined; change data.val_fraction or add annotated recordings"
            )

    def validation_batch(self, val_items, config):
        return None  # scored on whole recordings

    def score(self, model, front_end, val_items, val_batch, config, device):
        """Event F1 at IoU >= 0.3 over the whole validation recordings (labels matched when the
        head has labels); with ``finetune.calibrate_threshold`` the best over :attr:`thresholds`."""

        labels = config.head.labels or [""]
        probs = predict_recordings(model, val_items, config, device)
        ref = concat_events(it.events for it in val_items)
        match = MatchConfig(iou_threshold=0.3, match_labels=bool(config.head.labels))
        candidates = [config.decode]
        if config.finetune.calibrate_threshold:
            candidates = [calibrated(config.decode, t) for t in self.thresholds]
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


def calibrated(decode, threshold_on: float):
    """``decode`` with ``threshold_on`` and ``threshold_off`` scaled to keep its ratio to it."""
    on, off = decode.thresholds("")
    return replace(decode, threshold_on=threshold_on, threshold_off=threshold_on * off / on)


def predict_recordings(model, items: list, config: FinetuneConfig, device) -> list[dict]:
    """Frame probabilities over whole recordings at ``model.head.frame_hop_s``: per item a dict
    with an ``(n_frames, C)`` array per head output ("activity", and "onset" / "offset" when
    trained).

    Scored by :class:`biomae.infer.Scorer` exactly as ``biomae annotate`` scores the saved model
    (its default: windows one after another without overlap, a short last window padded by
    looping its own audio, fp32), so the threshold calibrated on these scores is the one that
    ships. Raises the error of a recording that cannot be read.
    """
    # here, not at the top: biomae.train.finetune_model imports this module
    from biomae.train.finetune_model import model_spec

    spec = model_spec(config, model.encoder.config)
    scorer = Scorer(model, spec, device, bf16=False, batch_size=config.data.batch_size)
    results = []
    for _, result in scorer.frame_scores_many([item.recording.path for item in items]):
        if isinstance(result, Exception):
            raise result
        results.append(scorer.split(result[0].astype(np.float32)))
    return results


def predict_recording(model, item, config: FinetuneConfig, device) -> dict:
    """:func:`predict_recordings` of one item."""
    return predict_recordings(model, [item], config, device)[0]


# ----------------------------------------------------------------------------------------------
# Clip classification and embedding


class ClassifyTask(Task):
    """Multi-label clip classification over ``head.labels``."""

    name = "classify"
    min_labels = 2

    def targets(self, head, out, batch, config):
        """``(B, C)`` multi-hot: the labels of events whose midpoint lies in each window."""
        import torch

        target = clip_targets(batch, config.head.labels, config.data.window_s)
        return torch.from_numpy(target).to(out.device)

    def loss(self, out, targets, config):
        return losses.multilabel_bce(out.float(), targets)

    def score(self, model, front_end, val_items, val_batch, config, device):
        """Micro F1 of the clip labels at probability 0.5 on the held-out batch."""
        predicted = (model(front_end(val_batch["audio"])).float() > 0).cpu().numpy()
        truth = clip_targets(val_batch, config.head.labels, config.data.window_s) > 0
        tp = int((predicted & truth).sum())
        return 2 * tp / max(1, int(predicted.sum() + truth.sum())), config.decode


def clip_targets(batch: dict, labels: list[str], window_s: float) -> np.ndarray:
    """``(B, C)`` multi-hot: the labels of events whose midpoint lies in each window.

    Raises:
        ValueError: an event's label is not among ``labels`` (the recording named).
    """
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(batch["items"]), len(labels)), dtype=np.float32)
    for row, (item, offset_s) in enumerate(zip(batch["items"], batch["offsets_s"], strict=True)):
        mid = (item.events.start_s + item.events.end_s) / 2 - offset_s
        for label in item.events.label[(mid >= 0) & (mid < window_s)]:
            if label not in index:
                raise ValueError(f"{item.name}: label {label!r} is not among head.labels {labels}")
            out[row, index[label]] = 1.0
    return out


class EmbedTask(Task):
    """Supervised contrastive embeddings: two views per event, positives share the event label."""

    name = "embed"
    min_labels = 2
    pairs = True

    def targets(self, head, out, batch, config):
        """``(B,)`` class index of each window's event label among ``head.labels``."""
        import torch

        labels = config.head.labels
        index = {label: i for i, label in enumerate(labels)}
        unknown = sorted({lab for lab in batch["labels"] if lab not in index})
        if unknown:
            raise ValueError(f"embed: event labels {unknown} are not among head.labels {labels}")
        return torch.tensor([index[lab] for lab in batch["labels"]], device=out.device)

    def loss(self, out, targets, config):
        return losses.supcon_loss(out.float(), targets, config.head.temperature)

    def score(self, model, front_end, val_items, val_batch, config, device):
        """Minus the SupCon loss of the held-out pairs."""
        out = model(front_end(val_batch["audio"]))
        loss = self.loss(out, self.targets(model.head, out, val_batch, config), config)
        return -float(loss), config.decode


TASKS: dict[str, Task] = {task.name: task for task in (DetectTask(), ClassifyTask(), EmbedTask())}
