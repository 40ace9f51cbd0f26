"""A toy training run of the speech model end to end (a few steps), then loading it back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_speech import fake_ravdess

from emoscore.checkpoints import resolve_model
from emoscore.data import ravdess
from emoscore.speech import SpeechEmotionModel, window_starts
from emoscore.speech_train import (
    AudioTrainOptions,
    cross_validate,
    evaluate_audio_model,
    load_speech_data,
    train_audio_model,
)


def test_toy_training_run_writes_a_loadable_verified_model(tmp_path: Path) -> None:
    root = fake_ravdess(tmp_path / "rav", [1, 2, 3, 4])
    out = tmp_path / "ckpt"
    options = AudioTrainOptions(ravdess=root, out=out, epochs=2, seed=3, augment_copies=1, ensemble=2,
                                test_actors=(4,), val_actors=(3,), workers=1, command="test", cv_folds=2,
                                cache=tmp_path / "cache")
    lines: list[str] = []
    metrics = train_audio_model(options, log=lines.append)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] == 16
    assert np.asarray(metrics["confusion"]).sum() == 16
    assert set(metrics["quadrant_recall"]) == {"Q1", "Q2", "Q3", "Q4"} and metrics["degraded"]["n"] == 16
    cv = metrics["cross_validation"]
    assert cv["folds"] == 2 and cv["n"] == 64 and set(cv) >= {"clean", "degraded"}
    assert sum("fold 2/2" in line for line in lines) == 1
    assert any("epoch   2" in line for line in lines) and any("model 2/2" in line for line in lines)
    assert len(metrics["member_accuracy"]) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["models"]["audio"]
    assert entry["metrics"]["test_actors"] == [4] and len(entry["files"]["model"]["sha256"]) == 64
    assert resolve_model(out, "audio")["model"] == out / "audio.keras"

    model = SpeechEmotionModel(out)
    audio = np.zeros(16000 * 5, np.float32)
    audio[:16000 * 2] = 0.3 * np.sin(np.arange(32000) * 2 * np.pi * 300 / 16000)
    result = model.analyse(audio, window_starts(5.0, 3.0, 1.0), 3.0)
    assert result.probs.shape == (3, 8)
    assert result.present.tolist() == [True, True, False]
    np.testing.assert_allclose(result.probs[result.present].sum(axis=1), 1.0, atol=1e-5)

    again = evaluate_audio_model(root, out, [4], workers=1)
    assert again["accuracy"] == metrics["accuracy"]
    every = evaluate_audio_model(root, out, None, workers=1)  # no actor 17-20 here: every actor present
    assert every["actors"] == [1, 2, 3, 4] and every["n"] == 64

    lines.clear()  # the cross-validation is cached: a second run trains nothing
    data = load_speech_data(options, lines.append)
    cached = cross_validate(options, data, 2, lines.append)
    assert any("from" in line for line in lines) and not any("epoch" in line for line in lines)
    assert cached["clean"].shape == (64, 8) and ravdess.clip_key(data.items[0]) == "01-01-01-01-01"
    folds = ravdess.actor_folds(data.actors.tolist(), 2, options.seed)
    assert sorted(a for f in folds for a in f) == [1, 2, 3, 4]
