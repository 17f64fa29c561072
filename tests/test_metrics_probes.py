"""Embedding probes on separable and unseparable toy data, and the log-mel statistics baseline."""

from __future__ import annotations

import numpy as np
import pytest

from biomae.metrics.probes import (
    ProbeConfig,
    linear_probe_accuracy,
    nearest_neighbour_accuracy,
    stratified_folds,
)


def clusters(n_per_class=30, n_classes=3, dim=16, spread=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    y = np.repeat([f"class{i}" for i in range(n_classes)], n_per_class)
    return x, y


def test_separable_clusters_score_perfectly():
    x, y = clusters()
    assert nearest_neighbour_accuracy(x, y) == 1.0
    result = linear_probe_accuracy(x, y, ProbeConfig(n_folds=3))
    assert result["accuracy"] == 1.0 and len(result["fold_accuracy"]) == 3


def test_random_labels_score_near_chance():
    x, _ = clusters(n_per_class=40, spread=1.0)
    y = np.random.default_rng(5).choice(["a", "b", "c", "d"], len(x))
    assert nearest_neighbour_accuracy(x, y) < 0.5
    assert linear_probe_accuracy(x, y, ProbeConfig(n_folds=3))["accuracy"] < 0.5


def test_nearest_neighbour_is_cosine_and_leaves_itself_out():
    # scale does not matter for cosine; a lone point's only neighbour is the other class
    x = np.array([[1.0, 0.0], [10.0, 0.1], [0.0, 1.0]])
    assert nearest_neighbour_accuracy(x, ["a", "a", "b"]) == pytest.approx(2 / 3)
    assert nearest_neighbour_accuracy(x, ["a", "a", "b"], chunk_rows=1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="row 0 is all zero"):
        nearest_neighbour_accuracy(np.zeros((2, 2)), ["a", "b"])


def test_folds_are_stratified_and_errors_are_specific():
    y = np.repeat([0, 1], [10, 5])
    fold = stratified_folds(y, 5)
    for k in range(5):
        assert ((fold == k) & (y == 0)).sum() == 2 and ((fold == k) & (y == 1)).sum() == 1
    x, labels = clusters(n_per_class=2)
    with pytest.raises(ValueError, match="cannot be split into 5 folds"):
        linear_probe_accuracy(x, labels)
    with pytest.raises(ValueError, match="4 embeddings but 3 labels"):
        nearest_neighbour_accuracy(np.ones((4, 2)), ["a", "b", "c"])


def test_logmel_stats_embedding_separates_tones():
    torch = pytest.importorskip("torch")
    pytest.importorskip("biomae.features")
    from biomae.evaluate.embedding_suite import logmel_stats_embedding

    sample_rate = 16000
    t = torch.arange(sample_rate // 2) / sample_rate
    rng = torch.Generator().manual_seed(0)
    waves, labels = [], []
    for i in range(12):
        freq_hz = 1000.0 if i % 2 else 4000.0
        noise = 0.05 * torch.randn(len(t), generator=rng)
        waves.append(torch.sin(2 * torch.pi * (freq_hz + 20 * i) * t) + noise)
        labels.append("low" if i % 2 else "high")
    emb = logmel_stats_embedding(torch.stack(waves), sample_rate, n_mels=32)
    assert emb.shape == (12, 64) and torch.isfinite(emb).all()
    assert nearest_neighbour_accuracy(emb.numpy(), labels) == 1.0


def test_probe_agrees_with_sklearn_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    from biomae.metrics.probes import fit_predict

    x, y = clusters(n_per_class=40, spread=1.5, seed=2)  # overlapping classes
    y_id = np.unique(y, return_inverse=True)[1]
    train, test = np.arange(len(x)) % 2 == 0, np.arange(len(x)) % 2 == 1
    config = ProbeConfig(l2=1e-2, max_iter=500)
    ours = fit_predict(x[train], y_id[train], x[test], 3, config)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    # same objective: sklearn minimises 0.5 ||W||^2 + C * sum(loss), i.e. (C n) times
    # (mean loss + ||W||^2 / (2 C n)), so l2 = 1 / (2 C n)
    c = 1 / (2 * config.l2 * train.sum())
    reference = linear_model.LogisticRegression(C=c, max_iter=2000, tol=1e-8)
    reference.fit((x[train] - mean) / std, y_id[train])
    theirs = reference.predict((x[test] - mean) / std)
    assert np.mean(ours == theirs) >= 0.97
