"""The light inference runtime used by `score` and `compose`: no TensorFlow, no Keras.

The speech and face CNNs run as TensorFlow Lite flatbuffers in LiteRT (PyPI `ai-edge-litert`: import
~0.15 s, load ~1-7 ms, one call 15 us (face) / 0.5 ms (speech) on this 2-core machine). `emoscore export`
(emoscore/export.py) writes the .tflite files beside the .keras ones and records them in the manifest
under the role "lite"; every load goes through checkpoints.resolve_model, so their sha256 is verified
exactly like the Keras files'. The music LSTM step runs in numpy from exported weights (music/lstm.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.errors import ModelError

LITE_ROLE = "lite"  # manifest file role of the exported inference file
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
STOP_SIGNALS = {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)}
LITE_THREADS = 1  # one thread per interpreter: the pipeline overlaps stages on the two cores instead
# Rows per interpreter call: the interpreter's tensor arena grows with the batch (a 10 min video's 2400 faces
# in one call took ~440 MB and kept it), so longer inputs go through in slices of this many rows.
LITE_MAX_BATCH = 256
# Frames per FaceEmotionModel.analyse_frames call in the face worker: the model's landmark features of all
# faces of a call are built at once (~0.1 MB per face), so a long video goes through in runs of this many frames.
FACE_FRAMES_PER_CALL = 256


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
        if len(x) > LITE_MAX_BATCH:
            return np.concatenate([self(x[i:i + LITE_MAX_BATCH]) for i in range(0, len(x), LITE_MAX_BATCH)])
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


# --- the face branch on the second core ----------------------------------------------------------------------

class FaceWorker:
    """Frame decoding, dlib face detection, the face model and scene cuts in a child process.

    The child loads dlib's models (~1 s, holding the GIL) and the face model once, at start, and then analyses
    one video per request, so its work runs on the second core while the caller decodes and analyses the speech.
    The child is forked (cheap: the caller has imported numpy and cv2 already) and ends with the caller (its
    pipe closes) or with close().
    """

    def __init__(self, checkpoints: Path | None, frame_rate: float = 0.0, max_width: int = 0,
                 scene_threshold: float = 0.0) -> None:
        """checkpoints None: started before the settings are known (the child loads dlib meanwhile); configure()
        gives them before the first submit()."""
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_face_worker_main, daemon=True, name="emoscore-faces",
                                        args=(child, checkpoints, frame_rate, max_width, scene_threshold,
                                              self._conn, os.getpid()))
        # A stop signal during fork() would hit the at-fork hooks; held back, it arrives right after.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        child.close()
        self._busy = False
        self._configured = checkpoints is not None

    def configure(self, checkpoints: Path, frame_rate: float, max_width: int, scene_threshold: float) -> None:
        """The settings of a worker started without them; the child then loads the face model."""
        if not self._configured:
            self._conn.send((checkpoints, frame_rate, max_width, scene_threshold))
            self._configured = True

    def submit(self, info: Any) -> None:
        """Start analysing the video of `info` (a media.VideoInfo); collect with result()."""
        if self._busy:  # an earlier request whose caller failed before collecting it
            with contextlib.suppress(Exception):
                self.result()
        self._conn.send(info)
        self._busy = True

    def result(self) -> tuple[Any, np.ndarray]:
        """(face.FrameProbs, scene cuts (k,) s) of the submitted video; re-raises the child's error."""
        try:
            status, payload = self._conn.recv()
        except EOFError:
            raise ModelError("the face analysis process ended unexpectedly") from None
        finally:
            self._busy = False
        if status == "error":
            raise payload
        return payload

    def close(self) -> None:
        if self._process.is_alive():
            if self._busy or not self._configured:  # mid-analysis, or still loading dlib for nobody
                self._process.terminate()
            else:
                self._conn.send(None)
            self._process.join(timeout=5)
        self._conn.close()


def _face_worker_main(conn: Any, checkpoints: Path | None, frame_rate: float, max_width: int, threshold: float,
                      parent_end: Any = None, parent_pid: int | None = None) -> None:
    """The child's loop. parent_end: the caller's end of the pipe, inherited by the fork and closed here at
    once, so the caller's death closes the pipe (EOF) even before the death signal is armed; parent_pid: the
    caller, checked after arming it (a caller that died in between left this child orphaned: it ends).
    checkpoints None: dlib's models load first, then the settings come as the first message (configure)."""
    if parent_end is not None:
        parent_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle; this child ends with it
    for signum in STOP_SIGNALS - {signal.SIGINT}:  # not the caller's clean-up handlers, inherited by the fork
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked around the fork
    with contextlib.suppress(OSError, AttributeError):  # Linux: SIGKILL this child when its caller dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:  # the caller died before the signal was armed
        return
    if checkpoints is None:
        with contextlib.suppress(Exception):  # a failure here comes again, reported, from the model load below
            from emoscore.face import _dlib_models

            _dlib_models()  # ~0.7 s, the bulk of the start, needs no settings
        try:
            setup = conn.recv()
        except (EOFError, OSError):
            return
        if setup is None:
            return
        checkpoints, frame_rate, max_width, threshold = setup
    model: Any
    try:
        from emoscore.face import FaceEmotionModel

        model = FaceEmotionModel(checkpoints)
    except Exception as exc:  # reported with the first request, where the caller expects results
        model = exc
    while True:
        try:
            info = conn.recv()
        except (EOFError, OSError):
            return
        if info is None:
            return
        try:
            if isinstance(model, Exception):
                raise model
            conn.send(("ok", _analyse_faces(model, info, frame_rate, max_width, threshold)))
        except Exception as exc:
            conn.send(("error", exc))


_EARLY_WORKER: list[tuple[int, FaceWorker]] = []  # (the pid that started it, the worker) of start_face_worker_early


def start_face_worker_early() -> None:
    """Fork the face worker now, before its settings are known, so dlib's models load on the second core while
    this process starts up (cli.py does this for `emoscore score FILE` before typer parses the command line)."""
    if not _EARLY_WORKER:
        _EARLY_WORKER.append((os.getpid(), FaceWorker(None)))


def face_worker(checkpoints: Path, frame_rate: float, max_width: int, scene_threshold: float) -> FaceWorker:
    """The early-started worker with these settings (once, and only in the process that started it), else a new
    FaceWorker."""
    if _EARLY_WORKER:
        pid, worker = _EARLY_WORKER.pop()
        if pid == os.getpid():
            worker.configure(checkpoints, frame_rate, max_width, scene_threshold)
            return worker
    return FaceWorker(checkpoints, frame_rate, max_width, scene_threshold)


def discard_early_face_worker() -> None:
    """Stop the early-started worker if nothing took it (a folder or an edited timeline was scored instead)."""
    if _EARLY_WORKER:
        pid, worker = _EARLY_WORKER.pop()
        if pid == os.getpid():
            worker.close()


def _analyse_faces(model: Any, info: Any, frame_rate: float, max_width: int, threshold: float
                   ) -> tuple[Any, np.ndarray]:
    from emoscore import media
    from emoscore.scenes import SceneDetector

    scenes = SceneDetector(threshold)

    def frames() -> Any:
        for t, frame in media.iter_frames(info, frame_rate, max_width):
            scenes.update(t, frame)
            yield t, frame

    return _analyse_in_runs(model, frames()), scenes.cuts


def _analyse_in_runs(model: Any, frames: Any) -> Any:
    """model.analyse_frames of the whole (time, frame) stream, FACE_FRAMES_PER_CALL frames per call (each
    face's result depends on that face alone, so the result is the same); face.FrameProbs."""
    import itertools

    parts: list[Any] = []
    while True:
        part = model.analyse_frames(itertools.islice(frames, FACE_FRAMES_PER_CALL))
        if len(part.times) or not parts:
            parts.append(part)
        if len(part.times) < FACE_FRAMES_PER_CALL:
            break
    if len(parts) == 1:
        return parts[0]
    return type(parts[0])(**{name: np.concatenate([getattr(p, name) for p in parts])
                             for name in ("times", "probs", "present", "landmarks")})
