"""RAVDESS videos landmarked frame by frame with dlib: the face-crop clips (`MM-VV-EE-II-SS-RR-AA.avi`, 224x224,
15 frames over 3 s) and the real audio-video clips (`Actor_NN/01-01-....mp4`, 1280x720). Every sampled frame is
kept with its time, so one face can be followed over a window (temporal input) and the frame at a given time
can be compared with the OpenFace frame of the same clip (the tracker gap)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import N_LANDMARKS
from emoscore.data import ravdess
from emoscore.errors import DataError

Log = Callable[[str], None]

CLIP_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")
CLIP_FRAME_RATE = 5.0  # frames per second sampled (the face crops' own rate)
CLIP_MAX_WIDTH = 640  # px: real 1280x720 clips are scaled to this before detection (as `score` does)
CACHE_VERSION = "dlib-hog-68-clips-v1"


@dataclass(frozen=True)
class ClipFaces:
    """Per clip: items[i] (RavdessItem), times[i] (k_i,) s, points[i] (k_i, 68, 2) pixels, NaN where no face."""

    items: list[ravdess.RavdessItem]
    times: list[np.ndarray]
    points: list[np.ndarray]

    def frames_near(self, seconds: float, tolerance: float = 0.5) -> tuple[list[int], np.ndarray]:
        """(clip indices, (m, 68, 2) points) of each clip's face frame closest to `seconds` (within tolerance)."""
        keep, found = [], []
        for i, (t, p) in enumerate(zip(self.times, self.points, strict=True)):
            ok = np.isfinite(p).all(axis=(1, 2)) & (np.abs(t - seconds) <= tolerance)
            if ok.any():
                j = int(np.flatnonzero(ok)[np.argmin(np.abs(t[ok] - seconds))])
                keep.append(i)
                found.append(p[j])
        return keep, np.array(found, dtype=np.float32).reshape(-1, N_LANDMARKS, 2)


def scan_clips(root: Path) -> list[ravdess.RavdessItem]:
    """RAVDESS speech videos (modality 01 or 02, vocal channel 01) under `root`, any depth."""
    items = [i for i in ravdess.scan(root, CLIP_SUFFIXES) if i.vocal_channel == 1 and i.modality in (1, 2)]
    if not items:
        raise DataError(f"no RAVDESS speech videos (01-01-* or 02-01-*) under {root}")
    return items


def clip_landmarks(path: Path, frame_rate: float = CLIP_FRAME_RATE,
                   max_width: int = CLIP_MAX_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """(times (k,) s, points (k, 68, 2) pixels, NaN where dlib finds no face) of every sampled frame."""
    from emoscore.face import FaceLandmarker
    from emoscore.media import iter_frames, probe

    landmarker = FaceLandmarker()
    times, points = [], []
    for t, frame in iter_frames(probe(path), frame_rate, max_width, gray=True):
        found = landmarker.detect(frame)
        times.append(t)
        points.append(np.full((N_LANDMARKS, 2), np.nan, np.float32) if found is None else found)
    return np.array(times, dtype=np.float64), np.array(points, dtype=np.float32).reshape(-1, N_LANDMARKS, 2)


def _cache_file(cache: Path, items: Sequence[ravdess.RavdessItem], frame_rate: float, max_width: int) -> Path:
    digest = hashlib.sha1(f"{CACHE_VERSION}|{frame_rate}|{max_width}".encode())
    for item in items:
        digest.update(f"{item.path.resolve()}|{item.path.stat().st_size}\n".encode())
    return Path(cache) / f"clips-{digest.hexdigest()[:16]}.npz"


def load_clips(root: Path, cache: Path | None = None, frame_rate: float = CLIP_FRAME_RATE,
               max_width: int = CLIP_MAX_WIDTH, log: Log = lambda _: None) -> ClipFaces:
    """Every RAVDESS speech video under `root`, landmarked per frame (stored in `cache` and reused)."""
    items = scan_clips(root)
    cached = _cache_file(cache, items, frame_rate, max_width) if cache is not None else None
    if cached is not None and cached.exists():
        stored = np.load(cached)
        log(f"  clip landmarks from cache {cached}")
        return ClipFaces(items, [stored[f"t{i}"] for i in range(len(items))],
                         [stored[f"p{i}"] for i in range(len(items))])
    times, points = [], []
    for n, item in enumerate(items):
        t, p = clip_landmarks(item.path, frame_rate, max_width)
        times.append(t)
        points.append(p)
        log(f"  landmarked {n + 1}/{len(items)} videos")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        arrays: dict[str, Any] = {f"t{i}": t for i, t in enumerate(times)}
        arrays.update({f"p{i}": p for i, p in enumerate(points)})
        np.savez_compressed(tmp, **arrays)
        tmp.replace(cached)
    return ClipFaces(items, times, points)
