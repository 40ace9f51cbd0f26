"""Note events, keys and transposition: pure functions with known answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emoscore.errors import DataError, InputError
from emoscore.music import events as ev

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data" / "music"
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)


def scale_notes(tonic: int, intervals: tuple[int, ...] = MAJOR_SCALE, repeats: int = 3) -> np.ndarray:
    """A scale played up `repeats` times, tonic and fifth held longer (so the key is unambiguous)."""
    rows, t = [], 0.0
    for _ in range(repeats):
        for i, step in enumerate(intervals):
            length = 1.0 if i in (0, 4) else 0.25
            rows.append((t, t + length, 60 + tonic + step, 80))
            t += length
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("tonic", [0, 2, 7, 10])
def test_estimate_key_of_major_scale(tonic: int) -> None:
    key = ev.estimate_key(scale_notes(tonic))
    assert (key.tonic, key.mode) == (tonic, "major")


def test_estimate_key_of_harmonic_minor() -> None:
    notes = scale_notes(9, (0, 2, 3, 5, 7, 8, 11))  # A harmonic minor
    assert ev.estimate_key(notes) == ev.Key(9, "minor")


@pytest.mark.parametrize("tonic", range(12))
def test_transposition_round_trip(tonic: int) -> None:
    notes = scale_notes(tonic)
    shift = ev.shift_to_common_key(ev.estimate_key(notes))
    common = ev.transpose(notes, shift)
    assert ev.estimate_key(common) == ev.Key(0, "major")
    assert -6 <= shift <= 5
    np.testing.assert_array_equal(ev.transpose(common, -shift), notes)


def test_transpose_folds_into_range() -> None:
    notes = np.array([[0, 1, 105, 80], [1, 2, 22, 80]], dtype=np.float64)
    out = ev.transpose(notes, 5)
    assert out[:, 2].tolist() == [98, 27]


def test_tokens_round_trip_on_the_grid() -> None:
    step = ev.NOMINAL_STEP_SECONDS
    notes = np.array([[0, 4 * step, 60, 70], [0, 2 * step, 64, 90], [3 * step, 4 * step, 67, 40]], np.float64)
    tokens = ev.tokenize(ev.sort_notes(notes))
    assert tokens[:, 0].tolist() == [0, 0, 3]
    back = ev.detokenize(tokens) * [step, step, 1, 1]
    np.testing.assert_allclose(back[:, :3], ev.sort_notes(notes)[:, :3])
    assert np.all(np.abs(back[:, 3] - ev.sort_notes(notes)[:, 3]) < 16)


def test_tokenize_merges_duplicates_and_caps_rests() -> None:
    notes = np.array([[0, 0.1, 60, 80], [0.01, 0.1, 60, 80], [10.0, 10.5, 62, 80]], np.float64)
    tokens = ev.tokenize(notes)
    assert len(tokens) == 2 and tokens[1, 0] == ev.MAX_SHIFT
    assert all(0 <= tokens[:, i].max() < size for i, size in enumerate(ev.FIELD_SIZES))


def test_real_clip_preprocessing() -> None:
    notes = ev.read_midi_notes(DATA / "Q1_0vLPYiPN7qY_2.mid")
    tokens, key = ev.preprocess_notes(notes)
    assert len(tokens) > 100 and key.mode in ("major", "minor")
    common = ev.detokenize(tokens)
    assert ev.estimate_key(common) in (ev.Key(0, "major"), ev.Key(9, "minor"))


def test_unreadable_midi_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "Q1_bad_0.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(DataError, match="cannot read MIDI"):
        ev.read_midi_notes(bad)


@pytest.mark.parametrize(("text", "expected"), [("D minor", ev.Key(2, "minor")), ("Bb", ev.Key(10, "major")),
                                                ("f#m", ev.Key(6, "minor")), ("Eb major", ev.Key(3, "major"))])
def test_parse_key(text: str, expected: ev.Key) -> None:
    assert ev.parse_key(text) == expected


def test_parse_key_rejects_nonsense() -> None:
    with pytest.raises(InputError):
        ev.parse_key("H dorian")


def test_piece_stats_and_repetition() -> None:
    loop = np.array([[i * 0.5, i * 0.5 + 0.4, (60, 62, 64, 65)[i % 4], 80] for i in range(40)], np.float64)
    stats = ev.piece_stats(loop, seconds=20.0)
    assert stats["density"] == pytest.approx(2.0)
    assert stats["pc_entropy"] == pytest.approx(2.0)
    assert stats["repeated_4grams"] > 0.8
    assert ev.repeated_ngrams(np.arange(40.0)) == 0.0


def test_key_names_and_profiles_without_music21_match_music21() -> None:
    import itertools

    import music21

    from emoscore.errors import InputError
    from emoscore.music.events import _key_profiles, parse_key

    ks = music21.analysis.discrete.KrumhanslSchmuckler()
    np.testing.assert_array_equal(_key_profiles(), [ks.getWeights("major"), ks.getWeights("minor")])
    for letter, accidental, octave, mode in itertools.product("CDEFGABcdefgabHx", ["", "#", "##", "b", "bb", "#b",
                                                                                  "~", "x"], ["", "4"],
                                                              ["major", "minor"]):
        tonic = letter + accidental.replace("b", "-") + octave
        try:
            want = int(music21.key.Key(tonic, mode).tonic.pitchClass)
        except Exception:
            with pytest.raises(InputError):
                parse_key(f"{letter}{accidental}{octave} {mode}")
            continue
        assert parse_key(f"{letter}{accidental}{octave} {mode}").tonic == want, (tonic, mode)


def test_composing_never_imports_music21(tmp_path: Path) -> None:
    probe = ("import sys; from emoscore.music.events import parse_key, estimate_key; import numpy as np; "
             "parse_key('F# minor'); estimate_key(np.array([[0.0, 1.0, 60.0, 90.0]])); "
             "print('music21' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr
