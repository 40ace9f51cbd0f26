"""dlib's 68-point shape predictor evaluated in numpy from a memory-mapped copy of its numbers.

dlib takes ~0.6 s (holding the GIL) to parse its 100 MB model file in every process, the longest single step of
scoring a short clip. The same cascade of regression trees (Kazemi & Sullivan 2014, as dlib's shape_predictor
evaluates it) runs here from the model's numbers, converted once into .npy files in the user's cache and then
memory-mapped (~1 ms). Every step follows dlib's arithmetic: the similarity transform from the mean shape in
double precision cast to float32, feature pixels at round-half-up positions (0 outside the image), float32
split tests, leaf values added tree by tree in float32, the result rounded to whole pixels as dlib's points
are; tests/test_shape_model.py checks the landmarks equal dlib's. The one-time conversion parses dlib's serialization
(every number a packed integer, floats as mantissa and exponent) with numba (~2 s); without numba, or with an
unreadable cache, callers fall back to dlib's own predictor.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

N_POINTS = 68
SPLITS = 15  # per tree (depth 4): 16 leaves
FORMAT = "v1"  # of the cached arrays; change when the layout below changes
ARRAYS = ("mean_shape", "anchors", "deltas", "split_a", "split_b", "thresholds", "leaves")


def cache_folder(dat: Path) -> Path:
    """<XDG cache>/emoscore/ folder of the arrays converted from the predictor file `dat` (keyed by its size and
    modification time, so a changed file is converted again)."""
    stat = dat.stat()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "emoscore" / f"shape_predictor-{FORMAT}-{stat.st_size}-{stat.st_mtime_ns}"


class ShapeModel:
    """The predictor's arrays: mean_shape (68, 2); per cascade c (C = 15) and tree t (T = 500): anchors (C, F) and
    deltas (C, F, 2) of the F = 500 feature pixels, split_a/split_b (C, T, 15) feature indices and thresholds
    (C, T, 15) of each node, leaves (C, T, 16, 136) float32 shape increments."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean_shape = arrays["mean_shape"]
        self.anchors, self.deltas = arrays["anchors"], arrays["deltas"]
        self.split_a, self.split_b, self.thresholds = arrays["split_a"], arrays["split_b"], arrays["thresholds"]
        self.leaves = arrays["leaves"]
        self._trees = np.arange(self.split_a.shape[1])

    def fit(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(68, 2) float32 whole-pixel landmarks of the face in `box` (left, top, right, bottom, dlib's inclusive
        rectangle) of the (h, w) uint8 frame: what dlib.shape_predictor(gray, dlib.rectangle(*box)) gives."""
        left, top, right, bottom = box
        scale = np.array([right - left, bottom - top], dtype=np.float64)
        origin = np.array([left, top], dtype=np.float64)
        shape = self.mean_shape.copy()
        for c in range(len(self.leaves)):
            values = self._feature_pixels(gray, c, shape, scale, origin)
            trees, node = self._trees, np.zeros(len(self._trees), dtype=np.intp)
            for _ in range(4):  # down each tree: to the left child when a - b > threshold
                differences = values[self.split_a[c][trees, node]] - values[self.split_b[c][trees, node]]
                node = np.where(differences > self.thresholds[c][trees, node], 2 * node + 1, 2 * node + 2)
            steps = self.leaves[c][trees, node - SPLITS]  # (T, 136)
            # Row by row in float32, as dlib adds one tree's leaf after the other (a reduction over the outer
            # axis of a C-ordered array adds whole rows in order).
            shape = np.add.reduce(np.concatenate([shape.reshape(1, -1), steps]), axis=0,
                                  dtype=np.float32).reshape(N_POINTS, 2)
        return _to_pixels(shape, scale, origin).astype(np.float32)

    def _feature_pixels(self, gray: np.ndarray, c: int, shape: np.ndarray, scale: np.ndarray,
                        origin: np.ndarray) -> np.ndarray:
        """(F,) float32 intensities of cascade c's feature pixels around the current shape (0 outside)."""
        m = _similarity(self.mean_shape, shape).astype(np.float32)
        deltas, anchors = self.deltas[c], self.anchors[c]
        x = (m[0, 0] * deltas[:, 0] + m[0, 1] * deltas[:, 1]) + shape[anchors, 0]
        y = (m[1, 0] * deltas[:, 0] + m[1, 1] * deltas[:, 1]) + shape[anchors, 1]
        px = _to_pixels(np.stack([x, y], axis=1), scale, origin).astype(np.intp)
        height, width = gray.shape
        inside = (px[:, 0] >= 0) & (px[:, 0] < width) & (px[:, 1] >= 0) & (px[:, 1] < height)
        values = np.zeros(len(px), dtype=np.float32)
        values[inside] = gray[px[inside, 1], px[inside, 0]]
        return values


def _to_pixels(points: np.ndarray, scale: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(n, 2) float32 box-normalised points -> (n, 2) whole pixels: the box's affine map in double, then
    round half up (dlib's conversion of a point to integer coordinates)."""
    return np.floor(points.astype(np.float64) * scale + origin + 0.5)


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 2) scale x rotation of the least-squares similarity from source (n, 2) to target (n, 2) points, in
    double precision (Umeyama 1991, as dlib's find_similarity_transform)."""
    source, target = source.astype(np.float64), target.astype(np.float64)
    ds, dt = source - source.mean(axis=0), target - target.mean(axis=0)
    variance = (ds**2).sum() / len(source)
    covariance = dt.T @ ds / len(source)
    u, d, vt = np.linalg.svd(covariance)
    s = np.ones(2)
    det = np.linalg.det(covariance)
    if det < 0 or (det == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        s[1 if d[1] < d[0] else 0] = -1.0
    rotation = u @ np.diag(s) @ vt
    return (1.0 if variance == 0 else float((d * s).sum()) / variance) * rotation


# --- the one-time conversion ---------------------------------------------------------------------------------

def load(dat: Path, convert_if_missing: bool = True) -> ShapeModel:
    """The model of dlib predictor file `dat`, from the cache (memory-mapped), converted into it first if needed
    (else FileNotFoundError). Raises ImportError (no numba) or ValueError (not a 68-point predictor) when it cannot
    be converted."""
    folder = cache_folder(dat)
    with contextlib.suppress(OSError, ValueError):
        return ShapeModel({name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS})
    if not convert_if_missing:
        raise FileNotFoundError(f"no converted shape predictor in {folder}")
    arrays = convert(dat)
    with contextlib.suppress(OSError):
        _save(arrays, folder)
    return ShapeModel(arrays)


def _save(arrays: dict[str, np.ndarray], folder: Path) -> None:
    """Write the arrays into `folder` whole or not at all (a temporary folder renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=folder.name, suffix=".part", dir=folder.parent))
    try:
        for name, array in arrays.items():
            np.save(part / f"{name}.npy", array)
        os.replace(part, folder)
    except OSError:
        for file in part.glob("*"):
            file.unlink()
        part.rmdir()
        if not folder.is_dir():
            raise


def convert(dat: Path) -> dict[str, np.ndarray]:
    """dlib's serialized shape_predictor (version 1: mean shape, forests, anchor indices, deltas) as arrays."""
    ints = _packed_integers(np.fromfile(dat, dtype=np.uint8))
    if len(ints) < 4 or ints[0] != 1 or ints[1] != -2 * N_POINTS or ints[2] != -1:
        raise ValueError(f"{dat} is not a dlib 68-point shape predictor")
    mean_shape = _floats(ints[3:3 + 4 * N_POINTS].reshape(N_POINTS, 2, 2))
    at = 3 + 4 * N_POINTS
    cascades, trees = int(ints[at]), int(ints[at + 1])
    at += 1
    leaf = 2 + 4 * N_POINTS  # -rows, -cols, then 136 floats
    tree = 1 + 4 * SPLITS + 1 + (SPLITS + 1) * leaf  # splits: size, (a, b, threshold) each; leaves: size, 16 each
    forests = ints[at:at + cascades * (1 + trees * tree)].reshape(cascades, 1 + trees * tree)[:, 1:]
    forests = forests.reshape(cascades, trees, tree)
    at += cascades * (1 + trees * tree)
    if not (forests[:, :, 0] == SPLITS).all() or not (forests[:, :, 1 + 4 * SPLITS] == SPLITS + 1).all():
        raise ValueError(f"{dat}: trees of another depth than 4")
    splits = forests[:, :, 1:1 + 4 * SPLITS].reshape(cascades, trees, SPLITS, 4)
    leaves = forests[:, :, 2 + 4 * SPLITS:].reshape(cascades, trees, SPLITS + 1, leaf)[..., 2:]
    features = int(ints[at + 1])
    anchors = ints[at + 1:at + 1 + cascades * (1 + features)].reshape(cascades, 1 + features)[:, 1:]
    at += 1 + cascades * (1 + features)
    deltas = ints[at + 1:at + 1 + cascades * (1 + 4 * features)].reshape(cascades, 1 + 4 * features)[:, 1:]
    if at + 1 + cascades * (1 + 4 * features) != len(ints):
        raise ValueError(f"{dat}: unexpected layout")
    return {"mean_shape": mean_shape, "anchors": anchors.astype(np.int16),
            "deltas": _floats(deltas.reshape(cascades, features, 2, 2)),
            "split_a": splits[..., 0].astype(np.int16), "split_b": splits[..., 1].astype(np.int16),
            "thresholds": _floats(splits[..., 2:4]),
            "leaves": _floats(leaves.reshape(cascades, trees, SPLITS + 1, 2 * N_POINTS, 2))}


def _floats(pairs: np.ndarray) -> np.ndarray:
    """(..., 2) (mantissa, exponent) integer pairs -> (...) float32 (exact: dlib wrote float32 values)."""
    return np.ldexp(pairs[..., 0].astype(np.float64), pairs[..., 1].astype(np.int32)).astype(np.float32)


def _packed_integers(data: np.ndarray) -> np.ndarray:
    """dlib's serialization as a flat int64 array: each integer is a byte holding its length (low 4 bits) and sign
    (0x80), then that many little-endian bytes of its magnitude."""
    import numba

    return numba.njit(cache=True)(_unpack)(data)


def _unpack(data: Any) -> Any:
    out = np.empty(len(data) // 2 + 1, dtype=np.int64)
    i = k = 0
    while i < len(data):
        size = data[i] & 0x0F
        value: Any = 0
        for j in range(size):
            value |= np.int64(data[i + 1 + j]) << (8 * j)
        out[k] = -value if data[i] & 0x80 else value
        k += 1
        i += 1 + size
    return out[:k]
