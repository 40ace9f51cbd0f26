"""Media I/O through the ffmpeg binary shipped in imageio-ffmpeg: probe, decode sampled frames,
decode speech audio, write/read wav, and mux a new audio track beside a copied video stream."""

from __future__ import annotations

import functools
import re
import subprocess
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
)


@functools.cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


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

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)")


def probe(path: Path) -> VideoInfo:
    """Read the container header. Raises InputError subclasses for anything that is not a usable video."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"expected a video file, got a folder: {path}")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
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
    return VideoInfo(path=path, duration=duration, width=int(video.group(2)), height=int(video.group(3)),
                     fps=fps, video_codec=video.group(1), has_audio=audio is not None,
                     audio_codec=audio.group(1) if audio else None, variable_frame_rate=vfr)


def _run_pipe(args: list[str], what: str) -> bytes:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args], capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaToolError(f"ffmpeg failed to {what}: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def read_audio(path: Path, sample_rate: int = AUDIO_SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """Decode the first audio stream to float32 in [-1, 1]: shape (n,) for mono, (n, channels) otherwise."""
    raw = _run_pipe(["-i", str(path), "-map", "0:a:0", "-vn", "-ac", str(channels), "-ar", str(sample_rate),
                     "-f", "f32le", "-"], f"decode audio from {path}")
    audio = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return audio if channels == 1 else audio.reshape(-1, channels)


def frame_size(info: VideoInfo, max_width: int) -> tuple[int, int]:
    """(width, height) the sampled frames are scaled to: at most max_width wide, even sizes."""
    width = min(info.width, max_width)
    height = int(round(info.height * width / info.width))
    return width - width % 2, height - height % 2


def iter_frames(info: VideoInfo, frame_rate: float, max_width: int = 640,
                gray: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in s, frame) sampled at `frame_rate` per second; frames are uint8 (h, w, 3) BGR or (h, w).

    Frames stream through a pipe one at a time, so memory does not grow with the video length.
    """
    width, height = frame_size(info, max_width)
    channels = 1 if gray else 3
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(info.path), "-map", "0:v:0",
            "-vf", f"fps={frame_rate},scale={width}:{height}", "-f", "rawvideo",
            "-pix_fmt", "gray" if gray else "bgr24", "-"]
    size = width * height * channels
    shape = (height, width) if gray else (height, width, 3)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        index = 0
        while True:
            buf = proc.stdout.read(size)
            if len(buf) < size:
                break
            yield index / frame_rate, np.frombuffer(buf, dtype=np.uint8).reshape(shape)
            index += 1
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float audio ((n,) or (n, channels)) as 16-bit PCM wav."""
    import soundfile

    soundfile.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")


def audio_codec_for(suffix: str) -> list[str]:
    """ffmpeg audio encoder arguments that the container `suffix` accepts."""
    if suffix.lower() == ".webm":
        return ["-c:a", "libopus", "-b:a", "160k"]
    return ["-c:a", "aac", "-b:a", "192k"]


def mux(video: Path, audio_wav: Path, output: Path) -> None:
    """Write `output` with `video`'s video stream copied bit for bit and `audio_wav` as its only audio track."""
    _run_pipe(["-y", "-i", str(video), "-i", str(audio_wav), "-map", "0:v:0", "-map", "1:a:0",
               "-c:v", "copy", *audio_codec_for(output.suffix), "-shortest", "-f", _muxer(output.suffix),
               str(output)], f"write {output.name}")


def _muxer(suffix: str) -> str:
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}.get(suffix.lower(), "mp4")
