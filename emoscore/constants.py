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
SILENCE_RMS_DB = -65.0  # dBFS: a 20 ms frame below this is always silence (RAVDESS sad speech peaks near -50)
VOICED_RANGE_DB = 30.0  # a frame more than this below the clip's loud level (95th percentile) is silence too
MIN_VOICED_SECONDS = 0.2  # a window with less voiced sound than this counts as silent
# Loudness in the speech features: "relative" (log-RMS minus the window's loud level, so a recording's gain
# or loudness normalisation does not read as arousal) or "absolute" (dBFS). Chosen by actor-wise CV on
# clean and channel-degraded speech (checkpoints/manifest.json, audio entry).
AUDIO_LEVEL = "relative"

# --- Faces ---------------------------------------------------------------------------------------
N_LANDMARKS = 68  # dlib / iBUG 300-W order
# iBUG-68 index of each point's mirror image under a horizontal flip (an involution): jaw 0-16 reversed,
# brows 17-21 <-> 26-22, nose bridge 27-30 fixed, nostrils 31-35 reversed, eyes 36-41 <-> 45-42/47-46,
# outer lips 48-54 reversed and 55-59 reversed, inner lips 60-64 reversed and 65-67 reversed.
LANDMARK_MIRROR: tuple[int, ...] = (
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, *range(35, 30, -1),
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    *range(54, 47, -1), 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)
LEFT_EYE = tuple(range(36, 42))  # the eye on the image's left (the subject's right eye)
RIGHT_EYE = tuple(range(42, 48))
# Face features fed to the CNN, per landmark: "coords" (x, y aligned), "distances" (to all kept points),
# or "both". Chosen by unseen-actor accuracy (see the manifest's visual entry).
FACE_FEATURES = "coords"
# Which landmarks the CNN reads: "all" 68, or "no-jaw" (17-67). "all": on identical faces (RAVDESS actor 05)
# dlib and OpenFace differ by only 0.034 IOD, and the jaw adds 2.9 points of actor-CV accuracy
# (visual_train.RECIPE_CV).
FACE_POINTS = "all"
# Similarity alignment: "eyes" (eye-centre midpoint at 0, eyes on the x axis, IOD 1), "stable" (origin at
# the centroid of the eye corners 36/39/42/45 and nose bridge 27-30, x axis through the eye-corner midpoints,
# scaled so the eye-corner midpoints are 1 apart) or "procrustes" (least-squares fit of 11 stable points to
# their mean shape: +2 points of actor-CV accuracy over "eyes" with a linear probe, visual_train.RECIPE_CV).
FACE_ALIGNMENT = "procrustes"
# "procrustes" alignment: least-squares similarity fit of the stable points (eye corners 36/39/42/45, nose
# bridge 27-30, nostrils 31/33/35; closed under LANDMARK_MIRROR) onto this template, their mean shape over
# RAVDESS OpenFace frames and faces-in-the-wild photos (generalised Procrustes, made mirror-symmetric, eye-centre
# midpoint at 0 and eye-centre distance 1), so aligned faces stay in IOD units.
PROCRUSTES_POINTS: tuple[int, ...] = (36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35)
PROCRUSTES_TEMPLATE: tuple[tuple[float, float], ...] = (
    (-0.693, 0.005), (-0.298, 0.023), (0.298, 0.023), (0.693, 0.005), (0.0, -0.041), (0.0, 0.155),
    (0.0, 0.349), (0.0, 0.549), (-0.229, 0.688), (0.0, 0.765), (0.229, 0.688),
)
# Person calibration (emoscore/calibration.py): the visual model reads a face minus s x (the person's mean face -
# everyone's), s = n / (n + FACE_CALIBRATION_PRIOR), n the person's face time in moments of FACE_MOMENT_SECONDS
# (one RAVDESS clip). Linear probe, actor-wise CV with other clips of the test actor as context: priors 2, 4 and
# 8 within 0.5 points of each other at every context size; 0.5 loses 2-3 points without context.
FACE_CALIBRATION_PRIOR = 4.0
FACE_MOMENT_SECONDS = 3.0
# What the visual CNN reads: "both" (each landmark's features as they are and minus the person offset: 2 x the
# channels), "calibrated" (minus the offset only) or "none" (as they are; no calibration). Chosen by actor-wise CV
# over four ways of seeing a person (alone, 5 moments of the same emotion, 5 random moments, all their clips):
# visual_train.RECIPE_CV.
FACE_CALIBRATION_INPUT = "both"
FACE_UPSAMPLE_BELOW = 480  # px: frames whose longer side is shorter get the HOG detector's 2x upsampling
FACE_DETECT_WIDTH = 320  # px: larger frames are searched for faces at this width first (4x fewer pixels at 640)

# --- Rendering and output ------------------------------------------------------------------------
OUTPUT_SAMPLE_RATE = 44_100  # Hz, stereo soundtrack
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".webm")
