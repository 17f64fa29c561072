"""Clip-level metrics: accuracy, top-k accuracy, label-set F1 on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biomae.metrics.clips import clip_accuracy, multilabel_f1, top_k_accuracy
from biomae.metrics.events import Counts


def test_clip_accuracy():
    assert clip_accuracy(["a", "b", "c", "a"], ["a", "b", "a", "b"]) == 0.5
    assert math.isnan(clip_accuracy([], []))
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        clip_accuracy(["a", "b", "c"], ["a", "b"])


def test_top_k_accuracy_hand_case_and_ties():
    classes = ["owl", "frog", "wren"]
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.5, 0.0]])
    y_true = ["owl", "frog", "frog"]
    assert top_k_accuracy(y_true, scores, classes, k=1) == pytest.approx(2 / 3)  # tie counts
    assert top_k_accuracy(y_true, scores, classes, k=2) == 1.0
    with pytest.raises(ValueError, match="not among"):
        top_k_accuracy(["bat"], scores[:1], classes)
    with pytest.raises(ValueError, match="k=4"):
        top_k_accuracy(y_true, scores, classes, k=4)
    with pytest.raises(ValueError, match="expected \\(3, 2\\)"):
        top_k_accuracy(y_true, scores, classes[:2])


def test_multilabel_f1_hand_case():
    true_sets = [{"owl", "frog"}, {"wren"}, set(), set()]
    pred_sets = [{"owl"}, {"wren", "frog"}, set(), {"owl"}]
    out = multilabel_f1(true_sets, pred_sets)
    assert out["micro"] == Counts(tp=2, fp=2, fn=1)
    assert out["per_class"]["frog"] == Counts(0, 1, 1)
    assert out["per_class"]["owl"] == Counts(1, 1, 0)
    # per clip F1: 2/3, 2/3, 1 (both empty), 0
    assert out["samples_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4)
    assert out["macro_f1"] == pytest.approx(np.mean([0.0, 2 / 3, 1.0]))
