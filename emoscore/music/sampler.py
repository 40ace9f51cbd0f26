"""Sampling notes from a trained note LSTM inside one tf.function (no per-step predict()).

The LSTM cell is re-implemented with the Keras weights (gates i, f, c, o) so a whole chunk of notes is
one `tf.while_loop`. Each step: top-p (nucleus) sampling per field (temperature on the pitch) with
stateless random ops seeded by (seed, step), so a seed always gives the same notes. Constraints keep the output musical:
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

HISTORY = 24  # recent pitches remembered for the repetition penalties
CHUNK = 64  # notes per tf.function call
NEG = -1e9
# Shift, duration and velocity are sampled at temperature 1 (almost the full distribution), so the note
# density and rhythm follow the training data; temperature and top-p shape the pitch choice only.
RHYTHM_TOP_P = 0.98


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


class Sampler:
    """Generates token arrays (n, 4) from one quadrant's LSTM weights (see lstm.lstm_weights)."""

    def __init__(self, weights: dict[str, Any]) -> None:
        from emoscore.tf_util import tf

        t = tf()
        self._tf = t
        self.embed = [t.constant(w, t.float32) for w in weights["embed"]]
        self.lstm = [[t.constant(w, t.float32) for w in layer] for layer in weights["lstm"]]
        self.heads = [[t.constant(w, t.float32) for w in head] for head in weights["heads"]]
        self.units = int(weights["lstm"][0][1].shape[0])
        spec = t.TensorSpec
        state = spec((len(self.lstm), self.units), t.float32)
        self._sample = t.function(self._sample_chunk, input_signature=[
            state, state, spec((4,), t.int32), spec((HISTORY,), t.int32), spec((), t.int32),
            spec((2,), t.int32), spec((8,), t.float32), spec((12,), t.float32)])
        self._advance = t.function(self._advance_chunk, input_signature=[
            state, state, spec((None, 4), t.int32)])

    # --- one LSTM step ---------------------------------------------------------------------------
    def _step(self, h: Any, c: Any, token: Any) -> tuple[Any, Any, list[Any]]:
        t = self._tf
        x = t.concat([t.gather(e, token[i])[None] for i, e in enumerate(self.embed)], axis=1)  # (1, D)
        hs, cs = [], []
        for layer, (kernel, recurrent, bias) in enumerate(self.lstm):
            z = x @ kernel + h[layer][None] @ recurrent + bias
            gi, gf, gc, go = t.split(z, 4, axis=1)
            c_new = t.sigmoid(gf) * c[layer][None] + t.sigmoid(gi) * t.tanh(gc)
            x = t.sigmoid(go) * t.tanh(c_new)
            hs.append(x[0])
            cs.append(c_new[0])
        logits = [(x @ w + b)[0] for w, b in self.heads]
        return t.stack(hs), t.stack(cs), logits

    def _advance_chunk(self, h: Any, c: Any, tokens: Any) -> tuple[Any, Any]:
        t = self._tf
        for i in t.range(t.shape(tokens)[0]):
            h, c, _ = self._step(h, c, tokens[i])
        return h, c

    # --- sampling --------------------------------------------------------------------------------
    def _top_p(self, logits: Any, temperature: Any, top_p: Any, seed: Any) -> Any:
        t = self._tf
        logits = logits / temperature
        probs = t.nn.softmax(logits)
        order = t.argsort(probs, direction="DESCENDING")
        cum = t.cumsum(t.gather(probs, order), exclusive=True)
        keep = t.scatter_nd(order[:, None], cum < top_p, t.shape(logits))
        masked = t.where(keep, logits, NEG)
        return t.cast(t.random.stateless_categorical(masked[None], 1, seed)[0, 0], t.int32)

    def _pitch_logits(self, logits: Any, hist: Any, run: Any, shift: Any, ctl: Any, pc_bias: Any) -> Any:
        t = self._tf
        ids = t.range(N_PITCH, dtype=t.int32)
        logits = logits + t.gather(pc_bias, (ids + PITCH_LOW) % 12)
        in_range = (ids >= t.cast(ctl[2], t.int32) - PITCH_LOW) & (ids <= t.cast(ctl[3], t.int32) - PITCH_LOW)
        counts = t.reduce_sum(t.cast(ids[:, None] == hist[None], t.float32), axis=1)
        tail = hist[HISTORY - 3:]
        windows = t.stack([hist[0:HISTORY - 3], hist[1:HISTORY - 2], hist[2:HISTORY - 1]], axis=1)
        match = t.reduce_all(windows == tail[None], axis=1) & (hist[3:] >= 0) & t.reduce_all(tail >= 0)
        repeats = t.reduce_sum(t.cast((ids[:, None] == hist[3:][None]) & match[None], t.float32), axis=1)
        repeats = t.nn.relu(repeats - 1.0)  # a motif may come back once; a third time is a loop
        in_chord = t.range(HISTORY) >= HISTORY - run
        chord = t.reduce_any((ids[:, None] == hist[None]) & in_chord[None], axis=1) & t.equal(shift, 0)
        logits = logits - ctl[6] * counts - ctl[7] * repeats
        return t.where(in_range & ~chord, logits, NEG)

    def _shift_logits(self, logits: Any, run: Any, ctl: Any) -> Any:
        t = self._tf
        ids = t.range(FIELD_SIZES[0], dtype=t.int32)
        ok = (ids <= t.cast(ctl[4], t.int32)) & ((ids > 0) | (run < t.cast(ctl[5], t.int32)))
        return t.where(ok, logits, NEG)

    def _sample_chunk(self, h: Any, c: Any, token: Any, hist: Any, run: Any, seed: Any, ctl: Any,
                      pc_bias: Any) -> tuple[Any, ...]:
        """CHUNK notes from state (h, c) after `token`; ctl = (temperature, top_p, pitch_low, pitch_high,
        max_shift, max_chord, repeat_penalty, ngram_penalty); pc_bias (12,) logits per pitch class.
        `run` = notes at the current onset."""
        t = self._tf
        out = t.TensorArray(t.int32, size=CHUNK)
        for i in t.range(CHUNK):
            h, c, logits = self._step(h, c, token)
            seeds = [t.random.experimental.stateless_fold_in(seed, i * 4 + k) for k in range(4)]
            shift = self._top_p(self._shift_logits(logits[0], run, ctl), 1.0, RHYTHM_TOP_P, seeds[0])
            pitch = self._top_p(self._pitch_logits(logits[1], hist, run, shift, ctl, pc_bias), ctl[0], ctl[1], seeds[1])
            duration = self._top_p(logits[2], 1.0, RHYTHM_TOP_P, seeds[2])
            velocity = self._top_p(logits[3], 1.0, RHYTHM_TOP_P, seeds[3])
            token = t.stack([shift, pitch, duration, velocity])
            run = t.where(shift > 0, 1, run + 1)
            hist = t.concat([hist[1:], pitch[None]], axis=0)
            out = out.write(i, token)
        return out.stack(), h, c, token, hist, run

    def generate(self, total_steps: int, controls: SamplingControls, seed: int,
                 prime: np.ndarray | None = None) -> np.ndarray:
        """Tokens (n, 4) whose onsets cover `total_steps` grid steps (the first onset counts from 0).

        `prime` (m, 4) tokens are fed first (not returned); None starts from BOS (unprimed).
        """
        t = self._tf
        zeros = t.zeros((len(self.lstm), self.units), t.float32)
        h, c = zeros, zeros
        token = np.array(BOS, np.int32)
        hist = np.full(HISTORY, -1, np.int32)
        if prime is not None and len(prime):
            prime = np.asarray(prime, np.int32)
            h, c = self._advance(h, c, np.concatenate([token[None], prime[:-1]]))
            token = prime[-1]
            tail = prime[-HISTORY:, 1]
            hist[HISTORY - len(tail):] = tail
        ctl = np.array([controls.temperature, controls.top_p, controls.pitch_low, controls.pitch_high,
                        controls.max_shift, controls.max_chord, controls.repeat_penalty,
                        controls.ngram_penalty], np.float32)
        pc_bias = np.array(controls.pc_bias, np.float32)
        chunks: list[np.ndarray] = []
        covered, run, k = 0, np.int32(1), 0
        while covered < total_steps:
            chunk_seed = np.array([seed % 2**31, k], np.int32)
            tokens, h, c, token, hist, run = self._sample(h, c, t.constant(token, t.int32), hist, run,
                                                          chunk_seed, ctl, pc_bias)
            chunks.append(tokens.numpy())
            covered += int(chunks[-1][:, 0].sum())
            k += 1
        tokens = np.concatenate(chunks)
        onsets = np.cumsum(tokens[:, 0])
        return tokens[onsets < total_steps]
