"""Scene cuts from sampled frames (colour-histogram distances) and snapping segment boundaries to them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from emoscore.config import SmoothingConfig
from emoscore.errors import InputError

MIN_SNAPPED_SECONDS = 1.0  # snapping never makes a segment shorter than this


class SceneDetector:
    """Finds hard cuts in a stream of sampled frames without storing them.

    Each frame (BGR (h, w, 3) or grey (h, w) uint8) becomes an 8x8x8 colour histogram; a Bhattacharyya
    distance (in [0, 1]) to the previous frame above `threshold` is a cut, placed midway between the two
    frames' times (the cut happened somewhere between them).
    """

    def __init__(self, threshold: float = SmoothingConfig().scene_threshold, max_width: int = 160):
        if not 0 < threshold <= 1:
            raise InputError(f"scene threshold must be in (0, 1], got {threshold!r}")
        self.threshold = threshold
        self.max_width = max_width
        self._cuts: list[float] = []
        self._previous: tuple[float, np.ndarray] | None = None

    def histogram(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0:
            raise InputError(f"frame must be a non-empty uint8 (h, w[, 3]) image, got {frame.dtype} "
                             f"{frame.shape}")
        if frame.ndim == 2 or frame.shape[2] == 1:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if frame.shape[1] > self.max_width:
            height = max(1, round(frame.shape[0] * self.max_width / frame.shape[1]))
            frame = cv2.resize(frame, (self.max_width, height), interpolation=cv2.INTER_AREA)
        hist = cv2.calcHist([frame], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
        return np.asarray(hist / max(float(hist.sum()), 1.0), dtype=np.float32)

    def update(self, t: float, frame: np.ndarray) -> bool:
        """Feed the frame sampled at time t (seconds, increasing); True if a cut precedes it."""
        import cv2

        hist = self.histogram(frame)
        is_cut = False
        if self._previous is not None:
            t_prev, h_prev = self._previous
            if t <= t_prev:
                raise InputError(f"frame times must increase: {t} after {t_prev}")
            is_cut = cv2.compareHist(h_prev, hist, cv2.HISTCMP_BHATTACHARYYA) > self.threshold
            if is_cut:
                self._cuts.append((t_prev + t) / 2)
        self._previous = (t, hist)
        return bool(is_cut)

    @property
    def cuts(self) -> np.ndarray:
        """(k,) cut times in seconds, increasing."""
        return np.array(self._cuts, dtype=np.float64)


def scene_cuts(times: Iterable[float], frames: Iterable[np.ndarray],
               threshold: float = SmoothingConfig().scene_threshold) -> np.ndarray:
    """Cut times (k,) in seconds from frames sampled at `times`; see SceneDetector."""
    detector = SceneDetector(threshold)
    for t, frame in zip(times, frames, strict=True):
        detector.update(float(t), frame)
    return detector.cuts


def snap_to_cuts(edges: np.ndarray, cuts: np.ndarray, max_distance: float,
                 min_gap: float = MIN_SNAPPED_SECONDS) -> np.ndarray:
    """Move each inner edge onto the nearest cut within max_distance seconds.

    edges: (m + 1,) increasing segment edges; the first and last stay put. A cut is taken only if the
    segments either side stay at least min_gap long (or no shorter than they were) and in order.
    """
    edges = np.array(edges, dtype=np.float64)
    cuts = np.sort(np.asarray(cuts, dtype=np.float64))
    for i in range(1, len(edges) - 1):
        lo = min(edges[i - 1] + min_gap, edges[i])
        hi = max(edges[i + 1] - min_gap, edges[i])
        near = cuts[(np.abs(cuts - edges[i]) <= max_distance) & (cuts >= lo) & (cuts <= hi)]
        if len(near):
            edges[i] = near[np.argmin(np.abs(near - edges[i]))]
    return edges


