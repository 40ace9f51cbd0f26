"""The audio judge: a quadrant classifier on what a listener hears (audio_features of a rendered piece).

Trained on fluidsynth renders of EMOPIA's train + validation clips (and VGMIDI's pieces), the classifier
chosen by song-grouped cross-validation on them, measured on EMOPIA's test renders. It judges composed
music on the rendered full arrangement (melody, pad, bass), which the MIDI judge (judge.py) cannot hear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import QUADRANTS
from emoscore.errors import DataError
from emoscore.music.audio_features import (
    FEATURE_SAMPLE_RATE,
    N_AUDIO_FEATURES,
    RENDER_SECONDS,
    audio_features,
    cached_features,
)
from emoscore.music.judge import load_judge

AUDIO_JUDGE_NAME = "music_audio_judge"
AUDIO_JUDGE_FILE = "music_audio_judge.joblib"
CV_FOLDS = 5


def audio_judge_constants() -> dict[str, Any]:
    return {"features": N_AUDIO_FEATURES, "sample_rate": FEATURE_SAMPLE_RATE, "quadrants": list(QUADRANTS)}


@dataclass(frozen=True)
class LabelledSet:
    x: np.ndarray  # (n, N_AUDIO_FEATURES)
    y: np.ndarray  # (n,) quadrant index 0..3
    groups: np.ndarray  # (n,) song names: clips of one song never straddle a fold


def labelled_set(items: Sequence[Any], cache: Path, seconds: float = RENDER_SECONDS, soundfont: str = "",
                 log: Callable[[str], None] = lambda _: None) -> LabelledSet:
    """Features of data.MusicItem renders (cached under `cache`), their quadrants and songs."""
    x = cached_features([i.path for i in items], cache, seconds, soundfont, log)
    y = np.array([QUADRANTS.index(i.quadrant) for i in items], dtype=np.int64)
    return LabelledSet(x, y, np.array([f"{i.source}:{i.song}" for i in items]))


def candidates(seed: int) -> dict[str, Any]:
    """Classifiers tried (scaled logistic regressions, gradient boosting)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models: dict[str, Any] = {f"logreg_C{c}": make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
                              for c in (0.03, 0.1, 0.3, 1.0)}
    models["boosting"] = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200,
                                                        l2_regularization=1.0, random_state=seed)
    return models


def grouped_cv_accuracy(model: Any, data: LabelledSet, folds: int = CV_FOLDS) -> float:
    """Mean 4-quadrant accuracy over song-grouped folds."""
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold

    scores = []
    for train, test in GroupKFold(n_splits=folds).split(data.x, data.y, data.groups):
        fitted = clone(model).fit(data.x[train], data.y[train])
        scores.append(float((fitted.predict(data.x[test]) == data.y[test]).mean()))
    return float(np.mean(scores))


def train_audio_judge(data: LabelledSet, seed: int, log: Callable[[str], None]) -> tuple[Any, str, dict[str, float]]:
    """Pick the classifier by song-grouped CV accuracy on `data`, refit it on all of it.

    Returns (model, name, CV accuracy per candidate). Raises DataError with too few songs for the folds.
    """
    if len(set(data.groups)) < CV_FOLDS or len(set(data.y.tolist())) < 2:
        raise DataError(f"the audio judge needs at least {CV_FOLDS} songs and two quadrants")
    scores: dict[str, float] = {}
    for name, model in candidates(seed).items():
        scores[name] = grouped_cv_accuracy(model, data)
        log(f"  audio judge {name:<12} song-grouped CV accuracy {scores[name]:.3f}")
    best = max(scores, key=lambda k: scores[k])
    return candidates(seed)[best].fit(data.x, data.y), best, scores


class AudioJudge:
    """The installed audio judge: quadrant probabilities for rendered audio (mono or stereo, 22.05 kHz)."""

    def __init__(self, checkpoints: Path) -> None:
        self.model = load_judge(checkpoints, AUDIO_JUDGE_NAME, audio_judge_constants(), "audio judge")

    def predict_proba(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 4) quadrant probabilities of audio at FEATURE_SAMPLE_RATE."""
        x = np.stack([audio_features(a) for a in audios]) if audios else np.zeros((0, N_AUDIO_FEATURES))
        return np.asarray(self.model.predict_proba(x))
