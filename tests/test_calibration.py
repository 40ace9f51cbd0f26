"""Person calibration (emoscore/calibration.py) on synthetic faces with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscore import calibration as cal


def faces(values: list[float]) -> np.ndarray:
    """(n, 68, 2) faces whose every coordinate is the given value."""
    return np.stack([np.full((68, 2), v, dtype=np.float32) for v in values])


def test_shrinkage_grows_with_what_is_seen_of_a_person() -> None:
    assert cal.shrinkage(0.0, 4.0) == 0.0
    assert cal.shrinkage(1.0, 4.0) == pytest.approx(0.2)
    assert cal.shrinkage(4.0, 4.0) == pytest.approx(0.5)
    assert cal.shrinkage(400.0, 4.0) == pytest.approx(400 / 404)
    assert cal.shrinkage(-3.0, 4.0) == 0.0
    assert cal.shrinkage(2.0, 0.0) == 1.0  # no prior: the person's own mean only


def test_person_offset_is_the_shrunk_distance_from_everyone() -> None:
    mean = np.zeros((68, 2), dtype=np.float32)
    offset = cal.person_offset(faces([1.0, 3.0]), 4.0, mean, prior=4.0)  # person mean 2, s 0.5
    np.testing.assert_allclose(offset, 1.0)
    np.testing.assert_allclose(cal.person_offset(np.zeros((0, 68, 2)), 10.0, mean), 0.0)


def test_population_mean_counts_each_person_once() -> None:
    aligned = faces([0.0, 0.0, 0.0, 10.0])  # person a three times at 0, person b once at 10
    np.testing.assert_allclose(cal.population_mean(aligned, np.array(["a", "a", "a", "b"])), 5.0)


def test_moments_are_face_time_in_moment_lengths() -> None:
    assert cal.moments_of(np.array([])) == 0.0
    assert cal.moments_of(np.array([7.0])) == 1.0
    assert cal.moments_of(np.arange(0, 60, 0.25)) == pytest.approx(60 / cal.FACE_MOMENT_SECONDS)
    assert cal.moments_of(np.array([0.0, 0.25])) == 1.0  # never less than one moment


def test_context_offsets_stay_inside_the_person_and_leave_out_the_same_moment() -> None:
    # person a: clip x (frames at 1 and 2), clip y at 3, clip z at 5; person b: one photo at 100
    aligned = faces([1.0, 2.0, 3.0, 5.0, 100.0])
    groups = np.array(["a", "a", "a", "a", "b"])
    keys = np.array(["x", "x", "y", "z", "p"])
    mean = np.zeros((68, 2), dtype=np.float32)
    rng = np.random.default_rng(0)
    alone = cal.context_offsets(aligned, groups, keys, (0,), mean, rng, prior=1.0)
    np.testing.assert_allclose(alone[:, 0, 0], [0.5, 1.0, 1.5, 2.5, 50.0])  # s(1) = 0.5 of the face itself
    every = cal.context_offsets(aligned, groups, keys, (-1,), mean, rng, prior=1.0)
    # frame 0 of clip x: itself and clips y, z (not the other frame of x): mean 3, three moments, s 0.75
    np.testing.assert_allclose(every[0, 0, 0], 0.75 * 3.0)
    np.testing.assert_allclose(every[1, 0, 0], 0.75 * 10 / 3)
    np.testing.assert_allclose(every[2, 0, 0], 0.75 * 9.5 / 3)  # clip y: itself, clip x (mean of its frames), z
    np.testing.assert_allclose(every[4, 0, 0], 50.0)  # nobody else of b: its photo alone
    many = cal.context_offsets(aligned, groups, keys, (50,), mean, rng, prior=1.0)  # more than there is: all
    np.testing.assert_allclose(many[:4], every[:4])


def test_same_emotion_contexts_take_moments_of_the_face_s_own_emotion() -> None:
    aligned = faces([1.0, 2.0, 3.0, 40.0, 50.0])  # one person; emotions 0, 0, 0, 1, 1 (one moment each)
    groups, keys = np.full(5, "a"), np.array(list("vwxyz"))
    labels = np.array([0, 0, 0, 1, 1])
    mean = np.zeros((68, 2), dtype=np.float32)
    rng = np.random.default_rng(0)
    same = cal.context_offsets(aligned, groups, keys, (-1,), mean, rng, 1.0, labels, same_share=1.0)
    np.testing.assert_allclose(same[:, 0, 0], [0.75 * 2, 0.75 * 2, 0.75 * 2, 2 / 3 * 45, 2 / 3 * 45])
    mixed = cal.context_offsets(aligned, groups, keys, (-1,), mean, rng, 1.0, labels, same_share=0.0)
    np.testing.assert_allclose(mixed[:, 0, 0], 5 / 6 * 19.2, rtol=1e-6)


def test_shots_are_calibrated_apart() -> None:
    mean = np.zeros((68, 2), dtype=np.float32)
    times = np.arange(8) * 1.5  # 12 s: two shots of 6 s (two moments each)
    aligned = faces([2.0] * 4 + [-4.0] * 4)
    out = cal.offsets_by_shot(aligned, times, np.array([5.9]), mean, prior=2.0)
    np.testing.assert_allclose(out[:4], 1.0)  # 0.5 * 2
    np.testing.assert_allclose(out[4:], -2.0)
    one = cal.offsets_by_shot(aligned, times, np.zeros(0), mean, prior=2.0)  # one shot: mean -1, 4 moments
    np.testing.assert_allclose(one, (4 / 6) * -1.0, rtol=1e-6)
    np.testing.assert_allclose(cal.offsets_alone(faces([3.0]), mean, prior=2.0), 1.0)  # 1/3 * 3


def test_info_tells_how_faces_are_calibrated(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emoscore.checkpoints import record_model
    from emoscore.cli import app

    (tmp_path / "a.keras").write_bytes(b"x")
    record_model(tmp_path, "visual", "face-landmark-cnn", {"model": "a.keras"}, constants={}, data="d", command="c",
                 metrics={}, extra={"calibration": {"population_mean": [[0.0, 0.0]] * 68, "prior_moments": 4.0,
                                                    "moment_seconds": 3.0}})
    result = CliRunner().invoke(app, ["info", "--checkpoints", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "each face against its shot's mean face (prior 4 moments of 3 s)" in result.output
    config = tmp_path / "alone.toml"
    config.write_text('[analysis]\nface_calibration = "face"\n')
    result = CliRunner().invoke(app, ["info", "--checkpoints", str(tmp_path), "--config", str(config)])
    assert "each face alone" in result.output
    config.write_text('[analysis]\nface_calibration = "person"\n')
    result = CliRunner().invoke(app, ["info", "--checkpoints", str(tmp_path), "--config", str(config)])
    assert result.exit_code != 0 and "face_calibration" in result.output
