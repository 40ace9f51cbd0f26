"""Streaming audio (issue 11): rendering, mixing, loudness and mastering a block at a time give the same samples
and numbers as the whole-array functions, so memory can stay flat at any length."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from emoscore import loudness, media, mixing
from emoscore.errors import InputError
from emoscore.music.render import BUNDLED_SOUNDFONT, render_blocks, render_midi, render_to_files

BUNDLED = str(Path(pretty_midi.__file__).parent / BUNDLED_SOUNDFONT)
CLIP = Path(__file__).parent / "data" / "talking-head-a.mp4"


def pieces(x: np.ndarray, size: int) -> Callable[[], Iterator[np.ndarray]]:
    """A re-readable source of x in blocks of `size` (deliberately unlike the stages' own chunk sizes)."""
    return lambda: (x[i:i + size] for i in range(0, len(x), size))


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mixing, "CHUNK_SAMPLES", 1000)  # many chunks and chunk edges in a short signal


def speechy(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """(n, 2) bursts of band-limited noise with gaps: voice activity switches on and off many times."""
    t = np.arange(n) / sr
    gate = (np.sin(2 * np.pi * 0.7 * t) > 0.2).astype(np.float32)
    voice = np.sin(2 * np.pi * 700 * t) * (0.2 + 0.1 * rng.random(n))
    return np.stack([voice * gate, 0.8 * voice * gate], axis=1).astype(np.float32)


@pytest.mark.parametrize("with_dialogue", [True, False])
def test_mix_blocks_equals_mix(rng: np.random.Generator, small_chunks: None, with_dialogue: bool) -> None:
    sr = 8000
    n = sr * 9 + 77
    music = (rng.normal(size=(n, 2)) * 0.3).astype(np.float32)  # loud enough for the limiter to work
    dialogue = speechy(rng, n - 500, sr)  # shorter than the music: padded like fit_length
    whole = mixing.mix(dialogue if with_dialogue else None, music, sr, fade_out_seconds=1.5)
    fitted = mixing.fit_length(dialogue, n)
    source = pieces(fitted, 777) if with_dialogue else None
    streamed = np.concatenate(list(mixing.mix_blocks(pieces(music, 1234), source, n, sr, fade_out_seconds=1.5)))
    np.testing.assert_array_equal(streamed, whole)
    activity = mixing.voice_activity(fitted, sr)
    assert activity.any() and not activity.all()  # the ducking switches on and off


def test_mix_blocks_of_silent_music_and_replace_audio(rng: np.random.Generator, small_chunks: None) -> None:
    sr = 8000
    n = sr * 3
    silent = np.zeros((n, 2), np.float32)
    dialogue = speechy(rng, n, sr)
    np.testing.assert_array_equal(
        np.concatenate(list(mixing.mix_blocks(pieces(silent, 999), pieces(dialogue, 500), n, sr))),
        mixing.mix(dialogue, silent, sr))
    music = (rng.normal(size=(n, 2)) * 0.1).astype(np.float32)
    np.testing.assert_array_equal(
        np.concatenate(list(mixing.mix_blocks(pieces(music, 999), pieces(dialogue, 500), n, sr,
                                              replace_audio=True))),
        mixing.mix(dialogue, music, sr, replace_audio=True))


def test_limit_blocks_and_measurements_equal_the_whole_array(rng: np.random.Generator, small_chunks: None) -> None:
    sr = 8000
    loud = (rng.normal(size=(sr * 2 + 3, 2)) * 0.6).astype(np.float32)
    limited = np.concatenate(list(mixing.limit_blocks(pieces(loud, 333)(), len(loud), -1.0, sr)))
    np.testing.assert_array_equal(limited, mixing.limit_peaks(loud, -1.0, sr))
    assert mixing.gated_rms_db_blocks(pieces(loud, 333)(), sr) == mixing.gated_rms_db(loud, sr)
    mono = speechy(rng, sr * 5, sr)
    np.testing.assert_array_equal(mixing.voice_activity_blocks(pieces(mono, 4321)(), sr),
                                  mixing.voice_activity(mono, sr))
    assert not mixing.voice_activity_blocks(iter([]), sr).any()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's "mean of empty slice" under one gating block
@pytest.mark.parametrize("n", [0, 100, 20_000, 300_001])
def test_stream_meter_equals_measure(rng: np.random.Generator, n: int) -> None:
    sr = 44_100
    x = (rng.normal(size=(n, 2)) * 0.1 * np.sin(np.arange(n) / sr * 3)[:, None]).astype(np.float32)
    silence = loudness.LoudnessReport(loudness.SILENCE_LUFS, loudness.SILENCE_LUFS)
    want = loudness.measure(x, sr) if n else silence
    assert loudness.measure_blocks(pieces(x, 65_000)(), n, sr) == want
    silent = np.zeros((n, 2), np.float32)
    assert loudness.measure_blocks(pieces(silent, 9999)(), n, sr).integrated_lufs == loudness.SILENCE_LUFS
    meter = loudness.StreamMeter(n + 1, sr)
    with pytest.raises(InputError, match="fed"):
        meter.result()


@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_normalise_blocks_equals_normalise(rng: np.random.Generator, target: float) -> None:
    sr = 44_100
    n = 200_003
    x = (rng.normal(size=(n, 2)) * 0.05 * (1 + np.sin(np.arange(n) / sr * 5))[:, None]).astype(np.float32)
    whole, _ = loudness.normalise(x, sr, target)
    streamed = np.concatenate(list(loudness.normalise_blocks(pieces(x, 50_000), n, sr, target)))
    np.testing.assert_array_equal(streamed, whole)
    silent = np.zeros((1000, 2), np.float32)
    assert not np.concatenate(list(loudness.normalise_blocks(pieces(silent, 300), 1000, sr, target))).any()


def small_midi() -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI()
    for program, low in ((0, 60), (33, 36)):
        inst = pretty_midi.Instrument(program)
        inst.control_changes.append(pretty_midi.ControlChange(7, 100, 0.0))
        inst.notes += [pretty_midi.Note(90, low + i, 0.3 * i, 0.3 * i + 0.25) for i in range(6)]
        midi.instruments.append(inst)
    return midi


def test_render_blocks_and_files_equal_render_midi(tmp_path: Path) -> None:
    rate, duration = 16_000, 2.345
    whole = render_midi(small_midi(), duration, rate, BUNDLED)
    blocks = list(render_blocks(small_midi(), duration, rate, BUNDLED, block=5000))
    assert max(len(b) for b in blocks) == 5000
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    n = render_to_files(small_midi(), duration, tmp_path / "m.wav", tmp_path / "m.s16", rate, BUNDLED)
    assert n == len(whole)
    media.write_wav(tmp_path / "whole.wav", whole, rate)
    assert (tmp_path / "m.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes()
    back = np.concatenate(list(media.raw_blocks(tmp_path / "m.s16", 2, dtype="<i2", block=999)))
    np.testing.assert_array_equal(back, whole)


def test_decoded_file_and_raw_blocks_give_read_audio_s_samples(tmp_path: Path) -> None:
    whole = media.read_audio(CLIP, 44_100, channels=2)
    n = media.decode_audio_file(CLIP, tmp_path / "d.f32", 44_100, channels=2)
    assert n == len(whole)
    np.testing.assert_array_equal(np.concatenate(list(media.raw_blocks(tmp_path / "d.f32", 2))), whole)
    longer = np.concatenate(list(media.raw_blocks(tmp_path / "d.f32", 2, n + 10_000, block=70_000)))
    np.testing.assert_array_equal(longer, mixing.fit_length(whole, n + 10_000))
    shorter = np.concatenate(list(media.raw_blocks(tmp_path / "d.f32", 2, n - 5)))
    np.testing.assert_array_equal(shorter, whole[:n - 5])
    fitted = np.concatenate(list(media.fit_blocks(media.raw_blocks(tmp_path / "d.f32", 2), n + 3)))
    np.testing.assert_array_equal(fitted, mixing.fit_length(whole, n + 3))
    with media.WavWriter(tmp_path / "w.wav", 44_100) as writer:
        for block in media.raw_blocks(tmp_path / "d.f32", 2, block=50_000):
            writer.write(block)
    media.write_wav(tmp_path / "whole.wav", whole, 44_100)
    assert (tmp_path / "w.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes()
