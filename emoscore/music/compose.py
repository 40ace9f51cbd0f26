"""The library API: a soundtrack for a sequence of emotion segments, or one piece for one emotion.

For each segment the quadrant's LSTM generates a piano part on the shared tempo grid (tempo.py); the
arranger adds a pad and a bass that follow its chords (arrange.py). At each boundary the last chord of
the outgoing segment becomes the dominant of the incoming key (a pivot into the new key), the outgoing
pad sustains into the next segment, and both melodies cross-fade over `transition_seconds`. The piece
ends exactly at `duration` with a velocity and CC7 fade over `fade_out_seconds`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.config import MusicConfig, QuadrantStyle
from emoscore.constants import QUADRANT_VA, QUADRANTS
from emoscore.data.music import va_quadrant
from emoscore.errors import InputError
from emoscore.music import arrange
from emoscore.music.events import Key, detokenize, key_correlations, parse_key, pitch_class_histogram
from emoscore.music.sampler import Sampler, SamplingControls
from emoscore.music.tempo import TempoMap, apply_tempo_map, build_tempo_map

MIN_NOTE_SECONDS = 0.02
ROLES = ("melody", "pad", "bass")
DENSITY_TRIES = 3  # draws (each with half the previous longest rest) before a too-sparse melody is accepted
# Numeric style fields blended between the four quadrant styles by valence/arousal (segment_style).
BLEND_FIELDS = ("tempo", "melody_low", "melody_high", "pad_low", "bass_low", "melody_velocity", "pad_velocity",
                "bass_velocity", "staccato", "max_gap_seconds", "mode_bias", "min_notes_per_second",
                "max_notes_per_second", "pedal", "phrase_depth", "phrase_rest_beats", "pad_breath",
                "bass_length_beats")
VELOCITY_FIELDS = ("melody_velocity", "pad_velocity", "bass_velocity")
Controls = dict[str, np.ndarray]  # role -> (n, 3) [time, CC number, value]
_SAMPLERS: dict[tuple[str, str], Sampler] = {}


@dataclass(frozen=True)
class SegmentSpec:
    start: float  # seconds
    end: float
    quadrant: str  # "Q1".."Q4"
    valence: float  # [-1, 1]
    arousal: float  # [-1, 1]


def model_name(quadrant: str) -> str:
    return f"music_{quadrant.lower()}"


def load_sampler(checkpoints: Path, quadrant: str) -> Sampler:
    """The quadrant's LSTM (sha256- and constant-verified), loaded once per process and file."""
    from emoscore.music.events import vocab_constants
    from emoscore.music.lstm import load_weights
    from emoscore.runtime import lite_path

    path = lite_path(checkpoints, model_name(quadrant), constants=vocab_constants())  # the exported .npz
    cache_key = (str(path.resolve()), str(path.stat().st_mtime_ns))
    if cache_key not in _SAMPLERS:
        _SAMPLERS[cache_key] = Sampler(load_weights(path))
    return _SAMPLERS[cache_key]


def check_segments(segments: Sequence[SegmentSpec], duration: float) -> None:
    """Raise InputError unless the segments tile [0, duration] in order with known quadrants."""
    if not duration > 0:
        raise InputError(f"duration must be > 0 s, got {duration}")
    if not segments:
        raise InputError("no segments to compose")
    edge = 0.0
    for seg in segments:
        if seg.quadrant not in QUADRANTS:
            raise InputError(f"unknown quadrant {seg.quadrant!r}; use one of {', '.join(QUADRANTS)}")
        if abs(seg.start - edge) > 1e-3 or not seg.end > seg.start:
            raise InputError(f"segments must tile [0, {duration}] in order; got {seg.start}-{seg.end} after {edge}")
        edge = seg.end
    if abs(edge - duration) > 1e-3:
        raise InputError(f"segments end at {edge} s but the duration is {duration} s")


def quadrant_weights(valence: float, arousal: float) -> dict[str, float]:
    """Bilinear weights (sum 1) of the four quadrant styles at (valence, arousal) in [-1, 1]: each style
    sits at its quadrant's centre (+-0.5, +-0.5); past a centre the nearest style holds."""
    tv, ta = float(np.clip(valence + 0.5, 0, 1)), float(np.clip(arousal + 0.5, 0, 1))
    return {"Q1": tv * ta, "Q2": (1 - tv) * ta, "Q3": (1 - tv) * (1 - ta), "Q4": tv * (1 - ta)}


def segment_style(config: MusicConfig, seg: SegmentSpec) -> QuadrantStyle:
    """The style at the segment's valence/arousal: tempo, density, dynamics, register, pedal and phrasing
    blended smoothly between the quadrant styles (key, programs and patterns stay the quadrant's); arousal
    beyond the quadrant's centre pushes tempo (+-10%) and velocities (+-10) further."""
    base = config.style(seg.quadrant)
    weights = quadrant_weights(seg.valence, seg.arousal)
    values: dict[str, Any] = {}
    for name in BLEND_FIELDS:
        blended = sum(w * float(getattr(config.style(q), name)) for q, w in weights.items())
        values[name] = int(round(blended)) if isinstance(getattr(base, name), int) else float(blended)
    excess = float(seg.arousal - np.clip(seg.arousal, -0.5, 0.5))  # in [-0.5, 0.5]
    values["tempo"] *= 1 + 0.2 * excess
    for name in VELOCITY_FIELDS:
        values[name] = int(np.clip(values[name] + round(20 * excess), 15, 120))
    if values["melody_high"] - values["melody_low"] < 12:
        values["melody_high"] = values["melody_low"] + 12
    return dataclasses.replace(base, **values)


def generation_key(melody: np.ndarray) -> Key:
    """C major or A minor, whichever the generated notes (in the common key) fit better."""
    corr = key_correlations(pitch_class_histogram(melody))
    return Key(0, "major") if corr[0, 0] >= corr[1, 9] else Key(9, "minor")


def key_shift(target: Key) -> int:
    """Semitones (-6..5) from the common key signature (C major / A minor) to the target's."""
    return int((target.major_tonic + 6) % 12 - 6)


def mode_bias(mode: str, strength: float) -> tuple[float, ...]:
    """(12,) pitch-class logit bonus on the common key's tonic triad: A C E for minor, C E G for major."""
    triad = (9, 0, 4) if mode == "minor" else (0, 4, 7)
    return tuple(strength if pc in triad else 0.0 for pc in range(12))


def generate_melody(sampler: Sampler, style: QuadrantStyle, config: MusicConfig, tempo_map: TempoMap,
                    span: tuple[float, float], seed: int, prime: np.ndarray | None = None,
                    shift_scale: float = 1.0) -> np.ndarray:
    """The LSTM's notes in grid steps over [span) (in the common key), first onset on the grid;
    `shift_scale` shortens the longest rest allowed between onsets."""
    first = float(np.ceil(span[0] - 1e-6))
    step_s = tempo_map.step_seconds(float(tempo_map.to_seconds(first)))
    semis = key_shift(parse_key(style.key))
    controls = SamplingControls(
        temperature=config.temperature, top_p=config.top_p,
        pitch_low=max(21, style.melody_low - semis - 12), pitch_high=min(108, style.melody_high - semis + 12),
        max_shift=int(np.clip(shift_scale * style.max_gap_seconds / step_s, 1, 16)), max_chord=style.max_chord,
        repeat_penalty=config.repeat_penalty, ngram_penalty=config.ngram_penalty,
        pc_bias=mode_bias(parse_key(style.key).mode, style.mode_bias))
    total = max(int(np.ceil(span[1] - first)), 1)
    tokens = sampler.generate(total, controls, seed, prime)
    melody = detokenize(tokens, first)
    melody[:, 1] = np.minimum(melody[:, 1], span[1])
    return melody[melody[:, 0] < span[1]]


def density_melody(sampler: Sampler, style: QuadrantStyle, config: MusicConfig, tempo_map: TempoMap,
                   span: tuple[float, float], seed: int) -> np.ndarray:
    """A phrased melody (grid steps) whose notes per second lie in the style's band: re-drawn with shorter
    rests while too sparse (DENSITY_TRIES draws at most, the densest kept, then its longest gaps re-struck),
    thinned when too busy."""
    seconds = float(tempo_map.to_seconds(span[1]) - tempo_map.to_seconds(span[0]))
    best = np.zeros((0, 4))
    for attempt in range(DENSITY_TRIES):
        melody = arrange.shape_phrases(generate_melody(sampler, style, config, tempo_map, span,
                                                       seed + 7919 * attempt, shift_scale=0.5**attempt), style)
        if len(melody) > len(best):
            best = melody
        if len(best) >= style.min_notes_per_second * seconds:
            break
    best = arrange.fill_sparse(best, int(np.ceil(style.min_notes_per_second * seconds)), span[1])
    return arrange.thin_notes(best, int(np.floor(style.max_notes_per_second * seconds)))


def segment_parts(seg: SegmentSpec, style: QuadrantStyle, next_key: Key | None, melody: np.ndarray,
                  span: tuple[float, float], transition_steps: float) -> tuple[dict[str, np.ndarray], Controls]:
    """Melody, pad and bass note arrays (grid steps, target key) for one segment, and their control changes
    ((n, 3) [step, CC number, value]: the melody's sustain pedal, the pad's expression)."""
    target = parse_key(style.key)
    semis = key_shift(target)
    gen_key = generation_key(melody)
    window = style.chord_beats * 4
    chords = [c.transposed(semis) for c in arrange.estimate_chords(melody, span[0], span[1], window, gen_key)]
    if next_key is not None:
        pivot_from = max(span[1] - max(transition_steps, window / 2), span[0])
        chords = pivot_chords(chords, pivot_from, (next_key.tonic + 7) % 12)
    notes = {"melody": arrange.place_melody(melody, semis, style), "pad": arrange.pad_notes(chords, style),
             "bass": arrange.bass_notes(chords, style)}
    pedal, swell = arrange.pedal_events(chords, style), arrange.pad_expression(span[0], span[1], style)
    controls = {"melody": np.insert(pedal, 1, 64.0, axis=1), "pad": np.insert(swell, 1, 11.0, axis=1)}
    return notes, controls


def pivot_chords(chords: list[arrange.Chord], start: float, dominant_root: int) -> list[arrange.Chord]:
    """Replace the harmony from `start` on with the major dominant of the next key."""
    out = []
    for chord in chords:
        if chord.end <= start:
            out.append(chord)
            continue
        if chord.start < start:
            out.append(dataclasses.replace(chord, end=start))
        out.append(arrange.Chord(max(chord.start, start), chord.end, dominant_root, "major"))
    return out


def crossfade(notes: np.ndarray, seg: SegmentSpec, first: bool, last: bool, fade: float) -> np.ndarray:
    """Scale velocities: fade in over the first `fade` s (not the first segment), out over the last."""
    out = notes.copy()
    if fade <= 0 or not len(out):
        return out
    gain = np.ones(len(out))
    if not first:
        gain *= np.clip(0.55 + 0.45 * (out[:, 0] - seg.start) / fade, 0.55, 1.0)
    if not last:
        gain *= np.clip(0.55 + 0.45 * (seg.end - out[:, 0]) / fade, 0.55, 1.0)
    out[:, 3] = out[:, 3] * gain
    return out


def compose_soundtrack(segments: Sequence[SegmentSpec], duration: float, config: MusicConfig,
                       checkpoints: Path, seed: int = 0, log: Callable[[str], None] = lambda _: None,
                       overrides: dict[str, Any] | None = None) -> Any:
    """A PrettyMIDI of exactly `duration` seconds whose music follows `segments` (which tile [0, duration]),
    with the whole tempo map; `overrides` (style field -> value) replace every segment's blended style.

    Raises InputError for bad segments, ModelError/ChecksumError for missing or altered checkpoints.
    """
    check_segments(segments, duration)
    styles = [dataclasses.replace(segment_style(config, s), **(overrides or {})) for s in segments]
    tempo_map = build_tempo_map([s.start for s in segments[1:]], [st.tempo for st in styles],
                                config.transition_seconds, duration)
    parts: dict[tuple[str, int], list[np.ndarray]] = {}
    controls: dict[tuple[str, int], list[np.ndarray]] = {}
    for i, (seg, style) in enumerate(zip(segments, styles, strict=True)):
        sampler = load_sampler(checkpoints, seg.quadrant)
        span = (float(tempo_map.to_steps(seg.start)), float(tempo_map.to_steps(seg.end)))
        last = i == len(segments) - 1
        melody = density_melody(sampler, style, config, tempo_map, span, seed * 1009 + i)
        next_key = None if last else parse_key(styles[i + 1].key)
        trans_steps = float(tempo_map.to_steps(seg.end) - tempo_map.to_steps(seg.end - config.transition_seconds))
        notes_by_role, cc_by_role = segment_parts(seg, style, next_key, melody, span, trans_steps)
        for role, cc in cc_by_role.items():
            program = {"melody": style.melody_program, "pad": style.pad_program, "bass": style.bass_program}[role]
            controls.setdefault((role, program), []).append(to_seconds(cc, tempo_map))
        for role, notes in notes_by_role.items():
            program = {"melody": style.melody_program, "pad": style.pad_program, "bass": style.bass_program}[role]
            seconds = to_seconds(notes, tempo_map)
            if role == "pad" and not last:
                seconds[np.isclose(seconds[:, 1], seg.end), 1] += config.transition_seconds / 2
            faded = crossfade(seconds, seg, i == 0, last, config.transition_seconds)
            parts.setdefault((role, program), []).append(faded)
        log(f"  {seg.quadrant} {seg.start:6.1f}-{seg.end:6.1f} s  {style.tempo:5.1f} BPM  {style.key:<8} "
            f"{len(melody)} melody notes")
    midi = assemble(parts, duration, config.fade_out_seconds, styles[0].tempo, controls)
    apply_tempo_map(midi, tempo_map, duration)
    return midi


def to_seconds(notes: np.ndarray, tempo_map: TempoMap) -> np.ndarray:
    """Note arrays (n, 4): start and end to seconds; control arrays (n, 3): the time column."""
    out = notes.copy()
    if len(out):
        out[:, 0] = tempo_map.to_seconds(notes[:, 0])
        if out.shape[1] == 4:
            out[:, 1] = tempo_map.to_seconds(notes[:, 1])
    return out


def fade_out(notes: np.ndarray, duration: float, fade: float) -> np.ndarray:
    """Cut notes at `duration`, drop too-short ones, ramp velocity down over the last `fade` seconds."""
    out = notes.copy()
    out[:, 1] = np.minimum(out[:, 1], duration)
    out = out[out[:, 1] - out[:, 0] >= MIN_NOTE_SECONDS]
    if fade > 0 and len(out):
        out[:, 3] *= np.clip(1 - 0.6 * (out[:, 0] - (duration - fade)) / fade, 0.4, 1.0)
    return out


def assemble(parts: dict[tuple[str, int], list[np.ndarray]], duration: float, fade: float,
             tempo: float, controls: dict[tuple[str, int], list[np.ndarray]] | None = None) -> Any:
    """Instruments per (role, program), cut to `duration`, with their control changes ((n, 3) [seconds,
    number, value] per (role, program)) and a CC7 fade ending exactly at `duration`."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=float(tempo))
    fade = min(fade, duration)
    for (role, program), chunks in sorted(parts.items(), key=lambda kv: (ROLES.index(kv[0][0]), kv[0][1])):
        notes = fade_out(np.concatenate(chunks), duration, fade)
        inst = pretty_midi.Instrument(program=program, name=f"{role} {pretty_midi.program_to_instrument_name(program)}")
        for start, end, pitch, velocity in notes:
            inst.notes.append(pretty_midi.Note(int(np.clip(round(velocity), 1, 127)), int(pitch), float(start),
                                               float(end)))
        inst.control_changes.append(pretty_midi.ControlChange(7, 100, 0.0))
        for time, number, value in np.concatenate((controls or {}).get((role, program), [np.zeros((0, 3))])):
            if time < duration:
                inst.control_changes.append(pretty_midi.ControlChange(int(number), int(value), float(time)))
        for t in np.linspace(duration - fade, duration, 9)[1:] if fade > 0 else [duration]:
            level = 100 * (duration - t) / fade if fade > 0 else 0
            inst.control_changes.append(pretty_midi.ControlChange(7, int(round(level)), float(t)))
        midi.instruments.append(inst)
    return midi


def compose_piece(quadrant: str | None, seconds: float, config: MusicConfig, checkpoints: Path, seed: int = 0,
                  valence: float | None = None, arousal: float | None = None, tempo: float | None = None,
                  key: str | None = None) -> Any:
    """One piece of `seconds` for a quadrant, or for the quadrant of (valence, arousal) which also nudge
    tempo and dynamics; `tempo` (BPM) and `key` ('D minor') override the quadrant's style."""
    if quadrant is None:
        if valence is None or arousal is None:
            raise InputError("give a quadrant, or both valence and arousal")
        quadrant = va_quadrant(valence, arousal)
    quadrant = quadrant.upper()
    if quadrant not in QUADRANTS:
        raise InputError(f"unknown quadrant {quadrant!r}; use one of {', '.join(QUADRANTS)}")
    for name, value in (("valence", valence), ("arousal", arousal)):
        if value is not None and not -1 <= value <= 1:
            raise InputError(f"{name} must be within [-1, 1], got {value}")
    if tempo is not None and not 20 <= tempo <= 300:
        raise InputError(f"tempo must be within 20..300 BPM, got {tempo}")
    centre_v, centre_a = (0.5 * c for c in QUADRANT_VA[quadrant])
    v, a = (centre_v if valence is None else valence), (centre_a if arousal is None else arousal)
    overrides: dict[str, Any] = {}
    if tempo is not None:
        overrides["tempo"] = float(tempo)
    if key is not None:
        overrides["key"] = parse_key(key).name
    return compose_soundtrack([SegmentSpec(0.0, seconds, quadrant, v, a)], seconds, config, checkpoints, seed,
                              overrides=overrides)
