"""The visual model's metrics: RAVDESS faces (8 classes, quadrants, per-quadrant recall) and faces-in-the-wild
photos (7 classes with calm counted as neutral, neutral-vs-happiness accuracy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from emoscore.constants import EMOTIONS, QUADRANTS
from emoscore.data.faces_wild import NEUTRAL_OR_CALM, PHOTO_CLASSES
from emoscore.data.visual_sources import Faces
from emoscore.metrics import confusion, emotion_metrics, macro_f1

HAPPY = EMOTIONS.index("happy")


def recall_per_class(matrix: list[list[int]] | np.ndarray, names: tuple[str, ...]) -> dict[str, float | None]:
    """Recall of each class from a confusion matrix (rows = truth); None for a class with no example."""
    m = np.asarray(matrix, dtype=float)
    rows = m.sum(axis=1)
    return {name: (round(float(m[i, i] / rows[i]), 4) if rows[i] else None) for i, name in enumerate(names)}


def ravdess_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """emotion_metrics plus per-quadrant and per-emotion recall, from labels (n,) and probabilities (n, 8)."""
    metrics = emotion_metrics(labels, probs)
    metrics["quadrant_recall"] = recall_per_class(metrics["quadrant_confusion"], QUADRANTS)
    metrics["emotion_recall"] = recall_per_class(metrics["confusion"], EMOTIONS)
    return metrics


def photo_probs(probs: np.ndarray) -> np.ndarray:
    """(n, 8) emotion probabilities -> (n, 7) over PHOTO_CLASSES, calm added to neutral."""
    merged = np.asarray(probs, dtype=np.float64).copy()
    merged[:, NEUTRAL_OR_CALM[0]] += merged[:, NEUTRAL_OR_CALM[1]]
    return merged[:, list(PHOTO_CLASSES)]


def photo_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """7-class accuracy and macro-F1 of photos (labels (n,) EMOTIONS index, never calm), calm counted as
    neutral; neutral-vs-happiness accuracy: on photos labelled neutral or happiness, whether P(happy)
    beats P(neutral) + P(calm)."""
    classes = list(PHOTO_CLASSES)
    truth = np.searchsorted(classes, labels)
    merged = photo_probs(probs)
    matrix = confusion(truth, merged.argmax(axis=1), len(classes))
    pair = np.isin(labels, [NEUTRAL_OR_CALM[0], HAPPY])
    said_happy = merged[pair, classes.index(HAPPY)] > merged[pair, classes.index(NEUTRAL_OR_CALM[0])]
    names = tuple(EMOTIONS[c] for c in classes)
    return {"n": int(len(labels)), "accuracy": float((merged.argmax(axis=1) == truth).mean()) if len(labels) else 0.0,
            "macro_f1": macro_f1(matrix), "neutral_vs_happiness_accuracy":
            float((said_happy == (labels[pair] == HAPPY)).mean()) if pair.any() else None,
            "n_neutral_or_happiness": int(pair.sum()), "recall": recall_per_class(matrix, names),
            "labels": list(names), "confusion": matrix.tolist()}


def face_metrics(faces: Faces, probs: np.ndarray) -> dict[str, Any]:
    """RAVDESS metrics of the OpenFace faces (the headline), of the dlib video faces, and photo metrics."""
    out: dict[str, Any] = {}
    openface = faces.sources == "openface"
    if openface.any():
        out.update(ravdess_metrics(faces.labels[openface], probs[openface]))
    video = np.isin(faces.sources, ["clips", "crops"])
    if video.any():
        out["dlib_video_frames"] = ravdess_metrics(faces.labels[video], probs[video])
    photos = faces.sources == "photos"
    if photos.any():
        out["photos"] = photo_metrics(faces.labels[photos], probs[photos])
    return out
