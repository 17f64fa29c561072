"""Training losses as pure functions of tensors (no modules, no state).

- detection: :func:`detection_bce` (class-balanced with :func:`pos_weight_from_targets`) and
  :func:`focal_loss`, both on frame logits ``(B, T, C)`` with an optional valid-frame mask;
- classification: :func:`multilabel_bce` and :func:`cross_entropy`;
- contrastive: :func:`supcon_loss` (supervised contrastive, Khosla et al. 2020, the L_out form) and
  :func:`info_nce` (NT-Xent between two augmented views, Chen et al. 2020);
- :func:`combined_loss`: a weighted sum of named terms.

The masked-reconstruction loss lives with the model (``biomae.models.mae.MAE.forward``) and is not
repeated here. Every loss returns a scalar mean unless stated otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

# ----------------------------------------------------------------------------------------------
# Detection


def pos_weight_from_targets(targets: Tensor, max_weight: float | None = None) -> Tensor:
    """Per-class positive weight ``(1 - p) / p`` from the positive fraction ``p`` of the targets.

    Used as BCE's ``pos_weight`` so that positives and negatives contribute equally. A class with
    no positive frame gets weight 1: the weight multiplies positive terms only, so it has no effect.

    Args:
        targets: ``(..., C)`` in [0, 1] (soft targets count fractionally).
        max_weight: if given, the weight is capped there (an explicit choice: rare classes with
            ~0.1 % positives would otherwise get weights of ~1000 and noisy gradients).

    Returns:
        ``(C,)`` float weights.
    """
    flat = targets.reshape(-1, targets.shape[-1]).float()  # (M, C)
    positive = flat.sum(dim=0)
    negative = flat.shape[0] - positive
    weight = torch.where(
        positive > 0, negative / positive.clamp_min(1e-12), torch.ones_like(positive)
    )
    if max_weight is not None:
        weight = weight.clamp(max=max_weight)
    return weight


def _masked_mean(per_element: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return per_element.mean()
    while mask.ndim < per_element.ndim:
        mask = mask.unsqueeze(-1)
    weights = mask.to(per_element.dtype).expand_as(per_element)
    n_valid = weights.sum()
    if n_valid == 0:
        raise ValueError("loss: the mask selects no element")
    return (per_element * weights).sum() / n_valid


def detection_bce(
    logits: Tensor, targets: Tensor, pos_weight: Tensor | None = None, mask: Tensor | None = None
) -> Tensor:
    """Frame-level binary cross-entropy.

    Args:
        logits: ``(B, T, C)`` (any shape works; ``C`` last).
        targets: same shape, in [0, 1].
        pos_weight: ``(C,)`` weight on positive terms (see :func:`pos_weight_from_targets`).
        mask: ``(B, T)`` bool, True = frame counts (frames past the end of a file do not).

    Returns:
        Mean over valid elements.
    """
    _same_shape(logits, targets, "detection_bce")
    per = F.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype), pos_weight=pos_weight, reduction="none"
    )
    return _masked_mean(per, mask)


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    mask: Tensor | None = None,
) -> Tensor:
    """Sigmoid focal loss (Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log(p_t)``.

    Args:
        logits, targets, mask: as in :func:`detection_bce`.
        gamma: focusing exponent (0 = BCE).
        alpha: weight of positives (negatives get ``1 - alpha``); None = no class weighting.

    Returns:
        Mean over valid elements.
    """
    _same_shape(logits, targets, "focal_loss")
    if gamma < 0:
        raise ValueError(f"focal_loss: gamma={gamma} must be >= 0")
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    prob = torch.sigmoid(logits)
    p_t = prob * targets + (1 - prob) * (1 - targets)
    per = ce * (1 - p_t).pow(gamma)
    if alpha is not None:
        if not 0 <= alpha <= 1:
            raise ValueError(f"focal_loss: alpha={alpha} must lie in [0, 1]")
        per = per * (alpha * targets + (1 - alpha) * (1 - targets))
    return _masked_mean(per, mask)


# ----------------------------------------------------------------------------------------------
# Classification


def multilabel_bce(
    logits: Tensor, targets: Tensor, pos_weight: Tensor | None = None, label_smoothing: float = 0.0
) -> Tensor:
    """Multi-label BCE. Args: logits ``(B, C)``; targets ``(B, C)`` in [0, 1]; pos_weight ``(C,)``;
    label_smoothing ``s`` maps targets to ``t (1 - s) + s / 2``."""
    _same_shape(logits, targets, "multilabel_bce")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"multilabel_bce: label_smoothing={label_smoothing} must lie in [0, 1)")
    targets = targets.to(logits.dtype) * (1 - label_smoothing) + label_smoothing / 2
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


def cross_entropy(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy. Args: logits ``(B, C)``; labels ``(B,)`` class indices in [0, C)."""
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"cross_entropy: labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"cross_entropy: labels span [{int(labels.min())}, {int(labels.max())}], "
            f"outside [0, {logits.shape[1]})"
        )
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


# ----------------------------------------------------------------------------------------------
# Contrastive


def supcon_loss(embeddings: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss, L_out of Khosla et al. (2020), eq. 2.

    For each anchor ``i`` with positives ``P(i) = {p != i : label_p = label_i}`` and all others
    ``A(i) = {a != i}``::

        L_i = -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau))

    The loss is the mean of ``L_i`` over anchors that have at least one positive (an anchor without
    positives has no defined term, as in the paper). Views of the same example are simply rows with
    the same label.

    Args:
        embeddings: ``(N, E)``, L2-normalised (use :class:`~biomae.models.heads.ProjectionHead`).
        labels: ``(N,)`` integer class of each row.
        temperature: ``tau`` > 0.

    Raises:
        ValueError: if no anchor has a positive (the batch has no two rows of one class).
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            f"supcon_loss: embeddings {tuple(embeddings.shape)} / labels {tuple(labels.shape)} "
            "must be (N, E) / (N,)"
        )
    if not temperature > 0:
        raise ValueError(f"supcon_loss: temperature={temperature} must be > 0")
    n = embeddings.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=embeddings.device)
    sim = embeddings @ embeddings.T / temperature  # (N, N)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)  # (N, N), -inf on the diagonal
    positive = (labels[:, None] == labels[None, :]) & ~self_mask  # (N, N)
    n_positive = positive.sum(dim=1)  # (N,)
    has_positive = n_positive > 0
    if not has_positive.any():
        raise ValueError(f"supcon_loss: no two of the {n} rows share a label; nothing to contrast")
    pos_log_prob = log_prob.masked_fill(~positive, 0.0).sum(dim=1)  # (N,)
    per_anchor = -pos_log_prob[has_positive] / n_positive[has_positive]
    return per_anchor.mean()


def info_nce(view_a: Tensor, view_b: Tensor, temperature: float = 0.1) -> Tensor:
    """NT-Xent (SimCLR) between two views of the same batch.

    Rows ``view_a[i]`` and ``view_b[i]`` are positives; the other ``2B - 2`` rows are negatives. The
    loss for anchor ``i`` is ``-log( exp(s_ip / tau) / sum_{k != i} exp(s_ik / tau) )`` over the
    ``2B`` stacked rows, averaged over all ``2B`` anchors. With unrelated embeddings it is close to
    ``log(2B - 1)``; it equals :func:`supcon_loss` with labels ``[0..B-1, 0..B-1]``.

    Args:
        view_a, view_b: ``(B, E)`` L2-normalised embeddings.
        temperature: ``tau`` > 0.
    """
    _same_shape(view_a, view_b, "info_nce")
    if view_a.ndim != 2 or view_a.shape[0] < 2:
        raise ValueError(f"info_nce: views must be (B, E) with B >= 2; got {tuple(view_a.shape)}")
    if not temperature > 0:
        raise ValueError(f"info_nce: temperature={temperature} must be > 0")
    batch = view_a.shape[0]
    z = torch.cat([view_a, view_b], dim=0)  # (2B, E)
    sim = z @ z.T / temperature  # (2B, 2B)
    sim = sim.fill_diagonal_(float("-inf"))
    index = torch.arange(batch, device=z.device)
    target = torch.cat([index + batch, index])  # (2B,) row of each anchor's positive
    return F.cross_entropy(sim, target)


# ----------------------------------------------------------------------------------------------
# Combination


def combined_loss(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Weighted sum ``sum_k weights[k] * terms[k]`` over the same set of names.

    Raises:
        KeyError: if a term has no weight or a weight has no term (a typo would otherwise silently
            drop a loss).
        FloatingPointError: if a weighted term is not finite (names the term).
    """
    missing = sorted(set(terms) - set(weights))
    extra = sorted(set(weights) - set(terms))
    if missing or extra:
        raise KeyError(
            f"combined_loss: terms without weight {missing}, weights without term {extra}"
        )
    if not terms:
        raise ValueError("combined_loss: no terms")
    total = None
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise FloatingPointError(f"combined_loss: term {name!r} is {value.detach().tolist()}")
        weighted = weights[name] * value
        total = weighted if total is None else total + weighted
    return total


def random_loss_level(batch: int) -> float:
    """``log(2B - 1)``: the NT-Xent value for embeddings that carry no information."""
    return math.log(2 * batch - 1)


def _same_shape(a: Tensor, b: Tensor, where: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{where}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
