"""The visual model's training faces from every source, in one frame of reference: normalised dlib-like
landmarks with a target mask over the 8 emotions and the group (actor or person) that splits must respect.

Sources: "openface" (official RAVDESS OpenFace frames, moved into dlib's frame of reference by the measured
tracker offset, see tracker_offset), "photos" (faces-in-the-wild, dlib) and "crops"/"clips" (RAVDESS videos,
dlib). A photo labelled neutral may be neutral or calm (the photos have no calm): its target mask allows both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emoscore.constants import FACE_ALIGNMENT, N_EMOTIONS, N_LANDMARKS
from emoscore.data.faces_wild import NEUTRAL_OR_CALM, PhotoFaces
from emoscore.data.landmarks import LandmarkSet
from emoscore.data.ravdess import clip_key
from emoscore.data.ravdess_clips import ClipFaces
from emoscore.errors import DataError
from emoscore.face import normalise_landmarks

SOURCES = ("openface", "photos", "crops", "clips")
GAP_SECONDS = 2.0  # the official OpenFace frames are taken at about 2.0 s of each clip
CLIP_SKIP_SECONDS = 1.0  # RAVDESS clips open on a still face before the actor speaks


@dataclass(frozen=True)
class Faces:
    """aligned (n, 68, 2) normalised landmarks; targets (n, 8) float32 mask of the emotions a face may show
    (one-hot, or neutral+calm for a neutral photo); labels (n,) the named emotion; groups (n,) "actor:NN" or
    "photo:<identity>"; sources (n,) one of SOURCES; keys (n,) clip key "EE-II-SS-RR-AA" or image name."""

    aligned: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    keys: np.ndarray

    def take(self, keep: np.ndarray) -> Faces:
        return Faces(self.aligned[keep], self.targets[keep], self.labels[keep], self.groups[keep],
                     self.sources[keep], self.keys[keep])

    def __len__(self) -> int:
        return len(self.labels)

    def actors(self) -> np.ndarray:
        """(n,) RAVDESS actor number per face, 0 for photos."""
        return np.array([int(g[6:]) if g.startswith("actor:") else 0 for g in self.groups])


def concat(parts: Sequence[Faces]) -> Faces:
    if not parts:
        raise DataError("no training faces")
    return Faces(*(np.concatenate([getattr(p, name) for p in parts])
                   for name in ("aligned", "targets", "labels", "groups", "sources", "keys")))


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(N_EMOTIONS, dtype=np.float32)[np.asarray(labels, dtype=int)]


def from_openface(data: LandmarkSet, offset: np.ndarray | None = None,
                  alignment: str = FACE_ALIGNMENT) -> Faces:
    """OpenFace faces, normalised, plus `offset` (68, 2) (dlib minus OpenFace, normalised units) if given."""
    aligned = normalise_landmarks(data.points, alignment)
    if offset is not None:  # re-normalised: the offset moves the eyes a little too
        aligned = normalise_landmarks(aligned + offset[None], alignment)
    n = len(data.labels)
    keys = data.keys if len(data.keys) == n else np.full(n, "")
    groups = np.array([f"actor:{a:02d}" for a in data.actors])
    return Faces(aligned, one_hot(data.labels), np.asarray(data.labels), groups, np.full(n, "openface"), keys)


def from_photos(photos: PhotoFaces, alignment: str = FACE_ALIGNMENT) -> Faces:
    """Photos, normalised; a neutral photo's target allows neutral and calm."""
    targets = one_hot(photos.labels)
    neutral = photos.labels == NEUTRAL_OR_CALM[0]
    targets[neutral, NEUTRAL_OR_CALM[1]] = 1.0
    n = len(photos.labels)
    return Faces(normalise_landmarks(photos.points, alignment), targets, np.asarray(photos.labels),
                 np.array([f"photo:{i}" for i in photos.identities]), np.full(n, "photos"), np.asarray(photos.names))


def from_clips(clips: ClipFaces, source: str = "crops", skip: float = CLIP_SKIP_SECONDS,
               alignment: str = FACE_ALIGNMENT) -> Faces:
    """Every face frame at or after `skip` seconds of each RAVDESS clip, normalised."""
    points, labels, groups, keys = [], [], [], []
    for item, times, pts in zip(clips.items, clips.times, clips.points, strict=True):
        ok = np.isfinite(pts).all(axis=(1, 2)) & (times >= skip)
        points.append(pts[ok])
        labels += [item.emotion] * int(ok.sum())
        groups += [f"actor:{item.actor:02d}"] * int(ok.sum())
        keys += [clip_key(item)] * int(ok.sum())
    stacked = np.concatenate(points) if points else np.zeros((0, N_LANDMARKS, 2), np.float32)
    if not len(stacked):
        raise DataError("no face frames in the RAVDESS clips")
    return Faces(normalise_landmarks(stacked, alignment), one_hot(np.array(labels)), np.array(labels),
                 np.array(groups), np.full(len(labels), source), np.array(keys))


def paired_faces(openface: LandmarkSet, clips: ClipFaces, seconds: float = GAP_SECONDS
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The same faces seen by both trackers: (OpenFace (m, 68, 2), dlib (m, 68, 2), clip keys) pixels, for
    every clip present in both, dlib's frame nearest `seconds`."""
    index, found = clips.frames_near(seconds)
    by_key = {k: i for i, k in enumerate(openface.keys.tolist())}
    pairs = [(by_key[clip_key(clips.items[i])], p) for i, p in zip(index, found, strict=True)
             if clip_key(clips.items[i]) in by_key]
    if not pairs:
        raise DataError("no clip has both an OpenFace frame and a dlib face near "
                        f"{seconds} s; the tracker gap cannot be measured")
    keys = [openface.keys[j] for j, _ in pairs]
    return openface.points[[j for j, _ in pairs]], np.stack([p for _, p in pairs]), keys


def tracker_offset(openface: np.ndarray, dlib: np.ndarray, alignment: str = FACE_ALIGNMENT
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """Mean per-landmark offset (68, 2) dlib minus OpenFace of paired faces (m, 68, 2) pixels, normalised
    units (IOD), and a report: mean point distance of the pairs before and after removing the offset."""
    a, b = normalise_landmarks(openface, alignment), normalise_landmarks(dlib, alignment)
    offset = (b - a).mean(axis=0)
    before = np.linalg.norm(b - a, axis=-1)
    after = np.linalg.norm(b - a - offset, axis=-1)
    report = {"pairs": int(len(a)), "mean_distance_iod_before": round(float(before.mean()), 4),
              "mean_distance_iod_after_offset": round(float(after.mean()), 4),
              "offset_norm_by_region_iod": _by_region(np.linalg.norm(offset, axis=-1)),
              "residual_by_region_iod": _by_region(after.mean(axis=0))}
    return offset.astype(np.float32), report


def _by_region(per_point: np.ndarray) -> dict[str, float]:
    from emoscore.face import REGIONS

    return {name: round(float(per_point[list(points)].mean()), 4) for name, points in REGIONS.items()}
