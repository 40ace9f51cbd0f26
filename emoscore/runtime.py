"""The light inference runtime used by `score` and `compose`: no TensorFlow, no Keras.

The speech and face CNNs run as TensorFlow Lite flatbuffers in LiteRT (PyPI `ai-edge-litert`: import
~0.15 s, load ~1-7 ms, one call 15 us (face) / 0.5 ms (speech) on this 2-core machine). `emoscore export`
(emoscore/export.py) writes the .tflite files beside the .keras ones and records them in the manifest
under the role "lite"; every load goes through checkpoints.resolve_model, so their sha256 is verified
exactly like the Keras files'. The music LSTM step runs in numpy from exported weights (music/lstm.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.errors import ModelError

LITE_ROLE = "lite"  # manifest file role of the exported inference file
LITE_THREADS = 1  # one thread per interpreter: the pipeline overlaps stages on the two cores instead


def lite_path(checkpoints: Path, name: str, constants: dict[str, Any] | None = None) -> Path:
    """The verified (sha256, constants) exported file of model `name`; ModelError if it was never exported."""
    from emoscore.checkpoints import resolve_model

    paths = resolve_model(checkpoints, name, constants)
    if LITE_ROLE not in paths:
        raise ModelError(f"model '{name}' in {checkpoints} has no exported inference file; "
                         f"run `emoscore export --checkpoints {checkpoints}`")
    return paths[LITE_ROLE]


class LiteModel:
    """A single-input, single-output .tflite model with a free batch dimension.

    Call it like the Keras model it came from: `model(x)` with x (n, ...) float32 -> (n, k) float32.
    """

    def __init__(self, path: Path, threads: int = LITE_THREADS) -> None:
        from emoscore.tf_util import native_stderr_silenced

        try:
            with native_stderr_silenced():  # LiteRT announces its XNNPACK delegate on fd 2
                from ai_edge_litert.interpreter import Interpreter

                self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load exported model {path}: {exc}") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()  # an interpreter is not re-entrant

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """(n, *input_shape) -> (n, k) float32. `training` is accepted (and ignored) for Keras parity."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ModelError(f"model input must be (n, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, int(self._output["shape"][-1])), dtype=np.float32)
        with self._lock:
            if len(x) != self._batch:
                self._interpreter.resize_tensor_input(self._input["index"], [len(x), *self.input_shape])
                self._interpreter.allocate_tensors()
                self._batch = len(x)
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output["index"]), dtype=np.float32)


def load_lite(checkpoints: Path, name: str, constants: dict[str, Any] | None = None) -> LiteModel:
    """Model `name`'s exported .tflite, sha256- and constant-verified through the manifest."""
    return LiteModel(lite_path(checkpoints, name, constants))
