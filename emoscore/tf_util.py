"""TensorFlow in one place: quiet start-up, seeding, model save/load, and the classifier training loop."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ start-up chatter ignores TF_CPP_MIN_LOG_LEVEL.

    Python exceptions still propagate; only text the native libraries write straight to fd 2 is dropped.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@functools.cache
def tf() -> Any:
    """Import TensorFlow (once), quietly, and create its CPU context so later calls print nothing."""
    with native_stderr_silenced():
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
        tensorflow.constant(0.0) + 1.0  # initialises the runtime (its oneDNN notice goes to /dev/null)
    return tensorflow


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's kernels deterministic."""
    t = tf()
    t.keras.utils.set_random_seed(seed)
    with contextlib.suppress(AttributeError, RuntimeError):  # older TF, or already initialised
        t.config.experimental.enable_op_determinism()


def load_keras(path: Path) -> Any:
    from emoscore.errors import ModelError

    try:
        return tf().keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {path}: {exc}") from None


def save_keras(model: Any, path: Path) -> None:
    """Save atomically (keras wants a .keras suffix on the temporary file too)."""
    from emoscore.fileio import atomic_path

    with atomic_path(Path(path)) as tmp:
        model.save(str(tmp))


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights over integer labels (n,), so every class counts equally in the loss."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return {i: float(len(y) / (n_classes * c)) if c else 1.0 for i, c in enumerate(counts)}


def fit_classifier(model: Any, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None, *,
                   n_classes: int, epochs: int, batch_size: int, patience: int, lr_patience: int,
                   log: Callable[[str], None]) -> None:
    """Fit a compiled softmax classifier on integer labels with class weights.

    Early stopping on the validation loss (the training loss when `val` is None or empty) restores the
    best weights; the learning rate halves on a plateau; one log line per epoch.
    """
    keras = tf().keras
    has_val = val is not None and len(val[1]) > 0
    monitor = "val_loss" if has_val else "loss"

    def report(epoch: int, logs: dict[str, float]) -> None:
        line = f"  epoch {epoch + 1:3d}  loss {logs['loss']:.3f}  acc {logs['accuracy']:.3f}"
        if "val_loss" in logs:
            line += f"  val_loss {logs['val_loss']:.3f}  val_acc {logs['val_accuracy']:.3f}"
        log(line)

    callbacks = [keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=lr_patience),
                 keras.callbacks.LambdaCallback(on_epoch_end=report)]
    onehot = keras.utils.to_categorical
    model.fit(x, onehot(y, n_classes), epochs=epochs, batch_size=batch_size,
              validation_data=(val[0], onehot(val[1], n_classes)) if has_val and val is not None else None,
              class_weight=class_weights(y, n_classes), shuffle=True, verbose=0, callbacks=callbacks)
