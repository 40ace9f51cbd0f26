"""Every failure is one line (issue 10, command-line part): awkward inputs end to end, names too long,
a batch that carries on past anything, options and settings refused up front, SIGTERM/SIGHUP like Ctrl-C
in single and batch runs, two runs on one output, unreadable checkpoints. Clips are built from tests/data
with ffmpeg at test time."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from test_media_streams import best_lag, ffmpeg, video_packets
from typer.testing import CliRunner

from emoscore import errors, media
from emoscore.batch import descendants
from emoscore.cli import app, handle_errors
from emoscore.fileio import claim_output, claim_path, dumps_json

runner = CliRunner()
SR = 16_000
EMOSCORE = [sys.executable, "-c", "from emoscore.cli import main; main()"]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def one_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out, out
    return lines[0]


def wait_for(condition: Callable[[], bool], timeout: float = 90.0, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(poll)


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(*args: str, tmpdir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.Popen([*EMOSCORE, "score", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


# --- awkward media end to end ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portrait phone clip stored sideways with rotation metadata, audio starting 1 s late, a second audio
    track (fra), subtitles, language tags and a colon in its name."""
    src = Path(__file__).parent / "data" / "talking-head-b.mp4"
    folder = tmp_path_factory.mktemp("phone")
    sideways = folder / "sideways.mp4"
    ffmpeg("-i", str(src), "-vf", "crop=360:524,transpose=1", "-c:v", "libx264", "-preset", "ultrafast", "-an",
           str(sideways))
    srt = folder / "subs.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nhello\n")
    clip = folder / "12:30 phone clip.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(sideways), "-itsoffset", "1", "-i", str(src), "-i", str(src),
           "-i", str(srt), "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3", "-c:v", "copy", "-c:a", "copy",
           "-c:s", "mov_text", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
           "-metadata:s:s:0", "language=spa", "file:" + str(clip))
    return clip


@pytest.mark.slow
def test_awkward_phone_clip_end_to_end(tmp_path: Path, phone_clip: Path) -> None:
    out = tmp_path / "13:00 scored.mp4"
    proc = subprocess.run([*EMOSCORE, "score", str(phone_clip), "-o", str(out), "--music-gain", "-20"],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "UserWarning" not in proc.stderr
    assert video_packets(out) == video_packets(phone_clip)  # every frame, bit for bit
    before, after = media.probe(phone_clip), media.probe(out)
    assert after.rotation == before.rotation == 90
    assert [(s.kind, s.language) for s in after.streams] == [(s.kind, s.language) for s in before.streams] == [
        ("video", None), ("audio", "eng"), ("audio", "fra"), ("subtitle", "spa")]
    lag = best_lag(media.read_audio(out, SR), media.read_audio(phone_clip, SR), SR * 2)
    assert abs(lag) <= SR // 1000  # the dialogue under the music is where the input had it (lip sync)
    text = (out.parent / f"{out.stem}.timeline.json").read_text()
    timeline = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON token {c}"))
    assert all(w["visual_present"] for w in timeline["windows"])  # a face, upright, in every window
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# --- one line, never a traceback -------------------------------------------------------------------

def test_a_name_too_long_for_the_stems_is_one_line_exit_6(tmp_path: Path, clip_b: Path) -> None:
    video = tmp_path / ("x" * 240 + ".mp4")  # legal: 244 bytes; its stems would not be
    shutil.copy(clip_b, video)
    code, out = run("score", str(video))
    assert code == errors.OutputError.exit_code and "too long" in one_line(out)
    assert [p.name for p in tmp_path.iterdir()] == [video.name]


def test_batch_carries_on_past_unexpected_errors(tmp_path: Path, clip_b: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from emoscore import pipeline

    videos = tmp_path / "in"
    videos.mkdir()
    shutil.copy(clip_b, videos / ("x" * 247 + ".mp4"))  # 251 bytes: out/<name>.timeline.json would not fit
    (videos / "garbage.mp4").write_text("not a video")
    shutil.copy(clip_b, videos / "good.mp4")

    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline.Scorer, "_score_claimed", explode)
    code, out = run("score", str(videos), "-o", str(tmp_path / "out"), "-q")
    assert "Traceback" not in out
    assert "0 done, 0 skipped, 3 failed" in out and "unexpected RuntimeError: boom" in out
    assert "too long" in out and "not a readable video" in out
    assert code == errors.OutputError.exit_code
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # no claim or staging


def _raiser(exc: BaseException) -> typer.Typer:
    small = typer.Typer()

    @small.command()
    @handle_errors
    def go() -> None:
        raise exc

    return small


@pytest.mark.parametrize("exc, code, text", [
    (OSError(errno.ENOSPC, "No space left on device", "clip.mix.wav"), 6, "No space left on device"),
    (OSError(errno.EROFS, "Read-only file system", "clip.mp4"), 6, "Read-only"),
    (RuntimeError("something odd\nover two lines"), 1, "unexpected RuntimeError: something odd over two lines"),
    (MemoryError(), 1, "out of memory"),
])
def test_any_exception_is_one_line_with_its_exit_code(exc: BaseException, code: int, text: str) -> None:
    result = runner.invoke(_raiser(exc), [])
    assert result.exit_code == code and text in one_line(result.output)


def test_libsndfile_errors_are_output_errors() -> None:
    import soundfile

    result = runner.invoke(_raiser(soundfile.LibsndfileError(0x5, "Error writing clip.wav: ")), [])
    assert result.exit_code == errors.OutputError.exit_code and "cannot write" in one_line(result.output)


# --- settings and options refused up front ---------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e9", "-1e9"])
def test_music_gain_must_be_finite_and_in_range(tmp_path: Path, clip_b: Path, value: str) -> None:
    code, out = run("score", str(clip_b), "-o", str(tmp_path / "o.mp4"), "--music-gain", value)
    assert code == errors.ConfigError.exit_code == 10 and "--music-gain" in one_line(out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", [("--seed", "-1"), ("--jobs", "1000")])
def test_other_options_are_checked_with_their_range(tmp_path: Path, clip_b: Path, option: tuple[str, str]) -> None:
    code, out = run("score", str(clip_b), "-o", str(tmp_path / "o.mp4"), *option)
    assert code in (errors.ConfigError.exit_code, 2) and option[0] in out and "Traceback" not in out


@pytest.mark.parametrize("toml, name", [
    ('[music.q1]\nkey = "H major"\n', "music.q1.key"),
    ("[music.q3]\ntempo = 1.0\n", "music.q3.tempo"),
    ('[music]\nsoundfont = "/no/such/font.sf2"\n', "music.soundfont"),
    ("[mix]\nmusic_gain_db = nan\n", "mix.music_gain_db"),
    ("[mix]\nmusic_loudness_db = inf\n", "mix.music_loudness_db"),
    ("[analysis]\nframe_rate = 1e6\n", "analysis.frame_rate"),
])
def test_bad_settings_fail_before_any_work(tmp_path: Path, clip_b: Path, toml: str, name: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    start_time = time.perf_counter()
    code, out = run("score", str(clip_b), "--config", str(config), "-o", str(tmp_path / "o.mp4"))
    assert code == errors.ConfigError.exit_code and name in one_line(out)
    assert time.perf_counter() - start_time < 5.0 and not (tmp_path / "o.mp4").exists()


def test_every_json_written_is_strict() -> None:
    data = {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.array([1.0, np.nan]), "d": (float("-inf"),)}
    text = dumps_json(data)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [None, 1.5], "c": [1.0, None], "d": [None]}


# --- checkpoints verified up front -----------------------------------------------------------------

@pytest.fixture
def checkpoint_copy(tmp_path: Path, shipped_checkpoints: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the shipped checkpoints and the file of each music model in it."""
    copy = tmp_path / "ckpt"
    shutil.copytree(os.environ.get("EMOSCORE_CHECKPOINTS", shipped_checkpoints), copy)
    models = json.loads((copy / "manifest.json").read_text())["models"]
    music = {name: next(iter(entry["files"].values()))["path"] for name, entry in models.items()
             if name.startswith("music")}
    return copy, music


def test_an_unreadable_checkpoint_says_what_it_is(tmp_path: Path, clip_b: Path,
                                                  checkpoint_copy: tuple[Path, dict[str, str]]) -> None:
    copy, music = checkpoint_copy
    name, file = sorted(music.items())[-1]
    (copy / file).unlink()
    (copy / file).mkdir()  # exists, cannot be read as a file (root can read a chmod 000 file)
    code, out = run("score", str(clip_b), "--checkpoints", str(copy), "-o", str(tmp_path / "o.mp4"))
    assert code == errors.ModelError.exit_code and "cannot be read" in out and name in out
    assert "not found" not in out.lower() and "loading models" not in out


def test_music_models_are_verified_before_analysis(tmp_path: Path, clip_b: Path,
                                                   checkpoint_copy: tuple[Path, dict[str, str]]) -> None:
    copy, music = checkpoint_copy
    with open(copy / sorted(music.values())[-1], "ab") as fh:
        fh.write(b"tampered")
    code, out = run("score", str(clip_b), "--checkpoints", str(copy), "-o", str(tmp_path / "o.mp4"))
    assert code == errors.ChecksumError.exit_code and "loading models" not in out
    assert not (tmp_path / "o.mp4").exists()


# --- SIGTERM / SIGHUP ------------------------------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("signum, phase", [(signal.SIGTERM, "staging"), (signal.SIGHUP, "claimed")])
def test_a_stop_signal_cleans_up_like_ctrl_c(tmp_path: Path, clip_b: Path, signum: int, phase: str) -> None:
    out_dir, tmpdir = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir()
    tmpdir.mkdir()
    out = out_dir / "clip.mp4"
    for _ in range(3):  # the staging phase is short: a run that finished before the signal landed is tried again
        proc = start(str(clip_b), "-o", str(out), tmpdir=tmpdir)
        if phase == "staging":  # mid-way: the staging folder holds half the outputs
            wait_for(lambda: any(p.suffix == ".part" and p.is_dir() for p in out_dir.iterdir()))
        else:
            wait_for(lambda: claim_path(out).exists())
        helpers = descendants(proc.pid)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        if proc.returncode != 0:
            break
        shutil.rmtree(out_dir)
        out_dir.mkdir()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("error: terminated")
    assert leftovers(out_dir) == [] and leftovers(tmpdir) == []
    assert not any(alive(pid) for pid in helpers)  # ffmpeg children stopped too


@pytest.mark.slow
def test_sigterm_stops_batch_workers_with_the_parent(tmp_path: Path, clip_b: Path) -> None:
    videos, out_dir, tmpdir = tmp_path / "in", tmp_path / "out", tmp_path / "tmp"
    for folder in (videos, out_dir, tmpdir):
        folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(clip_b, videos / name)
    proc = start(str(videos), "-o", str(out_dir), "--jobs", "2", tmpdir=tmpdir)
    wait_for(lambda: all(claim_path(out_dir / n).exists() for n in ("a.mp4", "b.mp4")), timeout=180)
    workers = [pid for pid in children_of(proc.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2
    helpers = descendants(proc.pid)  # the workers, their face workers and ffmpeg pipes, the resource tracker
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert not any(alive(pid) for pid in workers)  # stopped and reaped before the command exited
    wait_for(lambda: not any(alive(pid) for pid in helpers), timeout=5)  # the tracker ends when its pipe closes
    time.sleep(2.0)  # nothing is written after the command has exited
    assert leftovers(out_dir) == [] and leftovers(tmpdir) == []


# --- two runs, one output --------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(tmp_path: Path, clip_b: Path) -> None:
    silent = tmp_path / "silent.mp4"  # silent audio: librosa's UserWarning must not reach the user either
    ffmpeg("-i", str(clip_b), "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-map", "0:v", "-map", "1:a",
           "-c:v", "copy", "-c:a", "aac", "-shortest", str(silent))
    out = tmp_path / "out.mp4"
    first = start(str(silent), "-o", str(out), tmpdir=tmp_path)
    wait_for(lambda: claim_path(out).exists())
    for extra in ([], ["--overwrite"]):
        code, text = run("score", str(clip_b), "-o", str(out), *extra)
        assert code == errors.OutputError.exit_code and "being written by another emoscore run" in one_line(text)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert "UserWarning" not in stderr and "Traceback" not in stderr
    assert out.exists() and not claim_path(out).exists()
    code, text = run("score", str(clip_b), "-o", str(out))
    assert code == errors.OutputError.exit_code and "exists" in one_line(text)


def test_a_claim_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "clip.mp4"
    claim_path(out).write_text(f"{dead.pid}\n")
    with claim_output(out) as claim:
        assert claim.read_text().strip() == str(os.getpid())
        with pytest.raises(errors.OutputError, match="being written"), claim_output(out):
            pass
    assert not claim.exists()


def test_the_view_thread_imports_nothing_that_changes_the_environment() -> None:
    """The timeline's picture and markers are written in a thread while ffmpeg starts; a module that sets
    os.environ on import there (OpenCV's loader does) races the spawn (execve EFAULT). warm_up_outputs must
    have imported every such module in the main thread first."""
    code = ("import os; from emoscore.pipeline import warm_up_outputs; warm_up_outputs(); before = dict(os.environ)\n"
            "import emoscore.interchange, emoscore.plot, emoscore.timeline\n"
            "assert dict(os.environ) == before, sorted(set(os.environ.items()) ^ set(before.items()))")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
