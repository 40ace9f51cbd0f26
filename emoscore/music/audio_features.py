"""What a listener hears: features of rendered music audio, and a render cache for training clips.

Audio is mono at FEATURE_SAMPLE_RATE, level-matched to a fixed RMS before any feature is taken, so the
features describe dynamics, density, register, spectral shape, tempo and mode, not the render gain.
Frames: FRAME_LENGTH samples (~93 ms) every HOP samples (~23 ms).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.mixing import to_mono
from emoscore.music.events import key_correlations

FEATURE_SAMPLE_RATE = 22050  # Hz: enough for every feature below, half the cost of 44.1 kHz
HOP = 512  # samples between frames (23.2 ms)
FRAME_LENGTH = 2048  # samples per FFT frame (92.9 ms)
RENDER_SECONDS = 30.0  # training clips are rendered from their start for at most this long
REFERENCE_DB = -20.0  # every clip is scaled to this RMS (dBFS) before features are taken
SILENCE_DB = -80.0
BAND_EDGES_HZ = (0.0, 150.0, 500.0, 2000.0, 5000.0, 11025.0)
FEATURE_NAMES: tuple[str, ...] = (
    ("rms_mean_db", "rms_std_db", "rms_p10_db", "rms_p50_db", "rms_p90_db", "peak_to_average_db",
     "quiet_fraction", "loudness_flux")
    + ("onset_strength_mean", "onset_strength_std", "onsets_per_s", "log_tempo", "pulse_clarity")
    + ("log_centroid_mean", "log_centroid_std", "log_bandwidth_mean", "log_rolloff_mean", "flatness_mean")
    + tuple(f"band_{int(a)}_{int(b)}" for a, b in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True))
    + ("major_r", "minor_r", "minor_minus_major", "key_clarity", "chroma_entropy")
    + tuple(f"chroma_rel_{i}" for i in range(12))
)
N_AUDIO_FEATURES = len(FEATURE_NAMES)  # 40
FEATURE_VERSION = 1  # bump when a feature's definition changes: cached features are then recomputed


def level_match(y: np.ndarray, target_db: float = REFERENCE_DB) -> np.ndarray:
    """`y` scaled so its RMS is `target_db` dBFS (silence stays silence)."""
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
    return y if rms <= 1e-8 else (y * (10 ** (target_db / 20) / rms)).astype(np.float32)


def frame_db(y: np.ndarray) -> np.ndarray:
    """(frames,) RMS level per frame in dB relative to the whole signal's RMS."""
    import librosa

    rms = librosa.feature.rms(y=y, frame_length=FRAME_LENGTH, hop_length=HOP)[0]
    overall = np.sqrt(np.mean(np.square(y, dtype=np.float64))) + 1e-12
    return np.maximum(20 * np.log10(rms / overall + 1e-12), SILENCE_DB)


def loudness_features(db: np.ndarray) -> list[float]:
    """Frame-level dynamics: mean/std/percentiles (dB re RMS), peak-to-average (p99 - mean power in dB),
    fraction of frames 20 dB under the RMS, and frame-to-frame flux of a 0.5-s smoothed envelope."""
    p10, p50, p90, p99 = np.percentile(db, [10, 50, 90, 99])
    smooth = np.convolve(db, np.ones(21) / 21, mode="valid") if len(db) > 21 else db
    flux = float(np.abs(np.diff(smooth)).mean()) if len(smooth) > 1 else 0.0
    return [float(db.mean()), float(db.std()), float(p10), float(p50), float(p90), float(p99),
            float((db < -20).mean()), flux * 10]


def rhythm_features(y: np.ndarray, sr: int) -> list[float]:
    """Onset strength mean/std, detected onsets per second, log2 tempo (BPM/120), pulse clarity."""
    import librosa

    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=HOP, units="frames")
    seconds = max(len(y) / sr, 1e-3)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=HOP))[0])
    centred = env - env.mean()
    ac = np.correlate(centred, centred, mode="full")[len(centred) - 1:]
    lo, hi = int(0.25 * sr / HOP), int(1.5 * sr / HOP)  # beat periods 0.25..1.5 s
    clarity = float(ac[lo:hi].max() / ac[0]) if ac[0] > 0 and len(ac) > hi else 0.0
    return [float(env.mean()), float(env.std()), len(onsets) / seconds, float(np.log2(max(tempo, 1.0) / 120)),
            clarity]


def spectral_features(power: np.ndarray, freqs: np.ndarray) -> list[float]:
    """power: (bins, frames) STFT power. Log centroid/bandwidth/rolloff (log2 of Hz/1000), flatness, and the
    share of energy per band of BAND_EDGES_HZ."""
    total = power.sum(axis=0) + 1e-12
    loud = total > np.percentile(total, 20)  # ignore near-silent frames for the shape
    p = power[:, loud] if loud.any() else power
    w = p / (p.sum(axis=0) + 1e-12)
    centroid = (freqs[:, None] * w).sum(axis=0)
    bandwidth = np.sqrt(((freqs[:, None] - centroid) ** 2 * w).sum(axis=0))
    rolloff = freqs[np.argmax(np.cumsum(w, axis=0) >= 0.85, axis=0)]
    flat = np.exp(np.mean(np.log(p + 1e-12), axis=0)) / (np.mean(p, axis=0) + 1e-12)
    lc = np.log2(np.maximum(centroid, 20) / 1000)
    bands = [float(power[(freqs >= a) & (freqs < b)].sum() / power.sum()) if power.sum() > 0 else 0.0
             for a, b in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True)]
    return [float(lc.mean()), float(lc.std()), float(np.log2(np.maximum(bandwidth, 20) / 1000).mean()),
            float(np.log2(np.maximum(rolloff, 20) / 1000).mean()), float(flat.mean()), *bands]


def tonal_features(power: np.ndarray, sr: int) -> list[float]:
    """Mode from the mean chroma: Krumhansl major/minor correlations, their difference, clarity, chroma
    entropy (bits) and the chroma relative to the estimated tonic (12)."""
    import librosa

    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=FRAME_LENGTH).mean(axis=1)
    chroma = chroma / (chroma.sum() + 1e-12)
    corr = np.nan_to_num(key_correlations(chroma))
    mode, tonic = np.unravel_index(int(np.argmax(corr)), corr.shape)
    entropy = float(-(chroma * np.log2(chroma + 1e-12)).sum())
    major, minor = float(corr[0].max()), float(corr[1].max())
    return [major, minor, minor - major, float(corr.max()), entropy, *np.roll(chroma, -int(tonic))]


def audio_features(audio: np.ndarray, sr: int = FEATURE_SAMPLE_RATE) -> np.ndarray:
    """(N_AUDIO_FEATURES,) float64 of mono or stereo audio at `sr` (zeros for under 1 s or silence)."""
    import librosa

    y = to_mono(audio)
    if len(y) < sr or float(np.abs(y).max(initial=0.0)) < 1e-6:
        return np.zeros(N_AUDIO_FEATURES)
    y = level_match(y)
    power = np.abs(librosa.stft(y, n_fft=FRAME_LENGTH, hop_length=HOP)) ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=FRAME_LENGTH)
    values = (loudness_features(frame_db(y)) + rhythm_features(y, sr) + spectral_features(power, freqs)
              + tonal_features(power, sr))
    return np.nan_to_num(np.asarray(values, dtype=np.float64))


# --- rendering training clips once ---------------------------------------------------------------

def render_mono(midi: Any, seconds: float, soundfont: str = "") -> np.ndarray:
    """(round(seconds * FEATURE_SAMPLE_RATE),) float32 mono render of a PrettyMIDI."""
    from emoscore.music.render import render_midi

    return to_mono(render_midi(midi, seconds, FEATURE_SAMPLE_RATE, soundfont=soundfont))


def cache_key(path: Path, seconds: float) -> str:
    """A cache name that changes with the file's content and the render length."""
    digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]
    return f"{Path(path).stem}-{digest}-{int(seconds)}s"


def cached_render(path: Path, cache: Path, seconds: float = RENDER_SECONDS, soundfont: str = "") -> np.ndarray:
    """The mono render of the first `seconds` of a MIDI file (shorter files: their length + 1 s tail),
    read from `cache` when present (float16 .npy), else rendered and stored atomically."""
    import pretty_midi

    target = Path(cache) / "renders" / f"{cache_key(path, seconds)}.npy"
    if target.exists():
        return np.load(target).astype(np.float32)
    midi = pretty_midi.PrettyMIDI(str(path))
    length = min(seconds, midi.get_end_time() + 1.0)
    audio = render_mono(midi, max(length, 1.0), soundfont)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, audio.astype(np.float16))
    tmp.replace(target)
    return audio


def cached_features(paths: list[Path], cache: Path, seconds: float = RENDER_SECONDS, soundfont: str = "",
                    log: Callable[[str], None] = lambda _: None) -> np.ndarray:
    """(len(paths), N_AUDIO_FEATURES): features of each file's cached render (rendering what is missing);
    the features are cached too, per FEATURE_VERSION."""
    rows = []
    for i, path in enumerate(paths):
        target = Path(cache) / f"features-v{FEATURE_VERSION}" / f"{cache_key(path, seconds)}.npy"
        if target.exists():
            rows.append(np.load(target))
        else:
            rows.append(audio_features(cached_render(path, cache, seconds, soundfont)))
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, rows[-1])
        if (i + 1) % 100 == 0:
            log(f"  audio features: {i + 1}/{len(paths)} clips")
    return np.stack(rows) if rows else np.zeros((0, N_AUDIO_FEATURES))
