from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from emoscore.constants import (
    AUDIO_FRAME_RATE,
    AUDIO_SAMPLE_RATE,
    AUDIO_WINDOW_FRAMES,
    N_AUDIO_FEATURES,
    N_MFCC,
)
from emoscore.data import ravdess
from emoscore.errors import DataError
from emoscore.speech import CENTROID_INDEX, RMS_INDEX, extract_features, speech_windows, window_starts


def tone(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_pure_tone_has_known_chroma_centroid_and_rms() -> None:
    features = extract_features(tone(440.0, 1.0, amplitude=0.5))
    assert features.shape == (1 + AUDIO_SAMPLE_RATE // 320, N_AUDIO_FEATURES)
    middle = features[10:-10]
    chroma = middle[:, N_MFCC:N_MFCC + 12].mean(axis=0)
    assert chroma.argmax() == 9  # A
    assert chroma[9] > 0.5
    assert middle[:, CENTROID_INDEX].mean() == pytest.approx(0.44, abs=0.03)  # kHz
    expected_db = 20 * np.log10(0.5 / np.sqrt(2))  # a sine's RMS is amplitude / sqrt(2)
    assert middle[:, RMS_INDEX].mean() * 20 == pytest.approx(expected_db, abs=0.5)


def test_higher_tone_has_higher_centroid() -> None:
    low = extract_features(tone(300.0, 0.5))[:, CENTROID_INDEX].mean()
    high = extract_features(tone(3000.0, 0.5))[:, CENTROID_INDEX].mean()
    assert high > 5 * low


def test_windows_cover_the_audio_and_mark_silence() -> None:
    audio = np.concatenate([tone(220.0, 3.0), np.zeros(4 * AUDIO_SAMPLE_RATE, np.float32)])
    starts = window_starts(7.0, 3.0, 1.0)
    assert list(starts) == [0.0, 1.0, 2.0, 3.0, 4.0]
    windows, silent = speech_windows(audio, starts, 3.0)
    assert windows.shape == (5, AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES)
    assert list(silent) == [False, False, False, True, True]


def test_window_starts_reach_the_end() -> None:
    starts = window_starts(10.5, 3.0, 2.0)
    assert starts[0] == 0.0 and starts[-1] + 3.0 == pytest.approx(10.5)
    assert list(window_starts(2.0, 3.0, 1.0)) == [0.0]  # shorter than a window: one window
    assert AUDIO_FRAME_RATE == 50.0


def fake_ravdess(root: Path, actors: list[int], emotions: range = range(1, 9)) -> Path:
    """A RAVDESS-named folder of 1.5 s tones whose pitch depends on the emotion (learnable)."""
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for e in emotions:
            for statement in (1, 2):
                audio = tone(150.0 * e + 10 * actor, 1.5, 0.3)
                name = f"03-01-{e:02d}-01-{statement:02d}-01-{actor:02d}.flac"
                soundfile.write(str(folder / name), audio, AUDIO_SAMPLE_RATE)
    return root


def test_scan_and_split_never_mix_actors(tmp_path: Path) -> None:
    root = fake_ravdess(tmp_path / "rav", [1, 2, 3, 15, 17, 18], emotions=range(1, 3))
    (root / "Actor_01" / "notes.txt").write_text("not audio")
    (root / "Actor_01" / "03-01-99-01-01-01-01.flac").write_bytes(b"")  # emotion 99: not RAVDESS
    items = ravdess.scan(root, (".flac",))
    assert len(items) == 6 * 2 * 2
    train, val, test = ravdess.split_by_actor(items, test_actors=(17, 18), val_actors=(15,))
    actors = [{i.actor for i in part} for part in (train, val, test)]
    assert actors == [{1, 2, 3}, {15}, {17, 18}]
    assert not (actors[0] & actors[1] or actors[0] & actors[2] or actors[1] & actors[2])
    assert len(train) + len(val) + len(test) == len(items)


def test_split_refuses_overlapping_actor_sets(tmp_path: Path) -> None:
    items = ravdess.scan(fake_ravdess(tmp_path, [1, 2], emotions=range(1, 2)), (".flac",))
    with pytest.raises(DataError):
        ravdess.split_by_actor(items, test_actors=(1,), val_actors=(1,))
    with pytest.raises(DataError, match="not found"):
        ravdess.scan(tmp_path / "missing", (".flac",))


def test_parse_name_reads_every_field() -> None:
    item = ravdess.parse_name(Path("03-01-06-02-01-02-13.wav"))
    assert item is not None
    assert (item.modality, item.emotion, item.intensity, item.statement, item.repetition, item.actor) == \
        (3, 5, 2, 1, 2, 13)
    assert ravdess.parse_name(Path("clip.wav")) is None


# --- loudness-independent features, silence and channel augmentation ------------------------------


def noisy_tone(seconds: float, amplitude: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = tone(220.0, seconds, 1.0) + tone(660.0, seconds, 0.3) + rng.normal(0, 0.05, int(seconds * 16000))
    return (amplitude * signal / np.abs(signal).max()).astype(np.float32)


def test_relative_level_makes_normalised_windows_gain_invariant() -> None:
    from emoscore.speech import fit_window, normalise_window

    loud, quiet = (fit_window(extract_features(noisy_tone(3.0, a)), 0) for a in (0.5, 0.02))
    np.testing.assert_allclose(normalise_window(loud, "relative"), normalise_window(quiet, "relative"), atol=2e-3)
    gap = normalise_window(loud, "absolute")[:, RMS_INDEX] - normalise_window(quiet, "absolute")[:, RMS_INDEX]
    assert np.median(gap) * 20 == pytest.approx(20 * np.log10(0.5 / 0.02), abs=0.5)  # absolute keeps dBFS


def test_quiet_speech_is_voiced_and_a_pause_between_loud_speech_is_silent() -> None:
    quiet = noisy_tone(3.0, 10 ** (-52 / 20))  # peaks near RAVDESS sad speech, below the old -45 dBFS gate
    _, silent = speech_windows(quiet, np.array([0.0]), 3.0)
    assert silent.tolist() == [False]
    speech = np.concatenate([noisy_tone(3.0, 0.5), noisy_tone(3.0, 10 ** (-50 / 20)), noisy_tone(3.0, 0.5)])
    _, silent = speech_windows(speech, np.array([0.0, 3.0, 6.0]), 3.0)
    assert silent.tolist() == [False, True, False]  # 45 dB under the loud level: a pause, not speech


def test_channel_band_limits_and_keeps_the_length() -> None:
    from emoscore.speech_augment import channel, equalise, level_speech

    noise = np.random.default_rng(1).normal(0, 0.1, 32000).astype(np.float32)
    limited = equalise(noise, 300.0, 3000.0, np.zeros(7))
    spectrum = np.abs(np.fft.rfft(limited)) / np.maximum(np.abs(np.fft.rfft(noise)), 1e-9)
    freqs = np.fft.rfftfreq(len(noise), 1 / 16000)
    band = (freqs > 800) & (freqs < 2000)
    assert np.median(spectrum[band]) == pytest.approx(1.0, abs=0.01)
    assert np.median(spectrum[freqs > 6000]) < 10 ** (-24 / 20)  # more than an octave above 3 kHz
    assert np.median(spectrum[(freqs > 50) & (freqs < 140)]) < 10 ** (-24 / 20)
    level = level_speech(noise, -20.0)
    assert 20 * np.log10(np.sqrt(np.mean(level**2))) == pytest.approx(-20.0, abs=1.0)
    for seed in range(5):
        out = channel(noise, np.random.default_rng(seed))
        assert out.shape == noise.shape and out.dtype == np.float32 and np.isfinite(out).all()
