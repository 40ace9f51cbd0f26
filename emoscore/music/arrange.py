"""Arrangement: the LSTM's piano part plus a harmonic bed (pad) and a bass that follow its harmony.

Everything here works on note arrays in grid steps (sixteenth notes; see events.py), so it does not
depend on the tempo. Chords are estimated per window (`chord_beats` beats) from the generated pitches by
matching major/minor triad templates, preferring chords of the key and keeping the previous chord when
the evidence is weak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from emoscore.config import QuadrantStyle
from emoscore.music.events import STEPS_PER_BEAT, Key, transpose

TRIADS: dict[str, tuple[int, int, int]] = {"major": (0, 4, 7), "minor": (0, 3, 7)}
DIATONIC_BONUS = 0.15
STAY_BONUS = 0.05


@dataclass(frozen=True)
class Chord:
    start: float  # grid steps
    end: float
    root: int  # pitch class
    quality: str  # "major" | "minor"

    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in TRIADS[self.quality])

    def transposed(self, semitones: int) -> Chord:
        return replace(self, root=(self.root + semitones) % 12)


def diatonic_triads(key: Key) -> set[tuple[int, str]]:
    """(root, quality) of the key's major/minor triads (+ the major V of a minor key)."""
    t = key.major_tonic
    chords = {((t + d) % 12, q) for d, q in ((0, "major"), (2, "minor"), (4, "minor"), (5, "major"),
                                              (7, "major"), (9, "minor"))}
    if key.mode == "minor":
        chords.add(((key.tonic + 7) % 12, "major"))
    return chords


def window_weights(melody: np.ndarray, start: float, end: float) -> np.ndarray:
    """(12,) pitch-class weights in [start, end): overlap length x velocity, low notes counted double."""
    weights = np.zeros(12)
    if not len(melody):
        return weights
    overlap = np.minimum(melody[:, 1], end) - np.maximum(melody[:, 0], start)
    inside = overlap > 0
    if not inside.any():
        return weights
    notes = melody[inside]
    w = overlap[inside] * notes[:, 3] / 100.0
    w = w * np.where(notes[:, 2] <= np.percentile(notes[:, 2], 25), 2.0, 1.0)
    np.add.at(weights, notes[:, 2].astype(int) % 12, w)
    return weights


def best_triad(weights: np.ndarray, key: Key, previous: tuple[int, str] | None) -> tuple[int, str] | None:
    """The triad best explaining `weights` (None when there is no evidence)."""
    total = weights.sum()
    if total <= 0:
        return None
    diatonic = diatonic_triads(key)
    best, best_score = None, -np.inf
    for root in range(12):
        for quality, intervals in TRIADS.items():
            tones = [(root + i) % 12 for i in intervals]
            inside = weights[tones].sum() + 0.3 * weights[root]
            score = (inside - 0.6 * (total - weights[tones].sum())) / total
            score += DIATONIC_BONUS * ((root, quality) in diatonic) + STAY_BONUS * ((root, quality) == previous)
            if score > best_score:
                best, best_score = (root, quality), score
    return best


def estimate_chords(melody: np.ndarray, start: float, end: float, window: int, key: Key) -> list[Chord]:
    """One chord per `window` steps covering [start, end) (windows on multiples of `window`)."""
    tonic = (key.tonic, key.mode)
    chords: list[Chord] = []
    edge = float(np.floor(start / window) * window)
    previous: tuple[int, str] | None = None
    while edge < end:
        lo, hi = max(edge, start), min(edge + window, end)
        found = best_triad(window_weights(melody, lo, hi), key, previous)
        previous = found or previous or tonic
        chords.append(Chord(lo, hi, previous[0], previous[1]))
        edge += window
    return chords


# --- voicing -------------------------------------------------------------------------------------

def lowest_at_or_above(pitch_class: int, low: int) -> int:
    return low + (pitch_class - low) % 12


def voice_chord(chord: Chord, low: int, previous: Sequence[int] | None) -> list[int]:
    """Three close-position pitches >= low; the inversion nearest the previous voicing."""
    pcs = chord.pitch_classes()
    options = []
    for inversion in range(3):
        order = pcs[inversion:] + pcs[:inversion]
        pitches = [lowest_at_or_above(order[0], low)]
        for pc in order[1:]:
            pitches.append(lowest_at_or_above(pc, pitches[-1] + 1))
        options.append(pitches)
    if not previous:
        return options[0]
    return min(options, key=lambda p: sum(abs(a - b) for a, b in zip(p, previous, strict=False)))


def pad_notes(chords: Sequence[Chord], style: QuadrantStyle) -> np.ndarray:
    """The harmonic bed as a note array in steps (pattern sustain | pulse | arpeggio)."""
    rows: list[tuple[float, float, int, float]] = []
    previous: list[int] | None = None
    vel = float(style.pad_velocity)
    for chord in chords:
        pitches = voice_chord(chord, style.pad_low, previous)
        previous = pitches
        if style.pad_pattern == "sustain":
            rows += [(chord.start, chord.end, p, vel) for p in pitches]
        elif style.pad_pattern == "pulse":
            for i, beat in enumerate(np.arange(chord.start, chord.end, STEPS_PER_BEAT)):
                accent = 1.15 if (beat % (4 * STEPS_PER_BEAT)) == 0 else 1.0
                end = min(beat + STEPS_PER_BEAT * 0.5, chord.end)
                rows += [(beat, end, p, min(vel * accent, 127.0)) for p in pitches if i >= 0]
        else:
            cycle = [*pitches, pitches[0] + 12, pitches[1] + 12 if len(pitches) > 1 else pitches[0]]
            for i, onset in enumerate(np.arange(chord.start, chord.end, 2)):
                rows.append((onset, min(onset + 6, chord.end), cycle[i % len(cycle)], vel))
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def bass_notes(chords: Sequence[Chord], style: QuadrantStyle) -> np.ndarray:
    """The bass line (roots, fifths) as a note array in steps."""
    spacing = {"whole": 4 * STEPS_PER_BEAT, "half": 2 * STEPS_PER_BEAT, "root_fifth": STEPS_PER_BEAT,
               "eighths": STEPS_PER_BEAT // 2}[style.bass_pattern]
    length = {"whole": 1.0, "half": 0.95, "root_fifth": 0.75, "eighths": 0.6}[style.bass_pattern]
    rows: list[tuple[float, float, int, float]] = []
    for chord in chords:
        root = lowest_at_or_above(chord.root, style.bass_low)
        first = np.ceil(chord.start / spacing) * spacing
        onsets = [chord.start] if first > chord.start else []
        onsets += list(np.arange(first, chord.end, spacing))
        for i, onset in enumerate(onsets):
            pitch = root + 7 if style.bass_pattern == "root_fifth" and i % 2 else root
            accent = 1.1 if onset % (4 * STEPS_PER_BEAT) == 0 else 1.0
            end = min(onset + spacing * length, chord.end)
            rows.append((onset, end, pitch, min(style.bass_velocity * accent, 127.0)))
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def place_melody(melody: np.ndarray, semitones: int, style: QuadrantStyle) -> np.ndarray:
    """Move the LSTM's notes to the target key, into the style's register and dynamics; apply staccato."""
    out = transpose(melody, semitones)
    if not len(out):
        return out
    centre = (style.melody_low + style.melody_high) / 2
    octaves = int(np.round((centre - np.median(out[:, 2])) / 12))
    out = transpose(out, 12 * octaves, style.melody_low, style.melody_high)
    mean = out[:, 3].mean()
    out[:, 3] = np.clip(style.melody_velocity + 0.8 * (out[:, 3] - mean), 20, 127)
    length = (out[:, 1] - out[:, 0]) * style.staccato
    out[:, 1] = out[:, 0] + np.maximum(length, 0.5)
    return out
