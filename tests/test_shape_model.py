"""dlib's 68-point shape predictor evaluated in numpy (emoscore/shape_model.py): the same landmarks as dlib's own,
converted once into the user's cache and reused from there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscore import shape_model
from emoscore.face import FaceLandmarker, as_gray, predictor_path
from emoscore.media import iter_frames, probe

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> shape_model.ShapeModel:
    """Converted into a fresh cache folder (the first-run path), then loaded back from it (memory-mapped)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        shape_model.load(predictor_path())
        patch.setattr(shape_model, "convert", lambda dat: pytest.fail("converted again"))
        cached = shape_model.load(predictor_path())
    assert isinstance(cached.leaves, np.memmap)
    assert [p.name for p in cache.glob("emoscore/*")] == [shape_model.cache_folder(predictor_path()).name]
    return cached


def faces_of(*clips: str) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(grayscale frame, dlib's face box) of every sampled frame with a face."""
    landmarker = FaceLandmarker()
    found = []
    for clip in clips:
        for _, frame in iter_frames(probe(ROOT / "tests" / "data" / clip), 4.0, 640):
            gray = as_gray(frame)
            box = landmarker.find(gray)
            if box is not None:
                found.append((gray, box))
    return found


def test_numpy_predictor_gives_dlib_s_landmarks_exactly(model: shape_model.ShapeModel) -> None:
    landmarker = FaceLandmarker()
    faces = faces_of("talking-head-a.mp4", "talking-head-b.mp4")
    assert len(faces) >= 30
    for gray, box in faces:
        want = landmarker.fit(gray, box)  # dlib's own predictor
        got = model.fit(gray, box)
        assert got.dtype == np.float32 and got.shape == (68, 2)
        np.testing.assert_array_equal(got, want)
    with_model = FaceLandmarker(shape_model=model)
    gray, box = faces[0]
    np.testing.assert_array_equal(with_model.fit(gray, box), landmarker.fit(gray, box))


def test_a_face_partly_outside_the_frame_reads_zeros_there(model: shape_model.ShapeModel) -> None:
    """Feature pixels outside the image read 0 in dlib: a face cut by the frame's edge gives dlib's points too."""
    landmarker = FaceLandmarker()
    gray, (left, top, right, bottom) = faces_of("talking-head-b.mp4")[0]
    cut = np.ascontiguousarray(gray[:, left + (right - left) // 3:])  # the face's left third is off the frame
    shift = left + (right - left) // 3
    box = (left - shift, top, right - shift, bottom)
    np.testing.assert_array_equal(model.fit(cut, box), landmarker.fit(cut, box))


def test_a_changed_predictor_file_gets_its_own_cache_folder(tmp_path: Path) -> None:
    dat = tmp_path / "sp.dat"
    dat.write_bytes(b"x" * 10)
    first = shape_model.cache_folder(dat)
    dat.write_bytes(b"y" * 11)
    assert shape_model.cache_folder(dat) != first


def test_a_file_that_is_not_a_predictor_is_refused(tmp_path: Path) -> None:
    dat = tmp_path / "sp.dat"
    dat.write_bytes(bytes([1, 7, 2, 1, 4]))  # packed integers 7 and 4: no predictor header
    with pytest.raises(ValueError, match="not a dlib 68-point shape predictor"):
        shape_model.convert(dat)


def test_the_landmark_process_falls_back_to_dlib_s_predictor(monkeypatch: pytest.MonkeyPatch) -> None:
    from emoscore import runtime

    def broken(dat: Path) -> shape_model.ShapeModel:
        raise ImportError("no numba")

    monkeypatch.setattr(shape_model, "load", broken)
    assert runtime._shape_model() is None
    landmarker = FaceLandmarker()
    runtime._choose_shape_model(landmarker, None, 10)
    assert landmarker.shape_model is None


def test_long_videos_are_fitted_by_dlib_s_own_predictor(model: shape_model.ShapeModel) -> None:
    from emoscore import runtime

    landmarker = FaceLandmarker()
    runtime._choose_shape_model(landmarker, model, runtime.NUMPY_FITS)
    assert landmarker.shape_model is model
    runtime._choose_shape_model(landmarker, model, runtime.NUMPY_FITS + 1)
    assert landmarker.shape_model is None


def test_only_one_process_converts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame process takes the numpy predictor only from the cache; converting is the landmark process's."""
    from emoscore import runtime

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(shape_model, "convert", lambda dat: pytest.fail("converted"))
    with pytest.raises(FileNotFoundError):
        shape_model.load(predictor_path(), convert_if_missing=False)
    assert runtime._numpy_shape_model(convert_if_missing=False) is None
