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


def emotion_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """8-class and quadrant metrics from integer labels (n,) and emotion probabilities (n, 8)."""
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    matrix = confusion(y_true, y_pred, len(EMOTIONS))
    q_true = EMOTION_TO_QUADRANT[y_true].argmax(axis=1)
    q_pred = (probs @ EMOTION_TO_QUADRANT).argmax(axis=1)
    q_matrix = confusion(q_true, q_pred, len(QUADRANTS))
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro_f1": macro_f1(matrix),
        "quadrant_accuracy": float((q_pred == q_true).mean()),
        "quadrant_macro_f1": macro_f1(q_matrix),
        "confusion": matrix.tolist(),
        "quadrant_confusion": q_matrix.tolist(),
        "labels": list(EMOTIONS),
    }
