"""The `emoscore` command line: a thin layer over the library.

Heavy imports (TensorFlow, librosa, dlib) happen inside each command, after argument parsing, so
`emoscore --help` stays fast. Every EmoscoreError becomes one red line on stderr and its exit code.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.exceptions import TyperException

from emoscore.errors import Terminated, as_emoscore_error, interrupt_exit_code


def start_face_worker_early(args: list[str]) -> None:
    """`emoscore score FILE`: fork the face worker before typer parses the command line (~0.15 s), so its models
    load on the second core meanwhile and, when FILE comes first, its frames start decoding (the worker checks
    that the video and settings it is given are the ones it guessed); the Scorer takes it over
    (runtime.face_worker), score() stops it when a folder or an edited timeline is scored instead."""
    if args[:1] != ["score"] or any(a.split("=")[0] in ("--help", "--timeline", "--segments") for a in args):
        return
    from pathlib import Path

    from emoscore.runtime import start_face_worker_early as start

    guess = Path(args[1]) if len(args) > 1 and not args[1].startswith("-") else None
    start(guess if guess is not None and guess.is_file() else None)


CONSOLE_SCRIPT = __name__ != "__main__" and sys.argv[0].endswith("emoscore")  # not tests or imports
if CONSOLE_SCRIPT:
    start_face_worker_early(sys.argv[1:])


def end_process_now() -> None:
    """The console script, once one video is scored and its outputs are in place and reported: end the process at
    once (os._exit after flushing stdout and stderr), skipping the interpreter's teardown of its ~1000 modules and
    the join of the face worker's children (~70 ms; they end on their closed pipes and their death signal)."""
    if CONSOLE_SCRIPT:
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

app = typer.Typer(help="Score videos of people speaking with music that follows their emotions.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))  # as Ctrl-C
_stop_received: list[int] = []  # the stop signal of the running command, if one came


def _raise_terminated(signum: int, frame: Any) -> None:
    for other in STOP_SIGNALS:  # a second signal must not interrupt the clean-up of the first
        signal.signal(other, signal.SIG_IGN)
    _stop_received.append(signum)
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_as_interrupts() -> Iterator[None]:
    """While a command runs, SIGTERM/SIGHUP raise Terminated (a KeyboardInterrupt) in the main thread, so
    the same clean-up as Ctrl-C runs: staging folders and claims removed, workers stopped."""
    _stop_received.clear()
    try:
        previous = {signum: signal.signal(signum, _raise_terminated) for signum in STOP_SIGNALS}
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_helpers() -> None:
    """After an interrupted command has cleaned up: SIGKILL any process it started that still runs (an
    ffmpeg pipe, the face worker), so nothing outlives the command."""
    import os

    from emoscore.batch import descendants, kill_all

    kill_all(descendants(os.getpid()))


def handle_errors(func: F) -> F:
    """Turn every exception into a one-line message and an exit code: the package's errors their own code,
    Ctrl-C 130, SIGTERM 143 / SIGHUP 129, a full disk 6, anything unexpected 1. Never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with stop_signals_as_interrupts():
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException, SystemExit):
            raise  # typer's own exits and usage errors (exit 2)
        except KeyboardInterrupt as exc:
            stop_helpers()
            message = f"terminated ({exc})" if isinstance(exc, Terminated) else "interrupted"
            raise fail(message, interrupt_exit_code(exc)) from None
        except Exception as exc:
            if _stop_received:  # the signal surfaced as another error (inside an import: ImportError)
                stop_helpers()
                raise fail(f"terminated ({Terminated(_stop_received[0])})", 128 + _stop_received[0]) from None
            error = as_emoscore_error(exc)
            raise fail(str(error), error.exit_code) from None

    return wrapper  # type: ignore[return-value]


CheckpointsOpt = Annotated[Path | None, typer.Option(
    "--checkpoints", help="Folder with manifest.json and model files [default: the shipped checkpoints/].")]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", help="Folder to write the model files and manifest entry into [default: the shipped checkpoints/].")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result.")]
ActorsOpt = Annotated[str | None, typer.Option(
    "--actors", help="Comma-separated RAVDESS actor numbers, e.g. 21,22,23,24 [default: the test actors].")]


def checkpoint_dir(path: Path | None) -> Path:
    from emoscore.checkpoints import default_checkpoint_dir

    return path if path is not None else default_checkpoint_dir()


# --- info ----------------------------------------------------------------------------------------

@app.command()
@handle_errors
def info(checkpoints: CheckpointsOpt = None, config: Annotated[
        Path | None, typer.Option("--config", help="A TOML config: its [fusion] and face calibration are shown.")
        ] = None) -> None:
    """List the installed models with their headline metrics, and how the face and voice are fused."""
    from emoscore.checkpoints import load_manifest
    from emoscore.config import load_config

    folder = checkpoint_dir(checkpoints)
    models = load_manifest(folder)["models"]
    if not models:
        typer.echo(f"no models in {folder}")
    for name, entry in models.items():
        metrics = entry.get("metrics", {})
        headline = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        if "quadrant_accuracy" in headline:
            headline = {k: headline[k] for k in ("n", "accuracy", "quadrant_accuracy", "quadrant_balanced_accuracy")
                        if k in headline}
        elif "accuracy_4q" in headline:
            headline = {k: headline[k] for k in ("n", "accuracy_4q", "arousal_accuracy", "valence_accuracy")
                        if k in headline}
        shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in list(headline.items())[:4])
        recall = (metrics.get("quadrant_recall") or quadrant_recall(metrics.get("quadrant_confusion"))
                  or judge_recall(metrics))
        if isinstance(recall, dict):
            shown += ", recall " + " ".join(f"{q}={'-' if r is None else f'{r:.2f}'}" for q, r in recall.items())
        typer.echo(f"{name:<10} {entry['kind']:<14} {shown}")
    settings = load_config(config)
    calibration = models.get("visual", {}).get("calibration")
    if calibration:
        how = ("each face against its shot's mean face" if settings.analysis.face_calibration == "shot"
               else "each face alone")
        typer.echo(f"{'face':<10} {'calibration':<14} {how} (prior {calibration['prior_moments']:g} moments of "
                   f"{calibration['moment_seconds']:g} s)")
    fusion = settings.fusion
    if fusion.rule == "product":
        face, voice = fusion.exponents()
        how = f"weighted geometric mean, exponents face {face:.2f} / voice {voice:.2f}"
    else:
        how = f"weighted mean, face {fusion.visual_weight:g} / voice {fusion.audio_weight:g}" + (
            f" x confidence ** {fusion.confidence_power:g}" if fusion.rule == "confidence" else "")
    typer.echo(f"fusion     {fusion.rule:<14} {how}")


def judge_recall(metrics: dict[str, Any]) -> dict[str, float] | None:
    """Q1..Q4 recall of a music judge, recorded as recall_Q1..recall_Q4."""
    recall = {q: metrics[f"recall_{q}"] for q in ("Q1", "Q2", "Q3", "Q4") if f"recall_{q}" in metrics}
    return recall if len(recall) == 4 else None


def quadrant_recall(matrix: Any) -> dict[str, float] | None:
    """Q1..Q4 recall from a 4x4 quadrant confusion matrix (rows = truth), for entries that recorded only that."""
    if not isinstance(matrix, list) or len(matrix) != 4:
        return None
    return {f"Q{i + 1}": row[i] / sum(row) if sum(row) else 0.0 for i, row in enumerate(matrix)}


@app.command()
@handle_errors
def export(
    checkpoints: CheckpointsOpt = None,
    force: Annotated[bool, typer.Option(help="Convert again even models whose export is current.")] = False,
) -> None:
    """Convert the Keras models to the light files `score` and `compose` run (.tflite, .npz), record them in
    the manifest; models already exported from their current Keras file are skipped."""
    from emoscore.export import export_all

    folder = checkpoint_dir(checkpoints)
    done = export_all(folder, log=typer.echo, force=force)
    typer.echo(f"{len(done)} model(s) exported" if done else f"every model in {folder} is already exported")


# --- score ---------------------------------------------------------------------------------------

def resolve_output(input_path: Path, output: Path | None) -> Path | None:
    """Where one video's result goes: -o a folder keeps the name there; -o a file is used as it is."""
    from emoscore.pipeline import default_output

    if output is None:
        return None
    if output.is_dir() or str(output).endswith(("/", "\\")):
        return default_output(input_path, output)
    return output


@app.command()
@handle_errors
def score(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A video file, or a folder of videos.")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Output video, or folder [default: <input>.scored.<ext> beside the input].")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML config (see configs/default.toml).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    replace_audio: Annotated[bool, typer.Option(
        "--replace-audio", help="Music only: drop the original audio (for clips without dialogue).")] = False,
    music_gain: Annotated[float | None, typer.Option(
        "--music-gain", help="Music level trim in dB on top of loudness normalisation.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Videos scored in parallel (folders).")] = 1,
    seed: SeedOpt = 0,
    checkpoints: CheckpointsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the summary.")] = False,
    timeline: Annotated[Path | None, typer.Option(
        "--timeline", help="Re-score from an edited timeline (the .timeline.json or .csv `score` wrote): "
                           "skips recognition.")] = None,
    segments: Annotated[str | None, typer.Option(
        "--segments", help="Re-score from segments given here, e.g. '0-4.5:Q1,4.5-12:Q3@0.3,-0.6,12-:Q4' "
                           "(start-end:quadrant[@valence,arousal]; open ends join the neighbours).")] = None,
    variations: Annotated[int, typer.Option(
        "--variations", help="Also write N alternative soundtracks (seed+1 ... seed+N) as <out>.v1 ... .vN "
                             "with their stems.")] = 0,
    stems: Annotated[str, typer.Option(
        "--stems", help="'music': the soundtrack as one stem; 'parts': also melody/pad/bass WAVs.")] = "music",
    loudness: Annotated[float | None, typer.Option(
        "--loudness", help="Integrated loudness target of the final mix in LUFS (BS.1770), e.g. -14 web, "
                           "-23 broadcast; true peak <= -1 dBTP.")] = None,
) -> None:
    """Score a video (or a folder of videos) with music that follows the speakers' emotions.

    Writes the scored video plus, beside it, the music as .music.mid/.music.wav, the final audio
    (.mix.wav) and the emotion timeline as .timeline.json/.csv/.png.
    """
    from emoscore.config import load_config, validate_options
    from emoscore.errors import InputError
    from emoscore.pipeline import ScoreOptions, with_overrides

    validate_options({"--music-gain": music_gain, "--seed": seed, "--jobs": jobs, "--loudness": loudness,
                      "--variations": variations})
    if not input_path.exists():
        raise InputError(f"no such file or folder: {input_path}")
    edit = editor_options(input_path, timeline, segments, stems)
    if edit is not None or input_path.is_dir():
        from emoscore.runtime import discard_early_face_worker

        discard_early_face_worker()
    options = ScoreOptions(config=with_overrides(load_config(config), music_gain),
                           checkpoints=checkpoint_dir(checkpoints), seed=seed, overwrite=overwrite,
                           replace_audio=replace_audio, variations=variations, part_stems=stems == "parts",
                           loudness_lufs=loudness)
    log = (lambda _: None) if quiet else (lambda msg: typer.echo(f"  {msg}", err=True))
    if input_path.is_dir():
        score_folder(input_path, output, options, jobs, log)
    else:
        score_file(input_path, resolve_output(input_path, output), options, log, edit)
        end_process_now()


def editor_options(input_path: Path, timeline: Path | None, segments: str | None, stems: str) -> Any:
    """Check --timeline/--segments/--stems (InputError, exit 2; the ranges of --loudness and --variations are
    config.OPTION_RANGES, exit 10); the parsed edit, or None."""
    from emoscore.edits import parse_segments, read_timeline
    from emoscore.errors import InputError

    if stems not in ("music", "parts"):
        raise InputError(f"--stems must be 'music' or 'parts', got {stems!r}")
    if timeline is not None and segments is not None:
        raise InputError("give --timeline or --segments, not both")
    if (timeline is not None or segments is not None) and input_path.is_dir():
        raise InputError("--timeline and --segments re-score one video; INPUT is a folder")
    if timeline is not None:
        return read_timeline(timeline)
    return parse_segments(segments) if segments is not None else None


def score_file(input_path: Path, output: Path | None, options: Any, log: Callable[[str], None],
               edit: Any = None) -> None:
    from emoscore.pipeline import Scorer

    result = Scorer(options, log).score(input_path, output, edit)
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{result.output}  ({result.duration:.1f} s, {len(result.segments)} segment(s), "
               f"{sum(result.timings.values()):.1f} s)")
    typer.echo(loudness_line(result.loudness))


def loudness_line(report: dict[str, Any]) -> str:
    """'loudness: input -24.6 LUFS, mix -14.0 LUFS (target -14), true peak -1.2 dBTP'."""
    parts = []
    if report.get("input"):
        parts.append(f"input {report['input']['integrated_lufs']:.1f} LUFS")
    out = report.get("output") or {}
    if out:
        target = report.get("target_lufs")
        parts.append(f"mix {out['integrated_lufs']:.1f} LUFS" + (f" (target {target:g})" if target is not None else "")
                     + f", true peak {out['true_peak_dbtp']:.1f} dBTP")
    return "loudness: " + ", ".join(parts)


def score_folder(input_dir: Path, output: Path | None, options: Any, jobs: int, log: Callable[[str], None]) -> None:
    from rich.progress import Progress

    from emoscore.batch import plan, run_batch
    from emoscore.errors import OutputError

    if output is not None:
        if output.exists() and not output.is_dir():
            raise OutputError(f"-o must be a folder when INPUT is a folder: {output}")
        try:
            output.mkdir(parents=False, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {output}: {exc.strerror}") from None
    pairs = plan(input_dir, output)
    items = []
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("scoring", total=len(pairs))
        batch = contextlib.closing(run_batch(pairs, options, jobs, log))  # closed: workers stopped on any exit
        try:
            with batch as results:
                for item in results:
                    items.append(item)
                    progress.advance(task)
                    log(f"{item.status:<8} {item.input.name}" + (f": {item.message}" if item.message else ""))
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: what was finished is still reported
            progress.stop()
            if items:
                print_summary(items)
            raise
    print_summary(items)
    write_review_page(items, output if output is not None else input_dir)
    failed = [i for i in items if i.status == "failed"]
    if failed:
        raise typer.Exit(code=max(i.exit_code for i in failed) or 1)


def write_review_page(items: list[Any], folder: Path) -> None:
    """The batch's review page, folder/index.html (never over an index.html emoscore did not write)."""
    from emoscore.errors import OutputError
    from emoscore.review import REVIEW_NAME, write_review

    try:
        page = write_review(items, folder)
    except OutputError as exc:  # the clips are scored: a page that cannot be written does not fail the batch
        typer.secho(f"warning: {exc}", fg=typer.colors.YELLOW, err=True)
        return
    if page is None:
        typer.secho(f"warning: {folder / REVIEW_NAME} exists and is not emoscore's: review page not written",
                    fg=typer.colors.YELLOW, err=True)
    else:
        typer.echo(f"review page: {page}")


def summary_loudness(item: Any) -> str:
    """'  [input -26.2 LUFS, mix -25.3 LUFS, -9.3 dBTP]' from a scored clip's timeline JSON; '' without one."""
    import json

    from emoscore.pipeline import stem_path

    if item.status == "failed":
        return ""
    try:
        report = json.loads(stem_path(item.output, ".timeline.json").read_text())["meta"]["loudness"]
        mix = report["output"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    source = f"input {report['input']['integrated_lufs']:.1f} LUFS, " if report.get("input") else ""
    return f"  [{source}mix {mix['integrated_lufs']:.1f} LUFS, {mix['true_peak_dbtp']:.1f} dBTP]"


def print_summary(items: list[Any]) -> None:
    typer.echo(f"{'status':<8} {'seconds':>7}  file")
    for item in items:
        colour = {"done": typer.colors.GREEN, "failed": typer.colors.RED}.get(item.status)
        line = f"{item.status:<8} {item.seconds:7.1f}  {item.input.name}" + summary_loudness(item)
        typer.secho(line + (f"  ({item.message})" if item.message else ""), fg=colour)
    counts = {s: sum(i.status == s for i in items) for s in ("done", "skipped", "failed")}
    typer.echo(", ".join(f"{n} {s}" for s, n in counts.items()))


@app.command()
@handle_errors
def compose(
    output: Annotated[Path, typer.Option("-o", "--output", help="MIDI file to write.")],
    quadrant: Annotated[str | None, typer.Option("--quadrant", help="Q1 happy, Q2 tense, Q3 sad, Q4 calm.")] = None,
    valence: Annotated[float | None, typer.Option("--valence", help="In [-1, 1], with --arousal instead "
                                                                    "of --quadrant.")] = None,
    arousal: Annotated[float | None, typer.Option("--arousal", help="In [-1, 1].")] = None,
    seconds: Annotated[float, typer.Option("--seconds", help="Length in seconds.")] = 30.0,
    wav: Annotated[Path | None, typer.Option("--wav", help="Also render to this WAV file.")] = None,
    tempo: Annotated[float | None, typer.Option("--tempo", help="BPM (default: the quadrant's).")] = None,
    key: Annotated[str | None, typer.Option("--key", help="e.g. 'D minor' (default: the quadrant's).")] = None,
    seed: SeedOpt = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML config (configs/default.toml).")] = None,
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Compose one piece for an emotion (a quadrant, or valence/arousal) and write it as MIDI (and WAV)."""
    from emoscore.config import load_config
    from emoscore.errors import InputError
    from emoscore.fileio import atomic_path, check_writable

    by_va = valence is not None or arousal is not None
    if (quadrant is not None and by_va) or (quadrant is None and (valence is None or arousal is None)):
        raise InputError("give either --quadrant or both --valence and --arousal")
    if not 0 < seconds <= 3600:
        raise InputError(f"--seconds must be in (0, 3600], got {seconds}")
    for path in [output] + ([wav] if wav else []):
        check_writable(path, overwrite)
    music = load_config(config).music
    from emoscore.music.compose import compose_piece
    from emoscore.music.midifile import write_midi

    midi = compose_piece(quadrant, seconds, music, checkpoint_dir(checkpoints), seed, valence, arousal, tempo, key)
    with atomic_path(output, overwrite) as tmp:
        write_midi(midi, tmp)
    typer.echo(f"wrote {output}")
    if wav is not None:
        from emoscore.constants import OUTPUT_SAMPLE_RATE
        from emoscore.media import write_wav
        from emoscore.music.render import render_midi

        audio = render_midi(midi, seconds, OUTPUT_SAMPLE_RATE, soundfont=music.soundfont)
        with atomic_path(wav, overwrite) as tmp:
            write_wav(tmp, audio, OUTPUT_SAMPLE_RATE)
        typer.echo(f"wrote {wav}")


# The `train` and `eval` sub-apps use the helpers above, so they are imported after them.
from emoscore.cli_train import eval_app, train_app  # noqa: E402

app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


def main() -> None:  # pragma: no cover - console entry point
    app()
