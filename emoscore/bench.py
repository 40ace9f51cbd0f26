"""`make bench`: whole-process wall time and peak memory of `emoscore score` at three lengths.

For each clip (the 5 s sample clip, a 66 s 1280x720 clip and a 10 min 1280x720 clip, the long ones built
from the sample clips and cached in --work): the first run of a fresh `emoscore score` process (with an
empty numba cache, as after installing), then the median of --runs more fresh processes, each process's
peak RSS (its largest process, ffmpeg children included), and the floor: what ffmpeg alone needs to decode
the sampled frames and the audio and to mux the new audio track beside the copied video (median of --runs).
Prints the ratios against the issue-11 targets. Run: python -m emoscore.bench [--runs 3] [--lengths 5,66,600]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emoscore import media
from emoscore.config import load_config

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "emoscore-bench"
# Targets of issue 11.
SHORT_TARGET_S = 1.5  # whole process for the 5 s clip
REALTIME_TARGET = 10.0  # x real time for the 66 s 720p clip
FLOOR_RATIO_TARGET = 2.5
RSS_TARGET_MB = 500.0
FIRST_RUN_RATIO_TARGET = 2.0
RESCORE_RATIO_TARGET = 1 / 3  # issue 12: re-scoring from an edited timeline against a full run


@dataclass(frozen=True)
class Measured:
    clip: Path
    duration: float
    size: str
    first_s: float
    runs_s: list[float]
    peak_rss_mb: float
    floor_s: float

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)


def build_clip(seconds: float, out: Path) -> Path:
    """A 1280x720 25 fps H.264 + AAC clip of `seconds`: the two sample clips alternating (so it has cuts).

    One 10 s cycle is encoded, then repeated with stream copy, so building needs little memory.
    """
    if out.exists():
        return out
    clips = [SAMPLES / "talking-head-a.mp4", SAMPLES / "talking-head-b.mp4"]
    scale = "scale=720:720,pad=1280:720:280:0,setsar=1,fps=25"
    graph = "".join(f"[{i}:v]{scale}[v{i}];[{i}:a]aresample=44100[a{i}];" for i in range(2))
    graph += "[v0][a0][v1][a1]concat=n=2:v=1:a=1[v][a]"
    cycle = out.with_name("cycle.mp4")
    if not cycle.exists():
        _ffmpeg(*sum((["-i", str(c)] for c in clips), []), "-filter_complex", graph, "-map", "[v]", "-map", "[a]",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-c:a", "aac", str(cycle))
    _ffmpeg("-stream_loop", "-1", "-i", str(cycle), "-t", str(seconds), "-c", "copy", str(out))
    return out


def _ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def floor_seconds(info: media.VideoInfo, frame_rate: float, max_width: int, work: Path) -> float:
    """ffmpeg alone: decode the sampled frames, decode the speech audio, mux a new audio track (seconds)."""
    width, height = media.frame_size(info, max_width)
    start = time.perf_counter()
    _ffmpeg("-i", str(info.path), "-map", "0:v:0", "-vf", f"fps={frame_rate},scale={width}:{height}",
            "-f", "rawvideo", "-pix_fmt", "bgr24", os.devnull)
    _ffmpeg("-i", str(info.path), "-map", "0:a:0", "-ac", "1", "-ar", "16000", "-f", "f32le", os.devnull)
    _ffmpeg("-i", str(info.path), "-map", "0:v:0", "-map", "0:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "192k",
            str(work / f"floor{info.path.suffix}"))
    return time.perf_counter() - start


def score_process(clip: Path, out: Path, env: dict[str, str], *extra: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MB of its largest process) of one fresh `emoscore score` process."""
    exe = shutil.which("emoscore", path=str(Path(sys.executable).parent)) or "emoscore"
    start = time.perf_counter()
    proc = subprocess.Popen([exe, "score", str(clip), "-o", str(out), "--overwrite", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"emoscore score {clip.name} failed ({proc.returncode}): {err.decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024


def measure(clip: Path, runs: int, work: Path) -> Measured:
    config = load_config(None)
    info = media.probe(clip)
    out = work / "out"
    out.mkdir(exist_ok=True)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as numba_cache:  # first run: nothing compiled or cached yet
        first, rss = score_process(clip, out, {**env, "NUMBA_CACHE_DIR": numba_cache})
    results = [score_process(clip, out, env) for _ in range(runs)]
    floors = [floor_seconds(info, config.analysis.frame_rate, config.analysis.max_face_width, work)
              for _ in range(runs)]
    return Measured(clip, info.duration, f"{info.width}x{info.height}", first, [r[0] for r in results],
                    max([rss, *(r[1] for r in results)]), statistics.median(floors))


def report(rows: list[Measured]) -> None:
    print(f"{'clip':<22} {'length':>7} {'size':>9} {'first':>7} {'median':>7} {'x real':>7} {'floor':>6} "
          f"{'/floor':>6} {'peak RSS':>9}")
    for m in rows:
        print(f"{m.clip.name:<22} {m.duration:6.1f}s {m.size:>9} {m.first_s:6.2f}s {m.median_s:6.2f}s "
              f"{m.duration / m.median_s:6.1f}x {m.floor_s:5.2f}s {m.median_s / m.floor_s:5.1f}x "
              f"{m.peak_rss_mb:6.0f} MB")
    print("runs (s): " + "; ".join(f"{m.clip.name} " + ", ".join(f"{r:.2f}" for r in m.runs_s) for m in rows))
    print("targets (issue 11):")
    short = next((m for m in rows if m.duration <= 10), None)
    long = next((m for m in rows if 30 <= m.duration <= 120), None)
    if short is not None:
        check(f"5 s clip whole process <= {SHORT_TARGET_S} s", short.median_s, short.median_s <= SHORT_TARGET_S)
    if long is not None:
        check(f"{long.duration:.0f} s clip >= {REALTIME_TARGET:.0f}x real time", long.duration / long.median_s,
              long.duration / long.median_s >= REALTIME_TARGET)
        check(f"{long.duration:.0f} s clip <= {FLOOR_RATIO_TARGET}x the floor", long.median_s / long.floor_s,
              long.median_s / long.floor_s <= FLOOR_RATIO_TARGET)
    worst = max(m.peak_rss_mb for m in rows)
    check(f"peak RSS <= {RSS_TARGET_MB:.0f} MB at every length", worst, worst <= RSS_TARGET_MB)
    for m in rows:
        check(f"first run <= {FIRST_RUN_RATIO_TARGET}x a later run ({m.duration:.0f} s clip)",
              m.first_s / m.median_s, m.first_s / m.median_s <= FIRST_RUN_RATIO_TARGET)


def check(what: str, value: float, ok: bool) -> None:
    print(f"  {'ok  ' if ok else 'MISS'} {what:<48} {value:8.2f}")


def rescore(full: Measured, runs: int, work: Path) -> None:
    """Issue 12: fresh processes re-scoring a clip from the timeline its full run wrote (no recognition)."""
    timeline = work / "out" / f"{full.clip.stem}.timeline.json"
    out = work / "rescore"
    out.mkdir(exist_ok=True)
    times = [score_process(full.clip, out, dict(os.environ), "--timeline", str(timeline))[0] for _ in range(runs)]
    ratio = statistics.median(times) / full.median_s
    print(f"re-score from its timeline: {full.clip.name} median {statistics.median(times):.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in times)}) vs full {full.median_s:.2f} s")
    check(f"re-score < {RESCORE_RATIO_TARGET:.2f}x a full run (issue 12)", ratio, ratio < RESCORE_RATIO_TARGET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per clip after the first")
    parser.add_argument("--lengths", default="5,66,600", help="clip lengths in s; 5 is the sample clip")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="built clips are cached here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for length in (float(x) for x in args.lengths.split(",")):
        clip = SAMPLES / "talking-head-a.mp4" if length <= 5 else build_clip(length, args.work / f"bench{length:g}.mp4")
        rows.append(measure(clip, args.runs, args.work))
        print(f"measured {clip.name}", file=sys.stderr)
    report(rows)
    long = next((m for m in rows if 30 <= m.duration <= 120), None)
    if long is not None:
        rescore(long, args.runs, args.work)
    print(f"(bench process itself: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
