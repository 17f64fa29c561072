"""Clip-level metrics: accuracy, top-k accuracy and multi-label (label-set) F1.

Label-set F1 follows the BEANS-Zero style for clips that may hold several labels: each clip has a
set of true labels and a set of predicted labels, and a (clip, label) pair is a TP when the label is
in both sets, an FP when only predicted and an FN when only true. Reported: micro F1 (counts summed
over all pairs), macro F1 (mean over labels seen in either side of the per-label F1) and the
"samples" F1 (mean over clips of each clip's F1; a clip with both sets empty scores 1). These agree
with scikit-learn's ``f1_score(average="micro" | "macro" | "samples")`` on binarised label sets
(``zero_division=1.0`` for samples; macro skips labels where F1 is 0/0, which cannot happen for
labels seen in either side).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from biomae.metrics.events import Counts


def _same_length(y_true: Sequence, y_pred: Sequence) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions; need one each")


def clip_accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Fraction of clips whose predicted label equals the true label (NaN for no clips)."""
    _same_length(y_true, y_pred)
    if not len(y_true):
        return float("nan")
    return float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)]))


def top_k_accuracy(
    y_true: Sequence[str], scores: np.ndarray, classes: Sequence[str], k: int = 1
) -> float:
    """Fraction of clips whose true class is among the ``k`` highest-scoring classes.

    Args:
        y_true: (N,) true class names; each must be in ``classes``.
        scores: (N, C) class scores (any monotone scale: logits or probabilities).
        classes: (C,) class names, the column order of ``scores``.
        k: how many top classes count, 1 <= k <= C.

    Returns:
        The accuracy in [0, 1]. Ties are resolved in the clip's favour: the true class is in the
        top k when fewer than k classes score strictly higher.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"scores has shape {scores.shape}; expected ({len(y_true)}, {len(classes)}) "
            "(clips, classes)"
        )
    if not 1 <= k <= len(classes):
        raise ValueError(f"k={k} must lie in [1, {len(classes)}] (the number of classes)")
    column = {name: i for i, name in enumerate(classes)}
    unknown = sorted({t for t in y_true if t not in column})
    if unknown:
        raise ValueError(f"true labels {unknown[:5]} are not among the {len(classes)} classes")
    true_col = np.array([column[t] for t in y_true], dtype=np.int64)
    true_score = scores[np.arange(len(true_col)), true_col][:, None]  # (N, 1)
    n_higher = (scores > true_score).sum(axis=1)
    return float(np.mean(n_higher < k)) if len(true_col) else float("nan")


def multilabel_f1(
    true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]]
) -> dict[str, object]:
    """Label-set F1 over clips (see the module docstring).

    Args:
        true_sets: per clip the true labels (any iterable; duplicates count once).
        pred_sets: per clip the predicted labels.

    Returns:
        ``{"micro": Counts, "macro_f1": float, "samples_f1": float, "per_class": {label: Counts}}``.
    """
    _same_length(true_sets, pred_sets)
    per_class: dict[str, Counts] = {}
    clip_f1 = []
    for truth, guess in zip(true_sets, pred_sets, strict=True):
        truth, guess = set(truth), set(guess)
        for label in truth | guess:
            in_truth, in_guess = label in truth, label in guess
            c = Counts(
                int(in_truth and in_guess), int(in_guess and not in_truth), int(not in_guess)
            )
            per_class[label] = per_class.get(label, Counts(0, 0, 0)) + c
        n_both = len(truth & guess)
        denominator = len(truth) + len(guess)
        clip_f1.append(2 * n_both / denominator if denominator else 1.0)
    micro = sum(per_class.values(), Counts(0, 0, 0))
    macro = [c.f1 for c in per_class.values()]
    return {
        "micro": micro,
        "macro_f1": float(np.mean(macro)) if macro else float("nan"),
        "samples_f1": float(np.mean(clip_f1)) if clip_f1 else float("nan"),
        "per_class": dict(sorted(per_class.items())),
    }
