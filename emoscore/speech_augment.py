"""Training-time augmentation of 16 kHz speech: how the speaker varies and how a real channel colours it.

`augment` varies the performance (tempo, pitch, gain, background noise). `channel` imitates the way from a
studio microphone to a real talking-head clip: room reverb, band limit and uneven EQ, broadcast-style
compression and loudness normalisation, and lossy-codec spectral holes. All functions take and return mono
float32 arrays of the same length (samples at constants.AUDIO_SAMPLE_RATE) and draw only from `rng`.
"""

from __future__ import annotations

import numpy as np

from emoscore.constants import AUDIO_N_FFT, AUDIO_SAMPLE_RATE

_EQ_KNOTS_HZ = np.geomspace(100.0, 7000.0, 7)  # where the random EQ curve gets its gains
_ROLLOFF_DB_PER_OCTAVE = 24.0


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random time stretch, pitch shift, gain and background noise, each as a real recording would vary."""
    import librosa

    if rng.random() < 0.6:
        audio = librosa.effects.time_stretch(audio, rate=float(rng.uniform(0.85, 1.15)))
    if rng.random() < 0.6:
        audio = librosa.effects.pitch_shift(audio, sr=AUDIO_SAMPLE_RATE, n_steps=float(rng.uniform(-2, 2)))
    audio = audio * float(10 ** (rng.uniform(-9, 6) / 20))
    if rng.random() < 0.7:
        audio = add_noise(audio, float(rng.uniform(12, 35)), rng)
    return audio.astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise `snr_db` below the signal's mean power."""
    power = np.mean(audio**2) + 1e-12
    return (audio + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(audio))).astype(np.float32)


def reverb(audio: np.ndarray, rt60: float, wet_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add a synthetic room: exponentially decaying noise impulse response (rt60 s), `wet_db` re the direct sound."""
    from scipy.signal import fftconvolve

    n = max(int(rt60 * AUDIO_SAMPLE_RATE), 16)
    t = np.arange(n) / AUDIO_SAMPLE_RATE
    ir = rng.normal(0.0, 1.0, n) * np.exp(-6.91 * t / rt60)  # -60 dB after rt60
    ir /= np.sqrt(np.sum(ir**2))
    wet = fftconvolve(audio, ir)[: len(audio)]
    return (audio + 10 ** (wet_db / 20) * wet).astype(np.float32)


def equalise(audio: np.ndarray, low_hz: float, high_hz: float, knot_db: np.ndarray) -> np.ndarray:
    """Band limit (24 dB/octave below low_hz and above high_hz) and a smooth EQ through gains `knot_db` (7,)
    at _EQ_KNOTS_HZ, applied as one zero-phase gain curve on the spectrum."""
    spectrum = np.fft.rfft(audio)
    freqs = np.maximum(np.fft.rfftfreq(len(audio), 1.0 / AUDIO_SAMPLE_RATE), 1.0)
    gain_db = np.interp(np.log(freqs), np.log(_EQ_KNOTS_HZ), knot_db)
    gain_db -= _ROLLOFF_DB_PER_OCTAVE * np.maximum(np.log2(low_hz / freqs), 0.0)
    gain_db -= _ROLLOFF_DB_PER_OCTAVE * np.maximum(np.log2(freqs / high_hz), 0.0)
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), n=len(audio)).astype(np.float32)


def compress(audio: np.ndarray, threshold_db: float, ratio: float) -> np.ndarray:
    """Broadcast-style compression: gain reduction above `threshold_db` (dBFS of a 20 ms RMS envelope)."""
    frame = AUDIO_SAMPLE_RATE // 50
    envelope = np.sqrt(np.convolve(audio**2, np.ones(frame) / frame, mode="same") + 1e-10)
    level_db = 20 * np.log10(envelope)
    reduction_db = np.maximum(level_db - threshold_db, 0.0) * (1.0 - 1.0 / ratio)
    return (audio * 10 ** (-reduction_db / 20)).astype(np.float32)


def codec(audio: np.ndarray, floor_db: float) -> np.ndarray:
    """Lossy-codec artefacts: STFT bins more than `floor_db` below their frame's peak are zeroed."""
    import librosa

    spec = librosa.stft(audio, n_fft=AUDIO_N_FFT, hop_length=AUDIO_N_FFT // 4)
    magnitude = np.abs(spec)
    keep = magnitude >= magnitude.max(axis=0, keepdims=True) * 10 ** (-floor_db / 20)
    out = librosa.istft(spec * keep, hop_length=AUDIO_N_FFT // 4, length=len(audio))
    return out.astype(np.float32)


def level_speech(audio: np.ndarray, target_db: float) -> np.ndarray:
    """Scale so the RMS of the louder half of the 20 ms frames is `target_db` dBFS (speech, not pauses)."""
    frame = AUDIO_SAMPLE_RATE // 50
    n = len(audio) // frame
    if n == 0:
        return audio
    levels = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    speech = np.sort(levels)[n // 2:]
    current = np.sqrt(np.mean(speech**2)) + 1e-10
    out = audio * (10 ** (target_db / 20) / current)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def channel(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random real-recording channel: reverb, band limit + EQ, compression, codec, loudness normalisation."""
    if rng.random() < 0.5:
        audio = reverb(audio, float(rng.uniform(0.15, 0.8)), float(rng.uniform(-15, -3)), rng)
    low = float(rng.uniform(60, 350))
    high = float(rng.uniform(3000, 7800))
    audio = equalise(audio, low, high, np.clip(rng.normal(0.0, 4.0, len(_EQ_KNOTS_HZ)), -9, 9))
    if rng.random() < 0.5:
        audio = compress(audio, float(rng.uniform(-35, -20)), float(rng.uniform(2, 6)))
    if rng.random() < 0.5:
        audio = codec(audio, float(rng.uniform(35, 60)))
    if rng.random() < 0.7:
        audio = level_speech(audio, float(rng.uniform(-26, -14)))
    return audio.astype(np.float32)


def mask_window(window: np.ndarray, masks: int, fill: np.ndarray, rng: np.random.Generator,
                max_frames: int = 20, max_features: int = 3) -> np.ndarray:
    """SpecAugment-style masking of one feature window (frames, features): `masks` time masks of up to
    `max_frames` frames (0.4 s at 20 ms) and `masks` feature masks of up to `max_features` columns, each
    set to `fill` (features,), the training mean, so a masked value reads as "no information"."""
    out = window.copy()
    n_frames, n_features = out.shape
    for _ in range(masks):
        width = int(rng.integers(1, max_frames + 1))
        start = int(rng.integers(0, max(n_frames - width, 0) + 1))
        out[start:start + width] = fill
        width = int(rng.integers(1, max_features + 1))
        start = int(rng.integers(0, max(n_features - width, 0) + 1))
        out[:, start:start + width] = fill[start:start + width]
    return out
