"""Media I/O through the ffmpeg binary shipped in imageio-ffmpeg: probe, decode sampled frames,
decode speech audio, write/read wav, and mux a new audio track beside the input's copied streams.

Every path handed to ffmpeg goes through `ff_path` ("file:" prefix), so a name like "12:30 talk.mp4" is
a file, never a protocol. Times are on the input's timeline (ffmpeg shifts its earliest stream start to 0):
audio that starts after the video is padded with silence at its start, so it stays in sync."""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoscore.constants import AUDIO_SAMPLE_RATE
from emoscore.errors import (
    EmptyMediaError,
    InputError,
    MediaToolError,
    NotAVideoError,
    NoVideoStreamError,
    OutputError,
)

# The name prefix of imageio-ffmpeg's bundled binary per sys.platform.
_BUNDLED_FFMPEG = {"linux": "ffmpeg-linux", "darwin": "ffmpeg-macos", "win32": "ffmpeg-win"}


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg binary: $IMAGEIO_FFMPEG_EXE, else the one bundled in imageio-ffmpeg, found without importing or
    running anything (imageio_ffmpeg.get_ffmpeg_exe runs `ffmpeg -version` to check it, ~10-30 ms in every
    process), else whatever imageio_ffmpeg.get_ffmpeg_exe finds (a conda or system ffmpeg)."""
    import importlib.util
    import os
    import sys

    if exe := os.environ.get("IMAGEIO_FFMPEG_EXE"):
        return exe
    spec = importlib.util.find_spec("imageio_ffmpeg")
    prefix = _BUNDLED_FFMPEG.get(sys.platform)
    if spec is not None and spec.origin and prefix:
        for path in sorted((Path(spec.origin).parent / "binaries").glob(f"{prefix}*")):
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ff_path(path: Path | str) -> str:
    """`path` as an ffmpeg input/output name that is never read as a URL or protocol ("a:b.mp4")."""
    return f"file:{path}"


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the container, as ffmpeg lists it. start in seconds (None when ffmpeg shows none)."""

    index: int  # the stream's index in the file (ffmpeg's #0:index)
    kind: str  # "video", "audio", "subtitle", "data" or "attachment"
    codec: str
    language: str | None = None
    start: float | None = None
    default: bool = False  # the "default" disposition (the track a player picks)


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports about a file. Times in seconds, sizes in pixels."""

    path: Path
    duration: float
    width: int
    height: int
    fps: float  # average frame rate (ffmpeg's "fps", falling back to "tbr")
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    variable_frame_rate: bool = False  # ffmpeg's average rate differs from its base rate (tbr)
    rotation: int = 0  # display rotation of the first video stream in degrees: 0, 90, 180 or 270
    streams: tuple[StreamInfo, ...] = ()
    start: float = 0.0  # the container's start time (its earliest stream), which ffmpeg maps to time 0

    @property
    def video_offset(self) -> float:
        """Seconds from time 0 to the first video frame (> 0 when the picture starts after the sound)."""
        video = next((s for s in self.streams if s.kind == "video"), None)
        return max(0.0, video.start - self.start) if video is not None and video.start is not None else 0.0

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as the video is shown, after its rotation metadata (what ffmpeg decodes to)."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_START = re.compile(r"Duration: .*?, start: (-?[\d.]+)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)")
_STREAM = re.compile(r"^\s*Stream #\d+:(\d+)\S*?(?:\((\w+)\))?: (\w+): (\w+)(.*)$")
_STREAM_START = re.compile(r", start (-?[\d.]+)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_ROTATE_TAG = re.compile(r"^\s*rotate\s*: (-?\d+)")


def parse_streams(text: str) -> tuple[tuple[StreamInfo, ...], dict[int, int]]:
    """Streams listed in ffmpeg's `-i` report, and the display rotation (degrees, 0..270) of each stream."""
    streams: list[StreamInfo] = []
    rotation: dict[int, int] = {}
    for line in text.splitlines():
        match = _STREAM.match(line)
        if match:
            index, language, kind, codec, rest = match.groups()
            start = _STREAM_START.search(rest)
            streams.append(StreamInfo(int(index), kind.lower(), codec, None if language in (None, "und")
                                      else language, float(start.group(1)) if start else None,
                                      "(default)" in rest))
            continue
        turn = _ROTATION.search(line) or _ROTATE_TAG.match(line)
        if turn and streams:
            rotation[streams[-1].index] = int(round(float(turn.group(1)))) % 360
    return tuple(sorted(streams, key=lambda s: s.index)), rotation  # stream groups list out of order


def probe(path: Path) -> VideoInfo:
    """Read the container header. Raises InputError subclasses for anything that is not a usable video."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"expected a video file, got a folder: {path}")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", ff_path(path)],
                          capture_output=True, text=True, errors="replace")
    text = proc.stderr
    if "Invalid data found" in text or "moov atom not found" in text or "Input #0" not in text:
        last = text.strip().splitlines()[-1] if text.strip() else "unknown format"
        raise NotAVideoError(f"not a readable video: {path} ({last.split(': ')[-1]})")
    video = _VIDEO.search(text)
    if video is None:
        raise NoVideoStreamError(f"no video stream in {path}")
    duration_match = _DURATION.search(text)
    duration = 0.0
    if duration_match:
        h, m, s = duration_match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    if duration <= 0:
        raise EmptyMediaError(f"video has zero duration: {path}")
    video_line = next(line for line in text.splitlines() if ": Video: " in line)
    rates = {kind: float(v) * (1000 if k else 1) for v, k, kind in _FPS.findall(video_line)}
    fps = rates.get("fps") or rates.get("tbr") or 25.0
    vfr = "fps" in rates and "tbr" in rates and abs(rates["fps"] - rates["tbr"]) > 0.01 * rates["tbr"]
    audio = _AUDIO.search(text)
    streams, rotations = parse_streams(text)
    first_video = next((s.index for s in streams if s.kind == "video"), -1)
    start = _START.search(text)
    return VideoInfo(path=path, duration=duration, width=int(video.group(2)), height=int(video.group(3)),
                     fps=fps, video_codec=video.group(1), has_audio=audio is not None,
                     audio_codec=audio.group(1) if audio else None, variable_frame_rate=vfr,
                     rotation=rotations.get(first_video, 0), streams=streams,
                     start=float(start.group(1)) if start else 0.0)


def _run_pipe(args: list[str], what: str) -> bytes:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args], capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaToolError(f"ffmpeg failed to {what}: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def read_audio(path: Path, sample_rate: int = AUDIO_SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """Decode the first audio stream to float32 in [-1, 1]: shape (n,) for mono, (n, channels) otherwise.

    Sample 0 is time 0 of the input's timeline: audio that starts late is preceded by silence.
    """
    raw = _run_pipe(["-i", ff_path(path), "-map", "0:a:0", "-vn", "-af", "aresample=first_pts=0",
                     "-ac", str(channels), "-ar", str(sample_rate), "-f", "f32le", "-"],
                    f"decode audio from {path}")
    audio = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return audio if channels == 1 else audio.reshape(-1, channels)


def read_audio_lean(path: Path, sample_rate: int = AUDIO_SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """read_audio's result (same ffmpeg decode) in about half its peak memory: the samples stream from the
    pipe into one growing buffer that becomes the (writable) array without a copy."""
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", ff_path(path), "-map", "0:a:0", "-vn",
            "-af", "aresample=first_pts=0", "-ac", str(channels), "-ar", str(sample_rate), "-f", "f32le", "-"]
    buffer = bytearray()
    # stderr goes to a file, not a second pipe: ffmpeg blocked on a full stderr pipe would never end stdout
    with tempfile.TemporaryFile() as errors, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            buffer += chunk
        proc.wait()
        errors.seek(0)
        err = errors.read()
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise MediaToolError(f"ffmpeg failed to decode audio from {path}: "
                             f"{msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    audio = np.frombuffer(buffer, dtype="<f4", count=len(buffer) // 4)
    return audio if channels == 1 else audio.reshape(-1, channels)


def frame_size(info: VideoInfo, max_width: int) -> tuple[int, int]:
    """(width, height) the sampled frames are scaled to: upright, at most max_width wide, even sizes."""
    shown_width, shown_height = info.display_size
    width = min(shown_width, max_width)
    height = int(round(shown_height * width / shown_width))
    return width - width % 2, height - height % 2


def iter_frames(info: VideoInfo, frame_rate: float, max_width: int = 640,
                gray: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in s, frame) sampled at `frame_rate` per second; frames are uint8 (h, w, 3) BGR or (h, w).
    Times are on the input's timeline (the same as read_audio's): a picture that starts late starts late.

    Frames stream through a pipe one at a time, so memory does not grow with the video length. Frames
    are upright: ffmpeg applies the rotation metadata before scaling to `frame_size` (the display size).
    """
    width, height = frame_size(info, max_width)
    channels = 1 if gray else 3
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", ff_path(info.path), "-map", "0:v:0",
            "-vf", f"fps={frame_rate},scale={width}:{height}", "-f", "rawvideo",
            "-pix_fmt", "gray" if gray else "bgr24", "-"]
    size = width * height * channels
    shape = (height, width) if gray else (height, width, 3)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    offset = info.video_offset
    try:
        index = 0
        while True:
            buf = proc.stdout.read(size)
            if len(buf) < size:
                break
            yield offset + index / frame_rate, np.frombuffer(buf, dtype=np.uint8).reshape(shape)
            index += 1
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float audio ((n,) or (n, channels)) as 16-bit PCM wav; OutputError if it cannot be written
    (a full disk, a read-only folder)."""
    import soundfile

    try:
        soundfile.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    except (OSError, soundfile.SoundFileError) as exc:
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None


def audio_codec_for(suffix: str) -> list[str]:
    """ffmpeg audio encoder arguments that the container `suffix` accepts."""
    if suffix.lower() == ".webm":
        return ["-c:a", "libopus", "-b:a", "160k"]
    return ["-c:a", "aac", "-b:a", "192k"]


# Stream kinds copied from the input into the scored video: all of them, then (only if the container refuses
# some, e.g. an .mp4 timecode track) fewer; mux() reports what it had to leave out.
KEPT_STREAM_KINDS = ("video", "audio", "subtitle", "data", "attachment")
FALLBACK_STREAM_KINDS = (("video", "audio", "subtitle"), ("video", "audio"))


def stream_maps(info: VideoInfo, kinds: tuple[str, ...] = KEPT_STREAM_KINDS) -> list[str]:
    """ffmpeg -map/-map_metadata arguments: every input stream of `kinds` in its order with its tags, the first
    audio track replaced by input 1's audio (with that track's tags and default flag; appended if none)."""
    args: list[str] = []
    kept = [s for s in info.streams if s.kind in kinds] or [StreamInfo(0, "video", "")]
    first_audio = next((s for s in kept if s.kind == "audio"), None)
    for out_index, stream in enumerate(kept):
        args += ["-map", "1:a:0" if stream is first_audio else f"0:{stream.index}",
                 f"-map_metadata:s:{out_index}", f"0:s:{stream.index}"]
    if first_audio is None:
        return [*args, "-map", "1:a:0"]
    return [*args, "-disposition:a:0", "default" if first_audio.default else "0"]


def mux(video: Path, audio_wav: Path, output: Path, info: VideoInfo | None = None) -> list[str]:
    """Write `output`: every stream of `video` copied bit for bit (all video frames, other audio tracks,
    subtitles, metadata, rotation), with `audio_wav` in place of its first audio track.

    No -shortest: the video keeps every frame; `audio_wav` should last as long as the input (pipeline.py
    fits it to the probed duration). The new track keeps the replaced track's tags (language, title).
    Returns a note per stream the container would not take back (none in the usual case).
    """
    info = info or probe(video)
    codec = audio_codec_for(output.suffix)
    attempts = [KEPT_STREAM_KINDS, *FALLBACK_STREAM_KINDS]
    for i, kinds in enumerate(attempts):
        try:
            _run_pipe(["-y", "-i", ff_path(video), "-i", ff_path(audio_wav), *stream_maps(info, kinds),
                       "-c", "copy", f"{codec[0]}:0", codec[1], f"{codec[2]}:0", codec[3],
                       "-f", _muxer(output.suffix), ff_path(output)], f"write {output.name}")
        except MediaToolError:
            dropped_next = i + 1 < len(attempts) and any(s.kind not in attempts[i + 1] for s in info.streams)
            if not dropped_next:
                raise
            continue
        return [f"{s.kind} stream #{s.index} ({s.codec}) could not be copied into {output.suffix} and was left out"
                for s in info.streams if s.kind not in kinds]
    raise AssertionError("unreachable")


def _muxer(suffix: str) -> str:
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}.get(suffix.lower(), "mp4")


# --- Streams: audio that never has to be held whole ----------------------------------------------

STREAM_BLOCK = 1 << 18  # samples per block read from or written to a stream file (~6 s at 44.1 kHz)


def decode_audio_file(path: Path, dest: Path, sample_rate: int, channels: int = 2) -> int:
    """Decode the first audio stream (as read_audio) into `dest` as raw little-endian float32, interleaved
    (n, channels); returns n. ffmpeg writes the file itself, so nothing grows in this process."""
    _run_pipe(["-y", "-i", ff_path(path), "-map", "0:a:0", "-vn", "-af", "aresample=first_pts=0",
               "-ac", str(channels), "-ar", str(sample_rate), "-f", "f32le", ff_path(dest)],
              f"decode audio from {path}")
    return Path(dest).stat().st_size // (4 * channels)


def raw_blocks(path: Path, channels: int, n: int | None = None, dtype: str = "<f4",
               block: int = STREAM_BLOCK) -> Iterator[np.ndarray]:
    """(m, channels) float32 blocks of a raw interleaved file (float32, or int16 scaled by 1 / 32768 as
    fluidsynth's samples are), m <= block; with `n`, the stream is trimmed or zero-padded to n samples."""
    scale = np.float32(32768.0) if np.dtype(dtype).kind == "i" else None
    done = 0
    with open(path, "rb") as f:
        while n is None or done < n:
            want = block if n is None else min(block, n - done)
            data = np.fromfile(f, dtype=dtype, count=want * channels)
            got = len(data) // channels
            if got == 0 and n is None:
                return
            out = np.zeros((want if n is not None else got, channels), dtype=np.float32)
            values = data[:got * channels].reshape(got, channels)
            out[:got] = values.astype(np.float32) / scale if scale is not None else values
            done += len(out)
            yield out


class WavWriter:
    """A 16-bit PCM wav written a block at a time (float blocks, clipped to [-1, 1] as write_wav does, so the
    file is byte for byte write_wav's); OutputError if it cannot be written."""

    def __init__(self, path: Path, sample_rate: int, channels: int = 2) -> None:
        import soundfile

        self.path = Path(path)
        try:
            self._file = soundfile.SoundFile(str(path), "w", sample_rate, channels, subtype="PCM_16", format="WAV")
        except (OSError, soundfile.SoundFileError) as exc:
            raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None

    def write(self, block: np.ndarray) -> None:
        import soundfile

        try:
            self._file.write(np.clip(block, -1.0, 1.0))
        except (OSError, soundfile.SoundFileError) as exc:
            raise OutputError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fit_blocks(blocks: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """The (m, c) blocks of a signal trimmed or zero-padded at the end to n samples (mixing.fit_length)."""
    done, channels = 0, 2
    for block in blocks:
        channels = block.shape[1] if block.ndim == 2 else 1
        if done < n:
            yield block[:n - done]
        done += len(block)
    while done < n:
        count = min(STREAM_BLOCK, n - done)
        yield np.zeros((count, channels) if channels > 1 else count, dtype=np.float32)
        done += count
