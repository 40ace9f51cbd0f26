"""Loaders of the new face layouts (faces-in-the-wild photos, RAVDESS face-crop videos), the masked
neutral-or-calm target, the tracker offset, grouped folds that never mix people, and the visual metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscore.constants import EMOTIONS, N_EMOTIONS, N_LANDMARKS
from emoscore.data.faces_wild import load_photos, read_labels
from emoscore.data.ravdess_clips import load_clips
from emoscore.data.visual_sources import Faces, concat, from_clips, from_photos, one_hot, tracker_offset
from emoscore.errors import DataError
from emoscore.visual_cv import fold_of, identity_fold
from emoscore.visual_metrics import photo_metrics, ravdess_metrics
from emoscore.visual_train import masked_loss, sample_weights

DATA = Path(__file__).parent / "data"
PHOTOS = DATA / "faces-in-the-wild"
CROPS = DATA / "ravdess-crops"


def test_photo_labels_map_to_ravdess_emotions_and_skip_missing_images() -> None:
    items = read_labels(PHOTOS)  # labels.csv also lists Not_There_0001.jpg, which is absent
    assert [i.path.name for i in items] == ["Aaron_Guiel_0001.jpg", "Alain_Cervantes_0001.jpg",
                                            "George_W_Bush_0001.jpg", "George_W_Bush_0003.jpg"]
    assert [EMOTIONS[i.emotion] for i in items] == ["happy", "sad", "neutral", "surprised"]
    assert items[2].identity == items[3].identity == "George_W_Bush"


def test_photo_labels_refuse_unknown_emotions(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.csv").write_text("image,emotion,identity\na.jpg,contempt,A\n")
    with pytest.raises(DataError, match="contempt"):
        read_labels(tmp_path)
    with pytest.raises(DataError, match="labels.csv"):
        read_labels(tmp_path / "nowhere")


def test_photos_are_landmarked_once_then_read_from_the_cache(tmp_path: Path) -> None:
    first = load_photos(PHOTOS, cache=tmp_path)
    assert first.points.shape == (4, N_LANDMARKS, 2) and np.isfinite(first.points).all()
    cached = list(tmp_path.glob("photos-*.npz"))
    assert len(cached) == 1
    messages: list[str] = []
    again = load_photos(PHOTOS, cache=tmp_path, log=messages.append)
    np.testing.assert_array_equal(again.points, first.points)
    assert any("cache" in m for m in messages)


def test_a_neutral_photo_may_be_neutral_or_calm() -> None:
    faces = from_photos(load_photos(PHOTOS))
    neutral = EMOTIONS.index("neutral")
    row = faces.targets[faces.labels.tolist().index(neutral)]
    assert row[neutral] == row[EMOTIONS.index("calm")] == 1 and row.sum() == 2
    happy_row = faces.targets[faces.labels.tolist().index(EMOTIONS.index("happy"))]
    assert happy_row.sum() == 1 and happy_row[EMOTIONS.index("happy")] == 1
    assert set(faces.groups) == {"photo:Aaron_Guiel", "photo:Alain_Cervantes", "photo:George_W_Bush"}


def test_crop_video_layout_gives_timed_frames_with_labels_from_the_name(tmp_path: Path) -> None:
    clips = load_clips(CROPS, cache=tmp_path)
    assert len(clips.items) == 1 and clips.items[0].actor == 5 and clips.items[0].emotion == 2  # 03 = happy
    np.testing.assert_allclose(clips.times[0], [0.0, 0.2, 0.4])
    assert clips.points[0].shape == (3, N_LANDMARKS, 2) and np.isfinite(clips.points[0]).all()
    faces = from_clips(clips, skip=0.0)
    assert len(faces) == 3 and set(faces.groups) == {"actor:05"} and faces.keys[0] == "03-02-01-01-05"
    index, near = clips.frames_near(0.35)
    assert index == [0]
    np.testing.assert_array_equal(near[0], clips.points[0][2])


def test_masked_loss_takes_the_probability_of_the_allowed_set() -> None:
    loss = masked_loss(smoothing=0.0)
    probs = np.full((1, N_EMOTIONS), 0.05, np.float32)
    probs[0, 0], probs[0, 1] = 0.3, 0.35  # neutral 0.3, calm 0.35
    mask = np.zeros((1, N_EMOTIONS), np.float32)
    mask[0, :2] = 1
    assert float(np.asarray(loss(mask, probs))[0]) == pytest.approx(-np.log(0.65), rel=1e-5)
    assert float(np.asarray(loss(one_hot(np.array([0])), probs))[0]) == pytest.approx(-np.log(0.3), rel=1e-5)


def _faces(labels: list[int], groups: list[str], sources: list[str]) -> Faces:
    n = len(labels)
    return Faces(np.zeros((n, N_LANDMARKS, 2), np.float32), one_hot(np.array(labels)), np.array(labels),
                 np.array(groups), np.array(sources), np.array([f"k{i}" for i in range(n)]))


def test_sample_weights_balance_classes_within_a_source_and_scale_the_photos() -> None:
    faces = _faces([0, 0, 0, 2, 0, 2], ["actor:01"] * 4 + ["photo:a", "photo:b"], ["openface"] * 4 + ["photos"] * 2)
    w = sample_weights(faces, balance=1.0, photo_weight=0.5)
    assert w[:3].sum() == pytest.approx(w[3])  # three neutral faces weigh what one happy face weighs
    assert w[4:].sum() == pytest.approx(0.5 * w[:4].sum())


def test_grouped_folds_never_split_an_actor_or_a_person() -> None:
    rng = np.random.default_rng(0)
    actors = [f"actor:{a:02d}" for a in rng.integers(1, 21, 300)]
    people = [f"photo:p{i}" for i in rng.integers(0, 40, 300)]
    faces = _faces([0] * 600, actors + people, ["openface"] * 300 + ["photos"] * 300)
    fold = fold_of(faces, 5)
    for group in set(faces.groups):
        assert len(set(fold[faces.groups == group])) == 1, group
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3, 4]
    assert fold[faces.groups == "actor:01"][0] == 0 and fold[faces.groups == "actor:20"][0] == 4
    assert identity_fold("George_W_Bush", 5) == identity_fold("George_W_Bush", 5)


def test_tracker_offset_removes_a_constant_shift() -> None:
    rng = np.random.default_rng(1)
    openface = rng.normal(0, 30, (6, N_LANDMARKS, 2)) + 300
    openface[:, 36:42] = rng.normal((250, 250), 3, (6, 6, 2))
    openface[:, 42:48] = rng.normal((350, 250), 3, (6, 6, 2))
    dlib = openface.copy()
    dlib[:, 48:68, 1] += 5.0  # the mouth 5 px lower (IOD about 100 px)
    offset, report = tracker_offset(openface, dlib, alignment="eyes")  # random points: IOD is the scale
    assert report["mean_distance_iod_after_offset"] < 1e-3 < report["mean_distance_iod_before"]
    assert offset[48:, 1].mean() == pytest.approx(0.05, rel=0.1) and np.abs(offset[:36]).max() < 1e-4


def test_per_quadrant_recall_and_photo_metrics() -> None:
    labels = np.array([3, 3, 0, 2])  # sad, sad, neutral, happy
    probs = one_hot(np.array([3, 4, 1, 2]))  # sad right, sad read as angry, neutral read as calm (Q4 still)
    metrics = ravdess_metrics(labels, probs)
    assert metrics["quadrant_recall"] == {"Q1": 1.0, "Q2": None, "Q3": 0.5, "Q4": 1.0}
    photos = photo_metrics(np.array([0, 0, 2, 7]), one_hot(np.array([1, 2, 2, 7])))
    assert photos["neutral_vs_happiness_accuracy"] == pytest.approx(2 / 3)  # calm counts as neutral
    assert photos["accuracy"] == pytest.approx(3 / 4) and len(photos["labels"]) == 7


def test_concat_of_nothing_is_an_error() -> None:
    with pytest.raises(DataError):
        concat([])
