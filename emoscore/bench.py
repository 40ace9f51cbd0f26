"""`make bench`: speed and memory of `emoscore score` on a 60 s 720p clip built from the sample clips.

Prints wall time per stage, the real-time factor (video seconds per wall second, after model load),
the floor (decoding the sampled frames + muxing, which no scorer can beat), peak RSS, and a 30 s run
to check that cost grows linearly with length.  Run: python -m emoscore.bench [--seconds 60]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from emoscore import media
from emoscore.checkpoints import default_checkpoint_dir
from emoscore.config import load_config
from emoscore.pipeline import ScoreOptions, Scorer

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data"


def build_clip(seconds: float, out: Path) -> Path:
    """A 1280x720 25 fps H.264 + AAC clip of `seconds`: the two sample clips alternating (so it has cuts).

    One 10 s cycle is encoded, then repeated with stream copy, so building needs little memory.
    """
    clips = [SAMPLES / "talking-head-a.mp4", SAMPLES / "talking-head-b.mp4"]
    scale = "scale=720:720,pad=1280:720:280:0,setsar=1,fps=25"
    graph = "".join(f"[{i}:v]{scale}[v{i}];[{i}:a]aresample=44100[a{i}];" for i in range(2))
    graph += "[v0][a0][v1][a1]concat=n=2:v=1:a=1[v][a]"
    cycle = out.with_name("cycle.mp4")
    _ffmpeg(*sum((["-i", str(c)] for c in clips), []), "-filter_complex", graph, "-map", "[v]", "-map", "[a]",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-c:a", "aac", str(cycle))
    _ffmpeg("-stream_loop", "-1", "-i", str(cycle), "-t", str(seconds), "-c", "copy", str(out))
    return out


def _ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def floor_seconds(info: media.VideoInfo, frame_rate: float, max_width: int, work: Path) -> float:
    """Decode the sampled frames and mux a silent track: the least any scoring run must do."""
    start = time.perf_counter()
    for _ in media.iter_frames(info, frame_rate, max_width):
        pass
    wav = work / "silence.wav"
    media.write_wav(wav, np.zeros((int(info.duration * 44100), 2), np.float32), 44100)
    media.mux(info.path, wav, work / f"floor{info.path.suffix}")
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (ffmpeg children stream and stay small; their
    ru_maxrss would count the parent's pages they share between fork and exec)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(seconds: float) -> None:
    config = load_config(None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        scorer = Scorer(ScoreOptions(config=config, checkpoints=default_checkpoint_dir(), overwrite=True))
        scorer.load_models()
        load = time.perf_counter() - start
        print(f"model load                {load:7.2f} s")
        scorer.score(SAMPLES / "talking-head-b.mp4", work / "warmup.mp4")  # first-call compilation
        results = {}
        for length in (seconds, seconds / 2):
            clip = build_clip(length, work / f"bench{int(length)}.mp4")
            info = media.probe(clip)
            floor = floor_seconds(info, config.analysis.frame_rate, config.analysis.max_face_width, work)
            result = scorer.score(clip, work / f"scored{int(length)}.mp4")
            results[length] = (info, floor, result)
        info, floor, result = results[seconds]
        total = sum(result.timings.values())
        print(f"clip                      {info.duration:.1f} s, {info.width}x{info.height}, {info.fps:g} fps")
        for stage, spent in result.timings.items():
            print(f"  {stage:<22} {spent:7.2f} s")
        n_frames = int(info.duration * config.analysis.frame_rate)
        print(f"total (after load)        {total:7.2f} s   real-time factor {info.duration / total:5.1f}x")
        print(f"floor (decode + mux)      {floor:7.2f} s   real-time factor {info.duration / floor:5.1f}x")
        print(f"faces per sampled frame   {1000 * result.timings['faces'] / n_frames:7.1f} ms ({n_frames} frames)")
        print(f"music generated           {info.duration / result.timings['compose']:7.1f} s of music per s")
        half = sum(results[seconds / 2][2].timings.values())
        print(f"linearity                 {seconds / 2:.0f} s clip {half:.2f} s -> {seconds:.0f} s clip {total:.2f} s "
              f"(ratio {total / half:.2f}, linear = 2.00)")
        face_costs(scorer, config.analysis.frame_rate, config.analysis.max_face_width)
        print(f"peak RSS                  {peak_rss_mb():7.0f} MB")


def face_costs(scorer: Scorer, frame_rate: float, max_width: int) -> None:
    """Per-frame detection + landmarks and model cost on each sample clip at its own size."""
    from emoscore.face import frame_cost

    for clip in ("talking-head-a.mp4", "talking-head-b.mp4"):
        info = media.probe(SAMPLES / clip)
        cost = frame_cost(scorer.load_models()[0], list(media.iter_frames(info, frame_rate, max_width)))
        size = "x".join(map(str, media.frame_size(info, max_width)))
        print(f"face cost {clip:<18} {cost['total_ms']:5.1f} ms/frame at {size} (detect + landmarks "
              f"{cost['detect_ms']:.1f}, model {cost['model_ms']:.1f}; {cost['faces']:.0f}/{cost['frames']:.0f} faces)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    run(parser.parse_args().seconds)


if __name__ == "__main__":
    main()
