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
from collections.abc import Callable, Iterator
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
# Messages the face worker's frame process queues for its landmark process (each a 640 px grayscale frame, ~0.4
# MB, at most): it goes on decoding and finding faces while that process still loads its shape predictor.
FRAMES_AHEAD = 64
# Videos of up to this many sampled frames have their faces fitted by dlib's shape predictor evaluated in numpy
# (shape_model: loads in ~1 ms, ~4 ms a face); longer ones by dlib's own (loads in ~0.6 s, ~1.3 ms a face), about
# where its load pays off (a ~40 s video at 4 frames per second). The landmarks are the same.
NUMPY_FITS = 160


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
    """Frame decoding, dlib face finding and fitting, the face model and scene cuts, in two child processes.

    The frame process decodes the sampled frames, finds the scene cuts and each frame's face box (dlib's HOG
    detector loads in ~1 ms); the landmark process loads dlib's 68-point shape predictor evaluated in numpy
    (shape_model, ~1 ms; dlib's own, ~0.6 s holding the GIL, for a long video: NUMPY_FITS) and the face model
    once, then fits the 68 points in the boxes it is sent and classifies the faces. Once it is ready, the frame
    process hands every other frame over whole (the landmark process finds its face too), so the face finding
    runs on both cores. The whole branch runs beside the caller's checks and speech analysis, one video per
    request. Both children are forked (cheap: the caller has imported numpy) and end with the caller (their pipes
    close) or with close().
    """

    def __init__(self, checkpoints: Path | None, frame_rate: float = 0.0, max_width: int = 0,
                 scene_threshold: float = 0.0, calibration: str = "shot", guess: Path | None = None) -> None:
        """checkpoints None: started before the settings are known (the children load their models meanwhile);
        configure() gives them before the first submit(). guess: the video the first submit() will most likely
        be, which the frame process probes and starts on at once with the default config's settings (see
        _Ahead); anything else is analysed as usual."""
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._conn, fit_end = context.Pipe()  # landmark process: settings in, results out
        self._frames, frames_end = context.Pipe()  # frame process: settings and videos in
        link_in, link_out = context.Pipe(duplex=False)  # frame process -> landmark process: boxes and frames
        ready_in, ready_out = context.Pipe(duplex=False)  # landmark process -> frame process: predictor loaded
        settings = (None if checkpoints is None
                    else (checkpoints, frame_rate, max_width, scene_threshold, calibration))
        mine = (self._conn, self._frames)
        # A stop signal during fork() would hit the at-fork hooks; held back, it arrives right after.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self._fitter = context.Process(target=_landmark_main, daemon=True, name="emoscore-landmarks",
                                           args=(fit_end, (link_in, ready_out), settings,
                                                 (*mine, frames_end, link_out, ready_in), os.getpid()))
            self._fitter.start()
            self._finder = context.Process(target=_frames_main, daemon=True, name="emoscore-frames",
                                           args=(frames_end, (link_out, ready_in), settings,
                                                 (*mine, fit_end, link_in, ready_out), os.getpid(), guess))
            self._finder.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        for end in (fit_end, frames_end, link_in, link_out, ready_in, ready_out):
            end.close()
        self._busy = False
        self._configured = settings is not None

    @property
    def processes(self) -> tuple[Any, Any]:
        """(the landmark process, the frame process)."""
        return self._fitter, self._finder

    def configure(self, checkpoints: Path, frame_rate: float, max_width: int, scene_threshold: float,
                  calibration: str = "shot") -> None:
        """The settings of a worker started without them; the children then load the face model and take videos."""
        if not self._configured:
            for conn in (self._conn, self._frames):
                conn.send((checkpoints, frame_rate, max_width, scene_threshold, calibration))
            self._configured = True

    def submit(self, info: Any) -> None:
        """Start analysing the video of `info` (a media.VideoInfo); collect with result()."""
        if self._busy:  # an earlier request whose caller failed before collecting it
            with contextlib.suppress(Exception):
                self.result()
        self._frames.send(info)
        self._busy = True

    def result(self) -> tuple[Any, np.ndarray]:
        """(face.FrameProbs, scene cuts (k,) s) of the submitted video; re-raises a child's error."""
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
        running = [p for p in self.processes if p.is_alive()]
        if self._busy or not self._configured:  # mid-analysis, or still loading dlib for nobody
            for process in running:
                process.terminate()
        elif running:
            with contextlib.suppress(OSError):
                self._frames.send(None)  # the frame process ends; its pipe's end ends the landmark process
        for process in running:
            process.join(timeout=5)
        self._conn.close()
        self._frames.close()


def _child_start(close: tuple[Any, ...], parent_pid: int | None) -> bool:
    """The start of both children; False if the caller is gone already (the child then ends).

    close: the pipe ends of the caller and of the other child, inherited by the fork and closed here at once, so
    a death closes its pipes (EOF) even before the death signal is armed; parent_pid: the caller, checked after
    arming it (a caller that died in between left this child orphaned)."""
    for end in close:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle; this child ends with it
    for signum in STOP_SIGNALS - {signal.SIGINT}:  # not the caller's clean-up handlers, inherited by the fork
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked around the fork
    with contextlib.suppress(OSError, AttributeError):  # Linux: SIGKILL this child when its caller dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return parent_pid is None or os.getppid() == parent_pid


def _receive(conn: Any) -> Any:
    """The next message from the caller; None (stop) when its pipe closed."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _frames_main(conn: Any, links: tuple[Any, Any], settings: tuple[Any, ...] | None, close: tuple[Any, ...],
                 parent_pid: int | None = None, guess: Path | None = None) -> None:
    """The frame process: per video from `conn`, every sampled frame to the landmark process over links[0] (see
    _face_messages), then ("end", scene cuts); ("error", exc) instead of the end when decoding fails. links[1]
    says when the landmark process has loaded its predictor. A None from the caller (or its pipe's end) ends
    it, and with it links[0]. guess: see FaceWorker."""
    if not _child_start(close, parent_pid):
        return
    link, ready = links
    finder: Any
    try:
        from emoscore.face import FaceLandmarker

        finder = FaceLandmarker()  # the detector only: the shape predictor is the landmark process's
    except Exception as exc:  # reported with the first request, where the caller expects results
        finder = exc
    # Fits the faces of a short video here (the landmark process only classifies), once the landmark process has
    # converted it into the cache (the first run): not both at once.
    shapes = _numpy_shape_model(convert_if_missing=False)
    ahead = _Ahead.start(finder, guess, shapes) if settings is None and guess is not None else None
    if settings is None and (settings := _receive(conn)) is None:
        return
    _, frame_rate, max_width, threshold, _ = settings
    while (info := _receive(conn)) is not None:
        try:
            if isinstance(finder, Exception):
                raise finder
            messages = ahead.take(info, settings) if ahead is not None else None
            if messages is None:
                messages = _face_messages(finder, info, frame_rate, max_width, threshold, ready, shapes)
            with _queued(link) as send:
                for message in messages:
                    send(message)
        except (BrokenPipeError, ConnectionResetError):
            return  # the landmark process is gone
        except Exception as exc:
            link.send(("error", exc))
        finally:
            if ahead is not None:
                ahead.close()
                ahead = None


class _Ahead:
    """The frame process's head start on the video the caller most likely submits first (`emoscore score FILE`:
    FILE): probed and analysed with the default config's settings while the caller still starts up, up to
    FRAMES_AHEAD messages kept here. take() hands them over (and the rest as it comes) only when the caller's
    video and settings turn out the same; otherwise they are dropped and the video is analysed as usual."""

    def __init__(self, info: Any, settings: tuple[Any, ...], messages: Iterator[Any]) -> None:
        import itertools

        self.info, self.settings, self._messages = info, settings, messages
        self._kept = list(itertools.islice(messages, FRAMES_AHEAD))

    @classmethod
    def start(cls, finder: Any, guess: Path, shapes: Any) -> _Ahead | None:
        if isinstance(finder, Exception):
            return None
        try:
            from emoscore import media
            from emoscore.config import load_config

            config = load_config(None)
            frame_rate, max_width = config.analysis.frame_rate, config.analysis.max_face_width
            threshold = config.smoothing.scene_threshold
            info = media.probe(guess)
            settings = (None, frame_rate, max_width, threshold, config.analysis.face_calibration)
            return cls(info, settings,  # nothing handed over: nobody takes it yet
                       _face_messages(finder, info, frame_rate, max_width, threshold, None, shapes))
        except Exception:  # a wrong guess only loses the head start
            return None

    def take(self, info: Any, settings: tuple[Any, ...]) -> Iterator[Any] | None:
        """The messages of the caller's video if it is the one started on, else None."""
        import itertools

        if info != self.info or tuple(settings[1:]) != self.settings[1:]:
            return None
        kept, self._kept = self._kept, []
        return itertools.chain(kept, self._messages)

    def close(self) -> None:
        close = getattr(self._messages, "close", None)
        if close is not None:  # stops its ffmpeg
            close()


def _face_messages(finder: Any, info: Any, frame_rate: float, max_width: int, threshold: float, ready: Any,
                   shapes: Any = None) -> Iterator[Any]:
    """The frame process's messages for the video of `info`: ("video", about how many frames), then per sampled
    frame ("points", time s, (68, 2) landmarks or None) when the numpy predictor `shapes` fits this video
    (NUMPY_FITS), else ("frame", time s, box or None, (h, w) uint8 grayscale frame or None); or, every other frame
    once `ready` (None: never) has a message, ("find", time s, grayscale frame) for the landmark process to find
    and fit the face in; last ("end", scene cuts (k,) s)."""
    from emoscore import media
    from emoscore.face import as_gray
    from emoscore.scenes import SceneDetector

    scenes = SceneDetector(threshold)
    handed = False
    frames = int(info.duration * frame_rate) + 1
    fits = shapes if frames <= NUMPY_FITS else None
    yield "video", frames
    for t, frame in media.iter_frames(info, frame_rate, max_width):
        scenes.update(t, frame)
        gray = as_gray(frame)
        handed = not handed and ready is not None and ready.poll()
        if handed:
            yield "find", t, gray
            continue
        box = finder.find(gray)
        if fits is not None:
            yield "points", t, None if box is None else fits.fit(gray, box)
        else:
            yield "frame", t, box, None if box is None else gray
    yield "end", scenes.cuts


@contextlib.contextmanager
def _queued(link: Any, limit: int = FRAMES_AHEAD) -> Iterator[Callable[[Any], None]]:
    """A send function whose messages go over `link` from a thread, up to `limit` of them waiting (a pipe holds
    less than one frame); on leaving, all are sent, or the link's error is raised."""
    import queue

    pending: queue.Queue[Any] = queue.Queue(maxsize=limit)
    failed: list[BaseException] = []

    def run() -> None:
        while (message := pending.get()) is not None:
            if not failed:
                try:
                    link.send(message)
                except Exception as exc:  # the landmark process is gone: the rest is dropped
                    failed.append(exc)

    def send(message: Any) -> None:
        if failed:
            raise failed[0]
        pending.put(message)

    thread = threading.Thread(target=run, daemon=True, name="emoscore-frames-send")
    thread.start()
    try:
        yield send
    finally:
        pending.put(None)
        thread.join()
    if failed:
        raise failed[0]


def _landmark_main(conn: Any, links: tuple[Any, Any], settings: tuple[Any, ...] | None, close: tuple[Any, ...],
                   parent_pid: int | None = None) -> None:
    """The landmark process: the shape predictor loads first (needs no settings; then a message on links[1]),
    then the face model; per video, the landmarks fitted in the frame process's boxes (from links[0]) and
    classified: ("ok", (face.FrameProbs, scene cuts)) or ("error", exc) to the caller. Ends when the frame
    process's pipe ends."""
    if not _child_start(close, parent_pid):
        return
    link, ready = links
    shapes = _shape_model()
    with contextlib.suppress(OSError):
        ready.send(True)
    if settings is None and (settings := _receive(conn)) is None:
        return
    model: Any
    try:
        from emoscore.face import FaceEmotionModel

        model = FaceEmotionModel(settings[0], settings[4])
    except Exception as exc:  # reported with the first request, where the caller expects results
        model = exc
    while True:
        reply: tuple[str, Any]
        try:
            reply = ("ok", _fit_video(model, link, shapes))
        except _FramesEnded:
            return
        except Exception as exc:
            reply = ("error", exc)
        conn.send(reply)


def _numpy_shape_model(convert_if_missing: bool = True) -> Any:
    """dlib's 68-point predictor in numpy (shape_model: ~1 ms from its cache; converted into it on the first run,
    ~2 s), or None when that fails (no numba, an unreadable file)."""
    try:
        from emoscore import shape_model
        from emoscore.face import predictor_path

        return shape_model.load(predictor_path(), convert_if_missing)
    except Exception:  # numba's and numpy's errors, OSError: dlib's own predictor is the fallback
        return None


def _shape_model() -> Any:
    """_numpy_shape_model(), or None after loading dlib's own predictor (~0.6 s) when there is none."""
    shapes = _numpy_shape_model()
    if shapes is None:
        with contextlib.suppress(Exception):  # a failure here comes again, reported, from the model load
            from emoscore.face import _dlib_predictor

            _dlib_predictor()
    return shapes


class _FramesEnded(Exception):
    """The frame process's pipe ended (it was stopped): the landmark process ends too."""


def _choose_shape_model(landmarker: Any, shapes: Any, frames: int) -> None:
    """Fit a video of about `frames` sampled frames with the numpy predictor `shapes` (if there is one) when it
    is short (NUMPY_FITS), else with dlib's own, loaded now (once per process)."""
    landmarker.shape_model = shapes if frames <= NUMPY_FITS else None
    if landmarker.shape_model is None:
        landmarker.predictor  # noqa: B018 - loads dlib's predictor (~0.6 s) before the first face comes


def _fit_video(model: Any, link: Any, shapes: Any = None) -> tuple[Any, np.ndarray]:
    """(face.FrameProbs, scene cuts) of one video's messages from the frame process (read to its end even when
    the model failed to load, which is then raised)."""
    cuts: list[Any] = []

    def receive() -> Any:
        try:
            return link.recv()
        except (EOFError, OSError):
            raise _FramesEnded from None

    def fitted() -> Any:
        while (message := receive())[0] in ("video", "frame", "find", "points"):
            if message[0] == "video":
                if not isinstance(model, Exception):
                    _choose_shape_model(model.landmarker, shapes, message[1])
                continue
            if isinstance(model, Exception):
                yield message[1], None
            elif message[0] == "points":
                yield message[1], message[2]
            elif message[0] == "find":
                yield message[1], model.landmarker.detect(message[2])
            else:
                _, t, box, gray = message
                yield t, None if box is None else model.landmarker.fit(gray, box)
        if message[0] == "error":
            raise message[1]
        cuts.append(message[1])

    if isinstance(model, Exception):
        for _ in fitted():
            pass
        raise model
    found = list(fitted())  # a shot's faces are calibrated together: the whole video first, then one call
    probs = model.classify([t for t, _ in found], [points for _, points in found], cuts[0])
    return probs, cuts[0]


_EARLY_WORKER: list[tuple[int, FaceWorker]] = []  # (the pid that started it, the worker) of start_face_worker_early


def start_face_worker_early(guess: Path | None = None) -> None:
    """Fork the face worker now, before its settings are known, so its models load (and, with `guess`, the video
    most likely submitted first is started on) while this process starts up (cli.py does this for `emoscore
    score FILE` before typer parses the command line)."""
    if not _EARLY_WORKER:
        _EARLY_WORKER.append((os.getpid(), FaceWorker(None, guess=guess)))


def face_worker(checkpoints: Path, frame_rate: float, max_width: int, scene_threshold: float,
                calibration: str = "shot") -> FaceWorker:
    """The early-started worker with these settings (once, and only in the process that started it), else a new
    FaceWorker."""
    if _EARLY_WORKER:
        pid, worker = _EARLY_WORKER.pop()
        if pid == os.getpid():
            worker.configure(checkpoints, frame_rate, max_width, scene_threshold, calibration)
            return worker
    return FaceWorker(checkpoints, frame_rate, max_width, scene_threshold, calibration)


def discard_early_face_worker() -> None:
    """Stop the early-started worker if nothing took it (a folder or an edited timeline was scored instead)."""
    if _EARLY_WORKER:
        pid, worker = _EARLY_WORKER.pop()
        if pid == os.getpid():
            worker.close()
