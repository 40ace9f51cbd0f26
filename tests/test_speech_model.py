"""The speech model's building blocks with known answers: the fixed delta layer, pooling, training masks."""

from __future__ import annotations

import numpy as np
import pytest

from emoscore.constants import AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES
from emoscore.speech_augment import mask_window
from emoscore.speech_train import build_model, masked, time_difference


def test_time_difference_is_the_centred_difference_of_a_ramp() -> None:
    from emoscore.tf_util import tf

    keras = tf().keras
    inputs = keras.Input((10, 2))
    model = keras.Model(inputs, time_difference(inputs))
    x = np.stack([np.arange(10.0), 3.0 * np.arange(10.0)], axis=1)[None].astype(np.float32)  # slopes 1 and 3
    out = model.predict(x, verbose=0)[0]
    np.testing.assert_allclose(out[1:-1], [[1.0, 3.0]] * 8, atol=1e-6)
    np.testing.assert_allclose(out[0], [0.5, 1.5], atol=1e-6)  # "same" padding: a zero before frame 0
    assert not model.layers[-1].trainable and model.layers[-1].trainable_weights == []


@pytest.mark.parametrize(("deltas", "pooling"), [(False, "mean-max"), (True, "mean-max-var")])
def test_model_maps_windows_to_emotion_probabilities(deltas: bool, pooling: str) -> None:
    x = np.random.default_rng(0).normal(size=(4, AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES)).astype(np.float32)
    model = build_model(x, 0, deltas=deltas, pooling=pooling)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 8)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (model.get_layer("deltas") is not None) if deltas else all(la.name != "deltas" for la in model.layers)


def test_unknown_pooling_is_refused() -> None:
    x = np.zeros((2, AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES), np.float32)
    with pytest.raises(ValueError, match="pooling"):
        build_model(x, 0, pooling="median")


def test_mask_window_fills_whole_frames_and_columns_with_the_fill() -> None:
    window = np.arange(150 * 27, dtype=np.float32).reshape(150, 27)  # every value distinct, none equal to -1
    fill = -np.ones(27, np.float32)
    out = mask_window(window, 2, fill, np.random.default_rng(1))
    changed = out == -1
    rows, cols = changed.all(axis=1), changed.all(axis=0)
    assert 1 <= rows.sum() <= 40 and 1 <= cols.sum() <= 6
    assert (changed == (rows[:, None] | cols[None, :])).all()  # only whole frames and whole columns
    assert (out[~changed] == window[~changed]).all() and (window != -1).all()


def test_masks_spare_each_clips_clean_window_and_are_seeded() -> None:
    x = np.random.default_rng(2).normal(size=(8, 150, 27)).astype(np.float32)  # 2 clips x (clean + 3 copies)
    out = masked(x, 4, 1, seed=5)
    touched = (out != x).reshape(8, -1).any(axis=1)
    assert touched.tolist() == [False, True, True, True, False, True, True, True]
    np.testing.assert_array_equal(out, masked(x, 4, 1, seed=5))
    assert not np.array_equal(out, masked(x, 4, 1, seed=6))
