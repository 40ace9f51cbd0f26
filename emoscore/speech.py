"""Speech features and the speech emotion model's inference.

Features per 20 ms frame (constants.AUDIO_HOP at 16 kHz): 13 MFCC + 12 chroma + RMS + spectral centroid,
all from one STFT. The model reads windows of AUDIO_WINDOW_FRAMES frames (3 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import (
    AUDIO_FRAME_RATE,
    AUDIO_HOP,
    AUDIO_LEVEL,
    AUDIO_N_FFT,
    AUDIO_SAMPLE_RATE,
    AUDIO_WINDOW_FRAMES,
    MIN_VOICED_SECONDS,
    N_AUDIO_FEATURES,
    N_CHROMA,
    N_MFCC,
    SILENCE_RMS_DB,
    VOICED_RANGE_DB,
)

RMS_INDEX = N_MFCC + N_CHROMA  # column of log-RMS in the feature matrix
CENTROID_INDEX = RMS_INDEX + 1
MODEL_NAME = "audio"


def feature_constants() -> dict[str, Any]:
    """The constants a speech checkpoint depends on; recorded in and checked against the manifest."""
    return {"sample_rate": AUDIO_SAMPLE_RATE, "n_fft": AUDIO_N_FFT, "hop": AUDIO_HOP, "n_mfcc": N_MFCC,
            "n_chroma": N_CHROMA, "n_features": N_AUDIO_FEATURES, "window_frames": AUDIO_WINDOW_FRAMES,
            "level": AUDIO_LEVEL}


def extract_features(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Frame features of mono float audio: shape (n_frames, 27), n_frames = 1 + len(audio) // AUDIO_HOP.

    Columns: MFCC 0-12, chroma 13-24 (each frame's chroma sums to 1), RMS in dBFS / 20 (25),
    spectral centroid in kHz (26).
    """
    from emoscore.dsp import speech_features  # librosa's features in numpy: no librosa import, no numba JIT

    if sample_rate != AUDIO_SAMPLE_RATE:
        raise ValueError(f"speech features need {AUDIO_SAMPLE_RATE} Hz audio, got {sample_rate}")
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < AUDIO_N_FFT:
        audio = np.pad(audio, (0, AUDIO_N_FFT - len(audio)))
    raw = speech_features(audio, sample_rate, AUDIO_N_FFT, AUDIO_HOP, N_MFCC, N_CHROMA)
    mfcc, chroma, rms, centroid = raw[:, :N_MFCC].T, raw[:, N_MFCC:RMS_INDEX].T, raw[:, RMS_INDEX], raw[:, -1]
    chroma = chroma / np.maximum(chroma.sum(axis=0, keepdims=True), 1e-10)
    rms_db = 20 * np.log10(np.maximum(rms, 1e-5))
    features = np.vstack([mfcc, chroma, rms_db[None] / 20.0, centroid[None] / 1000.0]).T
    return features.astype(np.float32)


def loud_level(features: np.ndarray) -> float:
    """The loud level of frames (n, 27) in dBFS: the 95th percentile of their log-RMS."""
    return float(np.percentile(features[:, RMS_INDEX] * 20, 95)) if len(features) else SILENCE_RMS_DB


def voiced_frames(features: np.ndarray, reference_db: float | None = None) -> np.ndarray:
    """(n,) bool: frames above SILENCE_RMS_DB and within VOICED_RANGE_DB of `reference_db` (default: their
    own loud level), so quiet speech (RAVDESS sad peaks near -50 dBFS) still counts and pauses do not."""
    reference = loud_level(features) if reference_db is None else reference_db
    return features[:, RMS_INDEX] * 20 > max(reference - VOICED_RANGE_DB, SILENCE_RMS_DB)


def normalise_window(window: np.ndarray, level: str = AUDIO_LEVEL) -> np.ndarray:
    """Per-window cepstral mean normalisation: subtract each MFCC's mean over the window's voiced frames.

    Removes most of the speaker's and the microphone's timbre (MFCC 0, the log energy, becomes relative).
    With level "relative" the log-RMS column also becomes relative to the window's loud level, so the
    recording's gain is gone and only the loudness contour remains; "absolute" keeps dBFS / 20.
    """
    window = window.copy()
    voiced = voiced_frames(window)
    frames = window[voiced] if voiced.any() else window
    window[:, :N_MFCC] -= frames[:, :N_MFCC].mean(axis=0)
    if level == "relative":
        window[:, RMS_INDEX] -= loud_level(window) / 20
    return window


def fit_window(features: np.ndarray, start: int, n_frames: int = AUDIO_WINDOW_FRAMES) -> np.ndarray:
    """Frames [start, start + n_frames) of `features`, padded at the end with silent frames if short."""
    window = features[max(start, 0):start + n_frames]
    if len(window) < n_frames:
        pad = np.zeros((n_frames - len(window), features.shape[1]), dtype=np.float32)
        pad[:, RMS_INDEX] = -100.0 / 20.0  # -100 dBFS: silence
        window = np.vstack([window, pad])
    return window


def is_silent(window: np.ndarray, reference_db: float | None = None) -> bool:
    """True when fewer than MIN_VOICED_SECONDS of the window's frames are voiced (see voiced_frames;
    `reference_db` is the clip's loud level, so a pause between loud sentences is silent)."""
    voiced = int(voiced_frames(window, reference_db).sum())
    return voiced < MIN_VOICED_SECONDS * AUDIO_FRAME_RATE


@dataclass(frozen=True)
class WindowProbs:
    """Per-window model output. times: (n,) window start in seconds; probs: (n, 8); present: (n,) bool."""

    times: np.ndarray
    probs: np.ndarray
    present: np.ndarray


def window_starts(duration: float, window_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times of analysis windows covering [0, duration): at least one window."""
    last = max(duration - window_seconds, 0.0)
    n = int(np.floor(last / hop_seconds + 1e-9)) + 1
    starts = np.arange(n) * hop_seconds
    if duration > window_seconds and starts[-1] + window_seconds < duration - 1e-6:
        starts = np.append(starts, last)
    return starts


def speech_windows(audio: np.ndarray, starts: np.ndarray, window_seconds: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Cut 16 kHz audio into model inputs: (windows (n, 150, 27), silent (n,) bool) for window `starts` (s).

    Each analysis window of `window_seconds` is mapped onto the model's fixed 3 s input: longer windows
    keep their central 3 s, shorter ones are padded with silence. Features are computed once for the
    whole signal and sliced, so the cost is linear in the audio length whatever the hop.
    """
    features = extract_features(audio)
    span_frames = int(round(window_seconds * AUDIO_FRAME_RATE))
    offset = max(int(round((span_frames - AUDIO_WINDOW_FRAMES) / 2)), 0)
    windows = np.stack([fit_window(fit_window(features, int(round(start * AUDIO_FRAME_RATE)), span_frames), offset)
                        for start in np.asarray(starts)]) if len(starts) else np.zeros(
        (0, AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES), np.float32)
    reference = loud_level(features)
    silent = np.array([is_silent(w, reference) for w in windows], dtype=bool)
    return np.stack([normalise_window(w) for w in windows]) if len(windows) else windows, silent


class SpeechEmotionModel:
    """The trained speech CNN, verified against the manifest before it is loaded."""

    def __init__(self, checkpoints: Path):
        from emoscore.runtime import load_lite

        self.model = load_lite(checkpoints, MODEL_NAME, feature_constants())  # the exported .tflite: no TensorFlow

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(n, 150, 27) normalised windows -> (n, 8) emotion probabilities."""
        if len(windows) == 0:
            return np.zeros((0, 8), dtype=np.float32)
        return np.array(self.model(windows, training=False), dtype=np.float32)

    def analyse(self, audio: np.ndarray, starts: np.ndarray, window_seconds: float = 3.0) -> WindowProbs:
        """Emotion probabilities for windows of 16 kHz mono audio starting at `starts` (s).

        Silent windows are marked absent (present False, probabilities zero).
        """
        windows, silent = speech_windows(audio, starts, window_seconds)
        probs = self.predict(windows)
        probs[silent] = 0.0
        return WindowProbs(times=starts, probs=probs, present=~silent)
