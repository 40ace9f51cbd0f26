"""Person calibration of faces: how a face differs from the same person's usual face.

A resting face differs from person to person (brows that sit low, a mouth whose corners turn down), and a model
that reads one frame mistakes that for emotion. The visual model therefore also reads a person offset: where the
person's faces sit relative to everyone's,

    offset = s * (person_mean - population_mean),   s = n / (n + prior)

person_mean is the mean aligned face over everything seen of that person (in `score`: the faces of one shot;
in training: the face itself plus k other moments of the same actor or photographed person), n is how much of
the person that is, in moments (constants.FACE_MOMENT_SECONDS of video each; one RAVDESS clip or one photo is a
moment), and prior (constants.FACE_CALIBRATION_PRIOR) is how many moments it takes before the person's own
mean counts as much as everyone's. With a single short clip s is small; a minute of one person moves the
reference point to that person. The model reads the face both as it is and minus the offset
(constants.FACE_CALIBRATION_INPUT): minus the offset alone, a person who keeps one expression for a whole shot
(their mean is that expression) reads as neutral, 10 points of quadrant accuracy lost in cross-validation; side
by side, 5 (visual_train.RECIPE_CV; training can also draw a share of its contexts from moments of the face's own
emotion, VisualTrainOptions.same_emotion_share, which trades the gain with varied contexts for that case).

population_mean (68, 2) is measured on the training faces (the mean of each person's mean) and stored in the
visual model's manifest entry with the prior, so inference uses what training used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emoscore.constants import FACE_CALIBRATION_PRIOR, FACE_MOMENT_SECONDS, N_LANDMARKS

# Numbers of other moments of the same person a training face is calibrated with (each copy draws one; -1: all
# of them). They span a single clip (0) to a long video of one person.
TRAINING_CONTEXTS: tuple[int, ...] = (0, 1, 3, 10, -1)
# The contexts grouped cross-validation reports besides the face alone: (other moments, all of the same emotion).
# Random moments of the actor stand for a video where the person's expression varies; moments of the same emotion
# for one where it does not.
EVAL_CONTEXTS: tuple[tuple[int, bool], ...] = ((3, False), (10, False), (-1, False), (5, True))


def context_name(context: int, same_emotion: bool = False) -> str:
    what = "all other moments" if context < 0 else f"{context} other moments"
    return what + (" of the same emotion" if same_emotion else "")


def shrinkage(moments: float | np.ndarray, prior: float = FACE_CALIBRATION_PRIOR) -> Any:
    """s = n / (n + prior): how far a person's mean moves the reference point (0: not at all)."""
    n = np.maximum(np.asarray(moments, dtype=np.float64), 0.0)
    return n / (n + prior) if prior > 0 else np.ones_like(n)


def person_offset(aligned: np.ndarray, moments: float, mean: np.ndarray,
                  prior: float = FACE_CALIBRATION_PRIOR) -> np.ndarray:
    """(68, 2) offset of one person from their aligned faces (m, 68, 2) seen over `moments` moments."""
    if not len(aligned):
        return np.zeros((N_LANDMARKS, 2), dtype=np.float32)
    return (shrinkage(moments, prior) * (np.asarray(aligned, np.float64).mean(axis=0) - mean)).astype(np.float32)


def moments_of(times: np.ndarray) -> float:
    """Moments of video covered by faces sampled at `times` (s, sorted): count x median spacing / moment."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) < 2:
        return 1.0 if len(times) else 0.0
    step = float(np.median(np.diff(times)))
    return max(len(times) * step / FACE_MOMENT_SECONDS, 1.0)


def population_mean(aligned: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(68, 2): the mean over people (groups) of each person's mean aligned face."""
    names, index = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.zeros((len(names), N_LANDMARKS, 2))
    np.add.at(sums, index, np.asarray(aligned, np.float64))
    counts = np.bincount(index, minlength=len(names))[:, None, None]
    return (sums / counts).mean(axis=0).astype(np.float32)


def context_offsets(aligned: np.ndarray, groups: np.ndarray, keys: np.ndarray, contexts: Sequence[int],
                    mean: np.ndarray, rng: np.random.Generator, prior: float = FACE_CALIBRATION_PRIOR,
                    labels: np.ndarray | None = None, same_share: float = 0.0) -> np.ndarray:
    """(n, 68, 2) offsets of faces seen with other moments of the same person. A moment is a key (a clip or a
    photo; its faces' mean). For each face: a context size k drawn from `contexts` (-1: every other moment), k
    other moments of its group, and person_offset of the face and those moments' means, over k + 1 moments.
    With `labels`, a `same_share` of the faces take their moments among those of the same emotion only."""
    aligned = np.asarray(aligned, dtype=np.float64)
    moment_names, moment = np.unique(np.char.add(np.char.add(np.asarray(groups, str), "\0"),
                                                 np.asarray(keys, str)), return_inverse=True)
    first = np.unique(moment, return_index=True)[1]
    sums = np.zeros((len(moment_names), *aligned.shape[1:]))
    np.add.at(sums, moment, aligned)
    moment_mean = sums / np.bincount(moment)[:, None, None]
    moment_group = np.unique(np.asarray(groups), return_inverse=True)[1][first]
    moment_label = np.zeros(len(first), dtype=int) if labels is None else np.asarray(labels)[first]
    order = np.argsort(moment_group, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(moment_group))[:-1])
    drawn = rng.choice(np.asarray(contexts), size=len(aligned))
    same = (rng.random(len(aligned)) < same_share) if labels is not None else np.zeros(len(aligned), bool)
    out = np.zeros(aligned.shape, dtype=np.float32)
    for i in range(len(aligned)):
        pool = members[moment_group[moment[i]]]
        others = pool[(pool != moment[i]) & ((moment_label[pool] == moment_label[moment[i]]) | ~same[i])]
        k = len(others) if drawn[i] < 0 else min(int(drawn[i]), len(others))
        picked = others if k == len(others) else rng.choice(others, size=k, replace=False)
        out[i] = person_offset(np.concatenate([aligned[i][None], moment_mean[picked]]), k + 1, mean, prior)
    return out


def offsets_alone(aligned: np.ndarray, mean: np.ndarray, prior: float = FACE_CALIBRATION_PRIOR) -> np.ndarray:
    """(n, 68, 2) offsets of aligned faces each seen as one moment of its own person (nothing else of them)."""
    return (shrinkage(1.0, prior) * (np.asarray(aligned, np.float64) - mean)).astype(np.float32)


def offsets_by_shot(aligned: np.ndarray, times: np.ndarray, cuts: np.ndarray, mean: np.ndarray,
                    prior: float = FACE_CALIBRATION_PRIOR) -> np.ndarray:
    """(n, 68, 2) offsets of one video's aligned faces at `times` (s): each face gets its shot's (the faces
    between two scene `cuts`, taken as one person)."""
    aligned = np.asarray(aligned, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(aligned.shape, dtype=np.float32)
    shot = np.searchsorted(np.sort(np.asarray(cuts, dtype=np.float64)), times)
    for s in np.unique(shot):
        mine = shot == s
        out[mine] = person_offset(aligned[mine], moments_of(times[mine]), mean, prior)
    return out
