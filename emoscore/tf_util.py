"""TensorFlow set-up in one place: quiet logs, bounded threads, seeding, model save/load."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf() -> Any:
    """Import TensorFlow (once) with logging quietened."""
    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
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
