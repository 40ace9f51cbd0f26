"""Grouped cross-validation of the visual model (RAVDESS by actor, photos by identity, never by image), the
out-of-fold RAVDESS predictions the fusion evaluation needs, and evaluation of the installed model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.calibration import EVAL_CONTEXTS, context_name
from emoscore.data import ravdess
from emoscore.data.visual_sources import Faces
from emoscore.errors import DataError
from emoscore.visual_metrics import face_metrics
from emoscore.visual_train import (
    VisualTrainOptions,
    calibrating,
    calibration_mean,
    fit,
    headline,
    load_sources,
    person_offsets,
    predict_aligned,
    predict_people,
)

Log = Callable[[str], None]
CACHE = Path("/tmp/emoscore-cache/face")
# Sibling folders of the RAVDESS landmarks that out_of_fold_predictions adds when present (../shared layout).
SIBLINGS = {"photos": "faces-in-the-wild", "crops": "ravdess-actor05/face-crops", "videos": "ravdess-actor05/videos"}


def identity_fold(identity: str, folds: int) -> int:
    """A person's fold, stable across runs and machines (sha1 of the identity)."""
    return int(hashlib.sha1(identity.encode()).hexdigest()[:8], 16) % folds


def fold_of(faces: Faces, folds: int) -> np.ndarray:
    """(n,) fold index per face: RAVDESS actors in `folds` consecutive groups (1-4, 5-8, ... for 1-20),
    photos by identity_fold. Every face of one actor or one person lands in the same fold."""
    actors = faces.actors()
    present = sorted(set(actors[actors > 0].tolist()))
    out = np.zeros(len(faces), dtype=int)
    if present:
        groups = np.array_split(np.array(present), min(folds, len(present)))
        for k, group in enumerate(groups):
            out[np.isin(actors, group)] = k
    photos = actors == 0
    out[photos] = [identity_fold(g, folds) for g in faces.groups[photos]]
    return out


def grouped_cv(options: VisualTrainOptions, faces: Faces, folds: int = 5, log: Log = lambda _: None
               ) -> dict[str, Any]:
    """Hold out each fold (fold_of) in turn; the two highest-numbered remaining actors early-stop training
    (with patience 0 they train too).
    Returns pooled out-of-fold metrics (face_metrics), per-fold RAVDESS accuracy and their means, and the
    out-of-fold probabilities (n, 8) under "probs" and, with calibration, those of each face seen with all other
    moments of its person under "probs_person" (not JSON: callers pop them)."""
    fold = fold_of(faces, folds)
    actors = faces.actors()
    probs = np.zeros((len(faces), faces.targets.shape[1]), dtype=np.float32)
    contexts = list(EVAL_CONTEXTS) if calibrating(options) else []
    in_context = {c: np.zeros_like(probs) for c in contexts}
    per_fold = []
    for k in range(folds):
        held = fold == k
        rest = sorted(set(actors[~held & (actors > 0)].tolist()))
        val = ~held & np.isin(actors, rest[-2:]) if options.patience > 0 else np.zeros(len(faces), dtype=bool)
        train = faces.take(~held & ~val)
        model = fit(options, train, faces.take(val), lambda _: None)
        mean = calibration_mean(train) if calibrating(options) else None
        test = faces.take(held)
        probs[held] = predict_people(model, test, options, mean, 0, options.seed)
        for c in contexts:
            in_context[c][held] = predict_people(model, test, options, mean, c[0], options.seed, c[1])
        scored = face_metrics(test, probs[held])
        per_fold.append({"held_out_actors": sorted(set(actors[held & (actors > 0)].tolist())),
                         "accuracy": scored.get("accuracy"), "quadrant_accuracy": scored.get("quadrant_accuracy")})
        pair = scored.get("photos", {}).get("neutral_vs_happiness_accuracy")
        log(f"  fold {k}: actors {per_fold[-1]['held_out_actors']} accuracy {scored.get('accuracy', 0):.3f} "
            f"quadrant {scored.get('quadrant_accuracy', 0):.3f}" + (f" photos n-vs-h {pair:.3f}" if pair else ""))
    result = face_metrics(faces, probs)
    if contexts:  # the same held-out people seen with other moments of themselves (a longer video of one person)
        result["person_context"] = {context_name(*c): headline(face_metrics(faces, in_context[c])) for c in contexts}
        for c in contexts:
            log(f"  seen with {context_name(*c)} of the person: "
                + json.dumps(result["person_context"][context_name(*c)]))
    result["folds"] = per_fold
    for key in ("accuracy", "quadrant_accuracy"):
        values = [float(v) for f in per_fold if isinstance(v := f[key], float | int)]
        result[f"fold_mean_{key}"] = float(np.mean(values)) if values else None
    result["probs"] = probs
    result["probs_person"] = in_context.get((-1, False))
    return result


def summary(cv: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a grouped_cv result (JSON-ready)."""
    out = {k: cv.get(k) for k in ("accuracy", "quadrant_accuracy", "fold_mean_accuracy",
                                  "fold_mean_quadrant_accuracy", "quadrant_recall", "macro_f1", "person_context")}
    if "photos" in cv:
        out["photos"] = {k: cv["photos"][k] for k in ("accuracy", "macro_f1", "neutral_vs_happiness_accuracy")}
    return out


def default_sources(landmarks: Path, options: VisualTrainOptions | None) -> VisualTrainOptions:
    """The shipped recipe on `landmarks` plus the sibling sources (SIBLINGS) found next to it."""
    if options is not None:
        return replace(options, landmarks=landmarks)
    root = Path(landmarks).parent
    found: dict[str, Any] = {name: root / rel for name, rel in SIBLINGS.items() if (root / rel).exists()}
    return VisualTrainOptions(landmarks=landmarks, cache=CACHE, **found)


def cached_out_of_fold(landmarks: Path, folds: int, seed: int, log: Log,
                       options: VisualTrainOptions | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """out_of_fold_predictions (visual_train), stored as npz under CACHE keyed by the arguments and recipe."""
    options = replace(default_sources(landmarks, options), seed=seed)
    path = oof_cache_file(options, folds)
    if path.exists():
        stored = np.load(path)
        log(f"out-of-fold face predictions from cache {path}")
        return stored["keys"].tolist(), stored["probs"], stored["labels"]
    faces, _ = load_sources(options, log)
    cv = grouped_cv(options, faces, folds, log)
    return store_out_of_fold(options, folds, faces, cv["probs"], cv["probs_person"])


def cached_person_context(landmarks: Path, folds: int, seed: int, options: VisualTrainOptions | None = None
                          ) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """The out-of-fold predictions of each OpenFace face seen with all its actor's other clips (a longer video
    of one person), stored beside cached_out_of_fold's; None if there are none (no calibration, or not run)."""
    path = oof_cache_file(replace(default_sources(landmarks, options), seed=seed), folds)
    if not path.exists():
        return None
    stored = np.load(path)
    if "probs_person" not in stored.files:
        return None
    return stored["keys"].tolist(), stored["probs_person"], stored["labels"]


def oof_cache_file(options: VisualTrainOptions, folds: int) -> Path:
    """The npz of out-of-fold predictions for these sources (resolved paths), folds, seed and recipe."""
    def where(path: Path | None) -> str:
        return str(Path(path).resolve()) if path is not None else ""

    key = json.dumps({"landmarks": where(options.landmarks), "folds": folds, "seed": options.seed,
                      "sources": [where(options.videos), where(options.crops), where(options.photos)],
                      **options.recipe()}, sort_keys=True)
    return CACHE / f"oof-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def store_out_of_fold(options: VisualTrainOptions, folds: int, faces: Faces, probs: np.ndarray,
                      probs_person: np.ndarray | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Keep the OpenFace faces of a grouped_cv result, sorted by clip key; store them (and, if given, their
    probabilities seen with their actor's other clips) in oof_cache_file."""
    keep = faces.sources == "openface"
    order = np.argsort(faces.keys[keep], kind="stable")
    keys, probs, labels = faces.keys[keep][order], probs[keep][order], faces.labels[keep][order]
    path = oof_cache_file(options, folds)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    extra = {} if probs_person is None else {"probs_person": probs_person[keep][order]}
    np.savez(tmp, keys=keys, probs=probs, labels=labels, **extra)
    tmp.replace(path)
    return keys.tolist(), probs, labels


# --- the installed model -------------------------------------------------------------------------------------

def evaluate_installed(checkpoints: Path, landmarks: Path | None, videos: Path | None, photos: Path | None,
                       actors: Sequence[int] | None, cache: Path | None, log: Log) -> dict[str, Any]:
    """Metrics of the installed visual model on OpenFace CSVs, RAVDESS videos (crops or clips) and/or photos.

    RAVDESS faces: the given actors, else the test actors if present, else every actor in the folder. OpenFace
    faces are moved by the tracker offset recorded at training. Videos: per frame, and per clip (mean of its
    frames). Photos: every identity in the folder.
    """
    from emoscore.checkpoints import model_entry, resolve_model
    from emoscore.face import MODEL_NAME, Calibration, feature_constants
    from emoscore.tf_util import load_keras

    model = load_keras(resolve_model(checkpoints, MODEL_NAME, feature_constants())["model"])
    entry = model_entry(checkpoints, MODEL_NAME)
    recipe = entry.get("recipe", {})
    options = VisualTrainOptions(**{k: v for k, v in recipe.items()
                                    if k in ("features", "points", "alignment", "calibration")})
    faces = _eval_faces(landmarks, videos, photos, cache, entry, options, log)
    rav = faces.actors() > 0
    wanted = list(actors) if actors else _default_actors(faces.actors()[rav])
    faces = faces.take(~rav | np.isin(faces.actors(), wanted))
    if not len(faces):
        raise DataError(f"no faces of actors {wanted}")
    calibration = Calibration.from_entry(entry.get("calibration"))
    offsets = None if calibration is None else _offsets(faces, calibration)
    probs = predict_aligned(model, faces.aligned, options, offsets)
    metrics = face_metrics(faces, probs)
    metrics["actors"] = sorted(set(faces.actors()[faces.actors() > 0].tolist()))
    if calibration is not None and (faces.sources == "openface").any():  # each actor seen in all their clips
        openface = faces.take(faces.sources == "openface")
        offsets = person_offsets(openface, calibration.population_mean, (-1,), 0, 0.0, calibration.prior_moments)
        metrics["person_context"] = {context_name(-1): headline(face_metrics(openface, predict_aligned(
            model, openface.aligned, options, offsets)))}
    video = np.isin(faces.sources, ["clips", "crops"])
    if video.any():
        metrics["dlib_video_clips"] = _per_clip(faces.take(video), probs[video])
    return metrics


def _offsets(faces: Faces, calibration: Any) -> np.ndarray:
    """Person offsets as `score` would find them: a video clip's frames together as one moment of one person
    (a RAVDESS clip is about one moment long), a landmark frame or a photo alone."""
    from emoscore.calibration import offsets_alone, person_offset

    mean, prior = calibration.population_mean, calibration.prior_moments
    offsets = offsets_alone(faces.aligned, mean, prior)
    video = np.isin(faces.sources, ["clips", "crops"])
    for key in np.unique(faces.keys[video]):
        mine = video & (faces.keys == key)
        offsets[mine] = person_offset(faces.aligned[mine], 1.0, mean, prior)
    return offsets


def _default_actors(present: np.ndarray) -> list[int]:
    found = sorted(set(present.tolist()))
    test = [a for a in ravdess.TEST_ACTORS if a in found]
    return test or found


def _eval_faces(landmarks: Path | None, videos: Path | None, photos: Path | None, cache: Path | None,
                entry: dict[str, Any], options: VisualTrainOptions, log: Log) -> Faces:
    from emoscore.data.faces_wild import load_photos
    from emoscore.data.landmarks import load_landmark_csvs
    from emoscore.data.ravdess_clips import load_clips
    from emoscore.data.visual_sources import concat, from_clips, from_openface, from_photos
    from emoscore.visual_train import stretch

    if not any((landmarks, videos, photos)):
        raise DataError("give at least one of --landmarks, --videos, --images")
    parts = []
    if landmarks is not None:
        offset = entry.get("tracker_offset_iod")
        parts.append(from_openface(load_landmark_csvs(landmarks, 1, log),
                                   None if offset is None else np.array(offset, dtype=np.float32), options.alignment))
    if videos is not None:
        clips = load_clips(videos, cache, log=log)
        crops = all(i.path.suffix.lower() == ".avi" for i in clips.items)
        if crops:  # the face-crop layout: squeezed to a square, stretched back by the measured factor
            clips = stretch(clips, float(entry.get("crop_y_scale", 1.0)))
        parts.append(from_clips(clips, "crops" if crops else "clips", alignment=options.alignment))
    if photos is not None:
        parts.append(from_photos(load_photos(photos, cache, log), options.alignment))
    return concat(parts)


def _per_clip(faces: Faces, probs: np.ndarray) -> dict[str, Any]:
    """RAVDESS metrics with one prediction per clip: the mean of its frames' probabilities."""
    from emoscore.visual_metrics import ravdess_metrics

    keys = sorted(set(faces.keys.tolist()))
    mean = np.stack([probs[faces.keys == k].mean(axis=0) for k in keys])
    labels = np.array([faces.labels[faces.keys == k][0] for k in keys])
    return ravdess_metrics(labels, mean)
