"""Scoring a folder: plan input/output pairs, skip what is done, carry on past bad files, summarise.

Any error scoring one file, expected or not, fails that file only. With --jobs the workers are child
processes that end with the batch: on Ctrl-C, SIGTERM or SIGHUP the parent stops them (each removes its
staging folder first) and waits for them, and a worker whose parent dies gets SIGTERM from the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from emoscore.constants import VIDEO_EXTENSIONS
from emoscore.errors import InputError, Terminated, as_emoscore_error, interrupt_exit_code
from emoscore.pipeline import ScoreOptions, Scorer, default_output, verify_models
from emoscore.runtime import PR_SET_PDEATHSIG


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
    except Exception as exc:  # anything, a bug included, fails this file only: the batch carries on
        error = as_emoscore_error(exc)
        return BatchItem(*pair, "failed", str(error), time.perf_counter() - start, error.exit_code)
    message = "; ".join(result.warnings)
    return BatchItem(*pair, "done", message, time.perf_counter() - start)


_worker: Scorer | None = None
_worker_busy = False
_worker_stop = 0  # the stop signal this worker received (0: none)
WORKER_STOP_SECONDS = 20.0  # how long a stopped worker may take to clean up before it is killed


def _worker_signal(signum: int, frame: FrameType | None) -> None:
    """In a worker: stop the running job like Ctrl-C (its staging folder is removed), or exit if idle.
    Only the first signal counts: a second one (Ctrl-C, then the parent's SIGTERM) must not cut the clean-up."""
    global _worker_stop
    if _worker_stop:
        return
    _worker_stop = signum
    if _worker_busy:
        raise Terminated(signum)
    os._exit(128 + signum)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the batch process dies, even by SIGKILL (best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _init_worker(options: ScoreOptions, parent: int) -> None:
    global _worker
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):  # SIGHUP: POSIX only
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _worker_signal)
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
    _worker = Scorer(options)


def _worker_job(pair: tuple[Path, Path]) -> BatchItem:
    """Score one pair in a worker. A stop signal ends the worker after the job's clean-up has run."""
    global _worker_busy
    assert _worker is not None
    _worker_busy = True
    try:
        item = _score_one(_worker, pair)
    except KeyboardInterrupt as exc:
        os._exit(interrupt_exit_code(exc))
    finally:
        _worker_busy = False
    if _worker_stop:  # the signal surfaced as another error (inside an import): clean-up has run, stop now
        os._exit(128 + _worker_stop)
    return item


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren...), from /proc; [] where there is no /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of `pids` that still runs (helpers a stopped process may have left: ffmpeg, face worker)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def stop_workers(pool: ProcessPoolExecutor, timeout: float = WORKER_STOP_SECONDS) -> None:
    """SIGTERM every worker of `pool`, wait until each has cleaned up and exited (SIGKILL after `timeout`),
    then SIGKILL whatever the workers started and left behind."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:  # a worker that got the signal takes no further job (_worker_job)
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    deadline = time.monotonic() + timeout
    helpers: set[int] = set()
    for process in processes:
        while process.is_alive() and time.monotonic() < deadline:  # note its helpers while it cleans up
            helpers.update(descendants(process.pid) if process.pid else [])
            process.join(0.05)
        if process.is_alive():
            process.kill()
            process.join()
    kill_all(sorted(helpers))
    pool.shutdown(wait=False, cancel_futures=True)


def _pool_results(pool: ProcessPoolExecutor, todo: list[tuple[Path, Path]]) -> Iterator[BatchItem]:
    """Submit every pair; yield BatchItems as they finish. A worker that died fails its file, not the batch."""
    futures: dict[Future[BatchItem], tuple[Path, Path]] = {pool.submit(_worker_job, pair): pair for pair in todo}
    for future in as_completed(futures):
        try:
            yield future.result()
        except Exception as exc:  # BrokenProcessPool: a worker was killed (out of memory, a crash)
            error = as_emoscore_error(exc)
            yield BatchItem(*futures[future], "failed", str(error), 0.0, error.exit_code)


def run_batch(pairs: list[tuple[Path, Path]], options: ScoreOptions, jobs: int = 1,
              log: Callable[[str], None] = lambda _: None) -> Generator[BatchItem, None, None]:
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
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                               initargs=(options, os.getpid()))
    try:
        yield from _pool_results(pool, todo)
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP, or the caller closing us: no worker outlives the batch
        stop_workers(pool)
        raise
    pool.shutdown(wait=True)
