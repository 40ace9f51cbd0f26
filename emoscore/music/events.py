"""Notes, keys and the note-event vocabulary shared by training and generation.

A *note array* is float64 (n, 4): start, end, pitch (MIDI), velocity (1..127); start/end in seconds, or in
grid steps where a function says so. Rows are sorted by (start, pitch).

A *token array* is int32 (n, 4), one row per note, columns:
  shift     onset minus the previous onset, in grid steps, 0..MAX_SHIFT (0 = same onset, a chord tone)
  pitch     MIDI pitch minus PITCH_LOW, 0..N_PITCH-1
  duration  index into DURATION_STEPS
  velocity  velocity // (128 // N_VELOCITY), 0..N_VELOCITY-1
Each column's BOS value is its size (the first input row of every piece).

Every training file is at a nominal 120 BPM with free (transcribed) timing, so the grid is sixteenth notes
of that nominal tempo: 0.125 s. At generation, the grid is stretched to the requested tempo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.errors import DataError, InputError

NOMINAL_TEMPO = 120.0  # BPM of every EMOPIA/VGMIDI file
STEPS_PER_BEAT = 4  # sixteenth-note grid
NOMINAL_STEP_SECONDS = 60.0 / NOMINAL_TEMPO / STEPS_PER_BEAT  # 0.125 s
MAX_SHIFT = 16  # one 4/4 bar; longer rests are shortened to this
DURATION_STEPS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
N_VELOCITY = 8
PITCH_LOW, PITCH_HIGH = 21, 108  # the piano's range, inclusive
N_PITCH = PITCH_HIGH - PITCH_LOW + 1  # 88
FIELDS: tuple[str, ...] = ("shift", "pitch", "duration", "velocity")
FIELD_SIZES: tuple[int, ...] = (MAX_SHIFT + 1, N_PITCH, len(DURATION_STEPS), N_VELOCITY)  # 17, 88, 10, 8
BOS: tuple[int, ...] = FIELD_SIZES  # one past each field's last class
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def vocab_constants() -> dict[str, Any]:
    """What a model file depends on; recorded in the manifest and compared at load."""
    return {"fields": list(FIELDS), "field_sizes": list(FIELD_SIZES), "max_shift": MAX_SHIFT,
            "duration_steps": list(DURATION_STEPS), "n_velocity": N_VELOCITY, "pitch_low": PITCH_LOW,
            "pitch_high": PITCH_HIGH, "steps_per_beat": STEPS_PER_BEAT, "nominal_tempo": NOMINAL_TEMPO}


# --- reading -------------------------------------------------------------------------------------

def read_midi_notes(path: Path) -> np.ndarray:
    """All non-drum notes of a MIDI file as a note array in seconds. Raises DataError if unreadable."""
    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many types for a bad file
        raise DataError(f"cannot read MIDI file {path}: {exc}") from None
    return midi_notes(midi)


def midi_notes(midi: Any, programs: set[int] | None = None) -> np.ndarray:
    """Notes of a PrettyMIDI (non-drum; only `programs` when given) as a sorted note array in seconds."""
    rows = [(n.start, n.end, n.pitch, n.velocity) for inst in midi.instruments
            if not inst.is_drum and (programs is None or inst.program in programs) for n in inst.notes]
    return sort_notes(np.array(rows, dtype=np.float64).reshape(-1, 4))


def sort_notes(notes: np.ndarray) -> np.ndarray:
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))] if len(notes) else notes.reshape(0, 4)


# --- keys ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    mode: str  # "major" | "minor"

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    @property
    def major_tonic(self) -> int:
        """Tonic of the major key with the same signature (the relative major)."""
        return self.tonic if self.mode == "major" else (self.tonic + 3) % 12


def parse_key(text: str) -> Key:
    """'D minor', 'F# major', 'Bb', 'c#m' -> Key. Raises InputError. Reads tonic names as music21's key parser
    does (a letter, then sharps or flats, optionally an octave number) without importing music21 (0.5-1.7 s on
    every score run); tests/test_runtime.py checks it against music21."""
    words = text.strip().replace("-", " ").split()
    if not words:
        raise InputError("empty key; use e.g. 'D minor' or 'Bb major'")
    tonic, mode = words[0], (words[1].lower() if len(words) > 1 else "major")
    if tonic.lower().endswith("m") and len(words) == 1 and len(tonic) > 1:
        tonic, mode = tonic[:-1], "minor"
    tonic = tonic[0] + tonic[1:].replace("b", "-")
    if mode not in ("major", "minor"):
        raise InputError(f"key mode must be major or minor, got {text!r}")
    match = _TONIC.fullmatch(tonic)
    if match is None:
        raise InputError(f"not a key: {text!r}; use e.g. 'D minor' or 'Bb major'")
    letter, accidentals = match.group(1).upper(), match.group(2)
    return Key((_LETTER_PITCH[letter] + accidentals.count("#") - accidentals.count("-")) % 12, mode)


_TONIC = re.compile(r"([A-Ga-g])(#*|-*)\d*")
_LETTER_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """(12,) duration-weighted pitch-class histogram (not normalised)."""
    hist = np.zeros(12)
    if len(notes):
        np.add.at(hist, notes[:, 2].astype(int) % 12, np.maximum(notes[:, 1] - notes[:, 0], 1e-3))
    return hist


def key_correlations(hist: np.ndarray) -> np.ndarray:
    """(2, 12) Pearson correlations of a pitch-class histogram with music21's Krumhansl-Schmuckler major
    (row 0) and minor (row 1) key profiles rotated to each tonic."""
    profiles = _key_profiles()
    rotated = np.stack([[np.roll(p, t) for t in range(12)] for p in profiles])  # (2, 12, 12)
    h = hist - hist.mean()
    r = rotated - rotated.mean(axis=2, keepdims=True)
    denom = np.sqrt((r**2).sum(axis=2) * (h**2).sum()) + 1e-12
    return np.asarray((r @ h) / denom)


# music21's Krumhansl-Schmuckler weights (KrumhanslSchmuckler().getWeights), here so that composing never imports
# music21; tests/test_runtime.py checks them against music21.
KS_PROFILES = ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
               (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17))


def _key_profiles() -> np.ndarray:
    return np.array(KS_PROFILES, dtype=np.float64)


def estimate_key(notes: np.ndarray) -> Key:
    """The best-correlating key of the notes (C major for no notes)."""
    if not len(notes):
        return Key(0, "major")
    corr = key_correlations(pitch_class_histogram(notes))
    mode, tonic = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return Key(int(tonic), ("major", "minor")[int(mode)])


def shift_to_common_key(key: Key) -> int:
    """Semitones (-6..5) that move `key` to C major (major) or A minor (minor)."""
    return int((-key.major_tonic + 6) % 12 - 6)


def transpose(notes: np.ndarray, semitones: int, low: int = PITCH_LOW, high: int = PITCH_HIGH) -> np.ndarray:
    """Shift pitches, folding any note outside [low, high] back in by octaves."""
    out = notes.copy()
    pitch = out[:, 2] + semitones
    while (pitch < low).any() or (pitch > high).any():
        pitch = np.where(pitch < low, pitch + 12, pitch)
        pitch = np.where(pitch > high, pitch - 12, pitch)
    out[:, 2] = pitch
    return out


# --- tokens --------------------------------------------------------------------------------------

def tokenize(notes: np.ndarray, step_seconds: float = NOMINAL_STEP_SECONDS) -> np.ndarray:
    """Note array (seconds) -> token array (n, 4); notes on one grid step with one pitch are merged."""
    if not len(notes):
        return np.zeros((0, 4), np.int32)
    onset = np.round(notes[:, 0] / step_seconds).astype(np.int64)
    pitch = np.clip(notes[:, 2].astype(np.int64), PITCH_LOW, PITCH_HIGH)
    order = np.lexsort((pitch, onset))
    onset, pitch, notes = onset[order], pitch[order], notes[order]
    keep = np.ones(len(onset), bool)
    keep[1:] = (onset[1:] != onset[:-1]) | (pitch[1:] != pitch[:-1])
    onset, pitch, notes = onset[keep], pitch[keep], notes[keep]
    shift = np.clip(np.diff(onset, prepend=onset[0]), 0, MAX_SHIFT)
    steps = np.maximum((notes[:, 1] - notes[:, 0]) / step_seconds, 0.5)
    duration = np.abs(np.log(steps[:, None]) - np.log(np.array(DURATION_STEPS))[None]).argmin(axis=1)
    velocity = np.clip(notes[:, 3].astype(np.int64) // (128 // N_VELOCITY), 0, N_VELOCITY - 1)
    return np.stack([shift, pitch - PITCH_LOW, duration, velocity], axis=1).astype(np.int32)


def detokenize(tokens: np.ndarray, start_step: float = 0.0) -> np.ndarray:
    """Token array -> note array in grid steps (start, end, pitch, velocity); the first shift counts."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 4)
    onset = start_step + np.cumsum(tokens[:, 0]).astype(np.float64)
    duration = np.array(DURATION_STEPS, dtype=np.float64)[tokens[:, 2]]
    velocity = (tokens[:, 3] + 0.5) * (128 // N_VELOCITY)
    pitch = tokens[:, 1] + PITCH_LOW
    return np.stack([onset, onset + duration, pitch, velocity], axis=1).astype(np.float64)


def quantize(notes: np.ndarray) -> np.ndarray:
    """Notes (seconds) as the LSTM sees them: on the nominal grid, binned durations and velocities."""
    grid = np.array([NOMINAL_STEP_SECONDS, NOMINAL_STEP_SECONDS, 1.0, 1.0])
    return detokenize(tokenize(notes)) * grid


def preprocess_notes(notes: np.ndarray) -> tuple[np.ndarray, Key]:
    """Notes (seconds) -> (tokens in C major / A minor, the original key)."""
    key = estimate_key(notes)
    return tokenize(transpose(notes, shift_to_common_key(key))), key


def piece_stats(notes: np.ndarray, seconds: float | None = None) -> dict[str, float]:
    """Note density (notes/s), pitch range (semitones, 5th-95th percentile) and pitch-class entropy (bits)."""
    if not len(notes):
        return {"density": 0.0, "pitch_range": 0.0, "pc_entropy": 0.0, "repeated_4grams": 0.0}
    span = seconds if seconds else max(float(notes[:, 1].max() - notes[:, 0].min()), 1e-6)
    hist = np.bincount(notes[:, 2].astype(int) % 12, minlength=12).astype(float)
    p = hist[hist > 0] / hist.sum()
    low, high = np.percentile(notes[:, 2], [5, 95])
    return {"density": float(len(notes) / span), "pitch_range": float(high - low),
            "pc_entropy": float(-(p * np.log2(p)).sum()), "repeated_4grams": repeated_ngrams(notes[:, 2])}


def repeated_ngrams(pitches: np.ndarray, n: int = 4) -> float:
    """Fraction of the pitch n-grams that already occurred earlier in the sequence (0 = no repetition)."""
    grams = [tuple(pitches[i:i + n]) for i in range(len(pitches) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[float, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)
