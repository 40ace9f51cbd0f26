"""Nothing lost, nothing out of sync (issue 10, media part): every frame and stream of the input survives the
mux, late audio stays in sync, rotated phone clips reach the face detector upright, names with a colon are
files. Awkward inputs are built from tests/data clips with ffmpeg at test time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emoscore import media
from emoscore.errors import OutputError

SR = 16_000


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def video_packets(path: Path) -> tuple[int, str]:
    """(number of video packets, md5 of all of them) of the first video stream, without decoding."""
    def run(fmt: str) -> str:
        return subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", media.ff_path(path),
                               "-map", "0:v:0", "-c", "copy", "-f", fmt, "-"], capture_output=True, text=True,
                              check=True).stdout
    frames = [line for line in run("framemd5").splitlines() if line and not line.startswith("#")]
    return len(frames), run("md5").strip()


def best_lag(x: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """The lag (samples) at which `x` best matches `reference`: x[n] ~ reference[n - lag]."""
    n = 1 << int(np.ceil(np.log2(len(x) + len(reference))))
    cc = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(reference, n)), n)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    return int(lags[np.argmax(cc[lags])])


def tone_wav(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * 44100)) / 44100
    media.write_wav(path, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.1, 44100)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Awkward variants of talking-head-b.mp4 (5 s, 524x524, 25 fps, AAC)."""
    src = Path(__file__).parent / "data" / "talking-head-b.mp4"
    folder = tmp_path_factory.mktemp("awkward")
    late = folder / "late audio.mp4"  # the audio starts 1 s after the video
    ffmpeg("-i", str(src), "-itsoffset", "1", "-i", str(src), "-map", "0:v", "-map", "1:a", "-c", "copy",
           "-t", "4", str(late))
    sideways = folder / "sideways.mp4"  # a portrait phone clip stored landscape, turned back by metadata
    ffmpeg("-i", str(src), "-t", "2", "-vf", "crop=360:524,transpose=1", "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "copy", str(sideways))
    rotated = folder / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(sideways), "-c", "copy", str(rotated))
    upright = folder / "upright.mp4"
    ffmpeg("-i", str(src), "-t", "2", "-vf", "crop=360:524", "-c:v", "libx264", "-preset", "ultrafast",
           "-an", str(upright))
    srt = folder / "subs.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nhello\n")
    multi = folder / "12:30 two tracks.mkv"  # two audio tracks, subtitles, language tags, a colon
    ffmpeg("-i", str(src), "-i", str(src), "-i", str(srt), "-map", "0:v", "-map", "0:a", "-map", "1:a",
           "-map", "2", "-c:v", "copy", "-c:a", "copy", "-c:s", "srt", "-metadata:s:a:0", "language=eng",
           "-metadata:s:a:1", "language=fra", "-metadata:s:s:0", "language=spa", "file:" + str(multi))
    vfr = folder / "vfr.mp4"  # variable frame rate: irregular frame times (2 of every 3 frames kept)
    ffmpeg("-i", str(src), "-vf", "select='not(eq(mod(n,3),2))'", "-fps_mode", "vfr", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "copy", str(vfr))
    return {"src": src, "late": late, "rotated": rotated, "upright": upright, "multi": multi, "vfr": vfr}


@pytest.mark.parametrize("clip, seconds, n_frames", [("src", 3.0, 122), ("src", 4.88, 122), ("src", 7.0, 122),
                                                     ("vfr", 4.0, 82)])
def test_mux_keeps_every_video_frame_whatever_the_audio_length(tmp_path: Path, clips: dict[str, Path], clip: str,
                                                               seconds: float, n_frames: int) -> None:
    out = tmp_path / "out.mp4"
    media.mux(clips[clip], tone_wav(tmp_path / "tone.wav", seconds), out)
    frames, md5 = video_packets(clips[clip])
    assert video_packets(out) == (frames, md5) and frames == n_frames


def test_late_audio_is_read_on_the_video_timeline(clips: dict[str, Path]) -> None:
    info = media.probe(clips["late"])
    audio = next(s for s in info.streams if s.kind == "audio")
    assert audio.start == pytest.approx(1.0, abs=0.05)
    late, original = media.read_audio(clips["late"], SR), media.read_audio(clips["src"], SR)
    assert best_lag(late, original, SR * 2) == pytest.approx(SR, abs=SR // 100)  # 1 s of silence first
    assert np.abs(late[: SR * 9 // 10]).max() < 1e-3


def test_late_video_frames_carry_their_time(tmp_path: Path, clips: dict[str, Path]) -> None:
    late = tmp_path / "late video.mp4"  # the picture starts 1 s after the sound
    ffmpeg("-itsoffset", "1", "-i", str(clips["src"]), "-i", str(clips["src"]), "-map", "0:v", "-map", "1:a",
           "-c", "copy", str(late))
    info = media.probe(late)
    assert info.video_offset == pytest.approx(1.0, abs=0.05)
    assert media.probe(clips["src"]).video_offset == 0.0
    times = [t for t, _ in media.iter_frames(info, 4.0, max_width=160)]
    assert times[0] == pytest.approx(1.0, abs=0.05) and times[1] - times[0] == pytest.approx(0.25)


def test_late_audio_stays_in_sync_through_the_mux(tmp_path: Path, clips: dict[str, Path]) -> None:
    wav = tmp_path / "mix.wav"
    media.write_wav(wav, media.read_audio(clips["late"], 44100, channels=2), 44100)
    out = tmp_path / "out.mp4"
    media.mux(clips["late"], wav, out)
    assert best_lag(media.read_audio(out, SR), media.read_audio(clips["late"], SR), SR) == 0
    assert video_packets(out) == video_packets(clips["late"])


def test_rotation_is_honoured_for_the_face_detector(clips: dict[str, Path]) -> None:
    from emoscore.face import FaceLandmarker

    info = media.probe(clips["rotated"])
    assert info.rotation in (90, 270) and (info.width, info.height) == (524, 360)
    assert info.display_size == (360, 524) == media.probe(clips["upright"]).display_size
    turned = [f for _, f in media.iter_frames(info, 2.0, max_width=360)]
    upright = [f for _, f in media.iter_frames(media.probe(clips["upright"]), 2.0, max_width=360)]
    assert turned[0].shape == upright[0].shape == (524, 360, 3)
    assert np.abs(turned[0].astype(int) - upright[0].astype(int)).mean() < 8  # same picture, upright
    landmarker = FaceLandmarker()
    assert all(landmarker.detect(frame) is not None for frame in turned)


def test_mux_keeps_the_rotation(tmp_path: Path, clips: dict[str, Path]) -> None:
    out = tmp_path / "out.mp4"
    media.mux(clips["rotated"], tone_wav(tmp_path / "tone.wav", 2.0), out)
    assert media.probe(out).rotation == media.probe(clips["rotated"]).rotation
    assert video_packets(out) == video_packets(clips["rotated"])


def test_every_stream_and_tag_is_kept_and_the_first_audio_replaced(tmp_path: Path, clips: dict[str, Path]) -> None:
    out = tmp_path / "12:31 out.mkv"
    media.mux(clips["multi"], tone_wav(tmp_path / "tone.wav", 4.9), out)
    before, after = media.probe(clips["multi"]).streams, media.probe(out).streams
    assert [(s.kind, s.language) for s in after] == [(s.kind, s.language) for s in before] == [
        ("video", None), ("audio", "eng"), ("audio", "fra"), ("subtitle", "spa")]
    first = media.read_audio(out, SR)  # the tone replaced the dialogue of track 1
    spectrum = np.abs(np.fft.rfft(first[:SR]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)
    second = copy_stream_md5(out, "0:a:1")
    assert second == copy_stream_md5(clips["multi"], "0:a:1")  # the second track copied bit for bit
    assert video_packets(out) == video_packets(clips["multi"])


@pytest.mark.parametrize("suffix", [".mov", ".mp4"])
def test_a_timecode_track_never_stops_the_mux(tmp_path: Path, clips: dict[str, Path], suffix: str) -> None:
    clip = tmp_path / f"timecode{suffix}"  # cameras and phones add a timecode (data) track; .mp4 cannot copy it
    ffmpeg("-i", str(clips["src"]), "-c", "copy", "-timecode", "01:00:00:00", str(clip))
    assert [s.kind for s in media.probe(clip).streams] == ["video", "audio", "data"]
    out = tmp_path / f"out{suffix}"
    notes = media.mux(clip, tone_wav(tmp_path / "tone.wav", 4.88), out)
    assert video_packets(out) == video_packets(clip)
    kinds = [s.kind for s in media.probe(out).streams]
    assert kinds[:2] == ["video", "audio"] and ("data" in kinds or "data stream" in " ".join(notes))


def copy_stream_md5(path: Path, spec: str) -> str:
    return subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", media.ff_path(path),
                           "-map", spec, "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_name_with_a_colon_is_a_file_not_a_protocol(tmp_path: Path, clips: dict[str, Path]) -> None:
    path = tmp_path / "12:30 interview.mp4"
    shutil.copy(clips["src"], path)
    info = media.probe(path)
    assert info.duration == pytest.approx(4.88, abs=0.05)
    assert len(media.read_audio(path, SR)) > SR * 4
    assert len(list(media.iter_frames(info, 1.0, max_width=160))) == 5
    out = tmp_path / "13:00 out.mp4"
    media.mux(path, tone_wav(tmp_path / "a:b.wav", 4.88), out)
    assert video_packets(out) == video_packets(path)
    relative = Path("http:x.mp4")
    assert media.ff_path(relative) == "file:http:x.mp4"


def test_a_full_disk_is_an_output_error() -> None:
    with pytest.raises(OutputError, match="cannot write"):
        media.write_wav(Path("/dev/full"), np.zeros((44100, 2), np.float32), 44100)
