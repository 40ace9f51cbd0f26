"""Keras checkpoints -> the light inference files `score` and `compose` run (emoscore/runtime.py).

- speech and face CNNs (kinds "audio-cnn", "face-landmark-cnn"): TensorFlow's own TFLiteConverter -> .tflite
- music LSTMs ("music-lstm"): the weights -> .npz, run one step at a time in numpy (music/lstm.LstmStep)

Each exported file goes beside its .keras file and into the model's manifest entry as the file role "lite"
with its sha256 and the sha256 of the Keras file it came from ("source_sha256"). Export is idempotent: a
model whose lite file is recorded, present, intact and made from the current Keras file is skipped, so
`emoscore export` after a retrain converts only what changed. Every fresh export is checked against the
Keras model on a fixed input before it is recorded (EXPORT_ATOL).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.errors import ChecksumError, ModelError
from emoscore.runtime import LITE_ROLE

CNN_KINDS = ("audio-cnn", "face-landmark-cnn")
LSTM_KINDS = ("music-lstm",)
EXPORT_ATOL = 1e-4  # largest |keras - exported| allowed on the check input (probabilities / logits)
Log = Callable[[str], None]


def lite_name(model_file: str, kind: str) -> str:
    """audio.keras -> audio.tflite; music_q1.keras -> music_q1.npz."""
    return Path(model_file).stem + (".npz" if kind in LSTM_KINDS else ".tflite")


def is_current(folder: Path, entry: dict[str, Any]) -> bool:
    """True when the entry's lite file is recorded, present, intact and made from its current Keras file."""
    from emoscore.fileio import sha256_file

    lite = entry.get("files", {}).get(LITE_ROLE)
    model = entry.get("files", {}).get("model")
    if lite is None or model is None or lite.get("source_sha256") != model["sha256"]:
        return False
    path = Path(folder) / lite["path"]
    return path.exists() and sha256_file(path) == lite["sha256"]


def convert_cnn(model: Any, target: Path) -> None:
    """A single-input Keras classifier -> .tflite at `target` (atomic), checked on a fixed random batch."""
    from emoscore.fileio import atomic_path
    from emoscore.runtime import LiteModel
    from emoscore.tf_util import native_stderr_silenced, tf

    with native_stderr_silenced(), contextlib.redirect_stdout(io.StringIO()):  # the converter's chatter
        flat = tf().lite.TFLiteConverter.from_keras_model(model).convert()
    with atomic_path(target) as tmp:
        tmp.write_bytes(flat)
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        x = np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float32)
        check_close(np.asarray(model(x, training=False)), LiteModel(tmp)(x), target.name)


def convert_lstm(model: Any, target: Path) -> None:
    """The note LSTM's weights -> .npz at `target` (atomic), checked step by step on a fixed token sequence."""
    from emoscore.fileio import atomic_path
    from emoscore.music.events import BOS, FIELD_SIZES, FIELDS
    from emoscore.music.lstm import LstmStep, load_weights, lstm_weights, save_weights

    with atomic_path(target) as tmp:
        save_weights(lstm_weights(model), tmp)
        rng = np.random.default_rng(0)
        tokens = np.vstack([np.array(BOS), np.stack([rng.integers(0, n, 8) for n in FIELD_SIZES], axis=1)])
        keras_out = model({f: tokens[None, :, i].astype(np.int32) for i, f in enumerate(FIELDS)}, training=False)
        step = LstmStep(load_weights(tmp))
        h, c = step.zero_state()
        for t, token in enumerate(tokens):
            h, c, logits = step(h, c, token)
            for f, got in zip(FIELDS, logits, strict=True):
                check_close(np.asarray(keras_out[f])[0, t], got, f"{target.name} step {t} {f}")


def check_close(want: np.ndarray, got: np.ndarray, what: str) -> None:
    err = float(np.max(np.abs(np.asarray(want, np.float64) - np.asarray(got, np.float64))))
    if not err <= EXPORT_ATOL:
        raise ModelError(f"exported {what} differs from the Keras model by {err:.2e} (allowed {EXPORT_ATOL})")


def export_model(folder: Path, name: str, log: Log = lambda _: None, force: bool = False) -> bool:
    """Export model `name` of `folder`'s manifest and record its lite file; False when already current
    (or a kind with nothing to export, like the sklearn judge)."""
    from emoscore.checkpoints import MANIFEST_NAME, load_manifest, model_entry
    from emoscore.fileio import sha256_file, write_json_atomic
    from emoscore.tf_util import load_keras

    folder = Path(folder)
    entry = model_entry(folder, name)
    kind = entry.get("kind")
    if kind not in CNN_KINDS + LSTM_KINDS or (not force and is_current(folder, entry)):
        return False
    source = folder / entry["files"]["model"]["path"]
    if not source.exists() or sha256_file(source) != entry["files"]["model"]["sha256"]:
        raise ChecksumError(f"{source} is missing or fails its sha256 check: retrain or restore it")
    target = folder / lite_name(entry["files"]["model"]["path"], kind)
    (convert_lstm if kind in LSTM_KINDS else convert_cnn)(load_keras(source), target)
    manifest = load_manifest(folder)  # re-read: only this entry's "lite" file changes
    manifest["models"][name]["files"][LITE_ROLE] = {"path": target.name, "sha256": sha256_file(target),
                                                   "source_sha256": entry["files"]["model"]["sha256"]}
    write_json_atomic(folder / MANIFEST_NAME, manifest)
    log(f"exported {name}: {source.name} -> {target.name}")
    return True


def export_all(folder: Path, log: Log = lambda _: None, force: bool = False,
               kinds: tuple[str, ...] = CNN_KINDS + LSTM_KINDS) -> list[str]:
    """Export every model of `kinds` in `folder`'s manifest that is not current; the names exported."""
    from emoscore.checkpoints import load_manifest

    models = load_manifest(Path(folder))["models"]
    return [name for name, entry in sorted(models.items())
            if entry.get("kind") in kinds and export_model(folder, name, log, force)]
