"""The light runtime: verified loading of exported models, batch handling, the numpy sampler, and a
`score` process that never imports TensorFlow."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emoscore.checkpoints import PACKAGE_CHECKPOINTS
from emoscore.errors import ChecksumError, ModelError
from emoscore.music.compose import load_sampler
from emoscore.music.sampler import HISTORY, SamplingControls, top_p_sample
from emoscore.runtime import LITE_ROLE, LiteModel, lite_path, load_lite

ROOT = Path(__file__).parent.parent


def test_lite_model_takes_any_batch_and_checks_the_shape() -> None:
    model = LiteModel(PACKAGE_CHECKPOINTS / "visual.tflite")
    x = np.random.default_rng(0).normal(size=(5, *model.input_shape)).astype(np.float32)
    five = model(x)
    assert five.shape == (5, 8) and np.allclose(five.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(model(x[:2]), five[:2], atol=1e-6)  # resized back down
    assert model(x[:0]).shape == (0, 8)
    with pytest.raises(ModelError, match="model input"):
        model(x[:, :10])


def test_lite_model_runs_long_inputs_in_slices_of_bounded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from emoscore import runtime

    model = LiteModel(PACKAGE_CHECKPOINTS / "visual.tflite")
    x = np.random.default_rng(1).normal(size=(23, *model.input_shape)).astype(np.float32)
    whole = model(x)
    monkeypatch.setattr(runtime, "LITE_MAX_BATCH", 5)  # 5 + 5 + 5 + 5 + 3 rows
    np.testing.assert_allclose(model(x), whole, atol=1e-6)
    assert model._batch <= 5  # the arena never grew to the whole input


def _copy_face_model(folder: Path) -> None:
    for name in ("manifest.json", "visual.keras", "visual.tflite"):
        shutil.copy(PACKAGE_CHECKPOINTS / name, folder / name)


def test_a_changed_exported_file_fails_its_sha256(tmp_path: Path) -> None:
    _copy_face_model(tmp_path)
    data = bytearray((tmp_path / "visual.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "visual.tflite").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="visual.tflite"):
        load_lite(tmp_path, "visual")


def test_each_checkpoint_is_hashed_once_per_process_until_it_changes(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from emoscore import checkpoints
    from emoscore.fileio import sha256_file

    hashed: list[str] = []
    monkeypatch.setattr(checkpoints, "sha256_file", lambda path: hashed.append(Path(path).name) or sha256_file(path))
    _copy_face_model(tmp_path)
    lite = tmp_path / "visual.tflite"
    lite_path(tmp_path, "visual")
    lite_path(tmp_path, "visual")
    assert hashed.count("visual.tflite") == 2  # just written: never taken from the cache
    old = lite.stat().st_mtime_ns - 10 * checkpoints.HASH_CACHE_MIN_AGE_NS
    for name in ("visual.keras", "visual.tflite"):
        os.utime(tmp_path / name, ns=(old, old))
    hashed.clear()
    for _ in range(3):
        lite_path(tmp_path, "visual")
    assert hashed == ["visual.keras", "visual.tflite"]  # once each, then from the cache
    data = bytearray(lite.read_bytes())
    data[len(data) // 2] ^= 0xFF
    lite.write_bytes(bytes(data))
    os.utime(lite, ns=(old + 1, old + 1))  # same size, another (old) mtime: hashed again, and caught
    with pytest.raises(ChecksumError, match="visual.tflite"):
        lite_path(tmp_path, "visual")


def test_a_model_never_exported_asks_for_emoscore_export(tmp_path: Path) -> None:
    _copy_face_model(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["models"]["visual"]["files"][LITE_ROLE]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="emoscore export"):
        lite_path(tmp_path, "visual")


def test_top_p_keeps_the_nucleus_only(rng: np.random.Generator) -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    draws = [top_p_sample(logits, 1.0, 0.7, rng) for _ in range(400)]
    assert set(draws) == {0, 1}  # 0.5 + 0.3 reaches 0.7; 2 and 3 are cut
    assert {top_p_sample(logits, 1.0, 0.01, rng) for _ in range(50)} == {0}


def test_sampler_is_deterministic_and_keeps_its_constraints() -> None:
    sampler = load_sampler(PACKAGE_CHECKPOINTS, "Q2")
    controls = SamplingControls(pitch_low=48, pitch_high=84, max_shift=6, max_chord=2)
    tokens = sampler.generate(256, controls, seed=7)
    np.testing.assert_array_equal(tokens, sampler.generate(256, controls, seed=7))
    assert not np.array_equal(tokens, sampler.generate(256, controls, seed=8))
    onsets = np.cumsum(tokens[:, 0])
    assert onsets[-1] < 256 and onsets[-1] >= 256 - 6 - 1  # covers the span, nothing past it
    pitches = tokens[:, 1] + 21
    assert pitches.min() >= 48 and pitches.max() <= 84
    assert tokens[1:, 0].max() <= 6
    groups = np.split(pitches, np.flatnonzero(tokens[:, 0] > 0))
    assert max(len(g) for g in groups) <= 2  # notes per onset
    assert all(len(set(g.tolist())) == len(g) for g in groups)  # no pitch twice in one chord


def test_sampler_accepts_a_prime_longer_than_its_history() -> None:
    sampler = load_sampler(PACKAGE_CHECKPOINTS, "Q4")
    prime = sampler.generate(200, SamplingControls(), seed=1)
    assert len(prime) > HISTORY
    assert len(sampler.generate(64, SamplingControls(), seed=2, prime=prime))


PROBE = """
import sys
from emoscore.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'tf_keras'})
print('EXIT', code, 'HEAVY=' + ','.join(heavy))
"""


def consistent_checkpoints(folder: Path) -> Path:
    """A copy of the shipped checkpoints whose recorded feature constants are the running code's, so this
    test checks what the process imports even while a retrain that changes the features is pending."""
    from emoscore import face, speech

    shutil.copytree(PACKAGE_CHECKPOINTS, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["models"]["audio"]["constants"] = speech.feature_constants()
    manifest["models"]["visual"]["constants"] = face.feature_constants()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.slow
def test_score_and_compose_never_import_tensorflow(tmp_path: Path, clip_a: Path) -> None:
    checkpoints = consistent_checkpoints(tmp_path / "checkpoints")
    for args in (["score", str(clip_a), "-o", str(tmp_path)],
                 ["compose", "--quadrant", "Q3", "--seconds", "4", "-o", str(tmp_path / "q3.mid")]):
        proc = subprocess.run([sys.executable, "-c", PROBE, *args, "--checkpoints", str(checkpoints)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        last = proc.stdout.strip().splitlines()[-1]
        assert last == "EXIT 0 HEAVY=", f"{args[0]}: {last}\n{proc.stderr[-2000:]}"


def librosa_features(audio: np.ndarray) -> np.ndarray:
    """The features as speech.extract_features computed them with librosa 0.11 (before emoscore.dsp)."""
    import librosa

    from emoscore.constants import AUDIO_HOP, AUDIO_N_FFT, N_CHROMA, N_MFCC

    magnitude = np.abs(librosa.stft(audio, n_fft=AUDIO_N_FFT, hop_length=AUDIO_HOP, center=True))
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=16000, n_mels=40)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=power, sr=16000, n_chroma=N_CHROMA, norm=None)
    rms = librosa.feature.rms(y=audio, frame_length=AUDIO_N_FFT, hop_length=AUDIO_HOP, center=True)[0]
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=16000)[0]
    return np.vstack([mfcc, chroma, rms[None], centroid[None]]).T.astype(np.float32)


@pytest.mark.parametrize("clip", ["talking-head-a.mp4", "talking-head-b.mp4"])
def test_numpy_speech_features_match_librosa_on_real_speech(clip: str) -> None:
    from emoscore import dsp
    from emoscore.constants import AUDIO_HOP, AUDIO_N_FFT, N_CHROMA, N_MFCC
    from emoscore.media import read_audio

    audio = read_audio(ROOT / "tests" / "data" / clip)
    want = librosa_features(audio)
    got = dsp.speech_features(audio, 16000, AUDIO_N_FFT, AUDIO_HOP, N_MFCC, N_CHROMA)
    assert got.shape == want.shape == (1 + len(audio) // AUDIO_HOP, 27)
    scale = np.abs(want).max(axis=0)
    np.testing.assert_array_less(np.abs(got - want).max(axis=0), 1e-5 * scale + 1e-6)  # float32 rounding


def test_numpy_features_are_the_same_in_blocks(rng: np.random.Generator) -> None:
    from emoscore import dsp

    audio = (rng.normal(size=16000 * 3) * 0.1).astype(np.float32)
    whole = dsp.speech_features(audio, 16000, 1024, 320, 13, 12)
    blocks = dsp.BLOCK_FRAMES
    try:
        dsp.BLOCK_FRAMES = 7  # many short blocks, the last one partial
        np.testing.assert_allclose(dsp.speech_features(audio, 16000, 1024, 320, 13, 12), whole, rtol=1e-4, atol=1e-5)
    finally:
        dsp.BLOCK_FRAMES = blocks


@pytest.mark.parametrize(("clip", "rate", "channels"),
                         [("talking-head-b.mp4", 44100, 2), ("talking-head-a.mp4", 16000, 1)])
def test_numpy_loudness_matches_pyloudnorm_on_real_audio(clip: str, rate: int, channels: int) -> None:
    import pyloudnorm

    from emoscore import dsp
    from emoscore.media import read_audio

    audio = read_audio(ROOT / "tests" / "data" / clip, rate, channels=channels).astype(np.float64)
    quiet = np.concatenate([audio, np.zeros_like(audio)[: rate * 2], audio * 0.01])  # both gates at work
    for x in (audio, quiet):
        assert dsp.integrated_loudness(x, rate) == pytest.approx(pyloudnorm.Meter(rate).integrated_loudness(x),
                                                                 abs=1e-6)


def test_face_worker_gives_the_in_process_result_and_reports_errors(clip_b: Path, tmp_path: Path) -> None:
    from emoscore.face import FaceEmotionModel
    from emoscore.media import iter_frames, probe
    from emoscore.runtime import FaceWorker

    info = probe(clip_b)
    worker = FaceWorker(PACKAGE_CHECKPOINTS, 4.0, 640, 0.5)
    try:
        worker.submit(info)
        faces, cuts = worker.result()
        worker.submit(info)  # the same worker serves the next video
        again, _ = worker.result()
    finally:
        worker.close()
    want = FaceEmotionModel(PACKAGE_CHECKPOINTS).analyse_frames(iter_frames(info, 4.0, 640), cuts)
    assert faces.present.sum() >= 10 and isinstance(cuts, np.ndarray)
    np.testing.assert_array_equal(faces.present, want.present)
    np.testing.assert_allclose(faces.probs, want.probs, atol=1e-6)
    np.testing.assert_allclose(again.probs, want.probs, atol=1e-6)
    broken = FaceWorker(tmp_path, 4.0, 640, 0.5)  # no manifest there: the error comes with the result
    try:
        broken.submit(info)
        with pytest.raises(ModelError, match="visual"):
            broken.result()
    finally:
        broken.close()


def test_faces_of_one_shot_are_calibrated_together(clip_b: Path) -> None:
    """The face model reads each face against its shot's person (calibration.py): a cut splits the video into
    two people; the faces of one shot do not depend on another shot's."""
    from emoscore.face import FaceEmotionModel
    from emoscore.media import iter_frames, probe

    model = FaceEmotionModel(PACKAGE_CHECKPOINTS)
    assert model.calibration is not None  # the shipped model is trained with person calibration
    frames = list(iter_frames(probe(clip_b), 4.0, 640))
    whole = model.analyse_frames(frames)
    half = len(whole.times) // 2
    middle = float(whole.times[half - 1] + whole.times[half]) / 2  # a cut between two sampled frames
    split = model.analyse_frames(frames, np.array([middle]))
    first = model.analyse_frames([f for f in frames if f[0] < middle])
    before = whole.times < middle
    assert whole.present[before].any() and whole.present[~before].any()
    np.testing.assert_allclose(split.probs[before], first.probs, atol=1e-6)
    assert np.abs(split.probs - whole.probs).max() > 1e-4  # the shot's own reference point, not the video's
    alone = model.predict(whole.landmarks[whole.present])  # no times: each face one moment of its own person
    assert alone.shape == (int(whole.present.sum()), 8) and np.abs(alone - whole.probs[whole.present]).max() > 1e-4


def test_found_boxes_fitted_apart_give_detect_s_landmarks(clip_b: Path) -> None:
    """The frame process finds, the landmark process fits: together they are FaceLandmarker.detect."""
    from emoscore.face import FaceLandmarker, as_gray
    from emoscore.media import iter_frames, probe

    landmarker = FaceLandmarker()
    found = 0
    for _, frame in iter_frames(probe(clip_b), 4.0, 640):
        gray = as_gray(frame)
        box = landmarker.find(gray)
        want = landmarker.detect(frame)
        assert (box is None) == (want is None)
        if box is not None and want is not None:
            np.testing.assert_array_equal(landmarker.fit(gray.copy(), box), want)
            found += 1
    assert found >= 10


def test_block_wise_mixing_equals_one_block(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    from emoscore import mixing

    sr = 8000
    loud = (rng.normal(size=(sr * 7 + 123, 2)) * 0.5).astype(np.float32)  # peaks well over the ceiling
    activity = rng.random(7 * 50 + 7) < 0.3
    whole = (mixing.limit_peaks(loud, -1.0, sr), mixing.gated_rms_db(loud, sr),
             mixing.duck_envelope(activity, len(loud), sr, -12.0, 80.0, 300.0))
    monkeypatch.setattr(mixing, "CHUNK_SAMPLES", 1000)  # many blocks, boundaries everywhere
    blocks = (mixing.limit_peaks(loud, -1.0, sr), mixing.gated_rms_db(loud, sr),
              mixing.duck_envelope(activity, len(loud), sr, -12.0, 80.0, 300.0))
    np.testing.assert_allclose(blocks[0], whole[0], atol=1e-6)
    in_place = loud.copy()
    assert mixing.limit_peaks(in_place, -1.0, sr, in_place=True) is in_place
    np.testing.assert_array_equal(in_place, blocks[0])
    assert np.abs(blocks[0]).max() <= 10 ** (-1 / 20) + 1e-7
    assert blocks[1] == pytest.approx(whole[1], abs=1e-9)
    np.testing.assert_array_equal(blocks[2], whole[2])


def test_lean_audio_reader_gives_read_audio_s_samples(clip_b: Path, tmp_path: Path) -> None:
    from emoscore import media
    from emoscore.errors import MediaToolError

    for rate, channels in ((16000, 1), (44100, 2)):
        lean = media.read_audio_lean(clip_b, rate, channels)
        np.testing.assert_array_equal(lean, media.read_audio(clip_b, rate, channels))
        assert lean.dtype == np.float32 and lean.flags.writeable
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(MediaToolError, match="decode audio"):
        media.read_audio_lean(tmp_path / "bad.mp4")


def _start_face_child(kind: str, folder: Path, parent_pid: int) -> tuple[Any, Any]:
    """(a face worker child forked as FaceWorker starts it: "frames" or "landmarks"; the pipe end whose closing
    must end it: the caller's end for the frame process, the frame process's end for the landmark process)."""
    import multiprocessing

    from emoscore.runtime import _frames_main, _landmark_main

    context = multiprocessing.get_context("fork")
    mine, child = context.Pipe()
    link_in, link_out = context.Pipe(duplex=False)
    ready_in, ready_out = context.Pipe(duplex=False)
    settings = (folder, 4.0, 640, 0.5, "shot")
    if kind == "frames":
        target, args, ends = _frames_main, (child, (link_out, ready_in), settings, (mine, link_in, ready_out),
                                            parent_pid), mine
    else:
        target, args, ends = _landmark_main, (child, (link_in, ready_out), settings, (mine, link_out, ready_in),
                                              parent_pid), link_out
    process = context.Process(target=target, daemon=True, args=args)
    process.start()
    for end in {child, link_in, link_out, ready_in, ready_out} - {ends}:
        end.close()
    if kind == "landmarks":
        mine.close()
    return process, ends


@pytest.mark.parametrize("kind", ["frames", "landmarks"])
def test_face_child_ends_when_the_pipe_it_serves_closes(tmp_path: Path, kind: str) -> None:
    import os

    process, end = _start_face_child(kind, tmp_path, os.getpid())
    end.close()  # what the caller's (or the frame process's) death does; the child holds no copy of this end
    process.join(timeout=20)
    assert process.exitcode == 0


@pytest.mark.parametrize("kind", ["frames", "landmarks"])
def test_face_child_orphaned_before_its_death_signal_ends_at_once(tmp_path: Path, kind: str) -> None:
    import os

    process, end = _start_face_child(kind, tmp_path, os.getpid() + 10**6)  # "its caller is gone": another parent
    try:
        process.join(timeout=20)
        assert process.exitcode == 0  # it did not wait for a request on the still-open pipe
    finally:
        end.close()


def test_face_worker_started_early_takes_its_settings_later(clip_b: Path, tmp_path: Path) -> None:
    from emoscore import runtime
    from emoscore.media import probe

    info = probe(clip_b)
    runtime.start_face_worker_early()
    early = runtime._EARLY_WORKER[0][1]
    worker = runtime.face_worker(PACKAGE_CHECKPOINTS, 4.0, 640, 0.5)
    assert worker is early and not runtime._EARLY_WORKER
    normal = runtime.FaceWorker(PACKAGE_CHECKPOINTS, 4.0, 640, 0.5)
    try:
        for w in (worker, normal):
            w.submit(info)
        (faces, cuts), (want, want_cuts) = worker.result(), normal.result()
    finally:
        worker.close()
        normal.close()
    np.testing.assert_array_equal(faces.present, want.present)
    np.testing.assert_array_equal(faces.probs, want.probs)
    np.testing.assert_array_equal(cuts, want_cuts)
    runtime.start_face_worker_early()
    unused = runtime._EARLY_WORKER[0][1]
    runtime.discard_early_face_worker()  # nobody took it: stopped at once, even while dlib loads
    assert not runtime._EARLY_WORKER and not any(p.is_alive() for p in unused.processes)


@pytest.mark.parametrize("numpy_fits", [0, 10_000])
def test_long_and_short_videos_get_the_same_faces(clip_b: Path, monkeypatch: pytest.MonkeyPatch,
                                                 numpy_fits: int) -> None:
    """A long video's faces are fitted by dlib's own predictor in the landmark process, a short one's by the numpy
    predictor in the frame process (and, handed over, in the landmark process): the same result."""
    from emoscore import runtime
    from emoscore.face import FaceEmotionModel
    from emoscore.media import iter_frames, probe

    monkeypatch.setattr(runtime, "NUMPY_FITS", numpy_fits)  # before the fork: the children see it
    info = probe(clip_b)
    worker = runtime.FaceWorker(PACKAGE_CHECKPOINTS, 4.0, 640, 0.5)
    try:
        worker.submit(info)
        faces, cuts = worker.result()
    finally:
        worker.close()
    want = FaceEmotionModel(PACKAGE_CHECKPOINTS).analyse_frames(iter_frames(info, 4.0, 640), cuts)
    for name in ("times", "present", "landmarks", "probs"):
        np.testing.assert_array_equal(getattr(faces, name), getattr(want, name))


@pytest.mark.parametrize(("guess", "settings", "used"), [
    ("talking-head-b.mp4", (4.0, 640, 0.35), True),  # the default config's: the head start is used
    ("talking-head-a.mp4", (4.0, 640, 0.35), False),  # another video was guessed: dropped
    ("talking-head-b.mp4", (2.0, 320, 0.5), False),  # other settings: dropped
    ("talking-head-b.mp4", (4.0, 640, 0.35, "face"), False),  # faces read alone, not by shot: dropped
])
def test_face_worker_s_head_start_gives_the_usual_result(clip_b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         guess: str, settings: tuple[Any, ...],
                                                         used: bool) -> None:
    from emoscore import runtime
    from emoscore.config import load_config
    from emoscore.media import probe

    defaults = load_config(None)
    assert (defaults.analysis.frame_rate, defaults.analysis.max_face_width,
            defaults.smoothing.scene_threshold) == (4.0, 640, 0.35)
    info = probe(clip_b)
    log = tmp_path / "taken"
    take = runtime._Ahead.take

    def logged(self: Any, *args: Any) -> Any:  # runs in the forked frame process: tells through a file
        messages = take(self, *args)
        log.write_text(str(messages is not None))
        return messages

    monkeypatch.setattr(runtime._Ahead, "take", logged)
    early = runtime.FaceWorker(None, guess=ROOT / "tests" / "data" / guess)
    normal = runtime.FaceWorker(PACKAGE_CHECKPOINTS, *settings)
    try:
        early.configure(PACKAGE_CHECKPOINTS, *settings)
        for worker in (early, normal):
            worker.submit(info)
        (faces, cuts), (want, want_cuts) = early.result(), normal.result()
        early.submit(info)  # the next request: analysed as usual
        again, _ = early.result()
    finally:
        early.close()
        normal.close()
    for got in (faces, again):
        for name in ("times", "present", "landmarks", "probs"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    np.testing.assert_array_equal(cuts, want_cuts)
    assert log.read_text() == str(used)


def _processes_naming(text: str) -> list[int]:
    """Pids of the processes whose command line contains `text` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_console_script_ends_at_once_with_everything_written(tmp_path: Path, clip_a: Path) -> None:
    """`emoscore score FILE` ends with os._exit once its outputs are in place: its report is printed whole, every
    output is there, no staging folder is left and the face worker's children end with it."""
    import time

    from emoscore.pipeline import output_paths

    exe = Path(sys.executable).with_name("emoscore")
    out = tmp_path / "scored" / clip_a.name
    out.parent.mkdir()
    checkpoints = consistent_checkpoints(tmp_path / "checkpoints")
    proc = subprocess.run([str(exe), "score", str(clip_a), "-o", str(out), "--checkpoints", str(checkpoints)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-2].startswith(str(out)) and proc.stdout.splitlines()[-1].startswith("loudness")
    assert all(path.is_file() for path in output_paths(out))
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(p.name for p in output_paths(out))
    deadline = time.monotonic() + 10
    while _processes_naming(str(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_naming(str(out))
