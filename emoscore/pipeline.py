"""`emoscore score` for one video: probe -> faces + speech -> timeline -> music -> mix -> outputs.

A Scorer loads the models once and scores any number of videos. Every output is written into a
temporary folder beside the destination and renamed into place only when all of them are complete,
so an error or Ctrl-C leaves nothing half-written and never touches the input.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from emoscore import __version__, media
from emoscore.config import Config
from emoscore.constants import AUDIO_SAMPLE_RATE, N_EMOTIONS, OUTPUT_SAMPLE_RATE
from emoscore.errors import ModelError, OutputError
from emoscore.fileio import check_name_length, check_writable, claim_output, claim_path, dumps_json, short_name
from emoscore.speech import WindowProbs, window_starts

# Output files written beside the scored video: suffix -> what it holds.
STEM_SUFFIXES: dict[str, str] = {
    ".music.mid": "the soundtrack as General MIDI",
    ".music.wav": "the soundtrack alone, 44.1 kHz stereo",
    ".mix.wav": "the final audio track (dialogue + music)",
    ".timeline.json": "segments, per-window probabilities, config and model versions",
    ".timeline.csv": "one row per analysis window",
    ".timeline.png": "a picture of the timeline",
    ".markers.otio": "one OpenTimelineIO marker per segment (interchange.py)",
    ".markers.edl": "the markers as a CMX 3600 EDL",
    ".markers.xml": "the markers as Final Cut Pro XML",
}
# Written per soundtrack (the main one and each variation); the part stems only with --stems parts.
SOUNDTRACK_SUFFIXES: tuple[str, ...] = (".music.mid", ".music.wav", ".mix.wav")
PART_SUFFIXES: tuple[str, ...] = (".melody.wav", ".pad.wav", ".bass.wav")


@dataclass(frozen=True)
class ScoreOptions:
    config: Config
    checkpoints: Path
    seed: int = 0
    overwrite: bool = False
    replace_audio: bool = False
    variations: int = 0  # extra soundtracks <output stem>.v1 ... .vN with seeds seed + 1 ... seed + N
    part_stems: bool = False  # also write the melody, pad and bass as separate WAVs (--stems parts)
    loudness_lufs: float | None = None  # integrated loudness target of the final mix (true peak <= -1 dBTP)


@dataclass
class ScoreResult:
    input: Path
    output: Path
    duration: float
    segments: list[Any]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    loudness: dict[str, Any] = field(default_factory=dict)


def stem_path(output: Path, suffix: str) -> Path:
    """Where the stem with `suffix` of a scored video `output` goes: clip.scored.mp4 -> clip.scored.music.mid."""
    return output.with_name(output.stem + suffix)


def default_output(input_path: Path, folder: Path | None = None) -> Path:
    """clip.mp4 -> clip.scored.mp4 beside it; in another folder the name stays clip.mp4."""
    if folder is None or folder.resolve() == input_path.parent.resolve():
        return input_path.with_name(f"{input_path.stem}.scored{input_path.suffix}")
    return folder / input_path.name


def output_paths(output: Path) -> list[Path]:
    return [output, *(stem_path(output, s) for s in STEM_SUFFIXES)]


def variation_path(output: Path, k: int) -> Path:
    """The k-th variation (k >= 1) of a scored video: folder/clip.mp4 -> folder/clip.v1.mp4."""
    return output.with_name(f"{output.stem}.v{k}{output.suffix}")


def extra_paths(output: Path, options: ScoreOptions) -> list[Path]:
    """The optional outputs: part stems, then each variation's stems and video (its video last)."""
    paths = [stem_path(output, s) for s in PART_SUFFIXES] if options.part_stems else []
    for k in range(1, options.variations + 1):
        video = variation_path(output, k)
        suffixes = SOUNDTRACK_SUFFIXES + (PART_SUFFIXES if options.part_stems else ())
        paths += [*(stem_path(video, s) for s in suffixes), video]
    return paths


def check_outputs(input_path: Path, output: Path, overwrite: bool, extra: list[Path] | None = None) -> None:
    """Refuse before any work: output over the input, an existing output without overwrite, unwritable folder,
    a name too long for the file system (the stems' names are the longest)."""
    for path in (*output_paths(output), *(extra or []), claim_path(output)):
        check_name_length(path)
    if output.resolve() == input_path.resolve():
        raise OutputError(f"output would overwrite the input: {output}")
    if output.suffix.lower() != input_path.suffix.lower():
        raise OutputError(f"output {output.name} must keep the input's container ({input_path.suffix})")
    for path in [*output_paths(output), *(extra or [])]:
        check_writable(path, overwrite)


@contextmanager
def staging_folder(output: Path) -> Iterator[Path]:
    """A temporary folder beside `output`, removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=f".{short_name(output.stem)}.", suffix=".part", dir=output.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Stopwatch:
    """Wall time per named stage, in seconds."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def frames_to_windows(times: np.ndarray, probs: np.ndarray, present: np.ndarray, starts: np.ndarray,
                      window_seconds: float) -> WindowProbs:
    """Average per-frame face probabilities (n_frames, 8) over each window [start, start + window)."""
    out = np.zeros((len(starts), N_EMOTIONS), dtype=np.float32)
    found = np.zeros(len(starts), dtype=bool)
    for i, start in enumerate(starts):
        inside = present & (times >= start) & (times < start + window_seconds)
        if inside.any():
            out[i] = probs[inside].mean(axis=0)
            found[i] = True
    return WindowProbs(times=np.asarray(starts), probs=out, present=found)


def absent(starts: np.ndarray) -> WindowProbs:
    return WindowProbs(times=starts, probs=np.zeros((len(starts), N_EMOTIONS), np.float32),
                       present=np.zeros(len(starts), dtype=bool))


def verify_models(checkpoints: Path) -> None:
    """Check every model `score` needs (face, speech, the four music LSTMs) against the manifest (sha256,
    constants) without loading TensorFlow. A file that exists but cannot be read is a ModelError naming it."""
    from emoscore import face, speech
    from emoscore.checkpoints import resolve_model
    from emoscore.constants import QUADRANTS
    from emoscore.music.compose import model_name
    from emoscore.music.events import vocab_constants

    needed = [(face.MODEL_NAME, face.feature_constants()), (speech.MODEL_NAME, speech.feature_constants())]
    needed += [(model_name(quadrant), vocab_constants()) for quadrant in QUADRANTS]
    for name, constants in needed:
        try:
            resolve_model(checkpoints, name, constants)
        except OSError as exc:
            raise ModelError(f"checkpoint of model '{name}' cannot be read: {exc.filename}: "
                             f"{exc.strerror or exc}") from None


def warm_up_outputs() -> None:
    """Import what rendering, mixing and muxing use, so that it happens while this process waits for the face
    worker instead of after it. (The timeline's markers import OpenTimelineIO, ~0.1 s, in the thread that writes
    them beside the soundtrack: Scorer._write_views.)

    OpenCV is imported here, in the main thread before any other thread runs: its loader sets
    os.environ["LD_LIBRARY_PATH"], and changing the environment while another thread starts ffmpeg can hand
    the new process a freed environment (execve fails with EFAULT, "Bad address").
    """
    import cv2  # noqa: F401
    import fluidsynth  # noqa: F401
    import mido  # noqa: F401
    import soundfile  # noqa: F401

    from emoscore import loudness, mixing  # noqa: F401
    from emoscore.music import midifile, render  # noqa: F401


class Scorer:
    """Scores videos with models loaded once. Library code: reports through `log`, never prints."""

    def __init__(self, options: ScoreOptions, log: Callable[[str], None] = lambda _: None):
        self.options = options
        self.log = log
        self._models: tuple[Any, Any] | None = None
        self._faces: Any = None  # runtime.FaceWorker, started by start_face_worker
        self._submitted: media.VideoInfo | None = None  # the video score() gave the face worker already
        self._verified = False
        self._notes: list[str] = []

    def verify(self) -> None:
        """Every model's checksum and the soundfont, once per Scorer, before any analysis."""
        from emoscore.music.render import find_soundfont

        if not self._verified:
            verify_models(self.options.checkpoints)
            find_soundfont(self.options.config.music.soundfont)
            self._verified = True

    def load_models(self) -> tuple[Any, Any]:
        """(face worker: runtime.FaceWorker, the face model in a child process on the second core; speech
        model), loaded and sha256-verified on first use, once per Scorer (so once per batch worker)."""
        if self._models is None:
            from emoscore.speech import SpeechEmotionModel

            self.log(f"loading models from {self.options.checkpoints}")
            self._models = (self.start_face_worker(), SpeechEmotionModel(self.options.checkpoints))
        return self._models

    def start_face_worker(self) -> Any:
        """The face worker process, forked on first call (before this process starts any thread): it loads
        dlib and the face model on the second core while this one probes, checks checksums and hears speech."""
        if self._faces is None:
            from emoscore.runtime import face_worker

            cfg = self.options.config
            self._faces = face_worker(self.options.checkpoints, cfg.analysis.frame_rate,
                                      cfg.analysis.max_face_width, cfg.smoothing.scene_threshold,
                                      cfg.analysis.face_calibration)
        return self._faces

    def warm_up_composer(self) -> None:
        """Import the music stack and load the four LSTMs now (while the face worker finishes), so composing
        starts at once."""
        import pretty_midi  # noqa: F401

        from emoscore.constants import QUADRANTS
        from emoscore.music.compose import load_sampler
        from emoscore.music.events import parse_key

        parse_key("C major")
        for quadrant in QUADRANTS:
            load_sampler(self.options.checkpoints, quadrant)
        warm_up_outputs()

    def score(self, input_path: Path, output: Path | None = None, edit: Any = None) -> ScoreResult:
        """Score one video into `output` (default: <input>.scored.<ext> beside it) and its stems.

        edit: an edits.EditedTimeline (the editor's segments): recognition is skipped and the music composed
        from it.
        """
        input_path = Path(input_path)
        output = Path(output) if output is not None else default_output(input_path)
        if edit is None:
            self.start_face_worker()
        info = media.probe(input_path)
        if edit is not None:
            edit.resolve(info.duration, self.options.config)  # a bad edit fails before any work
        check_outputs(input_path, output, self.options.overwrite, extra_paths(output, self.options))
        if edit is None:  # the frames decode and the faces are found meanwhile (the video's frames, no model)
            self._faces.submit(info)
            self._submitted = info
        self.verify()
        with claim_output(output):  # a second run on the same output refuses until this one is done
            check_outputs(input_path, output, self.options.overwrite, extra_paths(output, self.options))
            return self._score_claimed(input_path, output, info, edit)

    def _score_claimed(self, input_path: Path, output: Path, info: media.VideoInfo, edit: Any) -> ScoreResult:
        """Score while holding the output's claim: analysis (or the edit), soundtracks, then rename into place."""
        watch = Stopwatch()
        warnings: list[str] = []
        self._notes = warnings  # mux reports streams the container would not take back
        if edit is None:
            self.load_models()
            timeline = self._analyse(info, watch, warnings)
        else:
            timeline = self._edited(edit, info, watch, warnings)
        warm_up_outputs()  # before the threads below start (see there); a no-op after warm_up_composer
        with staging_folder(output) as staging, ThreadPoolExecutor(max_workers=1) as pool:
            staged = staging / output.name
            # The outputs that need no soundtrack are written in a thread while the soundtrack is muxed (ffmpeg
            # leaves this process's GIL free).
            views: list[Any] = []
            loudness = self._soundtracks(info, timeline, staged, watch, lambda: views.append(
                pool.submit(self._write_views, info, timeline, staged)))
            (views[0] if views else pool.submit(self._write_views, info, timeline, staged)).result()
            self._write_timeline(info, timeline, staged, watch, warnings, loudness, edit)
            for path in [*extra_paths(staged, self.options), *reversed(output_paths(staged))]:
                path.replace(output.parent / path.name)  # the main video last: if it exists, so do the rest
        return ScoreResult(input_path, output, info.duration, list(timeline.segments), warnings, watch.timings,
                           loudness)

    def _edited(self, edit: Any, info: media.VideoInfo, watch: Stopwatch, warnings: list[str]) -> Any:
        """The Timeline of the editor's segments, checked against this video's duration."""
        with watch.stage("timeline"):
            timeline = edit.resolve(info.duration, self.options.config, info.path.name)
        warnings.extend(edit.notes)
        self.log(f"{len(timeline.segments)} segment(s) from {edit.source}: "
                 + ", ".join(f"{s.quadrant} {s.start:.1f}-{s.end:.1f}s" for s in timeline.segments))
        return timeline

    def _analyse(self, info: media.VideoInfo, watch: Stopwatch, warnings: list[str]) -> Any:
        from emoscore.timeline import build_timeline

        cfg = self.options.config
        starts = window_starts(info.duration, cfg.analysis.window_seconds, cfg.analysis.hop_seconds)
        worker = self.load_models()[0]
        if self._submitted is not info:  # frames, faces and scene cuts on the second core while the speech is heard
            worker.submit(info)
        self._submitted = None
        with watch.stage("speech"):
            audio = self._speech_probs(info, starts, warnings)
        with watch.stage("compose"):
            self.warm_up_composer()
        with watch.stage("faces"):  # what remains of the face analysis once the speech is done
            faces, cuts = worker.result()
            visual = frames_to_windows(faces.times, faces.probs, faces.present, starts,
                                       cfg.analysis.window_seconds)
        if not faces.present.any():
            warnings.append("no face found anywhere in the video: emotion from the voice alone")
        with watch.stage("timeline"):
            timeline = build_timeline(visual, audio, info.duration, cuts, cfg)
        self.log(f"{len(timeline.segments)} segment(s): "
                 + ", ".join(f"{s.quadrant} {s.start:.1f}-{s.end:.1f}s" for s in timeline.segments))
        return timeline

    def _speech_probs(self, info: media.VideoInfo, starts: np.ndarray, warnings: list[str]) -> WindowProbs:
        if not info.has_audio:
            warnings.append("no audio stream: emotion from the faces alone, music only in the output")
            return absent(starts)
        speech = media.read_audio_lean(info.path, AUDIO_SAMPLE_RATE)
        return self.load_models()[1].analyse(speech, starts, self.options.config.analysis.window_seconds)

    def _soundtracks(self, info: media.VideoInfo, timeline: Any, staged: Path, watch: Stopwatch,
                     muxing: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """The main soundtrack (seed) and each variation k (seed + k); loudness of the input and each mix.

        The dialogue is decoded (into a raw file in the staging folder) and measured in a thread while the first
        soundtrack is composed and rendered (ffmpeg and fluidsynth work outside the GIL).
        """
        from concurrent.futures import ThreadPoolExecutor

        report: dict[str, Any] = {"target_lufs": self.options.loudness_lufs}
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            job = pool.submit(self._dialogue, info, staged.with_name(staged.name + ".dialogue.f32"))
            report["output"] = self._compose_and_mix(info, timeline, staged, watch, self.options.seed, job, muxing)
            report["variations"] = [
                self._compose_and_mix(info, timeline, variation_path(staged, k), watch, self.options.seed + k, job)
                for k in range(1, self.options.variations + 1)]
            report["input"] = job.result()[1]
        finally:  # on an error or Ctrl-C, clean-up starts at once instead of after the whole dialogue decode
            pool.shutdown(wait=False, cancel_futures=True)
        return report

    def _dialogue(self, info: media.VideoInfo, raw: Path) -> tuple[Path | None, dict[str, float] | None]:
        """(`raw`: the original audio decoded as 44.1 kHz stereo float32, its integrated loudness), or (None, None)
        without dialogue. Measured a block at a time: nothing here grows with the length."""
        from emoscore.loudness import measure_blocks

        if not info.has_audio or self.options.replace_audio:
            return None, None
        n = media.decode_audio_file(info.path, raw, OUTPUT_SAMPLE_RATE, channels=2)
        level = measure_blocks(media.raw_blocks(raw, 2), n, OUTPUT_SAMPLE_RATE).integrated_lufs
        return raw, {"integrated_lufs": round(level, 2)}

    def _compose_and_mix(self, info: media.VideoInfo, timeline: Any, staged: Path, watch: Stopwatch, seed: int,
                         dialogue_job: Any, muxing: Callable[[], None] = lambda: None) -> dict[str, float]:
        """Compose, render, mix and mux one soundtrack into `staged` and its stems; the mix's loudness.

        dialogue_job: a Future of _dialogue's result; muxing: called as ffmpeg starts muxing. Streaming: fluidsynth
        renders block by block into the .music.wav stem and a raw copy in the staging folder, the mix (and
        mastering) read those files a block at a time and write .mix.wav block by block while measuring it, so
        memory does not grow with the length.
        """
        from concurrent.futures import ThreadPoolExecutor

        from emoscore.loudness import measure_blocks
        from emoscore.mixing import mix_blocks
        from emoscore.music.compose import SegmentSpec, compose_soundtrack
        from emoscore.music.midifile import write_midi
        from emoscore.music.render import render_to_files

        cfg = self.options.config
        specs = [SegmentSpec(s.start, s.end, s.quadrant, s.valence, s.arousal) for s in timeline.segments]
        with watch.stage("compose"):
            midi = compose_soundtrack(specs, info.duration, cfg.music, self.options.checkpoints,
                                      seed=seed, log=self.log)
            write_midi(midi, stem_path(staged, ".music.mid"))
        music_raw = staged.with_name(staged.name + ".music.s16")
        with watch.stage("render"):
            n = render_to_files(midi, info.duration, stem_path(staged, ".music.wav"), music_raw,
                                OUTPUT_SAMPLE_RATE, cfg.music.soundfont)
            if self.options.part_stems:
                self._write_parts(midi, info.duration, staged)
        with watch.stage("mix"):
            dialogue_raw = dialogue_job.result()[0]
            dialogue = None if dialogue_raw is None else (lambda: media.raw_blocks(dialogue_raw, 2, n))
            mixed = mix_blocks(lambda: media.raw_blocks(music_raw, 2, n, dtype="<i2"), dialogue, n,
                               OUTPUT_SAMPLE_RATE, cfg.mix, replace_audio=dialogue is None,
                               fade_out_seconds=cfg.music.fade_out_seconds)
            if self.options.loudness_lufs is not None:
                mixed = self._mastered(mixed, n, staged.with_name(staged.name + ".premaster.f32"), watch)
            total = int(round(info.duration * OUTPUT_SAMPLE_RATE))  # as long as the input (n is, as rendered)
            mix_raw = staged.with_name(staged.name + ".mix.f32")  # the float mix, measured while ffmpeg muxes
            with media.WavWriter(stem_path(staged, ".mix.wav"), OUTPUT_SAMPLE_RATE) as wav, open(mix_raw, "wb") as f:
                for block in media.fit_blocks(mixed, total):
                    wav.write(block)
                    np.asarray(block, dtype="<f4").tofile(f)
            music_raw.unlink()
            with ThreadPoolExecutor(max_workers=1) as pool:
                report = pool.submit(lambda: measure_blocks(media.raw_blocks(mix_raw, 2), total, OUTPUT_SAMPLE_RATE))
                muxing()
                self._notes.extend(media.mux(info.path, stem_path(staged, ".mix.wav"), staged, info))
                return report.result().to_dict()

    def _mastered(self, mixed: Iterator[np.ndarray], n: int, raw: Path, watch: Stopwatch) -> Iterator[np.ndarray]:
        """--loudness: the mix (kept in a raw float32 file) normalised block by block (loudness.normalise)."""
        from emoscore.loudness import normalise_blocks

        with watch.stage("loudness"), open(raw, "wb") as f:
            for block in mixed:
                np.asarray(block, dtype="<f4").tofile(f)
        target = self.options.loudness_lufs
        assert target is not None
        return normalise_blocks(lambda: media.raw_blocks(raw, 2, n), n, OUTPUT_SAMPLE_RATE, target)

    def _write_parts(self, midi: Any, duration: float, staged: Path) -> None:
        """--stems parts: melody, pad and bass rendered alone, each as long as the music stem."""
        from emoscore.interchange import render_parts

        parts = render_parts(midi, duration, OUTPUT_SAMPLE_RATE, self.options.config.music.soundfont)
        for suffix in PART_SUFFIXES:
            media.write_wav(stem_path(staged, suffix), parts[suffix.split(".")[1]], OUTPUT_SAMPLE_RATE)

    def _write_views(self, info: media.VideoInfo, timeline: Any, staged: Path) -> None:
        """The timeline's CSV, picture and markers (OTIO, EDL, FCP XML): everything but the JSON record. Runs
        beside the soundtrack stages (untimed: its time is hidden behind theirs)."""
        from emoscore.interchange import write_interchange
        from emoscore.plot import plot_timeline, write_png
        from emoscore.timeline import timeline_to_csv

        write_interchange(timeline.segments, info.duration, info.fps, staged)
        stem_path(staged, ".timeline.csv").write_text(timeline_to_csv(timeline))
        write_png(stem_path(staged, ".timeline.png"), plot_timeline(timeline))

    def _write_timeline(self, info: media.VideoInfo, timeline: Any, staged: Path, watch: Stopwatch,
                        warnings: list[str], loudness: dict[str, Any], edit: Any) -> None:
        """The timeline JSON: segments, windows and the run's record (with the loudness of the input and mixes)."""
        from emoscore.timeline import timeline_to_json

        with watch.stage("outputs"):
            meta = self.run_record(info, warnings)
            meta["loudness"] = loudness
            meta["edited_from"] = None if edit is None else edit.source
            data = timeline_to_json(timeline, meta)
            stem_path(staged, ".timeline.json").write_text(dumps_json(data) + "\n")

    def run_record(self, info: media.VideoInfo, warnings: list[str]) -> dict[str, Any]:
        """What this run used: input, config, seed and the sha256 of every model, for the timeline JSON."""
        from emoscore.checkpoints import load_manifest

        models = load_manifest(self.options.checkpoints)["models"]
        return {
            "input": info.path.name, "duration": info.duration, "fps": info.fps,
            "variable_frame_rate": info.variable_frame_rate,
            "has_audio": info.has_audio, "emoscore_version": __version__, "seed": self.options.seed,
            "replace_audio": self.options.replace_audio, "config": self.options.config.to_dict(),
            "models": {name: {role: spec["sha256"] for role, spec in entry["files"].items()}
                       for name, entry in models.items()},
            "warnings": list(warnings),
        }


def with_overrides(config: Config, music_gain_db: float | None) -> Config:
    """The config with command-line overrides applied."""
    if music_gain_db is None:
        return config
    return replace(config, mix=replace(config.mix, music_gain_db=music_gain_db))

