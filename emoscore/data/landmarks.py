"""RAVDESS facial landmarks: the official OpenFace CSVs (columns selected by name), read into a LandmarkSet of
(n, 68, 2) pixel points with labels and actors. RAVDESS videos are landmarked by data/ravdess_clips.py."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoscore.constants import N_LANDMARKS
from emoscore.data import ravdess
from emoscore.data.ravdess import clip_key
from emoscore.errors import DataError

Log = Callable[[str], None]

CSV_SUFFIXES = (".csv",)
MIN_CONFIDENCE = 0.8  # OpenFace tracking confidence below which a frame is dropped


@dataclass(frozen=True)
class LandmarkSet:
    """Faces of a set of clips: points (n, 68, 2) pixels, labels (n,), actors (n,), a description, and
    keys (n,) "EE-II-SS-RR-AA" of each face's clip (emotion, intensity, statement, repetition, actor)."""

    points: np.ndarray
    labels: np.ndarray
    actors: np.ndarray
    source: str
    keys: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))

    def select(self, actors: Sequence[int]) -> LandmarkSet:
        keep = np.isin(self.actors, list(actors))
        keys = self.keys[keep] if len(self.keys) == len(self.labels) else self.keys[:0]
        return LandmarkSet(self.points[keep], self.labels[keep], self.actors[keep], self.source, keys)


def pick_frames(n: int, k: int) -> np.ndarray:
    """Indices of k frames evenly spaced over n, centred (k=1 gives the middle one)."""
    k = min(k, n)
    return np.floor((np.arange(k) + 0.5) * n / k).astype(int)


def read_landmark_csv(path: Path, frames_per_clip: int = 1,
                      min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """An OpenFace CSV -> (k, 68, 2) float32 pixel landmarks of up to `frames_per_clip` good frames.

    Columns are found by name (spaces around names ignored); frames with `confidence` below
    `min_confidence` or `success` 0 are dropped. k may be 0 when no frame is good.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read landmark file {path}: {exc}") from None
    if not rows:
        raise DataError(f"empty landmark file: {path}")
    index = {name.strip(): i for i, name in enumerate(rows[0])}
    wanted = [f"x_{i}" for i in range(N_LANDMARKS)] + [f"y_{i}" for i in range(N_LANDMARKS)]
    missing = [name for name in wanted if name not in index]
    if missing:
        raise DataError(f"landmark file {path} lacks columns {', '.join(missing[:4])}"
                        f"{' …' if len(missing) > 4 else ''} (expected OpenFace x_0..x_67, y_0..y_67)")
    try:
        table = np.array([[float(row[index[n]]) for n in wanted] for row in rows[1:] if row],
                         dtype=np.float32).reshape(-1, len(wanted))
        good = _good_frames(rows[1:], index, min_confidence)
    except (ValueError, IndexError) as exc:
        raise DataError(f"landmark file {path} has a malformed row: {exc}") from None
    table = table.reshape(-1, 2, N_LANDMARKS).transpose(0, 2, 1)[good]
    table = table[np.isfinite(table).all(axis=(1, 2))]
    return table[pick_frames(len(table), frames_per_clip)]


def _good_frames(rows: list[list[str]], index: dict[str, int], min_confidence: float) -> np.ndarray:
    rows = [row for row in rows if row]
    good = np.ones(len(rows), dtype=bool)
    if "confidence" in index:
        good &= np.array([float(row[index["confidence"]]) >= min_confidence for row in rows], dtype=bool)
    if "success" in index:
        good &= np.array([float(row[index["success"]]) > 0 for row in rows], dtype=bool)
    return good


def _stack(groups: list[tuple[ravdess.RavdessItem, np.ndarray]], source: str, log: Log) -> LandmarkSet:
    kept = [(item, pts) for item, pts in groups if len(pts)]
    if len(kept) < len(groups):
        log(f"  {len(groups) - len(kept)} of {len(groups)} clips have no usable face frame; skipped")
    if not kept:
        raise DataError(f"no usable face landmarks in {source}")
    points = np.concatenate([pts for _, pts in kept]).astype(np.float32)
    labels = np.concatenate([np.full(len(pts), item.emotion) for item, pts in kept])
    actors = np.concatenate([np.full(len(pts), item.actor) for item, pts in kept])
    keys = np.concatenate([np.full(len(pts), clip_key(item)) for item, pts in kept])
    return LandmarkSet(points, labels, actors, source, keys)


def load_landmark_csvs(root: Path, frames_per_clip: int = 1, log: Log = lambda _: None) -> LandmarkSet:
    """Every speech clip's landmarks from a folder of official RAVDESS landmark CSVs."""
    items = [i for i in ravdess.scan(root, CSV_SUFFIXES) if i.vocal_channel == 1]
    groups = [(item, read_landmark_csv(item.path, frames_per_clip)) for item in items]
    return _stack(groups, f"OpenFace landmark CSVs ({Path(root).name})", log)
