"""Embedding-quality probes: how well an (N, D) embedding matrix separates known labels.

- :func:`nearest_neighbour_accuracy`: leave-one-out 1-nearest-neighbour accuracy under cosine
  similarity (no training; exact, computed in row chunks).
- :func:`linear_probe_accuracy`: multinomial logistic regression (numpy + scipy L-BFGS-B, L2
  penalty) scored by stratified k-fold cross-validation; features are standardised with the
  training fold's mean and standard deviation.

Pure numpy + scipy: the embeddings come from elsewhere (the log-mel baseline and the model's
embeddings are made in :mod:`biomae.evaluate.embedding_suite`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _encode(embeddings: np.ndarray, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Validate (N, D) embeddings against N labels; return float64 embeddings and int class ids."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D); got shape {x.shape}")
    if len(labels) != len(x):
        raise ValueError(f"{len(x)} embeddings but {len(labels)} labels; need one label each")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"embedding row {bad} has a non-finite value")
    _, y = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    return x, y.astype(np.int64)


def nearest_neighbour_accuracy(
    embeddings: np.ndarray, labels: Sequence, *, chunk_rows: int = 1024
) -> float:
    """Leave-one-out 1-NN accuracy with cosine similarity.

    Args:
        embeddings: (N, D) vectors, N >= 2, none all-zero.
        labels: (N,) class of each row.
        chunk_rows: rows of the (chunk, N) similarity block held at once.

    Returns:
        The fraction of rows whose most similar *other* row has the same label (ties: lowest index).
    """
    x, y = _encode(embeddings, labels)
    if len(x) < 2:
        raise ValueError(f"need at least 2 embeddings for leave-one-out; got {len(x)}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    if (norms == 0).any():
        raise ValueError(f"embedding row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zero")
    x = x / norms
    correct = 0
    for a in range(0, len(x), chunk_rows):
        sim = x[a : a + chunk_rows] @ x.T  # (chunk, N)
        rows = np.arange(len(sim))
        sim[rows, a + rows] = -np.inf  # leave the row itself out
        correct += int((y[np.argmax(sim, axis=1)] == y[a : a + chunk_rows]).sum())
    return correct / len(x)


@dataclass(frozen=True)
class ProbeConfig:
    """Linear probe settings.

    Attributes:
        n_folds: cross-validation folds (stratified), >= 2.
        l2: L2 penalty on the weights (mean cross-entropy + l2 * ||W||^2).
        max_iter: L-BFGS iterations per fold.
        seed: fold assignment seed.
    """

    n_folds: int = 5
    l2: float = 1e-3
    max_iter: int = 200
    seed: int = 0

    def __post_init__(self):
        if self.n_folds < 2:
            raise ValueError(f"n_folds={self.n_folds} must be >= 2")
        if self.l2 < 0:
            raise ValueError(f"l2={self.l2} must be >= 0")
        if self.max_iter < 1:
            raise ValueError(f"max_iter={self.max_iter} must be >= 1")


def stratified_folds(y: np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold id of each row, (N,): each class's rows are shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        fold[rows] = (offset + np.arange(len(rows))) % n_folds
        offset += len(rows)
    return fold


def fit_predict(x_train, y_train, x_test, n_classes: int, config: ProbeConfig) -> np.ndarray:
    """Train softmax regression on standardised features; return predicted class ids (M,).

    Minimises mean cross-entropy + l2 * ||W||^2 over W (D, C) and b (C,) with scipy's L-BFGS-B
    and the analytic gradient (numpy: tiny problems, no autograd overhead).
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x = (x_train - mean) / std  # (N, D)
    n, dim = x.shape
    onehot = np.eye(n_classes)[y_train]  # (N, C)

    def loss_and_grad(theta):
        weight = theta[: dim * n_classes].reshape(dim, n_classes)  # (D, C)
        bias = theta[dim * n_classes :]  # (C,)
        log_p = log_softmax(x @ weight + bias, axis=1)  # (N, C)
        loss = -np.sum(onehot * log_p) / n + config.l2 * np.sum(weight**2)
        residual = (np.exp(log_p) - onehot) / n  # (N, C)
        grad_w = x.T @ residual + 2 * config.l2 * weight
        return loss, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

    theta0 = np.zeros(dim * n_classes + n_classes)
    fit = minimize(
        loss_and_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": config.max_iter}
    )
    weight = fit.x[: dim * n_classes].reshape(dim, n_classes)  # (D, C)
    logits = ((x_test - mean) / std) @ weight + fit.x[dim * n_classes :]  # (M, C)
    return logits.argmax(axis=1)


def linear_probe_accuracy(
    embeddings: np.ndarray, labels: Sequence, config: ProbeConfig | None = None
) -> dict[str, object]:
    """Stratified k-fold accuracy of a logistic-regression probe.

    Args:
        embeddings: (N, D) vectors.
        labels: (N,) class of each row; every class needs at least ``n_folds`` rows.
        config: folds, penalty, iterations (default :class:`ProbeConfig()`).

    Returns:
        ``{"accuracy": mean over folds, "fold_accuracy": list per fold}``.
    """
    config = config or ProbeConfig()
    x, y = _encode(embeddings, labels)
    counts = np.bincount(y)
    if counts.min() < config.n_folds:
        raise ValueError(
            f"class with {counts.min()} example(s) cannot be split into {config.n_folds} folds; "
            "lower n_folds or drop rare classes"
        )
    fold = stratified_folds(y, config.n_folds, config.seed)
    accuracy = []
    for k in range(config.n_folds):
        test = fold == k
        guess = fit_predict(x[~test], y[~test], x[test], len(counts), config)
        accuracy.append(float(np.mean(guess == y[test])))
    return {"accuracy": float(np.mean(accuracy)), "fold_accuracy": accuracy}
