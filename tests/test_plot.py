from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emoscore.config import Config
from emoscore.constants import EMOTIONS
from emoscore.errors import InputError, OutputError
from emoscore.plot import (
    BACKGROUND,
    LEFT,
    QUADRANT_COLOURS,
    RIGHT,
    panel_layout,
    plot_timeline,
    tick_step,
    write_png,
)
from emoscore.speech import WindowProbs
from emoscore.timeline import Timeline, build_timeline


def synthetic_timeline() -> Timeline:
    """20 s: happy for 10 windows, then sad for 8, with a scene cut at 6 s."""
    labels = ["happy"] * 10 + ["sad"] * 8
    probs = np.full((18, 8), 0.02, np.float32)
    for i, label in enumerate(labels):
        probs[i, EMOTIONS.index(label)] = 0.86
    visual = WindowProbs(np.arange(18.0), probs, np.ones(18, bool))
    audio = WindowProbs(np.arange(18.0), np.zeros((18, 8), np.float32), np.zeros(18, bool))
    return build_timeline(visual, audio, 20.0, np.array([6.0]), Config())


def test_plot_has_the_right_shape_and_draws_something() -> None:
    image = plot_timeline(synthetic_timeline(), width=900, height=360)
    assert image.shape == (360, 900, 3) and image.dtype == np.uint8
    assert (image != np.array(BACKGROUND, np.uint8)).any(axis=2).mean() > 0.3


def test_plot_band_shows_the_quadrant_colours_in_order() -> None:
    image = plot_timeline(synthetic_timeline())
    top, bottom = panel_layout(image.shape[1], image.shape[0])["band"]
    row = image[(top + bottom) // 2 - 8]  # above the label text
    span = image.shape[1] - LEFT - RIGHT
    x_q1, x_q3 = LEFT + int(0.2 * span), LEFT + int(0.8 * span)  # 4 s and 16 s; the boundary is at 10.5 s
    assert tuple(int(c) for c in row[x_q1]) == QUADRANT_COLOURS["Q1"]
    assert tuple(int(c) for c in row[x_q3]) == QUADRANT_COLOURS["Q3"]


def test_tick_step() -> None:
    assert tick_step(5.0) == 0.5
    assert tick_step(20.0) == 2.0
    assert tick_step(600.0) == 60.0


def test_plot_rejects_a_tiny_canvas() -> None:
    with pytest.raises(InputError, match="10x10"):
        plot_timeline(synthetic_timeline(), width=10, height=10)


def test_write_png_round_trips_and_respects_overwrite(tmp_path: Path) -> None:
    image = plot_timeline(synthetic_timeline(), width=600, height=240)
    target = tmp_path / "timeline.png"
    write_png(target, image)
    np.testing.assert_array_equal(cv2.imread(str(target)), image)
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.png"]  # no temporary file left behind
    with pytest.raises(OutputError, match="exists"):
        write_png(target, image, overwrite=False)
    with pytest.raises(InputError, match="float"):
        write_png(tmp_path / "bad.png", image.astype(np.float32))
