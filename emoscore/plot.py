"""The emotion timeline as a picture (OpenCV drawing, no matplotlib).

From top to bottom: the fused emotion probabilities stacked per window, the segments coloured by quadrant
(Q1 yellow, Q2 red, Q3 blue, Q4 green) and labelled, valence and arousal curves in [-1, 1], a time axis in
seconds and a legend. Scene cuts are dashed vertical lines across all three panels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emoscore.constants import EMOTIONS
from emoscore.errors import InputError, OutputError
from emoscore.fileio import atomic_path
from emoscore.timeline import Timeline, window_centres

Colour = tuple[int, int, int]  # BGR
BACKGROUND: Colour = (255, 255, 255)
INK: Colour = (40, 40, 40)
GRID: Colour = (215, 215, 215)
CUT: Colour = (150, 0, 150)
VALENCE: Colour = (140, 120, 0)
AROUSAL: Colour = (0, 110, 240)
EMOTION_COLOURS: dict[str, Colour] = {
    "neutral": (175, 175, 175), "calm": (150, 205, 130), "happy": (70, 225, 250), "sad": (200, 130, 60),
    "angry": (60, 60, 215), "fearful": (165, 80, 150), "disgust": (60, 135, 115), "surprised": (60, 160, 255),
}
QUADRANT_COLOURS: dict[str, Colour] = {"Q1": (0, 215, 255), "Q2": (40, 40, 220), "Q3": (200, 110, 40),
                                       "Q4": (80, 170, 60)}
FONT = cv2.FONT_HERSHEY_SIMPLEX
LEFT, RIGHT = 80, 20  # margins, px
TITLE_ROW, AXIS_ROW, GAP, SWATCH = 30, 26, 6, 14  # px
TICK_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)  # seconds


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45,
          colour: Colour = INK) -> None:
    cv2.putText(image, text, org, FONT, scale, colour, 1, cv2.LINE_AA)


def _legend_items() -> list[tuple[str, Colour, bool]]:
    """(name, colour, drawn as a line) for each legend entry."""
    items = [(e, EMOTION_COLOURS[e], False) for e in EMOTIONS]
    return items + [("valence", VALENCE, True), ("arousal", AROUSAL, True), ("scene cut", CUT, True)]


def _legend_positions(width: int) -> list[tuple[int, int]]:
    """(x, row) of each legend entry, wrapping onto a new row where the image is too narrow."""
    x, row, positions = LEFT, 0, []
    for name, _, is_line in _legend_items():
        step = SWATCH + 14 + (6 if is_line else 0) + cv2.getTextSize(name, FONT, 0.4, 1)[0][0]
        if x + step > width - RIGHT and x > LEFT:
            x, row = LEFT, row + 1
        positions.append((x, row))
        x += step
    return positions


def panel_layout(width: int, height: int) -> dict[str, tuple[int, int]]:
    """Vertical extent (top, bottom) in px of each panel: fixed rows for text, the rest shared 55/14/31."""
    legend_rows = 1 + max(row for _, row in _legend_positions(width))
    legend_top = height - legend_rows * (SWATCH + 4) - 4
    free = legend_top - TITLE_ROW - AXIS_ROW - 2 * GAP
    probs_bottom = TITLE_ROW + int(0.55 * free)
    band_bottom = probs_bottom + GAP + int(0.14 * free)
    va_bottom = legend_top - AXIS_ROW
    return {"probs": (TITLE_ROW, probs_bottom), "band": (probs_bottom + GAP, band_bottom),
            "va": (band_bottom + GAP, va_bottom), "legend": (legend_top, height)}


def _x_of(t: np.ndarray | float, duration: float, width: int) -> np.ndarray:
    return LEFT + np.asarray(t, dtype=np.float64) / duration * (width - LEFT - RIGHT)


def _draw_probs(image: np.ndarray, timeline: Timeline, top: int, bottom: int) -> None:
    """Stacked area of the 8 fused probabilities, interpolated between window centres."""
    width = image.shape[1] - LEFT - RIGHT
    height = bottom - top
    t = (np.arange(width) + 0.5) / width * timeline.duration
    centres = window_centres(timeline.times, timeline.window_seconds, timeline.duration)
    probs = np.stack([np.interp(t, centres, timeline.probs[:, k]) for k in range(len(EMOTIONS))], axis=1)
    cum = np.cumsum(probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-9), axis=1)  # (width, 8)
    level = (height - np.arange(height) - 0.5) / height  # (height,) 1 at the top, 0 at the bottom
    label = np.minimum((cum[None, :, :] < level[:, None, None]).sum(axis=2), len(EMOTIONS) - 1)
    palette = np.array([EMOTION_COLOURS[e] for e in EMOTIONS], dtype=np.uint8)
    image[top:bottom, LEFT:LEFT + width] = palette[label]
    _text(image, "emotion", (8, (top + bottom) // 2))


def _draw_band(image: np.ndarray, timeline: Timeline, top: int, bottom: int) -> None:
    """One coloured block per segment, labelled with its quadrant and top emotion where it fits."""
    width = image.shape[1]
    for seg in timeline.segments:
        span = _x_of(np.array([seg.start, seg.end]), timeline.duration, width)
        x0, x1 = (int(round(float(v))) for v in span)
        colour = QUADRANT_COLOURS[seg.quadrant]
        cv2.rectangle(image, (x0, top), (max(x1 - 1, x0), bottom), colour, thickness=-1)
        cv2.line(image, (x0, top), (x0, bottom), BACKGROUND, 1)
        text_colour: Colour = INK if seg.quadrant in ("Q1", "Q4") else BACKGROUND
        for label in (f"{seg.quadrant} {seg.emotion}", seg.quadrant):
            (w, h), _ = cv2.getTextSize(label, FONT, 0.45, 1)
            if w + 6 < x1 - x0:
                _text(image, label, ((x0 + x1 - w) // 2, (top + bottom + h) // 2), colour=text_colour)
                break
    _text(image, "segment", (8, (top + bottom) // 2 + 5))


def _draw_va(image: np.ndarray, timeline: Timeline, top: int, bottom: int) -> None:
    """Valence and arousal per window centre, on a [-1, 1] scale with a zero line."""
    width = image.shape[1]
    cv2.rectangle(image, (LEFT, top), (width - RIGHT, bottom), GRID, 1)
    mid = (top + bottom) // 2
    cv2.line(image, (LEFT, mid), (width - RIGHT, mid), GRID, 1)
    centres = window_centres(timeline.times, timeline.window_seconds, timeline.duration)
    xs = _x_of(centres, timeline.duration, width)
    for values, colour in ((timeline.valence, VALENCE), (timeline.arousal, AROUSAL)):
        ys = mid - np.clip(values, -1, 1) * (bottom - top) / 2
        points = np.round(np.stack([xs, ys], axis=1)).astype(np.int32)
        cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
    _text(image, "+1", (LEFT - 24, top + 10), 0.35)
    _text(image, "-1", (LEFT - 24, bottom), 0.35)
    _text(image, "V / A", (8, mid + 5))


def tick_step(duration: float, max_ticks: int = 12) -> float:
    """The smallest of TICK_STEPS giving at most max_ticks ticks over duration seconds."""
    for step in TICK_STEPS:
        if duration / step <= max_ticks:
            return float(step)
    return float(TICK_STEPS[-1])


def _draw_axis(image: np.ndarray, duration: float, y: int, top: int) -> None:
    width = image.shape[1]
    cv2.line(image, (LEFT, y), (width - RIGHT, y), INK, 1)
    step = tick_step(duration)
    for t in np.arange(0.0, duration + 1e-9, step):
        x = int(round(float(_x_of(t, duration, width))))
        cv2.line(image, (x, y), (x, y + 5), INK, 1)
        if t > 0:
            cv2.line(image, (x, top), (x, y), GRID, 1)
        label = f"{t:g}s"
        (w, h), _ = cv2.getTextSize(label, FONT, 0.4, 1)
        _text(image, label, (min(max(x - w // 2, 0), width - w - 2), y + 8 + h), 0.4)


def _draw_cuts(image: np.ndarray, timeline: Timeline, top: int, bottom: int) -> None:
    for cut in timeline.scene_cuts:
        x = int(round(float(_x_of(cut, timeline.duration, image.shape[1]))))
        for y in range(top, bottom, 8):
            cv2.line(image, (x, y), (x, min(y + 4, bottom)), CUT, 2)


def _draw_legend(image: np.ndarray, top: int) -> None:
    """Emotion swatches, then the valence/arousal line colours and the scene-cut marker."""
    for (name, colour, is_line), (x, row) in zip(_legend_items(), _legend_positions(image.shape[1]),
                                                 strict=True):
        y = top + row * (SWATCH + 4)
        if is_line:
            cv2.line(image, (x, y + SWATCH // 2), (x + SWATCH + 6, y + SWATCH // 2), colour, 2)
        else:
            cv2.rectangle(image, (x, y), (x + SWATCH, y + SWATCH), colour, thickness=-1)
        _text(image, name, (x + SWATCH + 4 + (6 if is_line else 0), y + SWATCH - 2), 0.4)


def plot_timeline(timeline: Timeline, width: int = 1200, height: int = 420) -> np.ndarray:
    """(height, width, 3) BGR uint8 picture of the timeline (see the module docstring)."""
    if width < 400 or height < 200:
        raise InputError(f"plot must be at least 400x200 px, got {width}x{height}")
    if not timeline.duration > 0 or len(timeline.times) == 0:
        raise InputError(f"cannot plot an empty timeline (duration {timeline.duration})")
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    panels = panel_layout(width, height)
    n_seg, n_cut = len(timeline.segments), len(timeline.scene_cuts)
    title = (f"emotion timeline: {timeline.duration:.1f} s, {n_seg} segment{'s' * (n_seg != 1)}, "
             f"{n_cut} scene cut{'s' * (n_cut != 1)}")
    _text(image, title, (LEFT, panels["probs"][0] - 8), 0.5)
    _draw_axis(image, timeline.duration, panels["va"][1] + 4, panels["probs"][0])
    _draw_probs(image, timeline, *panels["probs"])
    _draw_band(image, timeline, *panels["band"])
    _draw_va(image, timeline, *panels["va"])
    _draw_cuts(image, timeline, panels["probs"][0], panels["va"][1])
    _draw_legend(image, panels["legend"][0])
    return image


def write_png(path: Path, image: np.ndarray, overwrite: bool = True) -> None:
    """Write a BGR or grey uint8 image as PNG atomically (encoded in memory, then renamed into place)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise InputError(f"image must be a non-empty uint8 (h, w[, 3]) array, got {image.dtype} "
                         f"{image.shape}")
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OutputError(f"could not encode a PNG for {path}")
    with atomic_path(Path(path), overwrite) as tmp:
        tmp.write_bytes(encoded.tobytes())
