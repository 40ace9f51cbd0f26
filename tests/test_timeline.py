from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from emoscore.config import Config, FusionConfig, SmoothingConfig
from emoscore.constants import EMOTIONS, QUADRANTS
from emoscore.errors import InputError
from emoscore.scenes import SceneDetector, scene_cuts, snap_to_cuts
from emoscore.speech import WindowProbs, window_starts
from emoscore.timeline import (
    CSV_HEADER,
    NEUTRAL_PRIOR,
    Segment,
    Timeline,
    build_timeline,
    enforce_min_length,
    fuse,
    quadrant_probs,
    run_edges,
    timeline_to_csv,
    timeline_to_json,
    valence_arousal,
    viterbi,
    window_centres,
)

# A confident window of each quadrant's main emotion.
MAIN = {"Q1": "happy", "Q2": "angry", "Q3": "sad", "Q4": "calm"}


def onehotish(emotion: str, p: float = 0.8) -> np.ndarray:
    probs = np.full(8, (1 - p) / 7, dtype=np.float32)
    probs[EMOTIONS.index(emotion)] = p
    return probs


def windows(quadrants: list[str], present: np.ndarray | None = None, p: float = 0.8) -> WindowProbs:
    """Windows 1 s apart, each confident in its quadrant's main emotion."""
    n = len(quadrants)
    probs = np.stack([onehotish(MAIN[q], p) for q in quadrants])
    return WindowProbs(times=np.arange(n, dtype=float), probs=probs,
                       present=np.ones(n, bool) if present is None else present)


def absent(n: int) -> WindowProbs:
    return WindowProbs(times=np.arange(n, dtype=float), probs=np.zeros((n, 8), np.float32),
                       present=np.zeros(n, bool))


def config(min_segment: float = 4.0, penalty: float = 2.0, snap: float = 1.5) -> Config:
    """Smoothing settings under test, with plain 75/25 fusion (the confidence rule: tests/test_fusion.py)."""
    return Config(fusion=FusionConfig(rule="fixed"),
                  smoothing=SmoothingConfig(min_segment_seconds=min_segment, switch_penalty=penalty,
                                            scene_snap_seconds=snap))


# --- fusion --------------------------------------------------------------------------------------


def test_fusion_weights_both_present() -> None:
    visual = WindowProbs(np.array([0.0]), onehotish("happy", 1.0)[None], np.array([True]))
    audio = WindowProbs(np.array([0.0]), onehotish("sad", 1.0)[None], np.array([True]))
    fused = fuse(visual, audio, FusionConfig(visual_weight=0.75, audio_weight=0.25, rule="fixed"))
    assert fused.probs[0, EMOTIONS.index("happy")] == pytest.approx(0.75)
    assert fused.probs[0, EMOTIONS.index("sad")] == pytest.approx(0.25)
    assert fused.sources.tolist() == ["both"]


def test_fusion_renormalises_over_present_modalities() -> None:
    happy, sad = onehotish("happy", 1.0), onehotish("sad", 1.0)
    visual = WindowProbs(np.arange(2.0), np.stack([happy, np.zeros(8)]), np.array([True, False]))
    audio = WindowProbs(np.arange(2.0), np.stack([np.zeros(8), sad]), np.array([False, True]))
    fused = fuse(visual, audio, FusionConfig(rule="fixed"))
    np.testing.assert_allclose(fused.probs[0], happy, atol=1e-6)  # no speech: vision alone
    np.testing.assert_allclose(fused.probs[1], sad, atol=1e-6)  # no face: audio alone
    assert fused.sources.tolist() == ["visual", "audio"]


def test_fusion_carries_last_state_and_backfills_the_start() -> None:
    visual = windows(["Q1", "Q1", "Q3", "Q3", "Q3"], present=np.array([False, True, True, False, False]))
    fused = fuse(visual, absent(5), FusionConfig())
    assert fused.sources.tolist() == ["carried", "visual", "visual", "carried", "carried"]
    np.testing.assert_allclose(fused.probs[0], fused.probs[1])  # before the first observation: the first
    np.testing.assert_allclose(fused.probs[3], fused.probs[2])  # afterwards: the last
    np.testing.assert_allclose(fused.probs[4], fused.probs[2])


def test_fusion_with_nothing_observed_uses_the_neutral_prior() -> None:
    fused = fuse(absent(3), absent(3), FusionConfig())
    np.testing.assert_allclose(fused.probs, np.tile(NEUTRAL_PRIOR, (3, 1)))
    assert set(fused.sources) == {"prior"}
    assert QUADRANTS[int(quadrant_probs(fused.probs)[0].argmax())] == "Q4"


def test_fusion_rejects_mismatched_windows() -> None:
    with pytest.raises(InputError, match="differ"):
        fuse(windows(["Q1"] * 3), windows(["Q1"] * 4), FusionConfig())
    bad = WindowProbs(np.arange(2.0), np.zeros((2, 7)), np.ones(2, bool))
    with pytest.raises(InputError, match=r"\(2, 7\)"):
        fuse(bad, bad, FusionConfig())


# --- quadrant and valence/arousal ---------------------------------------------------------------


def test_quadrant_probs_and_valence_arousal_of_pure_emotions() -> None:
    probs = np.eye(8, dtype=np.float32)
    q = quadrant_probs(probs)
    assert [QUADRANTS[i] for i in q.argmax(axis=1)] == ["Q4", "Q4", "Q1", "Q3", "Q2", "Q2", "Q2", "Q1"]
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    va = valence_arousal(probs)
    np.testing.assert_allclose(va[EMOTIONS.index("happy")], (0.8, 0.45), atol=1e-6)
    half = valence_arousal((np.eye(8)[2] + np.eye(8)[3])[None] / 2)  # half happy, half sad
    np.testing.assert_allclose(half[0], ((0.8 - 0.7) / 2, (0.45 - 0.5) / 2), atol=1e-6)


# --- smoothing -----------------------------------------------------------------------------------


def test_viterbi_removes_a_blip_unless_switching_is_free() -> None:
    states = np.array([0] * 5 + [2] + [0] * 5)
    log_probs = np.log(np.where(np.eye(4)[states] > 0, 0.7, 0.1))
    assert (viterbi(log_probs, switch_penalty=2.0) == 0).all()
    np.testing.assert_array_equal(viterbi(log_probs, switch_penalty=0.0), states)


def test_two_quadrants_give_two_segments_with_the_boundary_between_centres() -> None:
    quads = ["Q1"] * 10 + ["Q3"] * 10
    duration = 22.0  # windows start 0..19 s, 3 s long
    timeline = build_timeline(windows(quads), absent(20), duration, config=config())
    assert [s.quadrant for s in timeline.segments] == ["Q1", "Q3"]
    # last Q1 window centre 10.5 s, first Q3 window centre 11.5 s
    assert [(s.start, s.end) for s in timeline.segments] == [(0.0, 11.0), (11.0, 22.0)]
    assert timeline.segments[0].emotion == "happy" and timeline.segments[1].emotion == "sad"
    assert timeline.segments[0].confidence == pytest.approx(0.8 + 0.2 / 7)  # happy + surprised
    assert timeline.segments[0].valence > 0 > timeline.segments[1].valence


def test_one_window_blip_is_smoothed_away() -> None:
    quads = ["Q1"] * 8 + ["Q2"] + ["Q1"] * 8
    timeline = build_timeline(windows(quads, p=0.6), absent(17), 19.0, config=config(min_segment=1.0))
    assert [s.quadrant for s in timeline.segments] == ["Q1"]


def test_min_length_merges_a_short_segment_into_the_likelier_neighbour() -> None:
    qprobs = np.array([[0.9, 0.05, 0.05, 0.0]] * 6 + [[0.1, 0.0, 0.3, 0.6]] * 2 + [[0.0, 0.1, 0.9, 0.0]] * 6)
    states = np.array([0] * 6 + [3] * 2 + [2] * 6)
    centres = window_centres(np.arange(14.0), 3.0, 16.0)
    merged = enforce_min_length(states, qprobs, centres, 16.0, min_seconds=4.0)
    np.testing.assert_array_equal(merged, [0] * 6 + [2] * 8)  # Q3 (0.3) is likelier than Q1 (0.1)
    assert np.diff(run_edges(merged, centres, 16.0)).min() >= 4.0


def test_min_length_is_enforced_everywhere() -> None:
    rng = np.random.default_rng(0)
    quads = [QUADRANTS[i] for i in np.repeat(rng.integers(0, 4, 12), rng.integers(1, 4, 12))]
    n = len(quads)
    timeline = build_timeline(windows(quads, p=0.9), absent(n), n + 2.0, config=config(5.0, 0.0, 0.0))
    lengths = [s.end - s.start for s in timeline.segments]
    assert min(lengths) >= 5.0
    assert len(timeline.segments) >= 2
    pairs = zip(timeline.segments, timeline.segments[1:], strict=False)
    assert all(a.quadrant != b.quadrant for a, b in pairs)


def test_clip_shorter_than_the_minimum_is_one_segment() -> None:
    starts = window_starts(2.5, 3.0, 1.0)
    assert len(starts) == 1
    visual = WindowProbs(starts, onehotish("sad")[None], np.array([True]))
    timeline = build_timeline(visual, absent(1), 2.5, config=config(min_segment=4.0))
    assert [(s.start, s.end, s.quadrant) for s in timeline.segments] == [(0.0, 2.5, "Q3")]
    quads = ["Q1", "Q1", "Q3", "Q3"]
    timeline = build_timeline(windows(quads, p=0.95), absent(4), 3.5, config=config(5.0, 0.0))
    assert len(timeline.segments) == 1


@pytest.mark.parametrize("duration", [7.0, 20.0, 61.3])
def test_segments_tile_the_clip(duration: float) -> None:
    starts = window_starts(duration, 3.0, 1.0)
    rng = np.random.default_rng(int(duration))
    probs = rng.dirichlet(np.ones(8) * 0.3, size=len(starts)).astype(np.float32)
    visual = WindowProbs(starts, probs, rng.random(len(starts)) > 0.3)
    audio = WindowProbs(starts, probs[::-1].copy(), rng.random(len(starts)) > 0.3)
    cuts = np.sort(rng.uniform(0, duration, 5))
    timeline = build_timeline(visual, audio, duration, cuts, config(2.0, 0.2))
    assert len(timeline.segments) >= 2
    edges = [timeline.segments[0].start] + [s.end for s in timeline.segments]
    assert edges[0] == 0.0 and edges[-1] == duration
    assert all(a.end == b.start for a, b in zip(timeline.segments, timeline.segments[1:], strict=False))
    assert all(s.end - s.start >= 1.0 for s in timeline.segments)
    assert all(-1 <= s.valence <= 1 and -1 <= s.arousal <= 1 for s in timeline.segments)


# --- scene cuts ----------------------------------------------------------------------------------


def frame(bgr: tuple[int, int, int], noise: np.random.Generator | None = None) -> np.ndarray:
    image = np.zeros((90, 160, 3), np.uint8) + np.array(bgr, np.uint8)
    if noise is not None:
        image = np.clip(image + noise.integers(-3, 4, image.shape), 0, 255).astype(np.uint8)
    return image


def test_scene_cut_between_different_colours_only() -> None:
    rng = np.random.default_rng(1)
    frames = [frame((40, 120, 200), rng) for _ in range(4)] + [frame((200, 60, 30), rng) for _ in range(4)]
    times = np.arange(8) * 0.25
    cuts = scene_cuts(times, frames, threshold=0.35)
    np.testing.assert_allclose(cuts, [(0.75 + 1.0) / 2])


def test_scene_detector_streams_grey_frames() -> None:
    detector = SceneDetector(threshold=0.35)
    grey = [np.full((48, 64), v, np.uint8) for v in (30, 31, 30, 220, 221)]
    flags = [detector.update(t, f) for t, f in zip([0.0, 0.5, 1.0, 1.5, 2.0], grey, strict=True)]
    assert flags == [False, False, False, True, False]
    np.testing.assert_allclose(detector.cuts, [1.25])
    with pytest.raises(InputError, match="increase"):
        detector.update(1.0, grey[0])
    with pytest.raises(InputError, match="uint8"):
        detector.update(3.0, np.zeros((4, 4), np.float32))


def test_snap_moves_a_boundary_within_range_and_not_beyond() -> None:
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    snapped = snap_to_cuts(edges, np.array([11.2, 21.8]), max_distance=1.5)
    np.testing.assert_allclose(snapped, [0.0, 11.2, 20.0, 30.0])  # 21.8 is 1.8 s away: too far
    np.testing.assert_allclose(snap_to_cuts(edges, np.array([9.0, 10.6]), 1.5), [0, 10.6, 20, 30])
    np.testing.assert_allclose(snap_to_cuts(edges, np.zeros(0), 1.5), edges)


def test_snap_never_makes_a_tiny_segment_or_reorders() -> None:
    edges = np.array([0.0, 2.0, 3.5, 10.0])
    snapped = snap_to_cuts(edges, np.array([0.5, 3.0]), max_distance=1.6, min_gap=1.0)
    assert snapped[1] == 2.0  # 0.5 would leave a 0.5 s first segment; 3.0 would leave 0.5 s before 3.5
    assert snapped[2] == 3.0  # 3.0 leaves exactly min_gap after the (unmoved) 2.0
    assert np.all(np.diff(snapped) > 0)


def test_build_timeline_snaps_to_a_nearby_cut() -> None:
    quads = ["Q1"] * 10 + ["Q3"] * 10
    timeline = build_timeline(windows(quads), absent(20), 22.0, np.array([12.0]), config(snap=1.5))
    assert timeline.segments[0].end == 12.0 == timeline.segments[1].start
    timeline = build_timeline(windows(quads), absent(20), 22.0, np.array([13.0]), config(snap=1.5))
    assert timeline.segments[0].end == 11.0


# --- writers -------------------------------------------------------------------------------------


def small_timeline() -> tuple[Timeline, int]:
    quads = ["Q1"] * 6 + ["Q2"] * 6
    visual = windows(quads, present=np.array([True] * 10 + [False] * 2))
    timeline = build_timeline(visual, windows(quads), 14.0, np.array([5.9]), config())
    return timeline, len(quads)


def test_json_round_trip() -> None:
    timeline, n = small_timeline()
    meta = {"input": "clip.mp4", "duration": 14.0, "config": Config().to_dict(), "models": {"audio": "x"}}
    data = json.loads(json.dumps(timeline_to_json(timeline, meta)))
    assert data["meta"] == meta
    loaded = [Segment(**s) for s in data["segments"]]
    assert len(loaded) == len(timeline.segments) == 2
    for got, want in zip(loaded, timeline.segments, strict=True):
        assert (got.quadrant, got.emotion) == (want.quadrant, want.emotion)
        assert (got.start, got.end) == (want.start, want.end)
        assert (got.valence, got.arousal, got.confidence) == pytest.approx(
            (want.valence, want.arousal, want.confidence), abs=1e-4)
    assert len(data["windows"]) == n and data["scene_cuts"] == [5.9]
    assert data["windows"][-1]["source"] == "audio" and data["windows"][0]["source"] == "both"


def test_csv_has_the_header_and_one_row_per_window() -> None:
    timeline, n = small_timeline()
    rows = list(csv.reader(io.StringIO(timeline_to_csv(timeline))))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == n + 1
    first = dict(zip(rows[0], rows[1], strict=True))
    assert (float(first["start"]), float(first["end"])) == (0.0, 3.0)
    assert first["quadrant"] == "Q1" and first["visual_present"] == "1" and first["source"] == "both"
    assert sum(float(first[e]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
    assert rows[-1][CSV_HEADER.index("end")] == "14.0"  # the last window is clipped to the clip


def test_uniform_quadrant_prior_undoes_the_training_prior() -> None:
    undecided = np.full((1, 8), 1 / 8, dtype=np.float32)
    np.testing.assert_allclose(quadrant_probs(undecided), [[0.25, 0.375, 0.125, 0.25]], atol=1e-6)
    np.testing.assert_allclose(quadrant_probs(undecided, uniform_prior=True), [[0.25] * 4], atol=1e-6)
    sure = np.zeros((1, 8), dtype=np.float32)
    sure[0, 3] = 1.0  # sad: the correction never moves a confident window
    assert quadrant_probs(sure, uniform_prior=True)[0].argmax() == 2
    # Q2 0.45 spread over three emotions vs Q4 0.31 over two: Q2 without the correction, Q4 with it.
    mixed = np.array([[0.14, 0.17, 0.03, 0.09, 0.13, 0.13, 0.19, 0.12]], dtype=np.float32)
    assert quadrant_probs(mixed)[0].argmax() == 1
    assert quadrant_probs(mixed, uniform_prior=True)[0].argmax() == 3


def test_segment_valence_arousal_always_lie_inside_their_quadrant() -> None:
    from emoscore.constants import QUADRANT_VA
    from emoscore.timeline import VA_MARGIN, inside_quadrant

    np.testing.assert_allclose(inside_quadrant(np.array([-0.2, 0.04]), "Q3"), [-0.2, -VA_MARGIN])
    np.testing.assert_allclose(inside_quadrant(np.array([0.6, 0.3]), "Q1"), [0.6, 0.3])  # inside: unchanged
    np.testing.assert_allclose(inside_quadrant(np.array([1.4, -0.01]), "Q1"), [1.0, VA_MARGIN])
    # flat fused probabilities whose weighted mean lies near the centre: every segment still matches its quadrant
    rng = np.random.default_rng(3)
    n = 12
    times = np.arange(n, dtype=np.float64)
    probs = rng.dirichlet(np.ones(8) * 20, n).astype(np.float32)
    probs[:6, 3] += 0.1  # sad leads the first half
    probs /= probs.sum(axis=1, keepdims=True)
    wp = WindowProbs(times=times, probs=probs, present=np.ones(n, bool))
    timeline = build_timeline(wp, wp, float(n + 2), None, Config())
    for segment in timeline.segments:
        sv, sa = QUADRANT_VA[segment.quadrant]
        assert segment.valence * sv >= VA_MARGIN - 1e-9 and segment.arousal * sa >= VA_MARGIN - 1e-9
