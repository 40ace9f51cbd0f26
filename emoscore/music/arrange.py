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
from emoscore.music.events import STEPS_PER_BEAT, Key, sort_notes, transpose

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
            for i, beat in enumerate(np.arange(chord.start, chord.end, STEPS_PER_BEAT * style.pulse_beats)):
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
    if style.bass_pattern == "downbeat":
        return downbeat_bass(chords, style)
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


def downbeat_bass(chords: Sequence[Chord], style: QuadrantStyle) -> np.ndarray:
    """One root per chord on its first beat, `bass_length_beats` long: a bass that sounds, then rests."""
    length = style.bass_length_beats * STEPS_PER_BEAT
    rows = [(c.start, min(c.start + length, c.end), lowest_at_or_above(c.root, style.bass_low),
             float(style.bass_velocity)) for c in chords if c.end - c.start >= STEPS_PER_BEAT / 2]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


# --- density, phrasing, pedal, expression ---------------------------------------------------------

def onset_groups(melody: np.ndarray) -> list[np.ndarray]:
    """Row indices of the notes struck together (same start), in time order; `melody` sorted by start."""
    if not len(melody):
        return []
    cuts = np.flatnonzero(np.diff(melody[:, 0]) > 1e-6) + 1
    return list(np.split(np.arange(len(melody)), cuts))


def thin_notes(melody: np.ndarray, max_notes: int) -> np.ndarray:
    """At most `max_notes` notes: chords lose inner voices first (top and bottom kept), then the onset
    closest after its predecessor merges into it (the earlier notes ring on to its end). Steps in, steps out."""
    out = sort_notes(melody)
    if len(out) <= max_notes:
        return out
    keep = np.ones(len(out), dtype=bool)
    for group in onset_groups(out):
        if len(group) > 2 and keep.sum() > max_notes:
            inner = group[np.argsort(out[group, 2])][1:-1]
            keep[inner[: int(keep.sum() - max_notes)]] = False
    out = out[keep]
    groups = onset_groups(out)
    starts = [float(out[g[0], 0]) for g in groups]
    count = len(out)
    while count > max_notes and len(groups) > 1:
        gaps = np.diff(starts)
        k = int(np.argmin(gaps)) + 1  # the group that follows its predecessor most closely
        prev, gone = groups[k - 1], groups[k]
        out[prev, 1] = np.maximum(out[prev, 1], out[gone, 1].max())
        count -= len(gone)
        del groups[k], starts[k]
    return sort_notes(out[np.concatenate(groups)])


def phrase_position(steps: np.ndarray, style: QuadrantStyle) -> np.ndarray:
    """Where each time (grid steps) sits inside its phrase, in [0, 1)."""
    length = style.phrase_bars * 4 * STEPS_PER_BEAT
    return np.mod(steps, length) / length


def shape_phrases(melody: np.ndarray, style: QuadrantStyle) -> np.ndarray:
    """A velocity arch over each phrase and no onset in its last `phrase_rest_beats` beats (steps in/out)."""
    out = melody.copy()
    if not len(out):
        return out
    pos = phrase_position(out[:, 0], style)
    out[:, 3] = np.clip(out[:, 3] * (1 + style.phrase_depth * (2 * np.sin(np.pi * pos) - 1)), 1, 127)
    rest = style.phrase_rest_beats / (style.phrase_bars * 4)
    breath = (pos >= 1 - rest) & (rest > 0)
    return out if breath.all() else out[~breath]


def pedal_events(chords: Sequence[Chord], style: QuadrantStyle) -> np.ndarray:
    """(n, 2) [step, CC64 value]: down just after each chord change, up after `pedal` of the chord
    (a pianist's legato pedalling: lift and catch the new harmony); empty for pedal 0."""
    rows: list[tuple[float, float]] = []
    if style.pedal <= 0:
        return np.zeros((0, 2))
    for chord in chords:
        length = chord.end - chord.start
        rows += [(chord.start + min(0.25, length / 4), 127.0),
                 (chord.start + max(style.pedal * length - 0.25, length / 2), 0.0)]
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def pad_expression(start: float, end: float, style: QuadrantStyle) -> np.ndarray:
    """(n, 2) [step, CC11 value] every beat: the pad swells into the middle of each phrase and recedes
    by `pad_breath` at its ends."""
    beats = np.arange(np.floor(start / STEPS_PER_BEAT) * STEPS_PER_BEAT, end, STEPS_PER_BEAT)
    beats = np.clip(beats, start, None)
    level = 1 - style.pad_breath * (1 - np.sin(np.pi * phrase_position(beats, style)))
    return np.stack([beats, np.round(110 * level)], axis=1) if len(beats) else np.zeros((0, 2))


def fill_sparse(melody: np.ndarray, min_notes: int, end: float) -> np.ndarray:
    """At least `min_notes` notes before `end` (steps): while short, the longest gap between onsets (or
    before `end`) gets a softer re-strike of the highest note before it, on the grid at the gap's middle."""
    out = sort_notes(melody)
    if not len(out):
        return out
    rows = [tuple(r) for r in out]
    while len(rows) < min_notes:
        starts = np.unique([r[0] for r in rows])
        edges = np.append(starts, end)
        k = int(np.argmax(np.diff(edges)))
        at = float(np.floor((edges[k] + edges[k + 1]) / 2))
        if at <= edges[k]:
            break  # no gap of two steps left
        before = [r for r in rows if r[0] == edges[k]]
        top = max(before, key=lambda r: r[2])
        rows.append((at, min(at + (edges[k + 1] - at), at + 4 * STEPS_PER_BEAT), top[2], top[3] * 0.85))
    return sort_notes(np.array(rows, dtype=np.float64).reshape(-1, 4))
