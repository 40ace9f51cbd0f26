"""Sampling notes from a trained note LSTM, one numpy step at a time (no TensorFlow).

The LSTM step (music/lstm.LstmStep) carries its state explicitly. Each step: top-p (nucleus) sampling per
field (temperature on the pitch) with one numpy Generator seeded by the seed, so a seed always gives the
same notes (not the same notes as the earlier TensorFlow sampler, whose random stream was TensorFlow's).
Constraints keep the output musical:
- pitch: limited to a register, no repeated pitch within one chord, a penalty per recent use of a pitch
  (last HISTORY notes) and a stronger one for a pitch that would play a recent 4-gram a third time;
- shift: at most `max_shift` steps between onsets (no dead air), at most `max_chord` notes per onset
  (no runaway density).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emoscore.music.events import BOS, FIELD_SIZES, N_PITCH, PITCH_LOW
from emoscore.music.lstm import LstmStep

HISTORY = 24  # recent pitches remembered for the repetition penalties
NEG = -1e9
# Shift, duration and velocity are sampled at temperature 1 (almost the full distribution), so the note
# density and rhythm follow the training data; temperature and top-p shape the pitch choice only.
RHYTHM_TOP_P = 0.98
_PITCH_IDS = np.arange(N_PITCH)
_PITCH_CLASS = (_PITCH_IDS + PITCH_LOW) % 12
_SHIFT_IDS = np.arange(FIELD_SIZES[0])


@dataclass(frozen=True)
class SamplingControls:
    temperature: float = 1.0
    top_p: float = 0.92
    pitch_low: int = 21  # MIDI, inclusive
    pitch_high: int = 108
    max_shift: int = 12  # grid steps
    max_chord: int = 4  # notes per onset
    repeat_penalty: float = 0.1  # logits per recent use of a pitch
    ngram_penalty: float = 1.0  # logits per repeat beyond the first of a recent 4-gram
    pc_bias: tuple[float, ...] = (0.0,) * 12  # logits added per pitch class (e.g. the tonic triad)


def top_p_sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """Nucleus sampling: the smallest set of most likely classes whose probability reaches `top_p` (the most
    likely class always), renormalised, at `temperature`. logits (k,) -> a class index."""
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    cum = np.cumsum(probs[order]) - probs[order]  # exclusive cumulative sum
    kept = order[cum < top_p]
    weights = np.cumsum(probs[kept])
    return int(kept[min(int(np.searchsorted(weights, rng.random() * weights[-1], side="right")), len(kept) - 1)])


def pitch_logits(logits: np.ndarray, hist: np.ndarray, run: int, shift: int, controls: SamplingControls,
                 pc_bias: np.ndarray) -> np.ndarray:
    """Pitch logits (88,) with the register, chord and repetition constraints; hist (HISTORY,) recent pitch
    ids (-1 = none), `run` notes at the current onset, `shift` the sampled shift of this note."""
    logits = logits + pc_bias[_PITCH_CLASS]
    in_range = (controls.pitch_low - PITCH_LOW <= _PITCH_IDS) & (controls.pitch_high - PITCH_LOW >= _PITCH_IDS)
    counts = np.bincount(hist[hist >= 0], minlength=N_PITCH)[:N_PITCH]
    tail = hist[HISTORY - 3:]
    windows = np.stack([hist[0:HISTORY - 3], hist[1:HISTORY - 2], hist[2:HISTORY - 1]], axis=1)
    match = (windows == tail[None]).all(axis=1) & (hist[3:] >= 0) & bool((tail >= 0).all())
    repeats = np.bincount(hist[3:][match & (hist[3:] >= 0)], minlength=N_PITCH)[:N_PITCH]
    repeats = np.maximum(repeats - 1.0, 0.0)  # a motif may come back once; a third time is a loop
    blocked = np.zeros(N_PITCH, dtype=bool)
    if shift == 0:
        chord = hist[HISTORY - run:] if run > 0 else hist[:0]
        blocked[chord[chord >= 0]] = True
    logits = logits - controls.repeat_penalty * counts - controls.ngram_penalty * repeats
    return np.where(in_range & ~blocked, logits, NEG)


def shift_logits(logits: np.ndarray, run: int, controls: SamplingControls) -> np.ndarray:
    """Shift logits (17,) allowed up to `max_shift`, and 0 only while the onset has < `max_chord` notes."""
    ok = (controls.max_shift >= _SHIFT_IDS) & ((_SHIFT_IDS > 0) | (run < controls.max_chord))
    return np.where(ok, logits, NEG)


class Sampler:
    """Generates token arrays (n, 4) from one quadrant's LSTM weights (see lstm.lstm_weights / load_weights)."""

    def __init__(self, weights: dict[str, Any]) -> None:
        self.step = LstmStep(weights)

    def _advance(self, h: np.ndarray, c: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for token in tokens:
            h, c, _ = self.step(h, c, token)
        return h, c

    def _next(self, logits: list[np.ndarray], hist: np.ndarray, run: int, controls: SamplingControls,
              pc_bias: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One token (4,) from the four heads' logits under the constraints."""
        shift = top_p_sample(shift_logits(logits[0], run, controls), 1.0, RHYTHM_TOP_P, rng)
        pitch = top_p_sample(pitch_logits(logits[1], hist, run, shift, controls, pc_bias), controls.temperature,
                             controls.top_p, rng)
        duration = top_p_sample(logits[2], 1.0, RHYTHM_TOP_P, rng)
        velocity = top_p_sample(logits[3], 1.0, RHYTHM_TOP_P, rng)
        return np.array([shift, pitch, duration, velocity], np.int32)

    def generate(self, total_steps: int, controls: SamplingControls, seed: int,
                 prime: np.ndarray | None = None) -> np.ndarray:
        """Tokens (n, 4) whose onsets cover `total_steps` grid steps (the first onset counts from 0).

        `prime` (m, 4) tokens are fed first (not returned); None starts from BOS (unprimed).
        """
        h, c = self.step.zero_state()
        token = np.array(BOS, np.int32)
        hist = np.full(HISTORY, -1, np.int64)
        if prime is not None and len(prime):
            prime = np.asarray(prime, np.int32)
            h, c = self._advance(h, c, np.concatenate([token[None], prime[:-1]]))
            token = prime[-1]
            tail = prime[-HISTORY:, 1]
            hist[HISTORY - len(tail):] = tail
        rng = np.random.default_rng(seed % 2**31)
        pc_bias = np.asarray(controls.pc_bias, np.float32)
        tokens: list[np.ndarray] = []
        covered, run = 0, 1
        while covered < total_steps:
            h, c, logits = self.step(h, c, token)
            token = self._next(logits, hist, run, controls, pc_bias, rng)
            run = 1 if token[0] > 0 else run + 1
            hist = np.concatenate([hist[1:], token[1:2].astype(np.int64)])
            covered += int(token[0])
            tokens.append(token)
        out = np.stack(tokens) if tokens else np.zeros((0, 4), np.int32)
        onsets = np.cumsum(out[:, 0])
        return out[onsets < total_steps]
