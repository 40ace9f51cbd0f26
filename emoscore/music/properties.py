"""The measurable properties of a piece that decide whether it sounds like its quadrant (issue 9's table).

Measured the same way on composed pieces (full arrangement, parts rendered alone for the balance) and on
EMOPIA clips (piano only), over the same window (the first `seconds`):

- pad_db / bass_db: RMS level of the pad / bass rendered alone, against the melody rendered alone (dB);
- peak_to_average_db: the 99th percentile of the frame level minus the mean frame level (dB);
- quiet_p10_dbfs: the quietest 10% of frames (10th percentile), the piece level-matched to -20 dBFS;
- low_note_fraction: share of the time a note below G2 (MIDI 43) sounds;
- low_energy_fraction: share of the audio energy below 150 Hz;
- onsets_per_s: distinct onsets (within ONSET_MERGE_S) per second, all parts;
- melody_notes_per_s: notes per second of the melody (EMOPIA: of the piano);
- pedal_fraction: share of the time the sustain pedal (CC64 >= 64) is down.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emoscore.music.audio_features import (
    FEATURE_SAMPLE_RATE,
    REFERENCE_DB,
    frame_db,
    level_match,
    render_mono,
    spectral_features,
)

LOW_NOTE = 43  # G2
ONSET_MERGE_S = 0.05  # onsets closer than this count once
PEDAL_DOWN = 64
PROPERTY_NAMES = ("pad_db", "bass_db", "peak_to_average_db", "quiet_p10_dbfs", "low_note_fraction",
                  "low_energy_fraction", "onsets_per_s", "melody_notes_per_s", "pedal_fraction")


def notes_of(midi: Any, role: str | None = None) -> np.ndarray:
    """(n, 4) start, end, pitch, velocity of the instruments whose name starts with `role` (None: all)."""
    rows = [(n.start, n.end, n.pitch, n.velocity) for inst in midi.instruments
            if role is None or inst.name.startswith(role) for n in inst.notes]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def sounding_fraction(notes: np.ndarray, seconds: float, resolution: float = 0.01) -> float:
    """Share of [0, seconds) during which at least one of `notes` sounds."""
    grid = np.zeros(max(int(seconds / resolution), 1), dtype=bool)
    for start, end in notes[:, :2]:
        grid[int(start / resolution):int(np.ceil(min(end, seconds) / resolution))] = True
    return float(grid.mean())


def onset_rate(notes: np.ndarray, seconds: float) -> float:
    """Distinct onsets per second (onsets within ONSET_MERGE_S of the previous one merge)."""
    starts = np.sort(notes[notes[:, 0] < seconds, 0])
    if not len(starts):
        return 0.0
    return float((1 + (np.diff(starts) > ONSET_MERGE_S).sum()) / seconds)


def pedal_fraction(midi: Any, seconds: float, resolution: float = 0.01) -> float:
    """Share of [0, seconds) with CC64 >= PEDAL_DOWN on any instrument."""
    grid = np.zeros(max(int(seconds / resolution), 1), dtype=bool)
    for inst in midi.instruments:
        changes = sorted((cc.time, cc.value) for cc in inst.control_changes if cc.number == 64)
        for (time, value), nxt in zip(changes, [*changes[1:], (seconds, 0)], strict=False):
            if value >= PEDAL_DOWN:
                grid[int(time / resolution):int(min(nxt[0], seconds) / resolution)] = True
    return float(grid.mean())


def level_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-12))


def audio_properties(audio: np.ndarray) -> dict[str, float]:
    """Loudness dynamics and low-frequency share of mono audio at FEATURE_SAMPLE_RATE."""
    import librosa

    y = level_match(audio)
    db = frame_db(y)
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    bands = spectral_features(power, librosa.fft_frequencies(sr=FEATURE_SAMPLE_RATE, n_fft=2048))[5:]
    return {"peak_to_average_db": float(np.percentile(db, 99) - db.mean()),
            "quiet_p10_dbfs": float(np.percentile(db, 10) + REFERENCE_DB), "low_energy_fraction": bands[0]}


def symbolic_properties(midi: Any, seconds: float, melody_role: str | None) -> dict[str, float]:
    """Register, density and pedal from the MIDI itself (`melody_role` None: every note is melody)."""
    every = notes_of(midi)
    every = every[every[:, 0] < seconds]
    melody = notes_of(midi, melody_role) if melody_role else every
    melody = melody[melody[:, 0] < seconds]
    return {"low_note_fraction": sounding_fraction(every[every[:, 2] < LOW_NOTE], seconds),
            "onsets_per_s": onset_rate(every, seconds), "melody_notes_per_s": len(melody) / seconds,
            "pedal_fraction": pedal_fraction(midi, seconds)}


def part_balance(midi: Any, seconds: float, soundfont: str = "") -> dict[str, float]:
    """Pad and bass RMS levels (each rendered alone) against the melody's, dB (nan for a missing part)."""
    import copy

    levels: dict[str, float] = {}
    for role in ("melody", "pad", "bass"):
        alone = copy.copy(midi)
        alone.instruments = [i for i in midi.instruments if i.name.startswith(role)]
        levels[role] = level_db(render_mono(alone, seconds, soundfont)) if alone.instruments else float("nan")
    return {"pad_db": levels["pad"] - levels["melody"], "bass_db": levels["bass"] - levels["melody"]}


def composed_properties(midi: Any, seconds: float, soundfont: str = "",
                        audio: np.ndarray | None = None) -> dict[str, float]:
    """Every property of a composed piece; `audio` is its full mono render when already at hand."""
    full = render_mono(midi, seconds, soundfont) if audio is None else audio
    return {**part_balance(midi, seconds, soundfont), **audio_properties(full),
            **symbolic_properties(midi, seconds, "melody")}


def clip_properties(midi: Any, audio: np.ndarray) -> dict[str, float]:
    """Every property of a piano clip (no parts: the balance rows are nan) over its rendered length."""
    seconds = len(audio) / FEATURE_SAMPLE_RATE
    return {"pad_db": float("nan"), "bass_db": float("nan"), **audio_properties(audio),
            **symbolic_properties(midi, seconds, None)}


def summarize(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """Per property: [mean, p10, p90, min, max] over pieces (nan-aware), rounded."""
    out: dict[str, list[float]] = {}
    for name in PROPERTY_NAMES:
        values = np.array([r[name] for r in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values):
            stats = [values.mean(), *np.percentile(values, [10, 90]), values.min(), values.max()]
            out[name] = [round(float(v), 3) for v in stats]
    return out
