"""Classification metrics shared by every model's training and evaluation (numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from emoscore.constants import EMOTION_QUADRANT, EMOTIONS, QUADRANTS

# (8, 4) matrix summing emotion probabilities into quadrant probabilities.
EMOTION_TO_QUADRANT = np.array(
    [[1.0 if EMOTION_QUADRANT[e] == q else 0.0 for q in QUADRANTS] for e in EMOTIONS], dtype=np.float32)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = truth, columns = prediction."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def macro_f1(matrix: np.ndarray) -> float:
    tp = np.diag(matrix).astype(float)
    precision = np.divide(tp, matrix.sum(axis=0), out=np.zeros_like(tp), where=matrix.sum(axis=0) > 0)
    recall = np.divide(tp, matrix.sum(axis=1), out=np.zeros_like(tp), where=matrix.sum(axis=1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = matrix.sum(axis=1) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def recall(matrix: np.ndarray) -> np.ndarray:
    """(k,) recall per class of a confusion matrix (0 for a class with no examples)."""
    totals = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), totals, out=np.zeros(len(matrix)), where=totals > 0)


def quadrant_probs_of(probs: np.ndarray, uniform_prior: bool = False) -> np.ndarray:
    """(n, 8) emotion probabilities -> (n, 4) quadrant probabilities. With `uniform_prior` each quadrant's mass
    is divided by its number of emotions (undoing RAVDESS's 2:3:1:2 prior, as the timeline does)."""
    q = np.asarray(probs, dtype=np.float64) @ EMOTION_TO_QUADRANT
    if uniform_prior:
        q = q / EMOTION_TO_QUADRANT.sum(axis=0)
    return q / np.maximum(q.sum(axis=1, keepdims=True), 1e-12)


def emotion_metrics(y_true: np.ndarray, probs: np.ndarray, uniform_prior: bool = False) -> dict[str, Any]:
    """8-class and quadrant metrics from integer labels (n,) and emotion probabilities (n, 8).

    The quadrant of a prediction is the argmax of quadrant_probs_of(probs, uniform_prior). Quadrant recall
    (Q1..Q4) and balanced quadrant accuracy (their mean over the quadrants present) show whether a quadrant
    (e.g. the low-arousal Q3/Q4) collapses into another.
    """
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    matrix = confusion(y_true, y_pred, len(EMOTIONS))
    q_true = EMOTION_TO_QUADRANT[y_true].argmax(axis=1)
    q_pred = quadrant_probs_of(probs, uniform_prior).argmax(axis=1)
    q_matrix = confusion(q_true, q_pred, len(QUADRANTS))
    q_recall = recall(q_matrix)
    present = q_matrix.sum(axis=1) > 0
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro_f1": macro_f1(matrix),
        "quadrant_accuracy": float((q_pred == q_true).mean()),
        "quadrant_balanced_accuracy": float(q_recall[present].mean()) if present.any() else 0.0,
        "quadrant_macro_f1": macro_f1(q_matrix),
        "quadrant_recall": {q: round(float(r), 4) for q, r in zip(QUADRANTS, q_recall, strict=True)},
        "confusion": matrix.tolist(),
        "quadrant_confusion": q_matrix.tolist(),
        "labels": list(EMOTIONS),
    }


HEADLINE_KEYS = ("n", "accuracy", "macro_f1", "quadrant_accuracy", "quadrant_balanced_accuracy", "quadrant_recall")


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics and the per-quadrant recall of an emotion_metrics dict, floats rounded to 4 places."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items() if k in HEADLINE_KEYS}
