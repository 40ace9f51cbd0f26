"""Training and evaluation of the facial-landmark emotion CNN from every face source, split by person.

Sources (emoscore.data.visual_sources): the official RAVDESS OpenFace frames (moved into dlib's frame of
reference by the offset measured on identical faces), RAVDESS videos and face-crop videos landmarked with
dlib, and faces-in-the-wild photos landmarked with dlib. Photo "neutral" may be neutral or calm: the loss
takes the probability of the allowed set (masked target), so all 8 outputs stay. Grouped cross-validation
(visual_cv.py) chooses the recipe; out_of_fold_predictions serves the clip-level fusion evaluation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.calibration import EVAL_CONTEXTS, TRAINING_CONTEXTS, context_name, context_offsets, population_mean
from emoscore.constants import (
    FACE_ALIGNMENT,
    FACE_CALIBRATION_INPUT,
    FACE_CALIBRATION_PRIOR,
    FACE_FEATURES,
    FACE_MOMENT_SECONDS,
    FACE_POINTS,
    N_EMOTIONS,
)
from emoscore.data import ravdess
from emoscore.data.faces_wild import load_photos
from emoscore.data.landmarks import load_landmark_csvs
from emoscore.data.ravdess import clip_key
from emoscore.data.ravdess_clips import ClipFaces, load_clips
from emoscore.data.visual_sources import (
    GAP_SECONDS,
    Faces,
    concat,
    from_clips,
    from_openface,
    from_photos,
    paired_faces,
    tracker_offset,
)
from emoscore.errors import DataError
from emoscore.face import (
    MODEL_NAME,
    REGIONS,
    feature_constants,
    landmark_features,
    mirror_landmarks,
    model_input,
    predict_aligned_faces,
)
from emoscore.visual_metrics import face_metrics

Log = Callable[[str], None]


# How the recipe was chosen: grouped 5-fold CV (visual_cv.grouped_cv; RAVDESS actors 1-4, 5-8, ..., 17-20 held
# out in turn, photos by identity), seed 0, 40 epochs, pooled out-of-fold accuracy on the 900 OpenFace frames
# (8-class / quadrant, then Q3 recall) and, with photos, held-out-identity neutral-vs-happiness accuracy.
RECIPE_CV: dict[str, dict[str, Any]] = {
    "OpenFace frames only, no offset (no-jaw CNN)": {"accuracy": 0.369, "quadrant_accuracy": 0.561, "q3_recall": 0.025},
    "+ dlib actor-05 videos and crops, OpenFace moved by the tracker offset": {
        "accuracy": 0.368, "quadrant_accuracy": 0.564, "q3_recall": 0.100},
    "+ faces-in-the-wild photos (masked neutral-or-calm, weight 1)": {
        "accuracy": 0.377, "quadrant_accuracy": 0.538, "q3_recall": 0.083, "photo_neutral_vs_happiness": 0.873,
        "photo_macro_f1": 0.318},
    "RAVDESS sources, auxiliary quadrant loss 0.5": {"accuracy": 0.364, "quadrant_accuracy": 0.584, "q3_recall": 0.075},
    "RAVDESS sources, all 68 points (jaw back)": {"accuracy": 0.397, "quadrant_accuracy": 0.571, "q3_recall": 0.133},
    "RAVDESS sources, MLP instead of CNN (3 of 5 folds)": {"fold_mean_accuracy": 0.389, "fold_mean_quadrant": 0.576,
                                                          "cnn_same_folds": [0.383, 0.576]},
    "every source, all points, quadrant loss 0.5, early stopping (shipped; 60 epochs max)": {
        "accuracy": 0.409, "quadrant_accuracy": 0.548, "q3_recall": 0.150, "photo_neutral_vs_happiness": 0.875,
        "photo_macro_f1": 0.325},
    "the same, a fixed 15 epochs (--patience 0)": {"accuracy": 0.383, "quadrant_accuracy": 0.523, "q3_recall": 0.158,
                                                 "photo_neutral_vs_happiness": 0.882, "photo_macro_f1": 0.345},
    # Issue 8, second pass. Linear probes first (logistic regression C 0.1 on the 900 OpenFace frames, mirrored
    # training copies, same 5 actor folds): eye-aligned coordinates 0.436 / 0.571; generalised-Procrustes fit of
    # the 11 stable points (eye corners, nose bridge, nostrils) to their mean shape 0.458 / 0.606 (all 68 points
    # as the fit's anchor 0.448 / 0.590, two-point "stable" 0.442 / 0.581); 28 geometric ratios (mouth opening,
    # lip corners, brow-eye distances, eye opening, nasolabial; / IOD) 0.430 / 0.569 and no gain added to the
    # points; identity-swap augmentation (add another actor's mean face minus one's own) +0.5 / -0.9; the
    # geometric jitter -1.8 / -3.6 (-1.1 / -3.8 re-aligned after jittering); photos at weight 0.3 / 1 -3.1 /
    # -4.4 on RAVDESS (photo neutral-vs-happiness 0.873 / 0.892); actor-05 dlib frames at 0.3 -1.0.
    # Then the CNN on the OpenFace frames alone (Procrustes, seed 0):
    "OpenFace only, eye alignment, both features, jitter x8, early stopping (the old recipe)": {
        "accuracy": 0.412, "quadrant_accuracy": 0.554, "q3_recall": 0.067},
    "OpenFace only, Procrustes, both features, old training": {"accuracy": 0.398, "quadrant_accuracy": 0.552,
                                                              "q3_recall": 0.092},
    "OpenFace only, Procrustes, coords, cnn, jitter x2, 30 epochs no early stopping (val actors still held out)": {
        "accuracy": 0.397, "quadrant_accuracy": 0.551, "q3_recall": 0.092},
    "the same, cnn-skip (linear path beside the convolutions)": {"accuracy": 0.406, "quadrant_accuracy": 0.537,
                                                                 "q3_recall": 0.125},
    "cnn-skip, mirror only (jitter 0), the validation actors train too": {
        "accuracy": 0.432, "quadrant_accuracy": 0.571, "q3_recall": 0.233},
    "the same, plain cnn": {"accuracy": 0.399, "quadrant_accuracy": 0.557, "q3_recall": 0.133},
    "the same, jitter 0.3 x2": {"accuracy": 0.422, "quadrant_accuracy": 0.561, "q3_recall": 0.242},
    "the same, no quadrant loss": {"accuracy": 0.428, "quadrant_accuracy": 0.582, "q3_recall": 0.233},
    "the same, both features": {"accuracy": 0.424, "quadrant_accuracy": 0.577, "q3_recall": 0.242},
    "the same, 60 epochs": {"accuracy": 0.446, "quadrant_accuracy": 0.579, "q3_recall": 0.225},
    # Every source (OpenFace, actor-05 clips and crops, photos), cnn-skip, mirror only, 30 epochs:
    "every source, photos at weight 1 (make train-visual with --photo-weight 1)": {
        "accuracy": 0.388, "quadrant_accuracy": 0.532, "q3_recall": 0.208, "photo_neutral_vs_happiness": 0.889,
        "photo_macro_f1": 0.379, "fused_quadrant_product_nested_cv": 0.716},
    "the same, 2 seeds averaged in one model (--ensemble 2)": {"fold_mean_accuracy": 0.384,
                                                              "photo_neutral_vs_happiness": 0.887},
    "every source, photos at weight 0.3 (shipped; make train-visual)": {
        "accuracy": 0.408, "quadrant_accuracy": 0.548, "q3_recall": 0.25, "photo_neutral_vs_happiness": 0.873,
        "photo_macro_f1": 0.349, "fused_quadrant_product_nested_cv": 0.719},
    "the same through a re-aligned cached copy of the faces (run-to-run spread)": {
        "accuracy": 0.392, "quadrant_accuracy": 0.536, "q3_recall": 0.167, "photo_neutral_vs_happiness": 0.875,
        "photo_macro_f1": 0.346},
    # Issue 8, third pass: person calibration (calibration.py). Linear probe first (OpenFace frames, the same
    # folds): each test face minus its actor's mean over all 45 clips 0.568 / 0.654 (0.447 / 0.599 without); AUs
    # from OpenFace add 2-3 points but are not available at inference; head pose nothing. Seen with k other
    # clips of the test actor, shrunk by k+1 / (k+1+prior): prior 0.5, 2, 4, 8 within a point of each other
    # at k = 10 (0.52-0.53 / 0.64-0.65). Projecting the offset off the top 4 or 12 directions of within-actor
    # emotion means (keeping only "identity") loses the whole gain: it is relative expression, not face shape.
    # CNN, OpenFace frames only, 5 actor folds, "alone" / 5 clips of the same emotion / 5 random clips / all 44:
    "OpenFace only, calibrated input, random contexts": {
        "alone": [0.428, 0.586], "same_emotion_5": [0.306, 0.487], "random_5": [0.509, 0.634],
        "all": [0.573, 0.674]},
    "OpenFace only, both inputs (as it is + calibrated), random contexts": {
        "alone": [0.434, 0.590], "same_emotion_5": [0.363, 0.530], "random_5": [0.509, 0.624],
        "all": [0.556, 0.661]},
    "the same, a quarter of the contexts of the same emotion": {
        "alone": [0.452, 0.601], "same_emotion_5": [0.393, 0.551], "random_5": [0.492, 0.630],
        "all": [0.534, 0.654]},
    "the same, half": {"alone": [0.449, 0.601], "same_emotion_5": [0.414, 0.570], "random_5": [0.477, 0.608],
                       "all": [0.489, 0.613]},
    "the same, three quarters (calibration ignored)": {"alone": [0.443, 0.576], "all": [0.442, 0.578]},
    # Every source, photos at 0.3 (accuracy / quadrant; 3 and 10: random other moments; photos n-vs-h alone):
    "every source, calibrated input, random contexts": {
        "alone": [0.410, 0.558], "3": [0.447, 0.589], "10": [0.507, 0.620], "all": [0.541, 0.629],
        "photo_neutral_vs_happiness": 0.874},
    "every source, calibrated input, a quarter same-emotion contexts": {
        "alone": [0.407, 0.561], "3": [0.452, 0.583], "10": [0.513, 0.612], "all": [0.529, 0.617],
        "same_emotion_5": [0.300, 0.457], "photo_neutral_vs_happiness": 0.871, "mean_quadrant": 0.566},
    "every source, both inputs, random contexts": {
        "alone": [0.403, 0.550], "3": [0.446, 0.569], "10": [0.482, 0.598], "all": [0.520, 0.622],
        "same_emotion_5": [0.351, 0.496], "photo_neutral_vs_happiness": 0.877, "mean_quadrant": 0.567},
    "every source, both inputs, a quarter same-emotion contexts": {
        "alone": [0.406, 0.547], "3": [0.418, 0.552], "10": [0.441, 0.578], "all": [0.454, 0.586],
        "same_emotion_5": [0.376, 0.527], "photo_neutral_vs_happiness": 0.876, "mean_quadrant": 0.558},
    "every source, both inputs, half same-emotion contexts": {
        "alone": [0.392, 0.533], "all": [0.428, 0.557], "same_emotion_5": [0.394, 0.546],
        "photo_neutral_vs_happiness": 0.876, "mean_quadrant": 0.548},
    "every source, both inputs, a quarter same-emotion, photos at weight 1": {
        "alone": [0.379, 0.518], "all": [0.439, 0.586], "same_emotion_5": [0.346, 0.506],
        "photo_neutral_vs_happiness": 0.890},
    "every source, calibrated input, photos at weight 0.1": {
        "alone": [0.413, 0.550], "all": [0.559, 0.659], "photo_neutral_vs_happiness": 0.848},
    "every source, both inputs, a quarter same-emotion, photos always alone": {
        "alone": [0.397, 0.538], "3": [0.419, 0.552], "10": [0.456, 0.591], "all": [0.456, 0.599],
        "same_emotion_5": [0.370, 0.520], "photo_neutral_vs_happiness": 0.877, "mean_quadrant": 0.560},
    "photos only (the photo pair's ceiling for this CNN)": {"photo_neutral_vs_happiness": 0.900,
                                                            "photo_macro_f1": 0.394},
    # Issue 8, fourth pass: why one output cannot serve both sources. The shipped recipe (both inputs, random
    # contexts, every source, same folds) with two softmax heads on the one trunk, each trained only on its own
    # source (RAVDESS faces / photos): each head reads the other source badly, so the sources disagree on what
    # the same landmark geometry means (posed RAVDESS expressions against labelled real ones), not only on class
    # priors. "alone" / "all" other clips of the actor; photo neutral-vs-happiness alone.
    "two heads on one trunk, photos at weight 1: the RAVDESS head": {
        "alone": [0.438, 0.582], "3": [0.484, 0.610], "10": [0.507, 0.638], "all": [0.537, 0.643],
        "same_emotion_5": [0.362, 0.530], "photo_neutral_vs_happiness": 0.683, "photo_macro_f1": 0.157},
    "the same, the photo head": {"alone": [0.213, 0.310], "all": [0.243, 0.342], "q4_recall": 0.894,
                                 "photo_neutral_vs_happiness": 0.897, "photo_macro_f1": 0.388},
    "the same, the mean of the two heads": {"alone": [0.371, 0.446], "all": [0.453, 0.549],
                                            "photo_neutral_vs_happiness": 0.885, "photo_macro_f1": 0.330},
    "two heads, photos at weight 0.3": {"ravdess_head": {"alone": [0.439, 0.584], "all": [0.537, 0.642],
                                                         "photo_neutral_vs_happiness": 0.662},
                                        "photo_head": {"alone": [0.233, 0.310], "photo_neutral_vs_happiness": 0.894},
                                        "mean": {"alone": [0.381, 0.476], "photo_neutral_vs_happiness": 0.881}},
    "one head with a learned per-source bias (a class-prior shift), photos at weight 1": {
        "ravdess_bias": {"alone": [0.404, 0.552], "all": [0.488, 0.639], "photo_neutral_vs_happiness": 0.884},
        "photo_bias": {"alone": [0.313, 0.404], "photo_neutral_vs_happiness": 0.888},
        "mean_bias": {"alone": [0.374, 0.474], "photo_neutral_vs_happiness": 0.888}},
    "one head, twice the filters (64) and a hidden layer of 128 (more capacity for both sources)": {
        "alone": [0.386, 0.538], "all": [0.480, 0.608], "photo_neutral_vs_happiness": 0.879,
        "photo_macro_f1": 0.356},
    # Is it intensity (real expressions milder than posed ones)? Each RAVDESS face also trained at a random
    # intensity: its actor's mean neutral face + a (face - that mean), a uniform in 0.3-1, label kept.
    "one head, RAVDESS faces also at 0.3-1 of their intensity": {
        "alone": [0.409, 0.546], "all": [0.494, 0.616], "photo_neutral_vs_happiness": 0.883},
    "two heads, the same intensity copies: the RAVDESS head": {
        "alone": [0.434, 0.577], "all": [0.521, 0.647], "photo_neutral_vs_happiness": 0.693,
        "note": "milder copies move the RAVDESS head's photo pair 0.662 -> 0.693 only: not mainly intensity"},
    # Is it head pose? Pitch and yaw directions of the aligned landmarks, regressed on OpenFace's pose_Rx / pose_Ry
    # within actor (emotion as covariate; pose read back from 16 stable points correlates 0.96 / 0.97 with
    # OpenFace's). A model of the RAVDESS sources alone calls 53% of the neutral photos happy (photo pair
    # 0.643), 85% of those whose nose looks long (pitched) and 15% of those whose nose looks short; frontal photos
    # 0.727. Frontalised (each face's estimated pitch and yaw taken out): that model's photo pair 0.686.
    "one head, every face frontalised": {"alone": [0.372, 0.492], "all": [0.484, 0.583], "q4_recall": 0.444,
                                         "photo_neutral_vs_happiness": 0.883,
                                         "note": "taking pose out also takes out some of RAVDESS's emotion"},
    "one head, RAVDESS faces also turned by a random pitch and yaw within 15 degrees": {
        "alone": [0.406, 0.530], "all": [0.491, 0.614], "photo_neutral_vs_happiness": 0.880},
    "two heads, the same turned copies: the RAVDESS head": {
        "alone": [0.434, 0.559], "all": [0.530, 0.643], "photo_neutral_vs_happiness": 0.707,
        "note": "pose moves the RAVDESS head's photo pair 0.662 -> 0.707, intensity to 0.693: the rest is what "
                "the photos call neutral (a frontal neutral photo is 'happy' to RAVDESS 40% of the time)"},
}
RECIPE_CHOICE = ("Procrustes alignment on the stable points (+2.2 / +3.5 with a linear probe), coordinates only "
                 "(distances add nothing), cnn-skip (+3.3 over the plain CNN), mirror-only augmentation and the "
                 "validation actors in training, a fixed 30 epochs (60 gave +1.3 on the OpenFace frames alone, within "
                 "noise, at twice the time), every source with the photos at weight 0.3 (2 points more RAVDESS "
                 "accuracy than weight 1, 1.6 points less photo neutral-vs-happiness; photos carry the real-face "
                 "classes), quadrant loss 0.5. Person calibration: the face as it is and minus the person "
                 "offset side by side, random contexts (the highest mean quadrant accuracy over the five ways of "
                 "seeing a person, 0.567, with every source; the calibrated input alone 0.566 (a quarter same-emotion "
                 "contexts) but loses 10 points "
                 "when the person keeps one emotion, this 5). One output for both sources stays: with a head "
                 "per source on one trunk each head reads the other source badly (the RAVDESS head's photo pair "
                 "0.66-0.71, the photo head's RAVDESS accuracy 0.21-0.25), and neither a per-source bias, more "
                 "capacity, milder or turned RAVDESS copies nor frontalised faces reconciles them")


@dataclass(frozen=True)
class VisualTrainOptions:
    landmarks: Path | None = None  # folder of official RAVDESS OpenFace landmark CSVs
    videos: Path | None = None  # RAVDESS audio-video clips (01-01-*.mp4), landmarked with dlib
    crops: Path | None = None  # RAVDESS face-crop videos (*.avi), landmarked with dlib
    photos: Path | None = None  # faces-in-the-wild folder (images/ + labels.csv)
    cache: Path | None = None  # where dlib landmarks of photos and videos are stored and reused
    out: Path = Path("checkpoints")
    features: str = FACE_FEATURES
    points: str = FACE_POINTS  # landmarks the CNN reads (face.POINT_SETS)
    alignment: str = FACE_ALIGNMENT  # face.normalise_landmarks
    tracker_offset: bool = True  # move OpenFace faces into dlib's frame by the offset measured on one actor
    tracker_noise: bool = False  # add per-region offsets of TRACKER_NOISE_IOD in augmentation
    epochs: int = 30
    seed: int = 0
    augment_copies: int = 1  # jittered variants per RAVDESS face, besides the face itself
    photo_copies: int = 1  # jittered variants per photo, besides the photo itself
    jitter: float = 0.0  # scale of the geometric jitter (rotation, scale, squeeze, shift, point noise); 0: mirror only
    photo_weight: float = 0.3  # total loss weight of the photos relative to all RAVDESS faces together
    balance: float = 0.5  # class-balance power within each source: 1 inverse frequency, 0 none
    quadrant_loss: float = 0.5  # weight of the auxiliary loss on quadrant probabilities (masked_loss)
    arch: str = "cnn-skip"  # build_model: "cnn", "cnn-skip" or "mlp"
    ensemble: int = 1  # networks (seeds) averaged inside the one model
    input_noise: float = 0.2  # standard deviation of the Gaussian noise on the standardised features (training)
    calibration: str = FACE_CALIBRATION_INPUT  # what the CNN reads: face.model_input (emoscore/calibration.py)
    same_emotion_share: float = 0.0  # share of training contexts made of moments of the face's own emotion
    batch_size: int = 128
    patience: int = 0  # early-stopping patience in epochs; 0: no early stopping
    test_actors: tuple[int, ...] = ravdess.TEST_ACTORS
    val_actors: tuple[int, ...] = ravdess.VAL_ACTORS
    cv_folds: int = 0  # > 0: also run grouped cross-validation and record it
    command: str = "emoscore train visual"
    extra: dict[str, Any] = field(default_factory=dict)

    def recipe(self) -> dict[str, Any]:
        """The settings that change the trained model (recorded in the manifest, key of cached results)."""
        names = ("features", "points", "alignment", "tracker_offset", "tracker_noise", "epochs", "augment_copies",
                 "photo_copies", "jitter", "photo_weight", "balance", "quadrant_loss", "arch", "ensemble",
                 "input_noise", "batch_size", "patience", "calibration", "same_emotion_share")
        return {name: getattr(self, name) for name in names}


# --- sources -------------------------------------------------------------------------------------------------

def load_sources(options: VisualTrainOptions, log: Log) -> tuple[Faces, dict[str, Any]]:
    """Every given source as one Faces set, and a report (counts per source, the tracker gap)."""
    if not any((options.landmarks, options.videos, options.crops, options.photos)):
        raise DataError("give at least one of --landmarks, --videos, --crops, --photos")
    parts: list[Faces] = []
    report: dict[str, Any] = {}
    clips = {name: load_clips(path, options.cache, log=log) for name, path in
             (("clips", options.videos), ("crops", options.crops)) if path is not None}
    if "crops" in clips:
        scale = crop_aspect(clips["crops"], clips.get("clips"), options.landmarks)
        report["crop_y_scale"] = round(scale, 4)
        clips["crops"] = stretch(clips["crops"], scale)
    if options.landmarks is not None:
        openface = load_landmark_csvs(options.landmarks, 1, log)
        offset = None
        pairs_from = clips.get("clips") or clips.get("crops")
        if pairs_from is not None:
            try:
                offset, report["tracker_gap"] = tracker_offset(*paired_faces(openface, pairs_from)[:2],
                                                               alignment=options.alignment)
            except DataError as exc:  # no clip in both sources: train without the offset, and say so
                log(f"  tracker gap not measured: {exc}")
                report["tracker_gap"] = {"not_measured": str(exc)}
            else:
                report["tracker_gap"]["measured_on"] = "clips" if "clips" in clips else "crops"
                if options.tracker_offset:
                    report["tracker_offset_iod"] = np.round(offset, 4).tolist()
        parts.append(from_openface(openface, offset if options.tracker_offset else None, options.alignment))
    parts += [from_clips(c, name, alignment=options.alignment) for name, c in clips.items()]
    if options.photos is not None:
        parts.append(from_photos(load_photos(options.photos, options.cache, log), options.alignment))
    faces = concat(parts)
    report["faces"] = {s: int((faces.sources == s).sum()) for s in np.unique(faces.sources)}
    log("faces per source: " + ", ".join(f"{k} {v}" for k, v in report["faces"].items()))
    return faces, report


def crop_aspect(crops: ClipFaces, clips: ClipFaces | None, landmarks: Path | None) -> float:
    """The vertical stretch that makes the face crops' dlib faces match the same faces in full frames
    (the crops were resized to a square from a taller-than-wide box): least squares on normalised y."""
    from emoscore.face import normalise_landmarks

    if clips is not None:
        index, ref = clips.frames_near(GAP_SECONDS)
        known = {clip_key(clips.items[i]): p for i, p in zip(index, ref, strict=True)}
    elif landmarks is not None:
        openface = load_landmark_csvs(landmarks, 1)
        known = dict(zip(openface.keys.tolist(), openface.points, strict=True))
    else:
        return 1.0
    index, found = crops.frames_near(GAP_SECONDS)
    pairs = [(known[clip_key(crops.items[i])], p) for i, p in zip(index, found, strict=True)
             if clip_key(crops.items[i]) in known]
    if not pairs:
        return 1.0
    ref_n = normalise_landmarks(np.stack([a for a, _ in pairs]))[..., 1]
    crop_n = normalise_landmarks(np.stack([b for _, b in pairs]))[..., 1]
    return float((crop_n * ref_n).sum() / (crop_n**2).sum())


def stretch(clips: ClipFaces, y_scale: float) -> ClipFaces:
    """Clips with every landmark's y multiplied by `y_scale` (pixels)."""
    points = [p * np.array([1.0, y_scale], dtype=np.float32) for p in clips.points]
    return ClipFaces(clips.items, clips.times, points)


# --- augmentation, weights and model --------------------------------------------------------------------------

# Standard deviation (IOD, per axis) of a random offset shared by a region's points, per face, when
# tracker_noise is on: about the residual dlib-vs-OpenFace distance per region on identical faces.
TRACKER_NOISE_IOD = {"jaw": 0.03, "brows": 0.015, "nose": 0.015, "eyes": 0.0, "mouth": 0.02}


def jitter(aligned: np.ndarray, rng: np.random.Generator, tracker_noise: bool = False,
           amount: float = 1.0) -> np.ndarray:
    """One random variant of normalised faces (n, 68, 2): mirror (p 0.5), rotation ±6°, scale ±8%,
    horizontal squeeze ±8% (head yaw), shift ±0.05 IOD, and per-point noise of 0.02 IOD (tracker noise), each
    range times `amount` (0: the mirror only); with `tracker_noise`, also a random offset per face region
    (TRACKER_NOISE_IOD)."""
    n = len(aligned)
    flip = rng.random(n) < 0.5
    out = np.where(flip[:, None, None], mirror_landmarks(aligned), aligned)
    angle = np.deg2rad(rng.uniform(-6, 6, n) * amount)
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = out[..., 0], out[..., 1]
    out = np.stack([x * cos - y * sin, x * sin + y * cos], axis=-1)
    out = out * (1 + rng.uniform(-0.08, 0.08, (n, 1, 1)) * amount)
    out[..., 0] *= 1 + rng.uniform(-0.08, 0.08, (n, 1)) * amount
    out = out + (rng.uniform(-0.05, 0.05, (n, 1, 2)) + rng.normal(0, 0.02, out.shape)) * amount
    if tracker_noise:
        for name, points in REGIONS.items():
            out[:, list(points)] += rng.normal(0, TRACKER_NOISE_IOD[name], (n, 1, 2))
    return out.astype(np.float32)


def augmented(aligned: np.ndarray, labels: np.ndarray, copies: int, seed: int,
              tracker_noise: bool = False, amount: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The faces themselves followed by `copies` jittered variants: ((1 + copies) n, 68, 2), labels tiled."""
    rng = np.random.default_rng(seed)
    faces = [aligned] + [jitter(aligned, rng, tracker_noise, amount) for _ in range(copies)]
    return np.concatenate(faces), np.concatenate([labels] * (1 + copies))


def sample_weights(faces: Faces, balance: float, photo_weight: float) -> np.ndarray:
    """(n,) loss weights: within each source, class c weighs (n_s / (K_s n_sc)) ** balance (mean about 1);
    the photos together weigh `photo_weight` times all RAVDESS faces together."""
    weights = np.ones(len(faces))
    for source in np.unique(faces.sources):
        mine = faces.sources == source
        classes, counts = np.unique(faces.labels[mine], return_counts=True)
        per_class = (mine.sum() / (len(classes) * counts)) ** balance
        weights[mine] = per_class[np.searchsorted(classes, faces.labels[mine])]
        weights[mine] /= weights[mine].mean()
    photos = faces.sources == "photos"
    if photos.any() and (~photos).any():
        weights[photos] *= photo_weight * (~photos).sum() / photos.sum()
    return weights.astype(np.float32)


def masked_loss(smoothing: float = 0.1, quadrant_weight: float = 0.0) -> Callable[[Any, Any], Any]:
    """Cross-entropy against a set of allowed classes: -log(sum of their probabilities), label-smoothed; plus
    `quadrant_weight` times the same on the quadrant probabilities (emotions summed per Russell quadrant)."""
    from emoscore.metrics import EMOTION_TO_QUADRANT
    from emoscore.tf_util import tf

    t = tf()
    to_quadrant = t.constant(EMOTION_TO_QUADRANT)

    def loss(mask: Any, probs: Any) -> Any:
        probs = t.clip_by_value(probs, 1e-7, 1.0)
        allowed = t.reduce_sum(mask * probs, axis=-1)
        value = -(1 - smoothing) * t.math.log(allowed) - smoothing * t.reduce_mean(t.math.log(probs), axis=-1)
        if quadrant_weight:
            q_mask = t.minimum(t.matmul(mask, to_quadrant), 1.0)
            q_allowed = t.clip_by_value(t.reduce_sum(q_mask * t.matmul(probs, to_quadrant), axis=-1), 1e-7, 1.0)
            value += quadrant_weight * -t.math.log(q_allowed)
        return value

    return loss


def build_model(train_x: np.ndarray, seed: int, arch: str = "cnn", noise: float = 0.2) -> Any:
    """The 1D CNN over the kept landmarks in iBUG order: (P, C) features -> 8 emotion probabilities.

    One fixed-shape float input, one softmax output (convertible to TFLite). Each (landmark, channel) feature
    is standardised inside the model (Normalization layer); small and L2-regularised. arch "mlp": two dense
    layers over the flattened features instead of the convolutions; "cnn-skip": the CNN whose output layer also
    reads the standardised features directly (a linear path beside the convolutions: on the RAVDESS frames a
    linear model on aligned points beats the CNN alone).
    """
    from emoscore.tf_util import tf

    keras = tf().keras
    layers = keras.layers
    l2 = keras.regularizers.l2(1e-3)
    norm = layers.Normalization(axis=(1, 2))
    norm.adapt(train_x)
    inputs = keras.Input(train_x.shape[1:])
    x = layers.GaussianNoise(noise, seed=seed)(norm(inputs))
    if arch == "mlp":
        x = layers.Flatten()(x)
        for units in (256, 128):
            x = layers.Dense(units, use_bias=False, kernel_regularizer=l2)(layers.Dropout(0.3, seed=seed)(x))
            x = layers.Activation("relu")(layers.BatchNormalization()(x))
        x = layers.Dropout(0.3, seed=seed)(x)
        outputs = layers.Dense(N_EMOTIONS, activation="softmax", kernel_regularizer=l2)(x)
        return keras.Model(inputs, outputs, name=f"face_emotion_mlp_{seed}")
    skip = layers.Flatten()(x)
    for filters, kernel in ((32, 5), (32, 3)):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False, kernel_regularizer=l2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling1D(2)(x)
    x = layers.Dropout(0.5, seed=seed)(layers.Flatten()(x))
    if arch == "cnn-skip":
        x = layers.Concatenate()([x, layers.Dropout(0.2, seed=seed)(skip)])
    outputs = layers.Dense(N_EMOTIONS, activation="softmax", kernel_regularizer=l2)(x)
    return keras.Model(inputs, outputs, name=f"face_emotion_cnn_{seed}")


def calibration_mean(train: Faces) -> np.ndarray:
    """(68, 2) population mean of the training faces (calibration.population_mean: each person counts once)."""
    return population_mean(train.aligned, train.groups)


def person_offsets(faces: Faces, mean: np.ndarray, contexts: Sequence[int], seed: int, same_share: float = 0.0,
                   prior: float = FACE_CALIBRATION_PRIOR) -> np.ndarray:
    """(n, 68, 2) person offsets of faces, each seen with a context size drawn from `contexts` (other moments
    of the same actor or photographed person, a `same_share` of them of the same emotion; see
    calibration.context_offsets)."""
    rng = np.random.default_rng(seed)
    return context_offsets(faces.aligned, faces.groups, faces.keys, contexts, mean, rng, prior, faces.labels,
                           same_share)


def training_arrays(options: VisualTrainOptions, train: Faces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (m, P, C), target masks (m, 8), weights (m,)) of `train` and its jittered copies; calibrated,
    each copy with its own drawn contexts (TRAINING_CONTEXTS) and mirrored at random (no other jitter)."""
    weights = sample_weights(train, options.balance, options.photo_weight)
    photos = train.sources == "photos"
    if calibrating(options) and options.jitter:
        raise DataError("geometric jitter needs --calibration none (a calibrated face is only mirrored)")
    mean = calibration_mean(train) if calibrating(options) else None
    xs, ts, ws = [], [], []
    for keep, copies in ((~photos, options.augment_copies), (photos, options.photo_copies)):
        if not keep.any():
            continue
        index = np.flatnonzero(keep)
        if mean is None:
            faces, rows = augmented(train.aligned[index], index, copies, options.seed, options.tracker_noise,
                                    options.jitter)
            xs.append(landmark_features(faces, options.features, options.points))
        else:  # people never span the two parts (actors vs photographed people), so contexts stay inside
            part, rng = train.take(index), np.random.default_rng(options.seed)
            for copy in range(1 + copies):
                offsets = person_offsets(part, mean, TRAINING_CONTEXTS, options.seed + 1 + copy,
                                         options.same_emotion_share)
                aligned = part.aligned
                if copy:
                    flip = (rng.random(len(part)) < 0.5)[:, None, None]
                    aligned = np.where(flip, mirror_landmarks(aligned), aligned)
                    offsets = np.where(flip, mirror_landmarks(offsets), offsets)
                xs.append(model_input(aligned, offsets, options.features, options.points, options.calibration))
            rows = np.tile(index, 1 + copies)
        ts.append(train.targets[rows])
        ws.append(weights[rows])
    return np.concatenate(xs), np.concatenate(ts), np.concatenate(ws)


def fit(options: VisualTrainOptions, train: Faces, val: Faces | None, log: Log) -> Any:
    """fit_one `ensemble` times (seeds seed, seed + 1, ...); several members become one Keras model (one input,
    one output: the mean of their probabilities), so export and inference do not change."""
    from emoscore.tf_util import tf

    members = [fit_one(replace(options, seed=options.seed + k), train, val, log) for k in range(options.ensemble)]
    if len(members) == 1:
        return members[0]
    keras = tf().keras
    inputs = keras.Input(members[0].input_shape[1:])
    outputs = keras.layers.Average()([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="face_emotion_ensemble")


def fit_one(options: VisualTrainOptions, train: Faces, val: Faces | None, log: Log) -> Any:
    """Train on jittered copies of `train`, early-stopping on `val`'s loss (training loss if None); with
    patience 0, for exactly `epochs` epochs."""
    from emoscore.tf_util import seed_everything, tf

    seed_everything(options.seed)
    keras = tf().keras
    x, targets, weights = training_arrays(options, train)
    model = build_model(x, options.seed, options.arch, options.input_noise)
    # Trained through a functional copy sharing its layers, so the model itself stays uncompiled (a compiled
    # model with the custom loss nested in an ensemble would not load back).
    trainer = keras.Model(model.inputs, model.outputs)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=masked_loss(quadrant_weight=options.quadrant_loss),
                  metrics=["accuracy"])
    val_data = None
    if val is not None and len(val):
        offsets = person_offsets(val, calibration_mean(train), (0,), options.seed) if calibrating(options) else None
        val_data = (model_input(val.aligned, offsets, options.features, options.points, options.calibration),
                    val.targets)
    monitor = "val_loss" if val_data is not None else "loss"

    def report(epoch: int, logs: dict[str, float]) -> None:
        log(f"  epoch {epoch + 1:3d}  loss {logs['loss']:.3f}" + (f"  val_loss {logs['val_loss']:.3f}  val_acc "
                                                                 f"{logs['val_accuracy']:.3f}" if val_data else ""))

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=report)]
    if options.patience > 0:
        callbacks += [keras.callbacks.EarlyStopping(monitor=monitor, patience=options.patience,
                                                    restore_best_weights=True),
                      keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                                        patience=max(options.patience // 2, 1))]
    else:  # a fixed number of epochs; the learning rate halves when the training loss stalls
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2))
    trainer.fit(x, targets, sample_weight=weights, epochs=options.epochs, batch_size=options.batch_size,
              validation_data=val_data, shuffle=True, verbose=0, callbacks=callbacks)
    return model


def calibrating(options: VisualTrainOptions) -> bool:
    return options.calibration != "none"


def predict_aligned(model: Any, aligned: np.ndarray, options: VisualTrainOptions,
                    offsets: np.ndarray | None = None) -> np.ndarray:
    """(n, 68, 2) normalised faces and their person offsets -> (n, 8) probabilities, averaged with the mirrored
    face (as inference)."""
    return predict_aligned_faces(model, aligned, offsets, options.features, options.points, options.calibration)


def predict_people(model: Any, faces: Faces, options: VisualTrainOptions, mean: np.ndarray | None, context: int,
                   seed: int = 0, same_emotion: bool = False) -> np.ndarray:
    """(n, 8) probabilities of `faces`, each calibrated with `context` other moments of its person (0: the face
    alone, as a short clip of a new person; -1: every other moment; `same_emotion`: only moments of the face's
    own emotion); as they are when `mean` is None."""
    offsets = None if mean is None else person_offsets(faces, mean, (context,), seed, 1.0 if same_emotion else 0.0)
    return predict_aligned(model, faces.aligned, options, offsets)


def calibration_entry(mean: np.ndarray) -> dict[str, Any]:
    """The manifest's record of person calibration, read back by inference (face.FaceEmotionModel)."""
    return {"population_mean": np.round(mean, 5).tolist(), "prior_moments": FACE_CALIBRATION_PRIOR,
            "moment_seconds": FACE_MOMENT_SECONDS, "unit": "one shot of a video is one person"}


# --- the shipped model ----------------------------------------------------------------------------------------

def split(faces: Faces, options: VisualTrainOptions) -> tuple[Faces, Faces, Faces]:
    """(train, validation, test): RAVDESS faces by actor (test_actors, val_actors); photos all in train."""
    test_actors, val_actors = set(options.test_actors), set(options.val_actors)
    if test_actors & val_actors:
        raise DataError("an actor cannot be both a validation and a test actor")
    actors = faces.actors()
    test, val = np.isin(actors, list(test_actors)), np.isin(actors, list(val_actors))
    train = ~test & ~val
    if not train.any() or not test.any():
        raise DataError(f"actor split leaves an empty set (train {int(train.sum())}, test {int(test.sum())} faces)")
    return faces.take(train), faces.take(val), faces.take(test)


def train_visual_model(options: VisualTrainOptions, log: Log = print) -> dict[str, Any]:
    """Train on every source (test actors held out), evaluate, optionally cross-validate, save the model and
    its manifest entry. Returns the test-actor metrics (also in <out>/visual_metrics.json)."""
    from emoscore.visual_cv import grouped_cv, store_out_of_fold

    started = time.monotonic()
    faces, report = load_sources(options, log)
    train, val, test = split(faces, options)
    log(f"{len(train)} train / {len(val)} validation / {len(test)} test faces (test actors "
        f"{list(options.test_actors)}, validation actors {list(options.val_actors)})")
    extra: dict[str, Any] = {"seed": options.seed, "recipe": options.recipe(), "recipe_choice": RECIPE_CHOICE,
                             "recipe_cv": RECIPE_CV, **report, **options.extra}
    if options.cv_folds:
        log(f"grouped {options.cv_folds}-fold cross-validation (RAVDESS by actor, photos by identity):")
        cv = grouped_cv(options, faces, options.cv_folds, log)
        if options.landmarks is not None:  # the fusion evaluation's input (out_of_fold_predictions), for free
            store_out_of_fold(options, options.cv_folds, faces, cv["probs"], cv["probs_person"])
        cv.pop("probs")
        cv.pop("probs_person")
        extra["grouped_cv"] = cv
    if options.patience == 0:  # nothing to early-stop on: the validation actors train too
        train = concat([train, val])
        log(f"no early stopping: the validation actors train too, training on {len(train)} faces")
    model = fit(options, train, val if options.patience > 0 else None, log)
    mean = calibration_mean(train) if calibrating(options) else None
    metrics = face_metrics(test, predict_people(model, test, options, mean, 0, options.seed))
    if mean is not None:
        extra["calibration"] = calibration_entry(mean)
        metrics["person_context"] = {context_name(c, same): headline(face_metrics(
            test, predict_people(model, test, options, mean, c, options.seed, same))) for c, same in EVAL_CONTEXTS}
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    _save(options, model, metrics, _describe(faces, options), extra)
    return metrics


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers of face_metrics a comparison needs: accuracy, quadrant accuracy and recall, photo pair."""
    out: dict[str, Any] = {k: metrics.get(k) for k in ("accuracy", "quadrant_accuracy", "quadrant_recall")
                           if k in metrics}
    if "photos" in metrics:
        out["photo_neutral_vs_happiness"] = metrics["photos"]["neutral_vs_happiness_accuracy"]
    return out


def _describe(faces: Faces, options: VisualTrainOptions) -> str:
    parts = []
    for source in np.unique(faces.sources):
        mine = faces.sources == source
        actors = sorted(set(faces.actors()[mine].tolist()) - {0})
        who = f"actors {actors[0]:02d}-{actors[-1]:02d}" if actors else f"{len(set(faces.groups[mine]))} people"
        parts.append(f"{int(mine.sum())} {SOURCE_NAMES.get(str(source), source)} ({who})")
    return (f"{'; '.join(parts)}; test actors {list(options.test_actors)}, validation actors "
            f"{list(options.val_actors)}; photos split by identity in cross-validation")


SOURCE_NAMES = {"openface": "official OpenFace RAVDESS frames", "clips": "dlib frames of RAVDESS videos",
                "crops": "dlib frames of RAVDESS face crops", "photos": "dlib faces-in-the-wild photos"}


def _save(options: VisualTrainOptions, model: Any, metrics: dict[str, Any], data: str,
          extra: dict[str, Any]) -> None:
    from emoscore.checkpoints import record_model
    from emoscore.tf_util import save_keras

    options.out.mkdir(parents=True, exist_ok=True)
    save_keras(model, options.out / "visual.keras")
    (options.out / "visual_metrics.json").write_text(json.dumps({**metrics, **extra}, indent=2, default=str) + "\n")
    record_model(options.out, MODEL_NAME, "face-landmark-cnn", {"model": "visual.keras"},
                 constants=feature_constants(options.features, options.points, options.alignment,
                                             options.calibration),
                 command=options.command, metrics=metrics, data=data, extra=extra)
    from emoscore.export import export_model  # the .tflite that `score` runs

    export_model(options.out, MODEL_NAME)


def out_of_fold_predictions(landmarks: Path, folds: int = 5, seed: int = 0, log: Log = lambda _: None, *,
                            options: VisualTrainOptions | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """For every RAVDESS OpenFace landmark clip of `landmarks`: its key "EE-II-SS-RR-AA", the (n, 8)
    probabilities of the model trained without that clip's actor (actor-wise folds; photos in every fold's
    training set), and its (n,) true emotion index. Cached under /tmp/emoscore-cache/face/."""
    from emoscore.visual_cv import cached_out_of_fold

    return cached_out_of_fold(landmarks, folds, seed, log, options)


def evaluate_visual_model(checkpoints: Path, landmarks: Path | None = None, videos: Path | None = None,
                          photos: Path | None = None, actors: Sequence[int] | None = None,
                          cache: Path | None = None, log: Log = lambda _: None) -> dict[str, Any]:
    """Metrics of the installed visual model on the given faces (see visual_cv.evaluate_installed)."""
    from emoscore.visual_cv import evaluate_installed

    return evaluate_installed(checkpoints, landmarks, videos, photos, actors, cache, log)
