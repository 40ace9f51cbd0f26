"""The exported light models (.tflite, .npz) give the Keras models' outputs on real inputs, and export is
idempotent. These tests import TensorFlow (to run the Keras side); the score path never does
(tests/test_runtime.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emoscore import face, speech
from emoscore.checkpoints import PACKAGE_CHECKPOINTS, load_manifest, resolve_model
from emoscore.export import export_all, export_model, is_current
from emoscore.media import read_audio
from emoscore.music.events import BOS, FIELDS, read_midi_notes, tokenize
from emoscore.music.lstm import LstmStep, load_weights
from emoscore.runtime import LITE_ROLE, LiteModel

DATA = Path(__file__).parent / "data"
ATOL = 1e-5  # probabilities / logits


def keras_and_lite(name: str) -> tuple[object, Path]:
    from emoscore.tf_util import load_keras

    paths = resolve_model(PACKAGE_CHECKPOINTS, name)
    return load_keras(paths["model"]), paths[LITE_ROLE]


@pytest.mark.slow
def test_face_tflite_matches_keras_on_a_real_face() -> None:
    import cv2

    points = face.FaceLandmarker().detect(cv2.imread(str(DATA / "face.jpg")))
    assert points is not None
    model, lite = keras_and_lite(face.MODEL_NAME)
    want = face.predict_landmarks(model, points[None])
    got = face.predict_landmarks(LiteModel(lite), points[None])
    assert want.shape == (1, 8) and abs(want.sum() - 1) < 1e-4
    np.testing.assert_allclose(got, want, atol=ATOL)


@pytest.mark.slow
def test_speech_tflite_matches_keras_on_real_speech() -> None:
    audio = np.concatenate([read_audio(DATA / "talking-head-a.mp4"), read_audio(DATA / "talking-head-b.mp4")])
    windows, silent = speech.speech_windows(audio, speech.window_starts(len(audio) / 16000, 3.0, 1.0), 3.0)
    assert len(windows) >= 6 and not silent.all()
    model, lite = keras_and_lite(speech.MODEL_NAME)
    want = np.asarray(model(windows, training=False))
    np.testing.assert_allclose(LiteModel(lite)(windows), want, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("quadrant", ["q1", "q3"])
def test_lstm_numpy_step_matches_keras_on_real_notes(quadrant: str) -> None:
    model, lite = keras_and_lite(f"music_{quadrant}")
    tokens = tokenize(read_midi_notes(DATA / "music" / "Q1_0vLPYiPN7qY_2.mid"))[:40]
    tokens = np.vstack([np.array(BOS), tokens]).astype(np.int32)
    want = model({f: tokens[None, :, i] for i, f in enumerate(FIELDS)}, training=False)
    step = LstmStep(load_weights(lite))
    h, c = step.zero_state()
    for t, token in enumerate(tokens):
        h, c, logits = step(h, c, token)
        for f, got in zip(FIELDS, logits, strict=True):
            np.testing.assert_allclose(got, np.asarray(want[f])[0, t], atol=1e-4)


def test_every_shipped_model_is_exported_from_its_current_keras_file() -> None:
    models = load_manifest(PACKAGE_CHECKPOINTS)["models"]
    for name in ("audio", "visual", "music_q1", "music_q2", "music_q3", "music_q4"):
        assert is_current(PACKAGE_CHECKPOINTS, models[name]), f"{name}: run `emoscore export`"


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """The shipped face model and manifest (small) in a folder of their own."""
    for name in ("manifest.json", "visual.keras", "visual.tflite"):
        shutil.copy(PACKAGE_CHECKPOINTS / name, tmp_path / name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["models"] = {"visual": manifest["models"]["visual"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_export_skips_current_models(copied: Path) -> None:
    before = (copied / "manifest.json").read_text()
    assert export_all(copied) == []
    assert (copied / "manifest.json").read_text() == before


@pytest.mark.slow
def test_export_redoes_a_damaged_or_stale_file_and_records_it(copied: Path) -> None:
    (copied / "visual.tflite").write_bytes(b"not a model")
    entry = load_manifest(copied)["models"]["visual"]
    assert not is_current(copied, entry)
    assert export_model(copied, "visual") is True
    entry = load_manifest(copied)["models"]["visual"]
    assert is_current(copied, entry) and entry["files"][LITE_ROLE]["path"] == "visual.tflite"
    assert entry["files"][LITE_ROLE]["source_sha256"] == entry["files"]["model"]["sha256"]
    assert resolve_model(copied, "visual")[LITE_ROLE] == copied / "visual.tflite"  # sha256 verified
    assert export_model(copied, "visual") is False
