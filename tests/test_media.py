"""Media I/O on real files through ffmpeg, and every kind of bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from emoscore import media
from emoscore.errors import EmptyMediaError, InputError, NotAVideoError, NoVideoStreamError


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def test_ffmpeg_is_imageio_ffmpeg_s_found_without_running_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    calls: list[object] = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    media.ffmpeg_exe.cache_clear()
    try:
        found = media.ffmpeg_exe()
        assert not calls  # no `ffmpeg -version` check
        monkeypatch.undo()
        assert found == imageio_ffmpeg.get_ffmpeg_exe()
        monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/opt/my/ffmpeg")
        media.ffmpeg_exe.cache_clear()
        assert media.ffmpeg_exe() == "/opt/my/ffmpeg"
    finally:
        monkeypatch.undo()
        media.ffmpeg_exe.cache_clear()


def test_probe_reads_the_sample_clip(clip_a: Path) -> None:
    info = media.probe(clip_a)
    assert (info.width, info.height, info.fps, info.has_audio) == (844, 844, 25.0, True)
    assert info.duration == pytest.approx(5.0, abs=0.05)


def test_frames_are_sampled_at_the_requested_rate(clip_b: Path) -> None:
    info = media.probe(clip_b)
    frames = list(media.iter_frames(info, 4.0, max_width=320))
    assert len(frames) == pytest.approx(info.duration * 4, abs=1)
    t, frame = frames[-1]
    assert frame.shape == (320, 320, 3) and frame.dtype == np.uint8
    assert t == pytest.approx((len(frames) - 1) / 4)


def test_audio_decodes_at_16k_mono_and_44k_stereo(clip_b: Path) -> None:
    info = media.probe(clip_b)
    speech = media.read_audio(clip_b, 16000)
    stereo = media.read_audio(clip_b, 44100, channels=2)
    assert speech.ndim == 1 and len(speech) == pytest.approx(info.duration * 16000, rel=0.02)
    assert stereo.shape[1] == 2 and np.abs(speech).max() > 0.05


@pytest.mark.parametrize("content, error", [(b"", NotAVideoError), (b"hello, not a video" * 100, NotAVideoError)])
def test_garbage_is_not_a_video(tmp_path: Path, content: bytes, error: type) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(error):
        media.probe(path)


def test_truncated_video_is_refused(tmp_path: Path, clip_a: Path) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(clip_a.read_bytes()[:50_000])
    with pytest.raises(NotAVideoError):
        media.probe(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        media.probe(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="folder"):
        media.probe(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path, clip_b: Path) -> None:
    path = tmp_path / "audio.m4a"
    ffmpeg("-i", str(clip_b), "-vn", "-c:a", "copy", str(path))
    with pytest.raises(NoVideoStreamError):
        media.probe(path)


def test_zero_duration_is_refused(tmp_path: Path, clip_b: Path) -> None:
    path = tmp_path / "empty.mp4"
    ffmpeg("-i", str(clip_b), "-frames:v", "0", "-an", "-c:v", "copy", str(path))
    with pytest.raises((EmptyMediaError, NotAVideoError, NoVideoStreamError)):
        media.probe(path)


def test_mux_copies_the_video_stream_bit_for_bit(tmp_path: Path, clip_b: Path) -> None:
    info = media.probe(clip_b)
    wav = tmp_path / "tone.wav"
    t = np.arange(int(info.duration * 44100)) / 44100
    media.write_wav(wav, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.1, 44100)
    out = tmp_path / "out.mp4"
    media.mux(clip_b, wav, out)
    assert video_stream_md5(out) == video_stream_md5(clip_b)
    assert media.probe(out).duration == pytest.approx(info.duration, abs=0.05)


def video_stream_md5(path: Path) -> str:
    proc = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path),
                           "-map", "0:v:0", "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True,
                          check=True)
    return proc.stdout.strip()
