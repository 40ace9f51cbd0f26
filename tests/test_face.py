"""Faces: landmark normalisation and mirroring (synthetic, known answers), dlib detection on a real face,
"no face" on faceless frames, and the shipped visual checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscore.constants import (
    LANDMARK_MIRROR,
    LEFT_EYE,
    N_EMOTIONS,
    N_LANDMARKS,
    PROCRUSTES_POINTS,
    PROCRUSTES_TEMPLATE,
    RIGHT_EYE,
)
from emoscore.face import (
    FEATURE_KINDS,
    NORMALISATIONS,
    POINT_SETS,
    STABLE_POINTS,
    FaceLandmarker,
    eye_centres,
    feature_channels,
    landmark_features,
    mirror_landmarks,
    model_input,
    normalise_landmarks,
    predictor_path,
)

DATA = Path(__file__).parent / "data"


def read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path))
    assert image is not None, path
    return image


@pytest.fixture
def face() -> np.ndarray:
    """A synthetic (68, 2) face in pixels: random points with the eyes left and right of the nose."""
    rng = np.random.default_rng(7)
    points = rng.uniform(100, 200, (N_LANDMARKS, 2))
    points[list(LEFT_EYE)] = rng.normal((120, 120), 3, (6, 2))
    points[list(RIGHT_EYE)] = rng.normal((180, 124), 3, (6, 2))
    return points.astype(np.float32)


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def similarity(points: np.ndarray, angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points @ rotation.T) * scale + np.array(shift)


@pytest.mark.parametrize("alignment", sorted(NORMALISATIONS))
@pytest.mark.parametrize(("angle", "scale", "shift"), [(0, 1, (50, -20)), (0, 2.5, (0, 0)), (17, 1, (0, 0)),
                                                        (-30, 0.4, (310, 95))])
def test_normalisation_removes_translation_scale_rotation(face: np.ndarray, angle: float, scale: float,
                                                          shift: tuple[float, float], alignment: str) -> None:
    moved = similarity(face.astype(np.float64), angle, scale, shift)
    np.testing.assert_allclose(normalise_landmarks(moved, alignment), normalise_landmarks(face, alignment),
                               atol=1e-4)


def test_stable_alignment_centres_the_stable_points_and_puts_eye_corners_1_apart(face: np.ndarray) -> None:
    aligned = normalise_landmarks(similarity(face, 25, 1.7, (30, 40)), "stable")
    np.testing.assert_allclose(aligned[list(STABLE_POINTS)].mean(axis=0), [0, 0], atol=1e-5)
    left, right = aligned[[36, 39]].mean(axis=0), aligned[[42, 45]].mean(axis=0)
    np.testing.assert_allclose(right - left, [1, 0], atol=1e-5)


def test_stable_alignment_ignores_eyelids_and_brows(face: np.ndarray) -> None:
    moved = face.copy()
    moved[[37, 38, 40, 41, 43, 44, 46, 47]] += 9.0  # eyelids
    moved[17:27] -= 5.0  # brows
    np.testing.assert_allclose(normalise_landmarks(moved, "stable")[48:], normalise_landmarks(face, "stable")[48:],
                               atol=1e-5)
    assert not np.allclose(normalise_landmarks(moved, "eyes")[48:], normalise_landmarks(face, "eyes")[48:])


def test_procrustes_puts_a_moved_template_face_exactly_on_the_template(face: np.ndarray) -> None:
    template = np.array(PROCRUSTES_TEMPLATE)
    face = face.astype(np.float64)
    face[list(PROCRUSTES_POINTS)] = similarity(template, -20, 80.0, (200, 150))
    aligned = normalise_landmarks(face, "procrustes")
    np.testing.assert_allclose(aligned[list(PROCRUSTES_POINTS)], template, atol=1e-4)


def test_procrustes_alignment_ignores_eyelids_brows_and_mouth(face: np.ndarray) -> None:
    moved = face.copy()
    moved[[37, 38, 40, 41, 43, 44, 46, 47]] += 9.0
    moved[17:27] -= 5.0
    moved[48:] += np.random.default_rng(2).normal(0, 6, (20, 2)).astype(np.float32)
    jaw = slice(0, 17)
    np.testing.assert_allclose(normalise_landmarks(moved, "procrustes")[jaw],
                               normalise_landmarks(face, "procrustes")[jaw], atol=1e-5)


def test_procrustes_template_is_mirror_symmetric_in_iod_units() -> None:
    template = np.array(PROCRUSTES_TEMPLATE)
    index = {p: i for i, p in enumerate(PROCRUSTES_POINTS)}
    mirrored = template[[index[LANDMARK_MIRROR[p]] for p in PROCRUSTES_POINTS]] * [-1, 1]
    np.testing.assert_allclose(mirrored, template, atol=1e-9)
    assert 1.0 < template[3, 0] - template[0, 0] < 1.6  # outer eye corners: wider than the eye centres' 1


@pytest.mark.parametrize("alignment", sorted(NORMALISATIONS))
def test_mirror_commutes_with_every_alignment(face: np.ndarray, alignment: str) -> None:
    np.testing.assert_allclose(normalise_landmarks(mirror_landmarks(face, 640), alignment),
                               mirror_landmarks(normalise_landmarks(face, alignment)), atol=1e-4)


@pytest.mark.parametrize("points", sorted(POINT_SETS))
def test_point_sets_are_closed_under_mirroring(points: str) -> None:
    kept = set(POINT_SETS[points])
    assert {LANDMARK_MIRROR[i] for i in kept} == kept


def test_normalised_eyes_sit_at_plus_minus_half(face: np.ndarray) -> None:
    left, right = eye_centres(normalise_landmarks(face, "eyes"))
    np.testing.assert_allclose(left, [-0.5, 0], atol=1e-5)
    np.testing.assert_allclose(right, [0.5, 0], atol=1e-5)


def test_normalisation_batches(face: np.ndarray) -> None:
    batch = np.stack([face, similarity(face, 10, 2, (5, 5))])
    assert normalise_landmarks(batch).shape == (2, N_LANDMARKS, 2)


def test_mirror_maps_left_eye_to_right_eye_and_is_an_involution(face: np.ndarray) -> None:
    width = 320.0
    mirrored = mirror_landmarks(face, width)
    left, right = eye_centres(face)
    m_left, m_right = eye_centres(mirrored)
    np.testing.assert_allclose(m_left, [width - right[0], right[1]], atol=1e-4)
    np.testing.assert_allclose(m_right, [width - left[0], left[1]], atol=1e-4)
    np.testing.assert_allclose(mirror_landmarks(mirrored, width), face)
    assert sorted(LANDMARK_MIRROR) == list(range(N_LANDMARKS))


def test_mirror_commutes_with_normalisation(face: np.ndarray) -> None:
    np.testing.assert_allclose(normalise_landmarks(mirror_landmarks(face, 640)),
                               mirror_landmarks(normalise_landmarks(face)), atol=1e-5)


@pytest.mark.parametrize("points", sorted(POINT_SETS))
@pytest.mark.parametrize("features", FEATURE_KINDS)
def test_feature_shapes(face: np.ndarray, features: str, points: str) -> None:
    x = landmark_features(normalise_landmarks(face[None]), features, points)
    n = len(POINT_SETS[points])
    assert x.shape == (1, n, feature_channels(features, points, "none")) and x.dtype == np.float32
    assert feature_channels(features, points, "both") == 2 * feature_channels(features, points, "calibrated")
    both = model_input(normalise_landmarks(face[None]), np.full((1, 68, 2), 0.1, np.float32), features, points, "both")
    assert both.shape == (1, n, feature_channels(features, points, "both"))
    np.testing.assert_allclose(both[..., : x.shape[-1]], x)  # as it is, then minus the person offset
    if features == "distances":
        np.testing.assert_allclose(x[0], x[0].T, atol=1e-6)
        np.testing.assert_allclose(np.diag(x[0]), 0, atol=1e-6)
    if features != "distances":
        np.testing.assert_allclose(x[0, :, :2], normalise_landmarks(face)[list(POINT_SETS[points])], atol=1e-6)


def test_no_jaw_features_do_not_see_the_jaw(face: np.ndarray) -> None:
    moved = face.copy()
    moved[:17] += np.random.default_rng(1).normal(0, 10, (17, 2))
    for points, same in (("no-jaw", True), ("all", False)):
        a, b = (landmark_features(normalise_landmarks(f[None]), "both", points) for f in (face, moved))
        assert np.allclose(a, b, atol=1e-5) == same


def test_predictor_is_found_without_importing_its_package() -> None:
    assert predictor_path().name == "shape_predictor_68_face_landmarks.dat"


def test_dlib_finds_68_points_on_a_real_face(landmarker: FaceLandmarker) -> None:
    image = read_image(DATA / "face.jpg")
    points = landmarker.detect(image)
    assert points is not None and points.shape == (N_LANDMARKS, 2)
    height, width = image.shape[:2]
    assert (points[:, 0] > -5).all() and (points[:, 0] < width + 5).all() and (points[:, 1] < height + 5).all()
    left, right = eye_centres(points)
    assert left[0] < right[0]
    assert points[48:68, 1].mean() > max(left[1], right[1])  # mouth below the eyes


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_a_frame_without_a_face_gives_none(landmarker: FaceLandmarker, kind: str) -> None:
    rng = np.random.default_rng(0)
    frame = np.zeros((360, 640, 3), np.uint8) if kind == "blank" else rng.integers(0, 256, (360, 640, 3), np.uint8)
    assert landmarker.detect(frame) is None


def test_shipped_model_gives_probabilities_where_a_face_is() -> None:
    from emoscore.checkpoints import PACKAGE_CHECKPOINTS
    from emoscore.face import FaceEmotionModel

    model = FaceEmotionModel(PACKAGE_CHECKPOINTS)
    blank = np.zeros((240, 320, 3), np.uint8)
    result = model.analyse_frames([(0.0, read_image(DATA / "face.jpg")), (0.25, blank)])
    np.testing.assert_array_equal(result.present, [True, False])
    assert result.probs.shape == (2, N_EMOTIONS) and result.probs.dtype == np.float32
    np.testing.assert_allclose(result.probs[0].sum(), 1.0, atol=1e-5)
    assert (result.probs[1] == 0).all() and np.isnan(result.landmarks[1]).all()
    assert np.isfinite(result.landmarks[0]).all()
    np.testing.assert_allclose(result.times, [0.0, 0.25])
