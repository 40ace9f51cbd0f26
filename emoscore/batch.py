"""Scoring a folder: plan input/output pairs, skip what is done, carry on past bad files, summarise."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from emoscore.constants import VIDEO_EXTENSIONS
from emoscore.errors import EmoscoreError, InputError
from emoscore.pipeline import ScoreOptions, Scorer, default_output, verify_models


@dataclass(frozen=True)
class BatchItem:
    input: Path
    output: Path
    status: str  # "done", "skipped" or "failed"
    message: str = ""
    seconds: float = 0.0
    exit_code: int = 0


def plan(input_dir: Path, output_dir: Path | None) -> list[tuple[Path, Path]]:
    """(input, output) for every video directly inside `input_dir`, leaving out emoscore's own outputs."""
    if not input_dir.is_dir():
        raise InputError(f"not a folder: {input_dir}")
    videos = sorted(p for p in input_dir.iterdir()
                    if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and ".scored" not in p.suffixes)
    if not videos:
        raise InputError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in {input_dir}")
    stems = Counter(video.stem for video in videos)
    pairs = []
    for video in videos:
        output = default_output(video, output_dir)
        if stems[video.stem] > 1:  # clip.mp4 and clip.mov would share their stems: name them clip-mp4, clip-mov
            output = output.with_name(output.name.replace(video.stem, f"{video.stem}-{video.suffix[1:]}", 1))
        pairs.append((video, output))
    return pairs


def _score_one(scorer: Scorer, pair: tuple[Path, Path]) -> BatchItem:
    start = time.perf_counter()
    try:
        result = scorer.score(*pair)
    except EmoscoreError as exc:
        return BatchItem(*pair, "failed", str(exc), time.perf_counter() - start, exc.exit_code)
    message = "; ".join(result.warnings)
    return BatchItem(*pair, "done", message, time.perf_counter() - start)


_worker: Scorer | None = None


def _init_worker(options: ScoreOptions) -> None:
    global _worker
    _worker = Scorer(options)


def _worker_job(pair: tuple[Path, Path]) -> BatchItem:
    assert _worker is not None
    return _score_one(_worker, pair)


def run_batch(pairs: list[tuple[Path, Path]], options: ScoreOptions, jobs: int = 1,
              log: Callable[[str], None] = lambda _: None) -> Iterator[BatchItem]:
    """Yield one BatchItem per pair as it finishes. Existing outputs are skipped unless options.overwrite."""
    todo = []
    for pair in pairs:
        if pair[1].exists() and not options.overwrite:
            yield BatchItem(*pair, "skipped", "output exists (use --overwrite to redo)")
        else:
            todo.append(pair)
    if not todo:
        return
    verify_models(options.checkpoints)  # a bad checkpoint stops the batch once, not once per file
    if jobs <= 1:
        scorer = Scorer(options, log)
        for pair in todo:
            yield _score_one(scorer, pair)
        return
    # spawn, not fork: a forked copy of a process that already runs TensorFlow can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                             initargs=(options,)) as pool:
        yield from pool.map(_worker_job, todo)
