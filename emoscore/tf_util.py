"""TensorFlow set-up in one place: quiet logs, bounded threads, seeding, model save/load."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
