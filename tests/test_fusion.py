"""Confidence-aware fusion on synthetic probabilities with known answers, and the actor-wise fusion evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscore.config import FusionConfig
from emoscore.constants import EMOTIONS, QUADRANTS
from emoscore.errors import DataError
from emoscore.fusion_eval import candidates, evaluate_fusion, format_table, join, nested_cv, selection_value
from emoscore.metrics import emotion_metrics
from emoscore.timeline import combine, confidence, quadrant_probs

CONFIDENT = FusionConfig(rule="confidence", confidence_power=1.0, prior_weight=0.1)
FIXED = FusionConfig(rule="fixed")
PRODUCT = FusionConfig(rule="product", visual_reliability=1.0, audio_reliability=1.0, prior_weight=0.0)  # 75/25
ON = np.array([True])


def probs_of(**weights: float) -> np.ndarray:
    """(1, 8) probabilities: the named emotions get their weights, the rest share what is left equally."""
    rest = (1.0 - sum(weights.values())) / (8 - len(weights))
    return np.array([[weights.get(e, rest) for e in EMOTIONS]], dtype=np.float32)


def quadrant(probs: np.ndarray) -> str:
    return QUADRANTS[int(quadrant_probs(probs, uniform_prior=True)[0].argmax())]


def test_confidence_is_zero_for_uniform_and_one_for_one_hot() -> None:
    c = confidence(np.stack([np.full(8, 1 / 8), np.eye(8)[2], probs_of(happy=0.6)[0]]))
    assert c[0] == pytest.approx(0.0, abs=1e-6) and c[1] == pytest.approx(1.0, abs=1e-4)
    assert 0.1 < c[2] < 0.9


def test_a_near_uniform_face_does_not_drown_a_confident_voice() -> None:
    face = probs_of(disgust=0.25, angry=0.2, fearful=0.2)  # largest class 0.25, leaning to Q2 as observed
    voice = probs_of(happy=0.7)
    assert quadrant(combine(face, voice, ON, ON, FIXED)) == "Q2"  # 75/25 lets the unsure face win
    fused = combine(face, voice, ON, ON, CONFIDENT)
    assert quadrant(fused) == "Q1" and EMOTIONS[int(fused.argmax())] == "happy"


def test_a_confident_face_keeps_its_nominal_weight_against_a_flat_voice() -> None:
    face = probs_of(sad=0.8)
    voice = np.full((1, 8), 1 / 8, np.float32)
    fused = combine(face, voice, ON, ON, CONFIDENT)
    assert quadrant(fused) == "Q3" and EMOTIONS[int(fused.argmax())] == "sad" and fused[0].max() > 0.6


def test_two_confident_models_that_disagree_follow_the_nominal_weights() -> None:
    face, voice = probs_of(happy=0.9), probs_of(angry=0.9)
    assert EMOTIONS[int(combine(face, voice, ON, ON, CONFIDENT).argmax())] == "happy"
    assert EMOTIONS[int(combine(face, voice, ON, ON, FusionConfig(visual_weight=0.2, audio_weight=0.8,
                                                                  rule="confidence")).argmax())] == "angry"


def test_two_unsure_models_lean_to_the_calm_neutral_centre() -> None:
    flat = np.full((1, 8), 1 / 8, np.float32)
    assert QUADRANTS[int(quadrant_probs(combine(flat, flat, ON, ON, FIXED))[0].argmax())] == "Q2"  # 3 of 8
    fused = combine(flat, flat, ON, ON, CONFIDENT)
    assert quadrant(fused) == "Q4"  # as the timeline takes quadrants (uniform quadrant prior)
    assert fused[0, EMOTIONS.index("calm")] == pytest.approx(0.9 / 8 + 0.1 * 0.35)  # share 0.1 x (1 - 0)
    strong = combine(flat, flat, ON, ON, FusionConfig(rule="confidence", prior_weight=0.4))
    assert QUADRANTS[int(quadrant_probs(strong)[0].argmax())] == "Q4"  # even without the uniform prior


def test_power_and_prior_zero_is_the_fixed_rule_and_rows_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    face, voice = rng.dirichlet(np.ones(8), 20), rng.dirichlet(np.ones(8), 20)
    on = np.ones(20, bool)
    plain = FusionConfig(rule="confidence", confidence_power=0.0, prior_weight=0.0)
    np.testing.assert_allclose(combine(face, voice, on, on, plain), combine(face, voice, on, on, FIXED), atol=1e-6)
    np.testing.assert_allclose(combine(face, voice, on, on, CONFIDENT).sum(axis=1), 1.0, atol=1e-6)


def test_one_missing_modality_gives_the_other_alone_up_to_the_prior() -> None:
    face, voice = probs_of(happy=0.9), np.zeros((1, 8), np.float32)
    fused = combine(face, voice, ON, np.array([False]), FusionConfig(rule="confidence", prior_weight=0.0))
    np.testing.assert_allclose(fused, face, atol=1e-6)


def test_product_rule_is_the_weighted_geometric_mean() -> None:
    face, voice = probs_of(happy=0.6, angry=0.2), probs_of(happy=0.1, angry=0.5)
    expected = face ** 0.75 * voice ** 0.25
    np.testing.assert_allclose(combine(face, voice, ON, ON, PRODUCT), expected / expected.sum(), rtol=1e-6)
    # the reliabilities multiply the nominal weights: 0.75 x 1 against 0.25 x 3 is an even split
    even = FusionConfig(rule="product", audio_reliability=3.0, prior_weight=0.0)
    assert even.exponents() == pytest.approx((0.5, 0.5))
    expected = np.sqrt(face * voice)
    np.testing.assert_allclose(combine(face, voice, ON, ON, even), expected / expected.sum(), rtol=1e-6)


def test_product_rule_ignores_a_flat_model_whatever_its_weight() -> None:
    flat, face = np.full((1, 8), 1 / 8, np.float32), probs_of(disgust=0.25, angry=0.2, fearful=0.2)
    voice = probs_of(happy=0.7)
    heavy_face = FusionConfig(rule="product", visual_weight=0.99, audio_weight=0.01, prior_weight=0.0)
    for config in (PRODUCT, heavy_face):
        assert EMOTIONS[int(combine(flat, voice, ON, ON, config).argmax())] == "happy"
        assert EMOTIONS[int(combine(face, flat, ON, ON, config).argmax())] == "disgust"
    # a leaning but unsure face against a confident voice: at even exponents the voice decides; the arithmetic
    # mean at 75/25 lets the face's Q2 lean win
    even = FusionConfig(rule="product", audio_reliability=3.0, prior_weight=0.0)
    assert quadrant(combine(face, voice, ON, ON, even)) == "Q1"
    assert quadrant(combine(face, voice, ON, ON, FIXED)) == "Q2"


def test_product_rule_with_one_model_present_is_that_model_and_none_is_zeros() -> None:
    face = probs_of(sad=0.6)
    off = np.array([False])
    np.testing.assert_allclose(combine(face, np.zeros((1, 8)), ON, off, PRODUCT), face, rtol=1e-6)
    np.testing.assert_allclose(combine(np.zeros((1, 8)), face, off, ON, PRODUCT), face, rtol=1e-6)
    assert not combine(face, face, off, off, PRODUCT).any()


def test_product_rule_leans_to_calm_where_both_are_unsure_and_rows_sum_to_one() -> None:
    flat = np.full((1, 8), 1 / 8, np.float32)
    fused = combine(flat, flat, ON, ON, FusionConfig(rule="product", prior_weight=0.2))
    assert quadrant(fused) == "Q4"
    rng = np.random.default_rng(1)
    face, voice = rng.dirichlet(np.ones(8), 30), rng.dirichlet(np.ones(8), 30)
    on = np.ones(30, bool)
    np.testing.assert_allclose(combine(face, voice, on, on, FusionConfig()).sum(axis=1), 1.0, atol=1e-6)


def test_candidates_cover_both_rules_and_keep_the_nominal_weights() -> None:
    grid = candidates(FusionConfig())
    assert {c.rule for c in grid} == {"confidence", "product"}
    assert all(c.visual_weight == 0.75 and c.audio_weight == 0.25 for c in grid)
    assert all(c.visual_reliability == 1.0 for c in grid if c.rule == "product")


def test_selection_prefers_any_point_with_every_quadrant_found() -> None:
    floor_met = {"quadrant_accuracy": 0.60, "quadrant_balanced_accuracy": 0.60,
                 "quadrant_recall": {"Q1": 0.6, "Q2": 0.6, "Q3": 0.5, "Q4": 0.7}}
    q3_lost = {"quadrant_accuracy": 0.75, "quadrant_balanced_accuracy": 0.68,
               "quadrant_recall": {"Q1": 0.9, "Q2": 0.9, "Q3": 0.2, "Q4": 0.7}}
    assert selection_value(floor_met) == pytest.approx(0.60)
    assert selection_value(q3_lost) == pytest.approx(0.68 - 1.0)
    assert selection_value(q3_lost) < selection_value(floor_met)


def test_quadrant_recall_and_balanced_accuracy_have_known_values() -> None:
    y = np.array([EMOTIONS.index(e) for e in ("happy", "happy", "angry", "sad", "calm", "neutral")])
    guess = ["happy", "angry", "angry", "angry", "calm", "calm"]
    probs = np.stack([np.eye(8)[EMOTIONS.index(e)] for e in guess])
    m = emotion_metrics(y, probs)
    assert m["quadrant_recall"] == {"Q1": 0.5, "Q2": 1.0, "Q3": 0.0, "Q4": 1.0}
    assert m["quadrant_balanced_accuracy"] == pytest.approx(0.625)
    assert m["quadrant_accuracy"] == pytest.approx(4 / 6)


def synthetic(n_actors: int = 10, seed: int = 0) -> tuple[tuple, tuple]:
    """Face predictions that are near-uniform (leaning to Q2) for half the clips and right for the rest;
    voice predictions right but unsure. Keys EE-II-SS-RR-AA over actors 1..n_actors."""
    rng = np.random.default_rng(seed)
    keys, face, voice, y = [], [], [], []
    for actor in range(1, n_actors + 1):
        for emotion in range(8):
            for rep in (1, 2):
                keys.append(f"{emotion + 1:02d}-01-01-{rep:02d}-{actor:02d}")
                y.append(emotion)
                v = rng.dirichlet(np.ones(8) * 8)
                v[emotion] += 0.25
                voice.append(v / v.sum())
                if rep == 1:
                    f = np.full(8, 0.11)
                    f[[4, 5, 6]] = 0.15 + rng.uniform(0, 0.02, 3)
                else:
                    f = np.eye(8)[emotion] * 0.7 + 0.3 / 8
                face.append(f / f.sum())
    y_arr = np.array(y)
    return (keys, np.array(face), y_arr), (keys[::-1], np.array(voice)[::-1], y_arr[::-1])


def test_join_matches_keys_and_refuses_disagreeing_labels() -> None:
    face, voice = synthetic(3)
    data = join(face, voice)
    assert len(data.y) == 48 and data.keys == sorted(data.keys)
    np.testing.assert_array_equal(data.audio.argmax(axis=1) >= 0, True)
    assert sorted(set(data.actors.tolist())) == [1, 2, 3]
    i = data.keys.index(face[0][0])
    np.testing.assert_allclose(data.visual[i], face[1][0], atol=1e-6)
    np.testing.assert_allclose(data.audio[i], voice[1][-1], atol=1e-6)
    with pytest.raises(DataError, match="different emotions"):
        join(face, (voice[0], voice[1], (voice[2] + 1) % 8))
    with pytest.raises(DataError, match="no clip"):
        join(face, (["99-01-01-01-01"], voice[1][:1], voice[2][:1]))


def test_confidence_fusion_beats_fixed_weights_where_the_face_is_often_unsure() -> None:
    face, voice = synthetic()
    result = evaluate_fusion(face, voice, FusionConfig(), folds=5, seed=0)
    rows = result["results"]
    assert result["n"] == 160 and len(result["chosen_per_fold"]) == 5
    nested = rows["confidence, nested CV"]["quadrant_balanced_accuracy"]
    assert nested > rows["fixed 0.75/0.25"]["quadrant_balanced_accuracy"] + 0.05
    assert all(c["rule"] in ("confidence", "product") for c in result["chosen_per_fold"])
    for rule in ("confidence", "product", "either rule"):
        assert rows[f"{rule}, nested CV"]["quadrant_balanced_accuracy"] > rows["fixed 0.75/0.25"][
            "quadrant_balanced_accuracy"]
    assert len(format_table(result)) == 1 + len(rows)


def test_face_seen_in_context_adds_its_rows() -> None:
    face, voice = synthetic()
    sure = (face[0], np.eye(8, dtype=np.float32)[face[2]], face[2])  # a face that, in context, is always right
    rows = evaluate_fusion(face, voice, FusionConfig(), folds=3, seed=0, visual_person=sure)["results"]
    assert rows["face, actor's other clips"]["accuracy"] == 1.0
    assert rows["configured, other clips"]["quadrant_accuracy"] > rows["configured (product)"]["quadrant_accuracy"]
    assert "face, actor's other clips" not in evaluate_fusion(face, voice, FusionConfig(), folds=3)["results"]


def test_nested_cv_chooses_each_folds_parameters_without_its_actors() -> None:
    face, voice = synthetic(6)
    data = join(face, voice)
    _, chosen = nested_cv(data, FusionConfig(), folds=3, seed=1, uniform_prior=True)
    folds = [set(c["test_actors"]) for c in chosen]
    assert set().union(*folds) == set(range(1, 7)) and sum(len(f) for f in folds) == 6


def test_q3_weight_scales_the_odds_of_sad_only() -> None:
    face, voice = probs_of(sad=0.2, calm=0.5), probs_of(sad=0.2, calm=0.5)
    plain = combine(face, voice, ON, ON, FIXED)
    boosted = combine(face, voice, ON, ON, FusionConfig(rule="fixed", q3_weight=2.0))
    sad, calm = EMOTIONS.index("sad"), EMOTIONS.index("calm")
    assert boosted[0, sad] / boosted[0, calm] == pytest.approx(2 * plain[0, sad] / plain[0, calm])
    assert quadrant(plain) == "Q4" and quadrant(boosted) == "Q3"
    np.testing.assert_allclose(boosted.sum(axis=1), 1.0, atol=1e-6)


def test_info_shows_quadrant_accuracy_and_recall_of_each_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emoscore.checkpoints import record_model
    from emoscore.cli import app

    (tmp_path / "a.keras").write_bytes(b"x")
    new = emotion_metrics(np.array([2, 2, 4, 3]), np.eye(8)[[2, 4, 4, 3]])
    record_model(tmp_path, "audio", "audio-cnn", {"model": "a.keras"}, constants={}, data="d", command="c",
                 metrics=new)
    old = {"n": 4, "accuracy": 0.5, "quadrant_accuracy": 0.5, "quadrant_confusion": [[1, 1, 0, 0], [0, 1, 0, 0],
                                                                                      [0, 0, 0, 0], [0, 0, 1, 0]]}
    record_model(tmp_path, "visual", "face-landmark-cnn", {"model": "a.keras"}, constants={}, data="d",
                 command="c", metrics=old)
    judge = {"n": 86, "accuracy_4q": 0.6, "recall_Q1": 0.7, "recall_Q2": 0.6, "recall_Q3": 0.35, "recall_Q4": 0.75,
             "arousal_accuracy": 0.9, "classifier": "lr"}
    record_model(tmp_path, "music_judge", "music-judge", {"model": "a.keras"}, constants={}, data="d",
                 command="c", metrics=judge)
    result = CliRunner().invoke(app, ["info", "--checkpoints", str(tmp_path)])
    assert result.exit_code == 0, result.output
    audio, visual, music = (next(line for line in result.output.splitlines() if line.startswith(n))
                            for n in ("audio", "visual", "music_judge"))
    assert "accuracy_4q=0.600" in music and "recall Q1=0.70 Q2=0.60 Q3=0.35 Q4=0.75" in music
    assert "quadrant_accuracy=0.750" in audio and "recall Q1=0.50 Q2=1.00 Q3=1.00 Q4=0.00" in audio
    assert "recall Q1=0.50 Q2=1.00 Q3=0.00 Q4=0.00" in visual  # from the recorded confusion matrix


def test_info_shows_the_fusion_rule_and_its_exponents(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emoscore.cli import app

    (tmp_path / "manifest.json").write_text('{"format_version": 1, "models": {}}')
    config = tmp_path / "even.toml"
    config.write_text("[fusion]\nrule = \"product\"\naudio_reliability = 3.0\n")
    result = CliRunner().invoke(app, ["info", "--checkpoints", str(tmp_path), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "exponents face 0.50 / voice 0.50" in result.output
    config.write_text("[fusion]\nrule = \"fixed\"\n")
    result = CliRunner().invoke(app, ["info", "--checkpoints", str(tmp_path), "--config", str(config)])
    assert "weighted mean, face 0.75 / voice 0.25" in result.output
