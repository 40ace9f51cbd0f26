"""End to end: the real CLI scores real clips with the shipped checkpoints.

The timeline of talking-head-b.mp4 under seed 0 is compared with a golden file; regenerate it after
retraining a model with `EMOSCORE_REGEN_GOLDEN=1 pytest tests/test_score.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_media import video_stream_md5
from typer.testing import CliRunner

from emoscore import errors, media
from emoscore.cli import app
from emoscore.constants import EMOTIONS
from emoscore.pipeline import STEM_SUFFIXES, stem_path

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "data" / "golden" / "talking-head-b.timeline.json"
runner = CliRunner()


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("scored")
    source = Path(__file__).parent / "data" / "talking-head-b.mp4"
    output = folder / "b.scored.mp4"
    result = runner.invoke(app, ["score", str(source), "-o", str(output), "--seed", "0"])
    assert result.exit_code == 0, result.output
    return source, output, result.output


def test_all_outputs_are_written(scored: tuple[Path, Path, str]) -> None:
    _, output, _ = scored
    for suffix in STEM_SUFFIXES:
        assert stem_path(output, suffix).stat().st_size > 0, suffix
    assert not [p for p in output.parent.iterdir() if ".part" in p.name]


def test_video_is_copied_and_duration_kept(scored: tuple[Path, Path, str]) -> None:
    source, output, _ = scored
    assert video_stream_md5(output) == video_stream_md5(source)
    src, out = media.probe(source), media.probe(output)
    assert out.duration == pytest.approx(src.duration, abs=1 / src.fps + 0.03)
    music = media.read_audio(stem_path(output, ".music.wav"), 44100, channels=2)
    assert len(music) == round(src.duration * 44100)
    assert np.abs(music).max() > 0.01


def test_dialogue_is_still_there(scored: tuple[Path, Path, str]) -> None:
    source, output, _ = scored
    original = media.read_audio(source, 16000)
    mixed = media.read_audio(output, 16000)
    n = min(len(original), len(mixed))
    correlation = np.corrcoef(original[:n], mixed[:n])[0, 1]
    assert correlation > 0.6  # the music sits under the voice, it does not replace it


def test_timeline_matches_golden(scored: tuple[Path, Path, str]) -> None:
    _, output, _ = scored
    data = json.loads(stem_path(output, ".timeline.json").read_text())
    if os.environ.get("EMOSCORE_REGEN_GOLDEN"):
        GOLDEN.write_text(json.dumps(data, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert [s["quadrant"] for s in data["segments"]] == [s["quadrant"] for s in golden["segments"]]
    for got, want in zip(data["segments"], golden["segments"], strict=True):
        assert got["start"] == pytest.approx(want["start"], abs=0.01)
        assert got["end"] == pytest.approx(want["end"], abs=0.01)
    got_probs = np.array([[w[e] for e in EMOTIONS] for w in data["windows"]])
    want_probs = np.array([[w[e] for e in EMOTIONS] for w in golden["windows"]])
    np.testing.assert_allclose(got_probs, want_probs, atol=2e-3)
    assert data["meta"]["models"] == golden["meta"]["models"]


def test_existing_output_is_not_overwritten(scored: tuple[Path, Path, str]) -> None:
    source, output, _ = scored
    before = output.read_bytes()
    result = runner.invoke(app, ["score", str(source), "-o", str(output)])
    assert result.exit_code == errors.OutputError.exit_code
    assert "exists" in result.output and output.read_bytes() == before


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def test_batch_carries_on_past_bad_files_and_skips_done(tmp_path: Path, clip_a: Path) -> None:
    videos = tmp_path / "in"
    videos.mkdir()
    ffmpeg("-i", str(clip_a), "-t", "3", "-an", "-c:v", "copy", str(videos / "silent.mp4"))  # no audio
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=320x240:d=3", "-i", str(clip_a), "-map", "0:v", "-map", "1:a",
           "-t", "3", "-c:v", "libx264", "-c:a", "aac", str(videos / "noface.mkv"))  # voice, no face
    (videos / "broken.mp4").write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    result = runner.invoke(app, ["score", str(videos), "-o", str(out), "--jobs", "2"])
    assert result.exit_code == errors.NotAVideoError.exit_code, result.output
    assert (out / "silent.mp4").exists() and (out / "noface.mkv").exists()
    assert not (out / "broken.mp4").exists()
    lines = result.output
    assert "failed" in lines and "broken.mp4" in lines and "2 done, 0 skipped, 1 failed" in lines
    assert "no audio stream" in lines and "no face" in lines
    assert media.probe(out / "silent.mp4").has_audio  # the music is its audio now
    again = runner.invoke(app, ["score", str(videos), "-o", str(out)])
    assert "0 done, 2 skipped, 1 failed" in again.output


def test_interrupted_run_leaves_nothing(tmp_path: Path, clip_b: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import emoscore.mixing

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(emoscore.mixing, "mix_blocks", interrupt)  # the streaming mix the pipeline runs
    shutil.copy(clip_b, tmp_path / "in.mp4")
    result = runner.invoke(app, ["score", str(tmp_path / "in.mp4")])
    assert result.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_batch_plan_keeps_outputs_of_same_named_videos_apart(tmp_path: Path) -> None:
    from emoscore.batch import plan

    for name in ("clip.mp4", "clip.mov", "other.mkv", "clip.scored.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    beside = {i.name: o.name for i, o in plan(tmp_path, None)}
    assert beside == {"clip.mov": "clip-mov.scored.mov", "clip.mp4": "clip-mp4.scored.mp4",
                      "other.mkv": "other.scored.mkv"}
    elsewhere = {i.name: o for i, o in plan(tmp_path, tmp_path / "out")}
    assert elsewhere["other.mkv"] == tmp_path / "out" / "other.mkv"
    assert elsewhere["clip.mov"] == tmp_path / "out" / "clip-mov.mov"
