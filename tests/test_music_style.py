"""Continuous valence/arousal styles, density control, pedal and phrasing, the MIDI tempo map, and the audio
judge's features and classifier on synthetic audio whose answer is known."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from emoscore.config import MusicConfig, QuadrantStyle
from emoscore.constants import QUADRANT_VA, QUADRANTS
from emoscore.data.music import va_quadrant
from emoscore.music import arrange
from emoscore.music.audio_features import FEATURE_NAMES, FEATURE_SAMPLE_RATE, audio_features
from emoscore.music.audio_judge import LabelledSet, train_audio_judge
from emoscore.music.compose import SegmentSpec, quadrant_weights, segment_style
from emoscore.music.properties import onset_rate, pedal_fraction, sounding_fraction
from emoscore.music.tempo import apply_tempo_map, build_tempo_map

SR = FEATURE_SAMPLE_RATE


def style_at(valence: float, arousal: float) -> QuadrantStyle:
    return segment_style(MusicConfig(), SegmentSpec(0.0, 1.0, va_quadrant(valence, arousal), valence, arousal))


def test_quadrant_centres_give_the_quadrant_styles() -> None:
    config = MusicConfig()
    for q in QUADRANTS:
        v, a = (0.5 * c for c in QUADRANT_VA[q])
        assert quadrant_weights(v, a)[q] == pytest.approx(1.0)
        assert segment_style(config, SegmentSpec(0.0, 1.0, q, v, a)) == config.style(q)


@pytest.mark.parametrize("valence", [-1.0, -0.6, -0.2, 0.0, 0.3, 0.9])
def test_arousal_moves_tempo_density_and_dynamics_monotonically(valence: float) -> None:
    styles = [style_at(valence, a) for a in np.linspace(-1, 1, 41)]
    for name in ("tempo", "min_notes_per_second", "max_notes_per_second", "melody_velocity"):
        values = np.array([getattr(s, name) for s in styles], dtype=float)
        assert (np.diff(values) >= -1e-9).all(), name
        assert values[-1] > values[0], name
    tempos = [s.tempo for s in styles]
    assert max(np.diff(tempos)) < 6.0  # smooth: no jump between neighbouring arousal values


def test_mild_sadness_is_between_neutral_and_devastated() -> None:
    mild, deep = style_at(-0.2, -0.2), style_at(-1.0, -1.0)
    calm_q3 = MusicConfig().q3
    assert deep.tempo < calm_q3.tempo < mild.tempo
    assert mild.max_notes_per_second > calm_q3.max_notes_per_second


def test_thin_notes_caps_the_count_and_keeps_the_time_covered() -> None:
    rng = np.random.default_rng(0)
    starts = np.sort(rng.choice(np.arange(200), 120, replace=False)).astype(float)
    melody = np.stack([starts, starts + 2, rng.integers(50, 80, 120), np.full(120, 70.0)], axis=1)
    chord = np.array([[10.0, 12, 60, 70], [10, 12, 64, 70], [10, 12, 67, 70], [10, 12, 72, 70]])
    melody = np.concatenate([melody[melody[:, 0] != 10], chord])
    thin = arrange.thin_notes(melody, 40)
    assert len(thin) <= 40
    assert thin[0, 0] == melody[:, 0].min()
    assert thin[:, 1].max() >= melody[:, 1].max() - 1e-9  # merged notes ring on to the end


def test_fill_sparse_reaches_the_minimum_on_the_grid() -> None:
    melody = np.array([[0.0, 4, 60, 80], [32, 36, 64, 80]])
    full = arrange.fill_sparse(melody, 8, 64.0)
    assert len(full) == 8
    assert np.allclose(full[:, 0], np.round(full[:, 0]))
    assert (full[:, 3] <= 80).all() and full[:, 0].max() < 64


def test_pedal_is_down_most_of_each_chord_and_lifts_at_changes() -> None:
    style = MusicConfig().q3
    chords = [arrange.Chord(s, s + 16.0, 4, "minor") for s in range(0, 64, 16)]
    events = arrange.pedal_events(chords, style)
    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0, name="melody")
    inst.control_changes = [pretty_midi.ControlChange(64, int(v), t * 0.1) for t, v in events]
    midi.instruments.append(inst)
    assert pedal_fraction(midi, 6.4) == pytest.approx(style.pedal, abs=0.05)
    downs = events[events[:, 1] > 0, 0]
    assert np.allclose(downs - np.array([c.start for c in chords]), 0.25)


def test_tempo_map_is_written_whole_and_matches_the_grid() -> None:
    duration = 12.0
    tempo_map = build_tempo_map([6.0], [80.0, 140.0], 2.0, duration)
    midi = pretty_midi.PrettyMIDI(initial_tempo=80.0)
    apply_tempo_map(midi, tempo_map, duration)
    times, bpm = midi.get_tempo_changes()
    assert bpm[0] == pytest.approx(80.0, rel=1e-3) and bpm[-1] == pytest.approx(140.0, rel=1e-3)
    assert len(bpm) > 3 and (np.diff(bpm) > 0).all()
    ticks_per_step = midi.resolution // 4
    for step in (0, 7, 40, 61, 90):
        tick = midi.time_to_tick(float(tempo_map.to_seconds(step)))
        assert tick == step * ticks_per_step


def test_symbolic_properties_on_a_known_case() -> None:
    notes = np.array([[0.0, 1.0, 40, 80], [0.02, 1.0, 60, 80], [2.0, 3.0, 60, 80]])
    assert onset_rate(notes, 4.0) == pytest.approx(2 / 4)
    assert sounding_fraction(notes[notes[:, 2] < 43], 4.0) == pytest.approx(0.25)


# --- the audio judge on synthetic audio -----------------------------------------------------------

def tone(freqs: tuple[float, ...], seconds: float, decay: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * f * t) for f in freqs) * np.exp(-t / decay) / len(freqs)


def piece(arousal_high: bool, rng: np.random.Generator, seconds: float = 6.0) -> np.ndarray:
    """Loud fast bright staccato for high arousal; soft slow mellow decays for low arousal."""
    out = np.zeros(int(seconds * SR))
    rate, gain, base = (6.0, 0.9, 440.0) if arousal_high else (1.2, 0.3, 220.0)
    t = 0.0
    while t < seconds - 0.5:
        f = base * 2 ** (rng.integers(0, 12) / 12)
        note = gain * tone((f, 2 * f, 3 * f) if arousal_high else (f,), 0.5 if arousal_high else 2.0,
                           0.08 if arousal_high else 0.6)
        i = int(t * SR)
        out[i:i + len(note)] += note[: len(out) - i]
        t += float(rng.uniform(0.7, 1.3)) / rate
    return out.astype(np.float32)


def test_audio_features_on_known_signals() -> None:
    rng = np.random.default_rng(1)
    busy, calm = audio_features(piece(True, rng)), audio_features(piece(False, rng))
    i = {name: k for k, name in enumerate(FEATURE_NAMES)}
    assert busy[i["onsets_per_s"]] > 3 * calm[i["onsets_per_s"]]
    assert busy[i["log_centroid_mean"]] > calm[i["log_centroid_mean"]]
    low = audio_features(tone((80.0,), 4.0, 100.0).astype(np.float32))
    assert low[i["band_0_150"]] > 0.95
    a_minor = audio_features(np.concatenate([tone((220.0, 261.63, 329.63), 1.0, 5.0)] * 4).astype(np.float32))
    c_major = audio_features(np.concatenate([tone((261.63, 329.63, 392.0), 1.0, 5.0)] * 4).astype(np.float32))
    assert a_minor[i["minor_minus_major"]] > c_major[i["minor_minus_major"]]
    assert not audio_features(np.zeros(SR // 2, np.float32)).any()


def test_audio_judge_learns_arousal_from_synthetic_renders() -> None:
    rng = np.random.default_rng(2)
    labels = [0, 3] * 12  # Q1 (high arousal) and Q4 (low arousal)
    x = np.stack([audio_features(piece(y == 0, rng, 4.0)) for y in labels])
    data = LabelledSet(x, np.array(labels), np.array([f"song{k // 2}" for k in range(len(labels))]))
    model, name, scores = train_audio_judge(data, seed=0, log=lambda _: None)
    assert scores[name] >= 0.9
    test = np.stack([audio_features(piece(True, rng, 4.0)), audio_features(piece(False, rng, 4.0))])
    assert model.predict(test).tolist() == [0, 3]
