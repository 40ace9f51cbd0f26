"""The music-emotion judge: a quadrant classifier on symbolic features of a piano part.

Trained on EMOPIA's train split (validation split for model selection, then refit on both), measured on
its test split. Features are key-invariant (pitch classes are relative to the estimated tonic) and
tempo-free except note density and inter-onset statistics in seconds, which carry arousal.
The model is a scikit-learn pipeline pickled with joblib; the manifest's sha256 is checked before the
file is unpickled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import QUADRANTS
from emoscore.errors import ModelError
from emoscore.music.events import key_correlations, pitch_class_histogram

JUDGE_NAME = "music_judge"
JUDGE_FILE = "music_judge.joblib"
INTERVAL_EDGES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 128)  # semitone bins between successive notes
FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"pc_rel_{i}" for i in range(12)) + ("major_r", "minor_r", "minor_minus_major", "key_clarity")
    + ("pitch_mean", "pitch_std", "pitch_p5", "pitch_p95", "low_fraction", "high_fraction")
    + ("velocity_mean", "velocity_std", "log_duration_mean", "log_duration_std")
    + ("notes_per_s", "onsets_per_s", "polyphony", "log_ioi_mean", "log_ioi_std", "short_ioi_fraction")
    + tuple(f"interval_{a}_{b}" for a, b in zip(INTERVAL_EDGES[:-1], INTERVAL_EDGES[1:], strict=True))
    + ("pc_entropy",)
)
N_FEATURES = len(FEATURE_NAMES)  # 45


def judge_constants() -> dict[str, Any]:
    return {"features": N_FEATURES, "quadrants": list(QUADRANTS)}


def _key_features(notes: np.ndarray) -> list[float]:
    hist = pitch_class_histogram(notes)
    corr = key_correlations(hist)
    mode, tonic = np.unravel_index(int(np.argmax(corr)), corr.shape)
    relative = np.roll(hist / max(hist.sum(), 1e-9), -int(tonic))
    major, minor = float(corr[0].max()), float(corr[1].max())
    return [*relative, major, minor, minor - major, float(corr.max())]


def _pitch_features(notes: np.ndarray) -> list[float]:
    pitch = notes[:, 2]
    p5, p95 = np.percentile(pitch, [5, 95])
    return [pitch.mean() / 12, pitch.std() / 12, p5 / 12, p95 / 12, float((pitch < 48).mean()),
            float((pitch > 72).mean())]


def _time_features(notes: np.ndarray) -> list[float]:
    span = max(float(notes[:, 1].max() - notes[:, 0].min()), 1.0)
    log_dur = np.log(np.maximum(notes[:, 1] - notes[:, 0], 0.01))
    onsets = np.unique(np.round(notes[:, 0], 2))
    ioi = np.diff(onsets) if len(onsets) > 1 else np.array([span])
    log_ioi = np.log(np.maximum(ioi, 0.01))
    return [notes[:, 3].mean() / 127, notes[:, 3].std() / 127, log_dur.mean(), log_dur.std(),
            len(notes) / span, len(onsets) / span, len(notes) / len(onsets), log_ioi.mean(), log_ioi.std(),
            float((ioi < 0.15).mean())]


def _interval_features(notes: np.ndarray) -> list[float]:
    steps = np.abs(np.diff(notes[:, 2])) if len(notes) > 1 else np.zeros(1)
    hist, _ = np.histogram(steps, bins=INTERVAL_EDGES)
    counts = np.bincount(notes[:, 2].astype(int) % 12, minlength=12).astype(float)
    p = counts[counts > 0] / counts.sum()
    return [*(hist / max(hist.sum(), 1)), float(-(p * np.log2(p)).sum())]


def features(notes: np.ndarray) -> np.ndarray:
    """(N_FEATURES,) float64 from a note array in seconds (zeros for fewer than two notes)."""
    if len(notes) < 2:
        return np.zeros(N_FEATURES)
    values = _key_features(notes) + _pitch_features(notes) + _time_features(notes) + _interval_features(notes)
    return np.asarray(values, dtype=np.float64)


def feature_matrix(pieces: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([features(n) for n in pieces]) if pieces else np.zeros((0, N_FEATURES))


def candidates(seed: int) -> dict[str, Any]:
    """Classifiers tried; the validation split picks one."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models: dict[str, Any] = {}
    for c in (0.1, 0.3, 1.0, 3.0):
        models[f"logreg_C{c}"] = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    models["forest"] = RandomForestClassifier(400, min_samples_leaf=2, random_state=seed, n_jobs=1)
    models["boosting"] = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200,
                                                        l2_regularization=1.0, random_state=seed)
    return models


def train_judge(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], seed: int,
                log: Callable[[str], None]) -> tuple[Any, str, dict[str, float]]:
    """Pick the classifier with the best validation accuracy, refit it on train + val.

    train/val: (features (n, N_FEATURES), labels (n,) in 0..3). Returns (model, name, val accuracies).
    """
    scores: dict[str, float] = {}
    for name, model in candidates(seed).items():
        model.fit(*train)
        scores[name] = float((model.predict(val[0]) == val[1]).mean())
        log(f"  judge {name:<14} validation accuracy {scores[name]:.3f}")
    best = max(scores, key=lambda k: scores[k])
    model = candidates(seed)[best]
    model.fit(np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]]))
    return model, best, scores


def save_judge(model: Any, path: Path) -> None:
    import joblib

    from emoscore.fileio import atomic_path

    with atomic_path(path) as tmp:
        joblib.dump(model, tmp, compress=3)


def load_judge(checkpoints: Path, name: str, constants: dict[str, Any], what: str) -> Any:
    """The fitted scikit-learn model `name` of `checkpoints`' manifest, its file and `constants` verified
    (ModelError/ChecksumError); `what` ("music judge", "audio judge") names it in the error."""
    import joblib

    from emoscore.checkpoints import resolve_model

    path = resolve_model(checkpoints, name, constants=constants)["model"]
    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling raises many types
        raise ModelError(f"cannot load the {what} {path}: {exc}") from None


class MusicJudge:
    """The installed judge: quadrant probabilities for note arrays (seconds)."""

    def __init__(self, checkpoints: Path) -> None:
        self.model = load_judge(checkpoints, JUDGE_NAME, judge_constants(), "music judge")

    def predict_proba(self, pieces: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 4) quadrant probabilities."""
        return np.asarray(self.model.predict_proba(feature_matrix(pieces)))


def quadrant_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """4Q accuracy, per-quadrant recall, arousal (Q1,Q2 vs Q3,Q4) and valence (Q1,Q4 vs Q2,Q3) accuracy."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    high_arousal = np.array([True, True, False, False])
    positive = np.array([True, False, False, True])
    metrics: dict[str, Any] = {"n": int(len(y_true)), "accuracy_4q": float((y_true == y_pred).mean())}
    for i, q in enumerate(QUADRANTS):
        mask = y_true == i
        metrics[f"recall_{q}"] = float((y_pred[mask] == i).mean()) if mask.any() else float("nan")
    metrics["arousal_accuracy"] = float((high_arousal[y_true] == high_arousal[y_pred]).mean())
    metrics["valence_accuracy"] = float((positive[y_true] == positive[y_pred]).mean())
    return metrics
