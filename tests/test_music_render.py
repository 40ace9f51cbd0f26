"""FluidSynth rendering: exact length, stereo, not silent; soundfont selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from emoscore.errors import InputError
from emoscore.music.render import BUNDLED_SOUNDFONT, find_soundfont, render_midi

BUNDLED = str(Path(pretty_midi.__file__).parent / BUNDLED_SOUNDFONT)


def small_midi() -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI()
    for program, low in ((0, 60), (48, 48), (33, 36)):
        inst = pretty_midi.Instrument(program)
        inst.control_changes.append(pretty_midi.ControlChange(7, 100, 0.0))
        inst.notes += [pretty_midi.Note(90, low + i, 0.3 * i, 0.3 * i + 0.25) for i in range(6)]
        midi.instruments.append(inst)
    return midi


@pytest.mark.parametrize(("duration", "rate"), [(1.0, 22_050), (2.345, 44_100), (0.5, 16_000)])
def test_exact_length_stereo_not_silent(duration: float, rate: int) -> None:
    audio = render_midi(small_midi(), duration, rate, BUNDLED)
    assert audio.shape == (round(duration * rate), 2) and audio.dtype == np.float32
    assert np.sqrt(np.mean(audio**2)) > 1e-3 and np.abs(audio).max() <= 1.0


def test_default_soundfont_renders() -> None:
    audio = render_midi(small_midi(), 1.2, 44_100)
    assert audio.shape == (52_920, 2) and np.abs(audio).max() > 1e-3


def test_empty_midi_renders_silence() -> None:
    audio = render_midi(pretty_midi.PrettyMIDI(), 0.25, 8000, BUNDLED)
    assert audio.shape == (2000, 2) and np.abs(audio).max() < 1e-3


def test_soundfont_choice(tmp_path: Path) -> None:
    assert find_soundfont("").suffix == ".sf2"
    assert find_soundfont(BUNDLED) == Path(BUNDLED)
    with pytest.raises(InputError, match="soundfont not found"):
        find_soundfont(str(tmp_path / "missing.sf2"))
    with pytest.raises(InputError):
        render_midi(small_midi(), 1.0, 44_100, str(tmp_path / "missing.sf2"))
