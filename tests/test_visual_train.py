"""Visual model training: the OpenFace CSV reader, augmentation, and a toy training run whose checkpoint loads
back (also through the CLI)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoscore.constants import LEFT_EYE, N_EMOTIONS, N_LANDMARKS, RIGHT_EYE
from emoscore.data.landmarks import pick_frames, read_landmark_csv
from emoscore.errors import DataError
from emoscore.visual_cv import grouped_cv
from emoscore.visual_train import (
    TRACKER_NOISE_IOD,
    VisualTrainOptions,
    augmented,
    jitter,
    load_sources,
    train_visual_model,
)

DATA = Path(__file__).parent / "data"


def synthetic_face(rng: np.random.Generator, emotion: int = 0) -> np.ndarray:
    """(68, 2) pixels; the mouth opens wider with the emotion index so that classes differ."""
    points = rng.uniform(400, 600, (N_LANDMARKS, 2))
    points[list(LEFT_EYE)] = rng.normal((450, 400), 4, (6, 2))
    points[list(RIGHT_EYE)] = rng.normal((550, 400), 4, (6, 2))
    points[48:68, 1] = 560 + rng.normal(0, 2, 20) + 8 * emotion * np.sign(np.arange(20) - 9.5)
    return points


def write_openface_csv(path: Path, frames: np.ndarray, confidence: list[float] | None = None,
                       shuffle_seed: int | None = None) -> None:
    """An OpenFace-like CSV of frames (k, 68, 2) with extra columns, in shuffled column order if asked."""
    names = ["frame", "timestamp", "confidence", "pose_Rx"] + [f"x_{i}" for i in range(N_LANDMARKS)] \
        + [f"y_{i}" for i in range(N_LANDMARKS)] + [f"X_{i}" for i in range(3)] + ["AU01_r"]
    rows = []
    for k, points in enumerate(frames):
        conf = 0.98 if confidence is None else confidence[k]
        values = [k + 1, k / 30, conf, 0.1, *points[:, 0], *points[:, 1], -1.0, -2.0, -3.0, 0.5]
        rows.append(values)
    order = np.arange(len(names))
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(order)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([" " + names[i] if i % 3 == 0 else names[i] for i in order])  # OpenFace pads some
        writer.writerows([[row[i] for i in order] for row in rows])


def test_csv_reader_selects_landmark_columns_by_name(tmp_path: Path) -> None:
    face = synthetic_face(np.random.default_rng(1))
    write_openface_csv(tmp_path / "a.csv", face[None], shuffle_seed=3)
    points = read_landmark_csv(tmp_path / "a.csv")
    assert points.shape == (1, N_LANDMARKS, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points[0], face, rtol=1e-6)


def test_csv_reader_drops_low_confidence_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frames = np.stack([synthetic_face(rng) for _ in range(3)])
    write_openface_csv(tmp_path / "a.csv", frames, confidence=[0.2, 0.95, 0.3])
    points = read_landmark_csv(tmp_path / "a.csv", frames_per_clip=5)
    assert points.shape == (1, N_LANDMARKS, 2)
    np.testing.assert_allclose(points[0], frames[1], rtol=1e-6)


def test_csv_reader_names_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("frame,x_0,y_0\n1,2,3\n")
    with pytest.raises(DataError, match="x_1"):
        read_landmark_csv(tmp_path / "bad.csv")


def test_pick_frames_is_centred() -> None:
    assert pick_frames(9, 1).tolist() == [4]
    assert pick_frames(10, 2).tolist() == [2, 7]
    assert pick_frames(2, 5).tolist() == [0, 1]
    assert pick_frames(0, 1).tolist() == []


def test_augmentation_keeps_labels_aligned() -> None:
    rng = np.random.default_rng(0)
    faces = rng.normal(0, 1, (5, N_LANDMARKS, 2)).astype(np.float32)
    x, y = augmented(faces, np.arange(5), copies=3, seed=0)
    assert x.shape == (20, N_LANDMARKS, 2) and y.tolist() == list(range(5)) * 4
    np.testing.assert_array_equal(x[:5], faces)


def test_tracker_noise_moves_each_region_as_a_block() -> None:
    faces = np.zeros((400, N_LANDMARKS, 2), np.float32)
    plain = jitter(faces, np.random.default_rng(3))
    noisy = jitter(faces, np.random.default_rng(3), tracker_noise=True)
    extra = noisy - plain  # same random stream up to the region offsets, which come last
    jaw, nose = extra[:, :17], extra[:, 27:36]
    np.testing.assert_allclose(jaw, jaw[:, :1].repeat(17, axis=1), atol=1e-5)
    np.testing.assert_allclose(nose, nose[:, :1].repeat(9, axis=1), atol=1e-5)
    assert jaw[:, 0].std() == pytest.approx(TRACKER_NOISE_IOD["jaw"], rel=0.15)
    np.testing.assert_allclose(extra[:, 36:48], 0, atol=1e-6)  # eyes: no offset


def test_jitter_amount_0_only_mirrors() -> None:
    from emoscore.face import mirror_landmarks

    faces = np.random.default_rng(4).normal(0, 1, (50, N_LANDMARKS, 2)).astype(np.float32)
    out = jitter(faces, np.random.default_rng(5), amount=0.0)
    same = np.isclose(out, faces, atol=1e-6).all(axis=(1, 2))
    flipped = np.isclose(out, mirror_landmarks(faces), atol=1e-6).all(axis=(1, 2))
    assert (same | flipped).all() and same.any() and flipped.any()


@pytest.fixture(scope="module")
def toy_landmarks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RAVDESS-named one-frame CSVs: actors 1-4, every emotion once."""
    root = tmp_path_factory.mktemp("landmarks")
    rng = np.random.default_rng(0)
    for actor in range(1, 5):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir()
        for emotion in range(N_EMOTIONS):
            name = f"01-01-{emotion + 1:02d}-01-01-01-{actor:02d}.csv"
            write_openface_csv(folder / name, synthetic_face(rng, emotion)[None])
    return root


def test_toy_training_writes_a_loadable_checkpoint(toy_landmarks: Path, tmp_path: Path) -> None:
    from emoscore.checkpoints import model_entry
    from emoscore.face import FaceEmotionModel

    out = tmp_path / "ck"
    options = VisualTrainOptions(landmarks=toy_landmarks, out=out, epochs=2, augment_copies=1, batch_size=16,
                                 test_actors=(4,), val_actors=(3,))
    metrics = train_visual_model(options, log=lambda _: None)
    assert metrics["n"] == N_EMOTIONS and 0 <= metrics["accuracy"] <= 1
    assert (out / "visual.keras").exists() and (out / "visual_metrics.json").exists()
    entry = model_entry(out, "visual")
    assert entry["constants"]["features"] == options.features and "actors 01-04" in entry["data"]
    assert entry["constants"]["points"] == options.points and entry["recipe"]["epochs"] == 2
    assert entry["recipe"]["calibration"] == "both" and entry["calibration"]["prior_moments"] > 0
    assert entry["constants"]["channels"] == 4 and entry["constants"]["calibration_input"] == "both"
    assert np.array(entry["calibration"]["population_mean"]).shape == (N_LANDMARKS, 2)
    assert set(metrics["person_context"]) == {"3 other moments", "10 other moments", "all other moments",
                                              "5 other moments of the same emotion"}
    model = FaceEmotionModel(out)
    assert model.calibration is not None
    probs = model.predict(synthetic_face(np.random.default_rng(5))[None])
    assert probs.shape == (1, N_EMOTIONS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    from emoscore.cli import app

    result = CliRunner().invoke(app, ["eval", "visual", "--landmarks", str(toy_landmarks),
                                      "--checkpoints", str(out), "--actors", "4"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output


def test_cnn_skip_ensemble_without_early_stopping_trains_on_the_validation_actors(toy_landmarks: Path, tmp_path: Path
                                                                         ) -> None:
    from emoscore.face import FaceEmotionModel

    out = tmp_path / "ck"
    options = VisualTrainOptions(landmarks=toy_landmarks, out=out, epochs=1, augment_copies=1, jitter=0.0,
                                 batch_size=16, arch="cnn-skip", ensemble=2, patience=0, test_actors=(4,),
                                 val_actors=(3,))
    logs: list[str] = []
    train_visual_model(options, log=logs.append)
    assert any("training on 24 faces" in line for line in logs)  # actors 1-3 (test actor 4): 8 faces each
    assert sum(line.startswith("  epoch   1") for line in logs) == 2  # two members, one model
    probs = FaceEmotionModel(out).predict(synthetic_face(np.random.default_rng(6))[None])  # the exported .tflite
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_model_trained_without_calibration_reads_faces_as_they_are(toy_landmarks: Path, tmp_path: Path) -> None:
    from emoscore.checkpoints import model_entry
    from emoscore.face import feature_constants, predict_landmarks
    from emoscore.runtime import load_lite

    out = tmp_path / "ck"
    options = VisualTrainOptions(landmarks=toy_landmarks, out=out, epochs=1, batch_size=16, calibration="none",
                                 test_actors=(4,), val_actors=(3,))
    metrics = train_visual_model(options, log=lambda _: None)
    entry = model_entry(out, "visual")
    assert "calibration" not in entry and "person_context" not in metrics
    assert entry["constants"] == feature_constants(calibration="none") and entry["constants"]["channels"] == 2
    face = synthetic_face(np.random.default_rng(7))[None]
    probs = predict_landmarks(load_lite(out, "visual", feature_constants(calibration="none")), face, "none")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(DataError, match="jitter"):  # a calibrated face is only mirrored
        train_visual_model(VisualTrainOptions(landmarks=toy_landmarks, out=tmp_path / "j", jitter=1.0,
                                              test_actors=(4,), val_actors=(3,)), log=lambda _: None)


def test_grouped_cv_holds_out_each_actor_group_once(toy_landmarks: Path) -> None:
    options = VisualTrainOptions(landmarks=toy_landmarks, epochs=1, augment_copies=0, batch_size=16)
    faces, _ = load_sources(options, lambda _: None)
    result = grouped_cv(options, faces, folds=4)  # each fold: 1 train, 2 validation, 1 test actor
    assert [f["held_out_actors"] for f in result["folds"]] == [[1], [2], [3], [4]]
    assert 0 <= result["accuracy"] <= 1 and 0 <= result["quadrant_accuracy"] <= 1
    assert result["probs"].shape == (len(faces), N_EMOTIONS)
    assert set(result["quadrant_recall"]) == {"Q1", "Q2", "Q3", "Q4"}


def test_training_needs_a_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="at least one"):
        train_visual_model(VisualTrainOptions(out=tmp_path), log=lambda _: None)


def test_out_of_fold_predictions_hold_out_each_clips_actor(toy_landmarks: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from emoscore import visual_cv
    from emoscore.visual_train import out_of_fold_predictions

    monkeypatch.setattr(visual_cv, "CACHE", tmp_path)
    options = VisualTrainOptions(epochs=1, augment_copies=0, batch_size=16)
    keys, probs, labels = out_of_fold_predictions(toy_landmarks, folds=4, options=options)
    assert len(keys) == 4 * N_EMOTIONS and probs.shape == (len(keys), N_EMOTIONS)
    assert keys[0] == "01-01-01-01-01" and labels[0] == 0 and keys == sorted(keys)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert len(list(tmp_path.glob("oof-*.npz"))) == 1
    again = out_of_fold_predictions(toy_landmarks, folds=4, options=options)  # from the cache
    np.testing.assert_array_equal(again[1], probs)


def test_eval_visual_reads_the_photo_layout(toy_landmarks: Path, tmp_path: Path) -> None:
    from emoscore.cli import app

    out = tmp_path / "ck"
    train_visual_model(VisualTrainOptions(landmarks=toy_landmarks, out=out, epochs=1, augment_copies=0,
                                          batch_size=16, test_actors=(4,), val_actors=(3,)), log=lambda _: None)
    result = CliRunner().invoke(app, ["eval", "visual", "--images", str(DATA / "faces-in-the-wild"),
                                      "--checkpoints", str(out)])
    assert result.exit_code == 0, result.output
    assert "photos (calm counted as neutral)" in result.output and "neutral_vs_happiness_accuracy" in result.output


def test_eval_visual_defaults_to_the_actors_present(toy_landmarks: Path, tmp_path: Path) -> None:
    from emoscore.visual_train import evaluate_visual_model

    out = tmp_path / "ck"
    train_visual_model(VisualTrainOptions(landmarks=toy_landmarks, out=out, epochs=1, augment_copies=0,
                                          batch_size=16, test_actors=(4,), val_actors=(3,)), log=lambda _: None)
    metrics = evaluate_visual_model(out, landmarks=toy_landmarks)  # actors 1-4: none of the test actors 17-20
    assert metrics["actors"] == [1, 2, 3, 4] and metrics["n"] == 4 * N_EMOTIONS
    assert set(metrics["quadrant_recall"]) == {"Q1", "Q2", "Q3", "Q4"}
