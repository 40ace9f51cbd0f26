"""Per-window emotion probabilities -> fused probabilities -> quadrant segments, plus scene cuts.

Design choices (all times in seconds):
- Window geometry: window i covers [times[i], times[i] + window_seconds) clipped to the clip; its *centre*
  is the middle of that clipped span. A segment boundary between window i (one quadrant) and window i+1
  (another) lies halfway between their centres. The first segment starts at 0 and the last ends at the
  clip's duration, so segments tile [0, duration] exactly.
- Carry-over: a window with neither a face nor speech carries the last observed fused probabilities; windows
  before the first observation take the first observed window's (a clip that opens on black inherits its
  first shot). A clip with no observation at all gets NEUTRAL_PRIOR (mostly neutral/calm, i.e. Q4), because a
  uniform prior over the 8 emotions would sum to Q2 (three of the eight emotions are Q2).
- Smoothing: Viterbi over the 4 quadrants (log quadrant probabilities, switch_penalty per change), then
  segments shorter than min_segment_seconds merge, shortest first, into the neighbour whose quadrant is
  likelier over the short segment's windows. Snapping to scene cuts happens last and may shorten a segment by
  up to 2 * scene_snap_seconds, never below MIN_SNAPPED_SECONDS.
- Outputs: JSON holds meta, segments, scene cuts and one record per window; CSV holds one row per window
  (segments live in the JSON only).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoscore.config import Config, FusionConfig, SmoothingConfig
from emoscore.constants import EMOTION_VA, EMOTIONS, N_EMOTIONS, QUADRANT_VA, QUADRANTS
from emoscore.errors import InputError
from emoscore.metrics import EMOTION_TO_QUADRANT
from emoscore.scenes import snap_to_cuts
from emoscore.speech import WindowProbs

SOURCES: tuple[str, ...] = ("both", "visual", "audio", "carried", "prior")
# Used only when no window of the clip has a face or speech: 0.35 neutral, 0.35 calm, 0.05 each other.
NEUTRAL_PRIOR = np.array([0.35, 0.35] + [0.05] * 6, dtype=np.float32)
QUADRANT_EMOTION_COUNTS = EMOTION_TO_QUADRANT.sum(axis=0)  # (4,): 2, 3, 1, 2
EMOTION_VA_MATRIX = np.array([EMOTION_VA[e] for e in EMOTIONS], dtype=np.float32)  # (8, 2)
_EPS = 1e-6
SAD_INDEX = EMOTIONS.index("sad")
_DECIMALS = 4  # rounding of floats in JSON/CSV output
VA_MARGIN = 0.05  # least distance of a segment's valence/arousal from the axes of its quadrant


# --- Fusion --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fused:
    """Fused per-window output. probs: (n, 8) rows summing to 1; sources: (n,) str, one of SOURCES."""

    probs: np.ndarray
    sources: np.ndarray


def _check_window_probs(name: str, wp: WindowProbs) -> None:
    n = len(wp.times)
    if np.shape(wp.probs) != (n, N_EMOTIONS) or np.shape(wp.present) != (n,):
        raise InputError(f"{name}: expected probs ({n}, {N_EMOTIONS}) and present ({n},), "
                         f"got {np.shape(wp.probs)} and {np.shape(wp.present)}")
    if n == 0:
        raise InputError(f"{name}: no analysis windows")
    if n > 1 and not np.all(np.diff(wp.times) > 0):
        raise InputError(f"{name}: window times must increase, got {np.asarray(wp.times)[:6]}...")


def confidence(probs: np.ndarray) -> np.ndarray:
    """(n, 8) probabilities -> (n,) normalised negentropy 1 - H(p) / log 8: 0 for uniform, 1 for one-hot."""
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return np.clip(1.0 + (p * np.log(p)).sum(axis=1) / np.log(N_EMOTIONS), 0.0, 1.0)


def combine(visual: np.ndarray, audio: np.ndarray, v_on: np.ndarray, a_on: np.ndarray,
            config: FusionConfig) -> np.ndarray:
    """Fuse per-window probabilities (n, 8) of the present modalities (v_on, a_on: (n,) bool) into (n, 8).

    Rule "fixed": arithmetic mean with weights visual_weight / audio_weight renormalised over the modalities
    present. Rule "confidence": the same, each weight x confidence(p) ** confidence_power. Rule "product":
    log-linear pooling, p ~ pv ** ev * pa ** ea with ev, ea = nominal weight x reliability renormalised over the
    modalities present (a window with one model gets that model's probabilities): a near-uniform model adds the
    same to every log-probability, so it cannot drown a confident one, and two confident models that disagree
    are decided by the exponents. With "confidence" and "product", NEUTRAL_PRIOR is then mixed in with share
    prior_weight x (1 - the best present model's confidence), so where both are unsure the result leans to
    the calm/neutral centre (Q4), not to Q2. Last, the probability of sad is multiplied by q3_weight (Q3's
    only emotion against Q2's three) and rows renormalised. Rows with neither modality stay zeros.
    """
    v_on, a_on = np.asarray(v_on, dtype=bool), np.asarray(a_on, dtype=bool)
    visual, audio = np.nan_to_num(np.asarray(visual, np.float64)), np.nan_to_num(np.asarray(audio, np.float64))
    wv = np.where(v_on, config.visual_weight, 0.0)
    wa = np.where(a_on, config.audio_weight, 0.0)
    cv, ca = np.where(v_on, confidence(visual), 0.0), np.where(a_on, confidence(audio), 0.0)
    if config.rule == "product":
        ev, ea = config.exponents()
        probs = _log_linear(visual, audio, np.where(v_on, ev, 0.0), np.where(a_on, ea, 0.0))
    else:
        if config.rule == "confidence":
            wv = wv * np.maximum(cv, _EPS) ** config.confidence_power
            wa = wa * np.maximum(ca, _EPS) ** config.confidence_power
        probs = (wv[:, None] * visual + wa[:, None] * audio) / np.maximum(wv + wa, 1e-300)[:, None]
    if config.rule != "fixed" and config.prior_weight > 0:
        share = (config.prior_weight * (1.0 - np.maximum(cv, ca)) * (v_on | a_on))[:, None]
        probs = (1.0 - share) * probs + share * NEUTRAL_PRIOR
    if config.q3_weight != 1.0:
        probs[:, SAD_INDEX] *= config.q3_weight
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), _EPS)


def _log_linear(visual: np.ndarray, audio: np.ndarray, ev: np.ndarray, ea: np.ndarray) -> np.ndarray:
    """(n, 8) weighted geometric mean of the two models' rows, exponents ev, ea (n,) renormalised to sum to 1
    (0 for an absent model); rows where both exponents are 0 come out zeros."""
    total = ev + ea
    ev, ea = (np.divide(e, total, out=np.zeros_like(e), where=total > 0) for e in (ev, ea))
    logp = ev[:, None] * np.log(np.maximum(visual, _EPS)) + ea[:, None] * np.log(np.maximum(audio, _EPS))
    probs = np.exp(logp - logp.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True) * (total > 0)[:, None]


def fuse(visual: WindowProbs, audio: WindowProbs, config: FusionConfig | None = None) -> Fused:
    """Fuse the two models per window (see combine), weights over the modalities present.

    Both inputs must share the same window start times. See the module docstring for windows with neither.
    """
    config = config or FusionConfig()
    _check_window_probs("visual", visual)
    _check_window_probs("audio", audio)
    if len(visual.times) != len(audio.times) or not np.allclose(visual.times, audio.times, atol=1e-3):
        raise InputError(f"visual and audio windows differ: {len(visual.times)} vs {len(audio.times)} "
                         "windows or different start times")
    v_on = np.asarray(visual.present, dtype=bool)
    a_on = np.asarray(audio.present, dtype=bool)
    probs = combine(visual.probs, audio.probs, v_on, a_on, config)
    sources = np.select([v_on & a_on, v_on, a_on], ["both", "visual", "audio"], "carried").astype("<U7")
    _carry_over(probs, v_on | a_on, sources)
    return Fused(probs=probs.astype(np.float32), sources=sources)


def _carry_over(probs: np.ndarray, observed: np.ndarray, sources: np.ndarray) -> None:
    """Fill unobserved rows of probs (n, 8) in place: last observed row, first one before it, else prior."""
    if not observed.any():
        probs[:] = NEUTRAL_PRIOR
        sources[:] = "prior"
        return
    index = np.where(observed, np.arange(len(observed)), -1)
    last = np.maximum.accumulate(index)
    last[last < 0] = int(np.argmax(observed))
    probs[:] = probs[last]


# --- Per-window quadrant and valence/arousal -----------------------------------------------------


def quadrant_probs(probs: np.ndarray, uniform_prior: bool = False) -> np.ndarray:
    """(n, 8) emotion probabilities -> (n, 4) quadrant probabilities (Q1..Q4), rows summing to 1.

    The models learned RAVDESS's prior over quadrants, 2:3:1:2 (Q2 holds three emotions, Q3 one). With
    `uniform_prior` each quadrant's mass is divided by its number of emotions and renormalised: the
    label-shift correction to equal quadrants, so an undecided model is not pulled into Q2.
    """
    q = np.asarray(probs, dtype=np.float32) @ EMOTION_TO_QUADRANT
    if uniform_prior:
        q = q / QUADRANT_EMOTION_COUNTS
    return q / np.maximum(q.sum(axis=1, keepdims=True), _EPS)


def valence_arousal(probs: np.ndarray) -> np.ndarray:
    """(n, 8) emotion probabilities -> (n, 2) probability-weighted (valence, arousal), each in [-1, 1]."""
    probs = np.asarray(probs, dtype=np.float32)
    weights = probs / np.maximum(probs.sum(axis=1, keepdims=True), _EPS)
    return weights @ EMOTION_VA_MATRIX


# --- Smoothing into segments ---------------------------------------------------------------------


def viterbi(log_probs: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Most likely state path (n,) int for log emission scores (n, k) with a cost per change of state."""
    n, k = log_probs.shape
    transition = -switch_penalty * (1.0 - np.eye(k))  # [from, to]
    score = log_probs[0].astype(np.float64)
    back = np.zeros((n, k), dtype=np.int64)
    for i in range(1, n):
        candidates = score[:, None] + transition
        back[i] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[i]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(score.argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def window_centres(times: np.ndarray, window_seconds: float, duration: float) -> np.ndarray:
    """(n,) centre of each window's span inside [0, duration]."""
    times = np.asarray(times, dtype=np.float64)
    ends = np.minimum(times + window_seconds, duration)
    return (np.clip(times, 0.0, duration) + ends) / 2


def runs(states: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal values as (first, stop, value) with stop exclusive."""
    bounds = _run_bounds(states)
    return [(int(a), int(b), int(states[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _run_bounds(states: np.ndarray) -> np.ndarray:
    """(m + 1,) window index where each of the m runs starts, then len(states)."""
    return np.concatenate([[0], np.flatnonzero(np.diff(states)) + 1, [len(states)]])


def run_edges(states: np.ndarray, centres: np.ndarray, duration: float) -> np.ndarray:
    """(m + 1,) segment edges from 0 to duration: boundaries midway between the centres either side."""
    change = _run_bounds(states)[1:-1]
    return np.concatenate([[0.0], (centres[change - 1] + centres[change]) / 2, [duration]])


def enforce_min_length(states: np.ndarray, qprobs: np.ndarray, centres: np.ndarray, duration: float,
                       min_seconds: float) -> np.ndarray:
    """Merge segments shorter than min_seconds (shortest first) into the likelier neighbour.

    states: (n,) quadrant index per window; qprobs: (n, 4). Returns a new (n,) array.
    """
    states = np.array(states, copy=True)
    while True:
        bounds = _run_bounds(states)
        lengths = np.diff(run_edges(states, centres, duration))
        k = int(np.argmin(lengths))
        if len(lengths) == 1 or lengths[k] >= min_seconds:
            return states
        first, stop = int(bounds[k]), int(bounds[k + 1])
        neighbours = [int(states[j]) for j in (first - 1, stop) if 0 <= j < len(states)]
        mean_q = qprobs[first:stop].mean(axis=0)
        states[first:stop] = max(neighbours, key=lambda q: mean_q[q])


def smooth_states(qprobs: np.ndarray, centres: np.ndarray, duration: float,
                  config: SmoothingConfig) -> np.ndarray:
    """(n, 4) quadrant probabilities -> (n,) smoothed quadrant index per window."""
    states = viterbi(np.log(np.maximum(qprobs, _EPS)), config.switch_penalty)
    return enforce_min_length(states, qprobs, centres, duration, config.min_segment_seconds)


# --- The timeline --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of the clip with one quadrant. Times in seconds; valence/arousal in [-1, 1]."""

    start: float
    end: float
    quadrant: str  # "Q1".."Q4"
    valence: float
    arousal: float
    confidence: float  # mean probability of `quadrant` over the segment's windows
    emotion: str  # the likeliest of the quadrant's emotions (mean over the segment's windows)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Timeline:
    """Window-level arrays (n windows) plus the segments and scene cuts built from them."""

    times: np.ndarray  # (n,) window start, seconds
    window_seconds: float
    duration: float
    probs: np.ndarray  # (n, 8) fused
    quadrant_probs: np.ndarray  # (n, 4)
    visual_probs: np.ndarray  # (n, 8)
    audio_probs: np.ndarray  # (n, 8)
    visual_present: np.ndarray  # (n,) bool
    audio_present: np.ndarray  # (n,) bool
    sources: np.ndarray  # (n,) str
    quadrants: np.ndarray  # (n,) str: each window's own most likely quadrant (before smoothing)
    valence: np.ndarray  # (n,)
    arousal: np.ndarray  # (n,)
    segments: tuple[Segment, ...]
    scene_cuts: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) seconds

    @property
    def window_ends(self) -> np.ndarray:
        return np.minimum(self.times + self.window_seconds, self.duration)


def inside_quadrant(va: np.ndarray, quadrant: str) -> np.ndarray:
    """(2,) valence/arousal moved into `quadrant`: a coordinate on the wrong side of its axis (the windows'
    probability-weighted mean can be, where the fused probabilities are flat) becomes VA_MARGIN on the right
    side, so a segment's style never contradicts its quadrant; then clipped to [-1, 1]."""
    signs = np.array(QUADRANT_VA[quadrant], dtype=np.float64)
    va = np.asarray(va, dtype=np.float64)
    return np.clip(np.where(va * signs >= VA_MARGIN, va, VA_MARGIN * signs), -1.0, 1.0)


def _segment(first: int, stop: int, state: int, start: float, end: float, probs: np.ndarray,
             qprobs: np.ndarray, va: np.ndarray) -> Segment:
    mean_va = inside_quadrant(va[first:stop].mean(axis=0), QUADRANTS[state])
    in_quadrant = probs[first:stop].mean(axis=0) * EMOTION_TO_QUADRANT[:, state]
    return Segment(start=float(start), end=float(end), quadrant=QUADRANTS[state],
                   valence=float(mean_va[0]), arousal=float(mean_va[1]),
                   confidence=float(qprobs[first:stop, state].mean()),
                   emotion=EMOTIONS[int(in_quadrant.argmax())])


def build_timeline(visual: WindowProbs, audio: WindowProbs, duration: float,
                   cuts: np.ndarray | None = None, config: Config | None = None) -> Timeline:
    """Fuse, smooth into segments and snap to scene cuts. duration: the clip's length in seconds."""
    config = config or Config()
    if not duration > 0:
        raise InputError(f"duration must be > 0 seconds, got {duration!r}")
    fused = fuse(visual, audio, config.fusion)
    times = np.asarray(visual.times, dtype=np.float64)
    qprobs = quadrant_probs(fused.probs, config.smoothing.uniform_quadrant_prior)
    va = valence_arousal(fused.probs)
    centres = window_centres(times, config.analysis.window_seconds, duration)
    states = smooth_states(qprobs, centres, duration, config.smoothing)
    cuts = np.zeros(0) if cuts is None else np.sort(np.asarray(cuts, dtype=np.float64))
    edges = snap_to_cuts(run_edges(states, centres, duration), cuts, config.smoothing.scene_snap_seconds)
    segments = tuple(_segment(first, stop, state, edges[k], edges[k + 1], fused.probs, qprobs, va)
                     for k, (first, stop, state) in enumerate(runs(states)))
    return Timeline(
        times=times, window_seconds=config.analysis.window_seconds, duration=float(duration),
        probs=fused.probs, quadrant_probs=qprobs, visual_probs=np.asarray(visual.probs, dtype=np.float32),
        audio_probs=np.asarray(audio.probs, dtype=np.float32),
        visual_present=np.asarray(visual.present, dtype=bool),
        audio_present=np.asarray(audio.present, dtype=bool),
        sources=fused.sources, quadrants=np.array(QUADRANTS)[qprobs.argmax(axis=1)],
        valence=va[:, 0], arousal=va[:, 1], segments=segments, scene_cuts=cuts)


# --- Writers -------------------------------------------------------------------------------------

CSV_HEADER: tuple[str, ...] = ("start", "end", *EMOTIONS, "quadrant", "valence", "arousal",
                               "visual_present", "audio_present", "source")


def _window_rows(timeline: Timeline) -> list[dict[str, Any]]:
    r = _DECIMALS
    rows = []
    for i, (start, end) in enumerate(zip(timeline.times, timeline.window_ends, strict=True)):
        row: dict[str, Any] = {"start": round(float(start), r), "end": round(float(end), r)}
        row.update({e: round(float(p), r) for e, p in zip(EMOTIONS, timeline.probs[i], strict=True)})
        row.update(quadrant=str(timeline.quadrants[i]), valence=round(float(timeline.valence[i]), r),
                   arousal=round(float(timeline.arousal[i]), r),
                   visual_present=bool(timeline.visual_present[i]),
                   audio_present=bool(timeline.audio_present[i]), source=str(timeline.sources[i]))
        rows.append(row)
    return rows


def timeline_to_json(timeline: Timeline, meta: dict[str, Any]) -> dict[str, Any]:
    """A JSON-ready dict: caller's meta (input, duration, config, model versions), segments, cuts, windows."""
    segments = [{k: round(v, _DECIMALS) if isinstance(v, float) else v
                 for k, v in dataclasses.asdict(s).items()} for s in timeline.segments]
    return {"meta": meta, "duration": round(timeline.duration, _DECIMALS),
            "window_seconds": timeline.window_seconds, "emotions": list(EMOTIONS), "segments": segments,
            "scene_cuts": [round(float(c), _DECIMALS) for c in timeline.scene_cuts],
            "windows": _window_rows(timeline)}


def timeline_to_csv(timeline: Timeline) -> str:
    """One row per window with header CSV_HEADER; booleans as 0/1."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_HEADER, lineterminator="\n")
    writer.writeheader()
    for row in _window_rows(timeline):
        writer.writerow({k: int(v) if isinstance(v, bool) else v for k, v in row.items()})
    return out.getvalue()
