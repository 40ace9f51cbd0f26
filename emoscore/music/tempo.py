"""One tempo grid for a whole soundtrack: each segment's tempo, with linear ramps across boundaries.

Grid steps are sixteenth notes (events.STEPS_PER_BEAT per beat); the map converts both ways between
seconds and steps, so every part of every segment sits on one shared, continuous grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emoscore.music.events import STEPS_PER_BEAT

RESOLUTION = 0.005  # seconds between tabulated points


@dataclass(frozen=True)
class TempoMap:
    times: np.ndarray  # (n,) seconds, increasing
    steps: np.ndarray  # (n,) grid steps at those times, increasing

    def to_seconds(self, steps: np.ndarray | float) -> np.ndarray:
        return np.interp(steps, self.steps, self.times)

    def to_steps(self, seconds: np.ndarray | float) -> np.ndarray:
        return np.interp(seconds, self.times, self.steps)

    def step_seconds(self, at: float) -> float:
        """Length of one grid step (s) at time `at`."""
        s = float(self.to_steps(at))
        return float(self.to_seconds(s + 1) - self.to_seconds(s))


def tempo_curve(times: np.ndarray, boundaries: Sequence[float], tempos: Sequence[float],
                ramp_seconds: float) -> np.ndarray:
    """BPM at each time: tempos[i] inside segment i, linear ramps of `ramp_seconds` centred on each
    boundary (boundaries = the starts of segments 1..n-1)."""
    bpm = np.full(len(times), float(tempos[0]))
    for boundary, before, after in zip(boundaries, tempos[:-1], tempos[1:], strict=True):
        if ramp_seconds > 0:
            frac = np.clip((times - (boundary - ramp_seconds / 2)) / ramp_seconds, 0.0, 1.0)
        else:
            frac = (times >= boundary).astype(np.float64)
        bpm = np.where(times >= boundary - ramp_seconds / 2, before + (after - before) * frac, bpm)
    return bpm


def build_tempo_map(boundaries: Sequence[float], tempos: Sequence[float], ramp_seconds: float,
                    duration: float) -> TempoMap:
    """The map over [0, duration + 10 s] (the margin lets parts be generated past the end, then cut)."""
    times = np.arange(0.0, duration + 10.0, RESOLUTION)
    bpm = tempo_curve(times, boundaries, tempos, ramp_seconds)
    rate = bpm / 60.0 * STEPS_PER_BEAT  # steps per second
    steps = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * RESOLUTION)])
    return TempoMap(times, steps)


def tick_scales(tempo_map: TempoMap, duration: float, resolution: int) -> list[tuple[int, float]]:
    """The whole map as MIDI tempo events: (tick, seconds per tick) at every grid step whose length differs
    from the previous one, one grid step = resolution / STEPS_PER_BEAT ticks. Over each step the MIDI tempo is
    that step's mean, so every grid step falls on its tick at exactly the map's time."""
    ticks_per_step = resolution / STEPS_PER_BEAT
    last = int(np.ceil(float(tempo_map.to_steps(duration)))) + 1
    edges = tempo_map.to_seconds(np.arange(last + 1, dtype=np.float64))
    scales = np.diff(edges) / ticks_per_step
    events: list[tuple[int, float]] = []
    for step, scale in enumerate(scales):
        if not events or abs(scale - events[-1][1]) > 1e-4 * events[-1][1]:
            events.append((int(round(step * ticks_per_step)), float(scale)))
    return events


def apply_tempo_map(midi: Any, tempo_map: TempoMap, duration: float) -> None:
    """Give a PrettyMIDI the whole tempo map (written by midi.write as set-tempo events)."""
    scales = tick_scales(tempo_map, duration, int(midi.resolution))
    midi._tick_scales = scales
    total = float(tempo_map.to_steps(duration + 1.0)) * midi.resolution / STEPS_PER_BEAT
    midi._update_tick_to_time(int(np.ceil(total)) + 1)
