"""Faces in the wild: expression-labelled face photos, `images/*.jpg` + `labels.csv` (image, emotion,
identity[, labeller]), landmarked with the same dlib pipeline `score` runs (face.FaceLandmarker).

Labels map onto the 8 RAVDESS emotions (constants.EMOTIONS); the photos have no calm, so a photo labelled
"neutral" is read as "neutral or calm" (see NEUTRAL_OR_CALM and visual_train's masked target). Splits go by
`identity` (the person), never by image.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoscore.constants import EMOTIONS, N_LANDMARKS
from emoscore.errors import DataError

Log = Callable[[str], None]

# Photo label -> index into constants.EMOTIONS. "contempt" (dropped by the dataset) and unknown labels are
# refused by read_labels.
PHOTO_LABELS: dict[str, int] = {"neutral": EMOTIONS.index("neutral"), "happiness": EMOTIONS.index("happy"),
                                "surprise": EMOTIONS.index("surprised"), "sadness": EMOTIONS.index("sad"),
                                "anger": EMOTIONS.index("angry"), "disgust": EMOTIONS.index("disgust"),
                                "fear": EMOTIONS.index("fearful")}
# The 7 photo classes in EMOTIONS order (no calm): the classes of the photo macro-F1.
PHOTO_CLASSES: tuple[int, ...] = tuple(sorted(PHOTO_LABELS.values()))
NEUTRAL_OR_CALM = (EMOTIONS.index("neutral"), EMOTIONS.index("calm"))
LANDMARK_CACHE_VERSION = "dlib-hog-68-v1"  # change when FaceLandmarker's behaviour changes


@dataclass(frozen=True)
class PhotoItem:
    path: Path
    emotion: int  # index into constants.EMOTIONS
    identity: str


@dataclass(frozen=True)
class PhotoFaces:
    """Landmarked photos: points (n, 68, 2) pixels, labels (n,) EMOTIONS index, identities (n,) str,
    names (n,) image file names. Only photos where dlib found a face."""

    points: np.ndarray
    labels: np.ndarray
    identities: np.ndarray
    names: np.ndarray

    def take(self, keep: np.ndarray) -> PhotoFaces:
        return PhotoFaces(self.points[keep], self.labels[keep], self.identities[keep], self.names[keep])


def read_labels(root: Path) -> list[PhotoItem]:
    """Rows of `root`/labels.csv whose image exists in `root`/images, sorted by image name.

    Raises DataError for a missing folder or csv, missing columns, or an unknown emotion label.
    """
    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        raise DataError(f"no labels.csv in {root} (expected images/*.jpg + labels.csv: image,emotion,identity)")
    with open(table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"image", "emotion", "identity"} <= set(rows[0]):
        raise DataError(f"{table} needs the columns image, emotion, identity")
    items = []
    for row in rows:
        label = row["emotion"].strip().lower()
        if label not in PHOTO_LABELS:
            raise DataError(f"{table}: unknown emotion {label!r} for {row['image']}; use one of {sorted(PHOTO_LABELS)}")
        path = root / "images" / row["image"].strip()
        if path.is_file():
            items.append(PhotoItem(path, PHOTO_LABELS[label], row["identity"].strip()))
    if not items:
        raise DataError(f"none of the images listed in {table} is in {root / 'images'}")
    return sorted(items, key=lambda i: i.path.name)


def _cache_file(cache: Path, items: Sequence[PhotoItem]) -> Path:
    digest = hashlib.sha1(LANDMARK_CACHE_VERSION.encode())
    for item in items:
        digest.update(f"{item.path.resolve()}|{item.path.stat().st_size}\n".encode())
    return Path(cache) / f"photos-{digest.hexdigest()[:16]}.npz"


def landmark_photos(items: Sequence[PhotoItem], cache: Path | None = None, log: Log = lambda _: None) -> PhotoFaces:
    """dlib landmarks of every photo (largest face); photos without a face are left out.

    With `cache`, the (n, 68, 2) result (NaN where no face) is stored there keyed by the files and reused.
    """
    cached = _cache_file(cache, items) if cache is not None else None
    if cached is not None and cached.exists():
        points = np.load(cached)["points"]
        log(f"  photo landmarks from cache {cached}")
    else:
        points = _detect_all(items, log)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, points=points)
            tmp.replace(cached)
    found = np.isfinite(points).all(axis=(1, 2))
    log(f"  dlib found a face in {int(found.sum())} of {len(items)} photos")
    return PhotoFaces(points, np.array([i.emotion for i in items]), np.array([i.identity for i in items]),
                      np.array([i.path.name for i in items])).take(found)


def _detect_all(items: Sequence[PhotoItem], log: Log) -> np.ndarray:
    import cv2

    from emoscore.face import FaceLandmarker

    landmarker = FaceLandmarker()
    points = np.full((len(items), N_LANDMARKS, 2), np.nan, dtype=np.float32)
    step = max(len(items) // 20, 1)
    for i, item in enumerate(items):
        gray = cv2.imread(str(item.path), cv2.IMREAD_GRAYSCALE)
        if gray is not None and (found := landmarker.detect(gray)) is not None:
            points[i] = found
        if (i + 1) % step == 0:
            log(f"  landmarked {i + 1}/{len(items)} photos")
    return points


def load_photos(root: Path, cache: Path | None = None, log: Log = lambda _: None) -> PhotoFaces:
    """Every labelled photo of a faces-in-the-wild folder, landmarked (cached when `cache` is given)."""
    return landmark_photos(read_labels(root), cache, log)
