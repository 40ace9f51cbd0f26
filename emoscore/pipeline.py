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
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from emoscore import __version__, media
from emoscore.config import Config
from emoscore.constants import AUDIO_SAMPLE_RATE, N_EMOTIONS, OUTPUT_SAMPLE_RATE
from emoscore.errors import OutputError
from emoscore.fileio import check_writable
from emoscore.speech import WindowProbs, window_starts

# Output files written beside the scored video: suffix -> what it holds.
STEM_SUFFIXES: dict[str, str] = {
    ".music.mid": "the soundtrack as General MIDI",
    ".music.wav": "the soundtrack alone, 44.1 kHz stereo",
    ".mix.wav": "the final audio track (dialogue + music)",
    ".timeline.json": "segments, per-window probabilities, config and model versions",
    ".timeline.csv": "one row per analysis window",
    ".timeline.png": "a picture of the timeline",
}


@dataclass(frozen=True)
class ScoreOptions:
    config: Config
    checkpoints: Path
    seed: int = 0
    overwrite: bool = False
    replace_audio: bool = False


@dataclass
class ScoreResult:
    input: Path
    output: Path
    duration: float
    segments: list[Any]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


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


def check_outputs(input_path: Path, output: Path, overwrite: bool) -> None:
    """Refuse before any work: output over the input, an existing output without overwrite, unwritable folder."""
    if output.resolve() == input_path.resolve():
        raise OutputError(f"output would overwrite the input: {output}")
    if output.suffix.lower() != input_path.suffix.lower():
        raise OutputError(f"output {output.name} must keep the input's container ({input_path.suffix})")
    for path in output_paths(output):
        check_writable(path, overwrite)


@contextmanager
def staging_folder(output: Path) -> Iterator[Path]:
    """A temporary folder beside `output`, removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix=f".{output.stem}.", suffix=".part", dir=output.parent))
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
    """Check every model `score` needs against the manifest (sha256, constants) without loading TensorFlow."""
    from emoscore import face, speech
    from emoscore.checkpoints import resolve_model
    from emoscore.constants import QUADRANTS
    from emoscore.music.compose import model_name
    from emoscore.music.events import vocab_constants

    resolve_model(checkpoints, face.MODEL_NAME, face.feature_constants())
    resolve_model(checkpoints, speech.MODEL_NAME, speech.feature_constants())
    for quadrant in QUADRANTS:
        resolve_model(checkpoints, model_name(quadrant), vocab_constants())


class Scorer:
    """Scores videos with models loaded once. Library code: reports through `log`, never prints."""

    def __init__(self, options: ScoreOptions, log: Callable[[str], None] = lambda _: None):
        self.options = options
        self.log = log
        self._models: tuple[Any, Any] | None = None

    def load_models(self) -> tuple[Any, Any]:
        """(face model, speech model), loaded and sha256-verified on first use."""
        if self._models is None:
            from emoscore.face import FaceEmotionModel
            from emoscore.speech import SpeechEmotionModel

            self.log(f"loading models from {self.options.checkpoints}")
            self._models = (FaceEmotionModel(self.options.checkpoints),
                            SpeechEmotionModel(self.options.checkpoints))
        return self._models

    def score(self, input_path: Path, output: Path | None = None) -> ScoreResult:
        """Score one video into `output` (default: <input>.scored.<ext> beside it) and its stems."""
        input_path = Path(input_path)
        output = Path(output) if output is not None else default_output(input_path)
        info = media.probe(input_path)
        check_outputs(input_path, output, self.options.overwrite)
        self.load_models()
        watch = Stopwatch()
        warnings: list[str] = []
        timeline = self._analyse(info, watch, warnings)
        with staging_folder(output) as staging:
            staged = staging / output.name
            self._compose_and_mix(info, timeline, staged, watch)
            self._write_timeline(info, timeline, staged, watch, warnings)
            for path in reversed(output_paths(staged)):  # the video last: if it exists, so do its stems
                path.replace(output.parent / path.name)
        return ScoreResult(input_path, output, info.duration, list(timeline.segments), warnings, watch.timings)

    def _analyse(self, info: media.VideoInfo, watch: Stopwatch, warnings: list[str]) -> Any:
        from emoscore.scenes import SceneDetector
        from emoscore.timeline import build_timeline

        cfg = self.options.config
        starts = window_starts(info.duration, cfg.analysis.window_seconds, cfg.analysis.hop_seconds)
        scenes = SceneDetector(cfg.smoothing.scene_threshold)
        with watch.stage("faces"):
            frames = self._frames(info, scenes)
            faces = self.load_models()[0].analyse_frames(frames)
            visual = frames_to_windows(faces.times, faces.probs, faces.present, starts,
                                       cfg.analysis.window_seconds)
        if not faces.present.any():
            warnings.append("no face found anywhere in the video: emotion from the voice alone")
        with watch.stage("speech"):
            audio = self._speech_probs(info, starts, warnings)
        with watch.stage("timeline"):
            timeline = build_timeline(visual, audio, info.duration, scenes.cuts, cfg)
        self.log(f"{len(timeline.segments)} segment(s): "
                 + ", ".join(f"{s.quadrant} {s.start:.1f}-{s.end:.1f}s" for s in timeline.segments))
        return timeline

    def _frames(self, info: media.VideoInfo, scenes: Any) -> Iterator[tuple[float, np.ndarray]]:
        cfg = self.options.config.analysis
        for t, frame in media.iter_frames(info, cfg.frame_rate, cfg.max_face_width):
            scenes.update(t, frame)
            yield t, frame

    def _speech_probs(self, info: media.VideoInfo, starts: np.ndarray, warnings: list[str]) -> WindowProbs:
        if not info.has_audio:
            warnings.append("no audio stream: emotion from the faces alone, music only in the output")
            return absent(starts)
        speech = media.read_audio(info.path, AUDIO_SAMPLE_RATE)
        return self.load_models()[1].analyse(speech, starts, self.options.config.analysis.window_seconds)

    def _compose_and_mix(self, info: media.VideoInfo, timeline: Any, staged: Path, watch: Stopwatch) -> None:
        from emoscore.mixing import mix
        from emoscore.music.compose import SegmentSpec, compose_soundtrack
        from emoscore.music.render import render_midi

        cfg = self.options.config
        specs = [SegmentSpec(s.start, s.end, s.quadrant, s.valence, s.arousal) for s in timeline.segments]
        with watch.stage("compose"):
            midi = compose_soundtrack(specs, info.duration, cfg.music, self.options.checkpoints,
                                      seed=self.options.seed, log=self.log)
            midi.write(str(stem_path(staged, ".music.mid")))
        with watch.stage("render"):
            music = render_midi(midi, info.duration, OUTPUT_SAMPLE_RATE, cfg.music.soundfont)
            media.write_wav(stem_path(staged, ".music.wav"), music, OUTPUT_SAMPLE_RATE)
        with watch.stage("mix"):
            dialogue = (media.read_audio(info.path, OUTPUT_SAMPLE_RATE, channels=2)
                        if info.has_audio and not self.options.replace_audio else None)
            mixed = mix(dialogue, music, OUTPUT_SAMPLE_RATE, cfg.mix, replace_audio=dialogue is None,
                        fade_out_seconds=cfg.music.fade_out_seconds)
            media.write_wav(stem_path(staged, ".mix.wav"), mixed, OUTPUT_SAMPLE_RATE)
            media.mux(info.path, stem_path(staged, ".mix.wav"), staged)

    def _write_timeline(self, info: media.VideoInfo, timeline: Any, staged: Path, watch: Stopwatch,
                        warnings: list[str]) -> None:
        import json

        from emoscore.plot import plot_timeline, write_png
        from emoscore.timeline import timeline_to_csv, timeline_to_json

        with watch.stage("outputs"):
            meta = self.run_record(info, warnings)
            data = timeline_to_json(timeline, meta)
            stem_path(staged, ".timeline.json").write_text(json.dumps(data, indent=2) + "\n")
            stem_path(staged, ".timeline.csv").write_text(timeline_to_csv(timeline))
            write_png(stem_path(staged, ".timeline.png"), plot_timeline(timeline))

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

