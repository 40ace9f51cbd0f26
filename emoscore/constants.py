"""Every constant shared by training and inference: labels, sample rates, feature shapes.

A checkpoint records the constants it was trained with (see checkpoints.py) and refuses to load
when they differ from these.
"""

from __future__ import annotations

# --- Emotions (RAVDESS) ------------------------------------------------------------------------
EMOTIONS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
)
N_EMOTIONS = len(EMOTIONS)  # 8
# RAVDESS file names code emotions 01..08 in the order above.
RAVDESS_EMOTION_CODES: dict[str, int] = {f"{i + 1:02d}": i for i in range(N_EMOTIONS)}

# --- Russell quadrants ---------------------------------------------------------------------------
QUADRANTS: tuple[str, ...] = ("Q1", "Q2", "Q3", "Q4")
# Q1 +valence +arousal, Q2 -valence +arousal, Q3 -valence -arousal, Q4 +valence -arousal.
EMOTION_QUADRANT: dict[str, str] = {
    "neutral": "Q4", "calm": "Q4", "happy": "Q1", "surprised": "Q1",
    "angry": "Q2", "fearful": "Q2", "disgust": "Q2", "sad": "Q3",
}
# Circumplex coordinates (valence, arousal) in [-1, 1] per emotion; a segment's continuous value is
# the probability-weighted mean of these. Placed after Russell (1980) and kept inside each quadrant.
EMOTION_VA: dict[str, tuple[float, float]] = {
    "neutral": (0.15, -0.25), "calm": (0.45, -0.6), "happy": (0.8, 0.45), "surprised": (0.4, 0.8),
    "angry": (-0.65, 0.75), "fearful": (-0.6, 0.6), "disgust": (-0.7, 0.35), "sad": (-0.7, -0.5),
}
QUADRANT_VA: dict[str, tuple[float, float]] = {"Q1": (1, 1), "Q2": (-1, 1), "Q3": (-1, -1), "Q4": (1, -1)}

# --- Speech audio --------------------------------------------------------------------------------
AUDIO_SAMPLE_RATE = 16_000  # Hz, mono: what ffmpeg decodes speech to and what RAVDESS ships at
AUDIO_N_FFT = 1024  # 64 ms
AUDIO_HOP = 320  # 20 ms -> 50 feature frames per second
AUDIO_FRAME_RATE = AUDIO_SAMPLE_RATE / AUDIO_HOP  # 50.0 frames/s
N_MFCC = 13
N_CHROMA = 12
# Per frame: 13 MFCC + 12 chroma + RMS + spectral centroid.
AUDIO_FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"mfcc_{i}" for i in range(N_MFCC)) + tuple(f"chroma_{i}" for i in range(N_CHROMA))
    + ("rms", "centroid")
)
N_AUDIO_FEATURES = len(AUDIO_FEATURE_NAMES)  # 27
AUDIO_WINDOW_SECONDS = 3.0  # the model's input length
AUDIO_WINDOW_FRAMES = int(AUDIO_WINDOW_SECONDS * AUDIO_FRAME_RATE)  # 150 frames
SILENCE_RMS_DB = -45.0  # a window whose loudest 20 ms frame is below this (dBFS) counts as silent

# --- Faces ---------------------------------------------------------------------------------------
N_LANDMARKS = 68  # dlib / iBUG 300-W order

# --- Rendering and output ------------------------------------------------------------------------
OUTPUT_SAMPLE_RATE = 44_100  # Hz, stereo soundtrack
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".webm")
