"""Losses against direct loop-based computations of their formulas, and their known limits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from biomae.losses import (
    combined_loss,
    cross_entropy,
    detection_bce,
    focal_loss,
    info_nce,
    multilabel_bce,
    pos_weight_from_targets,
    random_loss_level,
    supcon_loss,
)


def _unit(n, e, seed):
    return F.normalize(torch.randn(n, e, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _supcon_loop(z, labels, tau):
    n = len(labels)
    terms = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(n) if a != i)
        terms.append(
            -sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denom) for p in positives)
            / len(positives)
        )
    return sum(terms) / len(terms)


def test_supcon_matches_loop():
    z = _unit(7, 5, seed=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])  # class 2 and 3 anchors have no positives
    for tau in (0.1, 0.5):
        assert float(supcon_loss(z, labels, tau)) == pytest.approx(
            _supcon_loop(z, labels, tau), 1e-5
        )


def test_supcon_raises_without_positives():
    with pytest.raises(ValueError, match="share a label"):
        supcon_loss(_unit(3, 4, 0), torch.tensor([0, 1, 2]))


def test_info_nce_matches_loop_and_supcon():
    a, b = _unit(4, 6, seed=2), _unit(4, 6, seed=3)
    tau = 0.2
    z = torch.cat([a, b])
    expected = []
    for i in range(8):
        pos = (i + 4) % 8
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(8) if k != i)
        expected.append(-math.log(math.exp(float(z[i] @ z[pos]) / tau) / denom))
    loss = float(info_nce(a, b, tau))
    assert loss == pytest.approx(sum(expected) / 8, rel=1e-5)
    labels = torch.arange(4).repeat(2)
    assert loss == pytest.approx(float(supcon_loss(z, labels, tau)), rel=1e-5)


def test_info_nce_limits():
    batch = 64
    aligned = _unit(batch, 128, seed=4)
    assert float(info_nce(aligned, aligned, 0.05)) < 0.05
    # unrelated high-dimensional views at high temperature: every logit ~equal -> log(2B - 1)
    random = float(info_nce(_unit(batch, 512, 5), _unit(batch, 512, 6), temperature=1.0))
    assert random == pytest.approx(random_loss_level(batch), abs=0.05)


def test_pos_weight_balances_classes():
    targets = torch.zeros(2, 10, 3)
    targets[:, :2, 0] = 1  # 20 % positives -> weight 4
    targets[:, :5, 1] = 1  # 50 % -> 1; class 2 has none -> 1
    weight = pos_weight_from_targets(targets)
    assert torch.allclose(weight, torch.tensor([4.0, 1.0, 1.0]))
    assert torch.allclose(
        pos_weight_from_targets(targets, max_weight=2.0), torch.tensor([2.0, 1, 1])
    )
    logits = torch.zeros_like(targets)
    # logit 0: each term is log 2, positives count 4x: mean = log2 * (0.2 * 4 + 0.8) for c=0
    per_class = [
        float(detection_bce(logits[..., c], targets[..., c], weight[c : c + 1])) for c in range(3)
    ]
    assert per_class[0] == pytest.approx(math.log(2) * 1.6, rel=1e-5)


def test_detection_bce_mask_ignores_frames():
    logits = torch.randn(2, 6, 1)
    targets = (torch.rand(2, 6, 1) > 0.5).float()
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    garbage = logits.clone()
    garbage[1, 3:] = 50.0
    assert torch.allclose(
        detection_bce(garbage, targets, mask=mask), detection_bce(logits, targets, mask=mask)
    )
    with pytest.raises(ValueError, match="selects no element"):
        detection_bce(logits, targets, mask=torch.zeros(2, 6, dtype=torch.bool))


def test_focal_loss_formula_and_limits():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    expected = []
    for x, t in zip(logits[0].tolist(), targets[0].tolist(), strict=True):
        p = 1 / (1 + math.exp(-x))
        p_t = p if t else 1 - p
        alpha_t = 0.25 if t else 0.75
        expected.append(-alpha_t * (1 - p_t) ** 2 * math.log(p_t))
    assert float(focal_loss(logits, targets)) == pytest.approx(sum(expected) / 3, rel=1e-5)
    # gamma=0, alpha=None is plain BCE
    assert torch.allclose(focal_loss(logits, targets, 0.0, None), detection_bce(logits, targets))


def test_classification_losses():
    logits = torch.tensor([[3.0, -3.0], [0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(
        multilabel_bce(logits, targets), F.binary_cross_entropy_with_logits(logits, targets)
    )
    assert float(cross_entropy(logits, torch.tensor([0, 1]))) == pytest.approx(
        float(F.cross_entropy(logits, torch.tensor([0, 1])))
    )
    with pytest.raises(ValueError, match="outside"):
        cross_entropy(logits, torch.tensor([0, 2]))


def test_combined_loss_weights_and_checks():
    terms = {"det": torch.tensor(2.0), "con": torch.tensor(3.0)}
    assert float(combined_loss(terms, {"det": 1.0, "con": 0.5})) == pytest.approx(3.5)
    with pytest.raises(KeyError, match="without weight"):
        combined_loss(terms, {"det": 1.0})
    with pytest.raises(FloatingPointError, match="'det'"):
        combined_loss({"det": torch.tensor(float("nan"))}, {"det": 1.0})
