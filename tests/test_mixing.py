from __future__ import annotations

import numpy as np
import pytest

from emoscore.config import MixConfig
from emoscore.errors import InputError
from emoscore.mixing import (
    duck_envelope,
    fade_in,
    fade_out,
    gated_rms_db,
    limit_peaks,
    mix,
    normalise_loudness,
    rms_db,
    sliding_min,
    voice_activity,
)

SR = 16_000  # most tests run at a low rate to stay fast; the mix itself is rate-agnostic
FRAME = 0.02


def tone(freq: float, seconds: float, amplitude: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def burst(freq: float = 1000.0, before: float = 2.0, length: float = 1.0, after: float = 2.0,
          sr: int = SR, noise: float = 0.0) -> np.ndarray:
    parts = [np.zeros(int(before * sr)), tone(freq, length, sr=sr), np.zeros(int(after * sr))]
    signal = np.concatenate(parts)
    if noise:
        signal = signal + np.random.default_rng(0).normal(0, noise, len(signal))
    return signal.astype(np.float32)


# --- voice activity ------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.001])
def test_voice_activity_only_in_a_tone_burst(noise: float) -> None:
    activity = voice_activity(burst(noise=noise), SR, FRAME, hangover_seconds=0.2)
    assert len(activity) == 250  # 5 s of 20 ms frames
    active = np.flatnonzero(activity) * FRAME  # frame start times
    assert active.min() == pytest.approx(2.0, abs=FRAME)
    assert active.max() == pytest.approx(3.0 + 0.2, abs=2 * FRAME)  # the burst plus the hangover
    assert activity[int(2.05 / FRAME):int(2.95 / FRAME)].all()


def test_no_voice_activity_in_silence_hum_or_a_steady_drone() -> None:
    assert not voice_activity(np.zeros(SR * 3, np.float32), SR).any()
    assert not voice_activity(burst(freq=60.0), SR).any()  # loud, but outside the speech band
    drone = tone(1000.0, 12.0)  # never rises above its own floor
    assert not voice_activity(drone, SR)[int(3 / FRAME):int(9 / FRAME)].any()


def test_voice_activity_accepts_stereo_and_rejects_bad_arguments() -> None:
    mono = burst()
    np.testing.assert_array_equal(voice_activity(np.stack([mono, mono], 1), SR), voice_activity(mono, SR))
    with pytest.raises(InputError, match="-5"):
        voice_activity(mono, -5)
    with pytest.raises(InputError, match="shape"):
        voice_activity(np.zeros((10, 2, 2)), SR)


def test_sliding_min_matches_brute_force() -> None:
    x = np.random.default_rng(3).normal(size=101)
    for radius in (0, 1, 4, 60):
        expected = [x[max(0, i - radius):i + radius + 1].min() for i in range(len(x))]
        np.testing.assert_array_equal(sliding_min(x, radius), expected)


# --- ducking -------------------------------------------------------------------------------------


def test_duck_envelope_levels_and_smoothness() -> None:
    activity = np.zeros(250, bool)
    activity[100:150] = True  # speech from 2.0 to 3.0 s
    n = 5 * SR
    gain = duck_envelope(activity, n, SR, duck_db=-10.0, attack_ms=60.0, release_ms=400.0,
                         frame_seconds=FRAME)
    ducked = np.float32(10 ** (-10 / 20))
    assert gain.shape == (n,) and gain.dtype == np.float32
    assert (gain[:int(1.8 * SR)] == 1.0).all()  # well before the attack ramp
    assert (gain[2 * SR:3 * SR] == ducked).all()  # every sample of every speech frame
    assert (gain[int(3.5 * SR):] == 1.0).all()  # after the 400 ms release
    assert gain[int(1.97 * SR)] < 1.0  # look-ahead: already ramping down before speech
    assert gain[int(3.2 * SR)] < 1.0  # still releasing
    assert np.abs(np.diff(gain)).max() < 1e-3  # no clicks: 10 dB over >= 60 ms is ~1e-5 per sample
    assert gain.min() >= ducked and gain.max() <= 1.0


def test_duck_envelope_without_speech_is_unity() -> None:
    gain = duck_envelope(np.zeros(10, bool), 3200, SR, -10.0, 60.0, 400.0)
    assert (gain == 1.0).all()
    with pytest.raises(InputError, match="duck_db"):
        duck_envelope(np.ones(3, bool), 100, SR, 3.0, 60.0, 400.0)


# --- loudness, fades, limiter --------------------------------------------------------------------


def test_rms_db_of_a_sine_and_silence() -> None:
    assert rms_db(tone(440, 1.0, amplitude=0.5)) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)
    assert rms_db(np.zeros(100)) == -120.0


def test_normalise_loudness_ignores_silent_parts() -> None:
    music = np.concatenate([tone(440, 2.0, 0.1), np.zeros(SR * 6, np.float32)])
    levelled = normalise_loudness(music, -20.0, SR)
    assert gated_rms_db(levelled, SR) == pytest.approx(-20.0, abs=0.1)
    assert rms_db(levelled[:2 * SR]) == pytest.approx(-20.0, abs=0.1)  # the silence did not pull it up
    stereo = np.stack([music, music], 1)
    assert gated_rms_db(normalise_loudness(stereo, -26.0, SR), SR) == pytest.approx(-26.0, abs=0.1)
    assert (normalise_loudness(np.zeros(100), -20.0, SR) == 0).all()


def test_fades() -> None:
    x = np.ones((SR, 2), np.float32)
    out = fade_out(x, SR, 0.5)
    assert (out[:SR // 2] == 1).all() and (out[-1] == 0).all()
    assert np.all(np.diff(out[SR // 2:, 0]) <= 0)
    inn = fade_in(x, SR, 0.05)
    assert (inn[0] == 0).all() and (inn[int(0.05 * SR):] == 1).all()
    assert (fade_out(x, SR, 0.0) == x).all()
    assert fade_out(x[:10], SR, 1.0)[-1, 0] == 0  # fade longer than the signal


def test_limiter_holds_the_ceiling_on_a_loud_signal() -> None:
    rng = np.random.default_rng(5)
    loud = np.stack([tone(220, 1.0, 3.0), rng.normal(0, 1.5, SR).astype(np.float32)], 1)
    limited = limit_peaks(loud, -1.0, SR)
    ceiling = 10 ** (-1 / 20)
    assert np.abs(limited).max() <= ceiling
    assert np.abs(limited).max() > 0.9 * ceiling  # it limits rather than silences
    quiet = tone(220, 0.5, 0.1)
    np.testing.assert_array_equal(limit_peaks(quiet, -1.0, SR), quiet)  # below the ceiling: untouched


def test_limiter_gain_is_smooth_around_a_single_spike() -> None:
    x = np.full(2000, 0.5, np.float32)
    x[1000] = 4.0
    limited = limit_peaks(x, -6.0, SR)
    assert np.abs(limited).max() <= 10 ** (-6 / 20)
    gain = limited / x
    assert np.abs(np.diff(gain[:999])).max() < 0.02  # ramps in over the look-ahead, no step
    assert gain[0] == pytest.approx(1.0) and gain[-1] == pytest.approx(1.0)


# --- the mix -------------------------------------------------------------------------------------


def test_mix_shape_length_and_ceiling() -> None:
    rng = np.random.default_rng(2)
    music = rng.normal(0, 0.3, (5 * SR, 2)).astype(np.float32)
    dialogue = burst(length=1.0)[:4 * SR]  # mono and shorter than the music: padded
    out = mix(dialogue, music, SR, MixConfig())
    assert out.shape == (5 * SR, 2) and out.dtype == np.float32
    assert np.abs(out).max() <= 10 ** (MixConfig().peak_limit_db / 20)
    long_dialogue = np.stack([burst(after=5.0)] * 2, 1)  # stereo and longer: trimmed
    assert mix(long_dialogue, music, SR, MixConfig()).shape == (5 * SR, 2)


def test_mix_ducks_music_under_speech_and_keeps_dialogue() -> None:
    music = np.stack([tone(200.0, 5.0, 0.2)] * 2, 1)
    dialogue = burst()
    config = MixConfig(duck_db=-12.0, music_loudness_db=-26.0, music_alone_loudness_db=-26.0)  # bed = reference
    out = mix(dialogue, music, SR, config, fade_out_seconds=0.5)
    bed = mix(None, music, SR, config, fade_out_seconds=0.5)
    speech_part = slice(int(2.1 * SR), int(2.9 * SR))
    np.testing.assert_allclose(out[speech_part, 0] - dialogue[speech_part],
                               bed[speech_part, 0] * 10 ** (-12 / 20), atol=1e-5)
    quiet_part = slice(int(0.5 * SR), int(1.5 * SR))
    np.testing.assert_allclose(out[quiet_part], bed[quiet_part], atol=1e-6)
    assert rms_db(bed[quiet_part]) == pytest.approx(-26.0, abs=0.2)


def test_replace_audio_gives_the_music_alone() -> None:
    music = np.stack([tone(300.0, 3.0, 0.2)] * 2, 1)
    dialogue = tone(1000.0, 3.0, 0.5)
    replaced = mix(dialogue, music, SR, MixConfig(), replace_audio=True)
    np.testing.assert_array_equal(replaced, mix(None, music, SR, MixConfig()))
    gain = 10 ** ((MixConfig().music_alone_loudness_db - rms_db(music)) / 20)
    middle = slice(SR // 2, SR)
    np.testing.assert_allclose(replaced[middle], music[middle] * gain, rtol=1e-3, atol=1e-6)


def test_mix_applies_the_user_gain_and_fades_the_end() -> None:
    music = np.stack([tone(300.0, 4.0, 0.2)] * 2, 1)
    out = mix(None, music, SR, MixConfig(music_gain_db=-6.0), fade_out_seconds=1.0)
    assert rms_db(out[SR // 2:2 * SR]) == pytest.approx(-18.0 - 6.0, abs=0.2)  # music alone: -18 dB, -6 trim
    assert (out[-1] == 0).all() and (out[0] == 0).all()  # faded in and out: no click at either end
