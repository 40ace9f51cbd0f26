"""Arrangement and tempo grid: chords follow the notes, parts stay in register, the grid is continuous."""

from __future__ import annotations

import numpy as np
import pytest

from emoscore.config import MusicConfig
from emoscore.music import arrange
from emoscore.music.compose import key_shift
from emoscore.music.events import Key, parse_key
from emoscore.music.tempo import build_tempo_map


def chord_melody(roots: list[tuple[int, str]], window: int = 8) -> np.ndarray:
    """Arpeggiated triads, one per `window` steps (note array in steps)."""
    rows = []
    for i, (root, quality) in enumerate(roots):
        for j, interval in enumerate(arrange.TRIADS[quality]):
            start = i * window + j * 2
            rows.append((start, start + 2, 60 + root + interval, 80))
    return np.array(rows, dtype=np.float64)


def test_chords_follow_the_notes() -> None:
    progression = [(0, "major"), (9, "minor"), (5, "major"), (7, "major")]
    chords = arrange.estimate_chords(chord_melody(progression), 0, 32, 8, Key(0, "major"))
    assert [(c.root, c.quality) for c in chords] == progression
    assert [c.start for c in chords] == [0, 8, 16, 24]


def test_empty_window_keeps_the_previous_chord() -> None:
    melody = chord_melody([(7, "major")])
    chords = arrange.estimate_chords(melody, 0, 24, 8, Key(0, "major"))
    assert [(c.root, c.quality) for c in chords] == [(7, "major")] * 3


@pytest.mark.parametrize("quadrant", ["Q1", "Q2", "Q3", "Q4"])
def test_parts_follow_the_key_and_stay_in_register(quadrant: str) -> None:
    style = MusicConfig().style(quadrant)
    target = parse_key(style.key)
    semis = key_shift(target)
    progression = [(0, "major"), (5, "major"), (7, "major"), (0, "major")]
    chords = [c.transposed(semis) for c in arrange.estimate_chords(chord_melody(progression), 0, 32, 8,
                                                                     Key(0, "major"))]
    scale = {(target.major_tonic + d) % 12 for d in (0, 2, 4, 5, 7, 9, 11)}
    pad, bass = arrange.pad_notes(chords, style), arrange.bass_notes(chords, style)
    assert {int(p) % 12 for p in pad[:, 2]} <= scale and {int(p) % 12 for p in bass[:, 2]} <= scale
    assert pad[:, 2].min() >= style.pad_low and bass[:, 2].min() >= style.bass_low
    assert (pad[:, 1] > pad[:, 0]).all() and (bass[:, 1] > bass[:, 0]).all()
    assert pad[:, 1].max() <= 32 and bass[:, 1].max() <= 32
    melody = arrange.place_melody(chord_melody(progression), semis, style)
    assert style.melody_low <= melody[:, 2].min() and melody[:, 2].max() <= style.melody_high


def test_quadrant_styles_differ() -> None:
    config = MusicConfig()
    q1, q2, q3, q4 = (config.style(q) for q in ("Q1", "Q2", "Q3", "Q4"))
    assert q2.tempo > q1.tempo > q4.tempo > q3.tempo
    assert parse_key(q2.key).mode == parse_key(q3.key).mode == "minor"
    assert parse_key(q1.key).mode == parse_key(q4.key).mode == "major"
    assert q2.staccato < 1 and q2.pad_program != q4.pad_program


def test_tempo_map_is_continuous_and_ramps() -> None:
    tempo_map = build_tempo_map([10.0], [60.0, 120.0], 2.0, 20.0)
    assert tempo_map.to_steps(9.0) == pytest.approx(9.0 * 4, rel=1e-3)  # 60 BPM = 4 steps/s
    assert tempo_map.step_seconds(15.0) == pytest.approx(0.125, rel=1e-2)
    assert tempo_map.step_seconds(10.0) == pytest.approx(60 / 90 / 4, rel=5e-2)
    steps = np.linspace(0, 100, 50)
    np.testing.assert_allclose(tempo_map.to_steps(tempo_map.to_seconds(steps)), steps, atol=1e-6)
