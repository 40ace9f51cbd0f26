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

app = typer.Typer(help="Score videos of people speaking with music that follows their emotions.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
train_app = typer.Typer(help="Rebuild the models from their datasets.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure a trained model.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")

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


def invoked_command() -> str:
    """The command line as typed, recorded in the manifest next to what it trained."""
    return " ".join(["emoscore", *sys.argv[1:]])


def parse_actors(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise fail(f"--actors must be comma-separated numbers, got {text!r}", 2) from None


def echo_metrics(title: str, metrics: dict[str, Any]) -> None:
    typer.echo(title)
    for key, value in metrics.items():
        if isinstance(value, float):
            typer.echo(f"  {key:<24} {value:.3f}")
        elif not isinstance(value, list | dict):
            typer.echo(f"  {key:<24} {value}")


# --- info ----------------------------------------------------------------------------------------

@app.command()
@handle_errors
def info(checkpoints: CheckpointsOpt = None) -> None:
    """List the installed models with their headline metrics."""
    from emoscore.checkpoints import load_manifest

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
    options = ScoreOptions(config=with_overrides(load_config(config), music_gain),
                           checkpoints=checkpoint_dir(checkpoints), seed=seed, overwrite=overwrite,
                           replace_audio=replace_audio, variations=variations, part_stems=stems == "parts",
                           loudness_lufs=loudness)
    log = (lambda _: None) if quiet else (lambda msg: typer.echo(f"  {msg}", err=True))
    if input_path.is_dir():
        score_folder(input_path, output, options, jobs, log)
    else:
        score_file(input_path, resolve_output(input_path, output), options, log, edit)


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


# --- speech emotion model ------------------------------------------------------------------------

@train_app.command("audio")
@handle_errors
def train_audio(
    ravdess: Annotated[Path, typer.Option("--ravdess", help="RAVDESS speech folder (Actor_NN/03-01-*.wav|flac).")],
    out: OutOpt = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping on validation actors).")] = 60,
    ensemble: Annotated[int, typer.Option(min=1, help="CNNs (seeds) averaged into the shipped model.")] = 3,
    seed: SeedOpt = 0,
    cv_folds: Annotated[int, typer.Option(
        help="Also record actor-wise cross-validation with this many folds (clean and channel-degraded).")] = 0,
    compare_recipes: Annotated[bool, typer.Option(
        help="With --cv-folds: also cross-validate the other training recipes and record their scores.")] = False,
    cache: Annotated[Path | None, typer.Option(
        help="Folder for cached features and out-of-fold predictions [default: <tmp>/emoscore-cache/voice].")
    ] = None,
) -> None:
    """Train the speech emotion CNN, split by actor, and record it in the manifest."""
    from emoscore.speech_train import DEFAULT_CACHE, AudioTrainOptions, train_audio_model

    options = AudioTrainOptions(ravdess=ravdess, out=checkpoint_dir(out), epochs=epochs, seed=seed, ensemble=ensemble,
                                cv_folds=cv_folds, cache=cache or DEFAULT_CACHE, command=invoked_command())
    metrics = train_audio_model(options, log=typer.echo, compare=compare_recipes)
    echo_audio("test actors (never seen in training):", metrics)


@eval_app.command("audio")
@handle_errors
def eval_audio(
    ravdess: Annotated[Path, typer.Option("--ravdess", help="RAVDESS speech folder.")],
    actors: ActorsOpt = None,
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Evaluate the speech emotion model on the given actors (default: the test actors 17-20 when the folder
    has them, else every actor in it)."""
    from emoscore.speech_train import evaluate_audio_model

    metrics = evaluate_audio_model(ravdess, checkpoint_dir(checkpoints), parse_actors(actors))
    echo_audio("speech model:", metrics)


def echo_recall(metrics: dict[str, Any], indent: str = "  ") -> None:
    if "quadrant_recall" in metrics:
        typer.echo(f"{indent}{'quadrant recall':<24} " + "  ".join(
            f"{q} {'-' if r is None else f'{r:.2f}'}" for q, r in metrics["quadrant_recall"].items()))


def echo_audio(title: str, metrics: dict[str, Any]) -> None:
    """echo_metrics plus per-quadrant recall, the channel-degraded test and the cross-validation."""
    echo_metrics(title, metrics)
    echo_recall(metrics)
    nested = {"degraded": "same actors through a random real channel:"}
    nested.update({name: f"recipe '{name}':" for name in metrics.get("recipes", {})})
    for key, heading in nested.items():
        part = metrics.get("recipes", {}).get(key) or metrics.get(key)
        if isinstance(part, dict):
            for condition, values in ({"": part} if "accuracy" in part else part).items():
                if isinstance(values, dict):
                    echo_metrics(f"{heading} {condition}".rstrip(), values)
                    echo_recall(values)
    cv = metrics.get("cross_validation")
    if cv:
        for condition in ("clean", "degraded"):
            echo_metrics(f"actor-wise {cv['folds']}-fold cross-validation, {condition} speech:", cv[condition])
            echo_recall(cv[condition])


@eval_app.command("fusion")
@handle_errors
def eval_fusion(
    landmarks: Annotated[Path, typer.Option("--landmarks", help="RAVDESS OpenFace landmark CSVs (actors 1-20).")],
    ravdess: Annotated[Path, typer.Option("--ravdess", help="RAVDESS speech folder of the same actors.")],
    folds: Annotated[int, typer.Option(min=2, help="Actor-wise folds (models and fusion parameters).")] = 5,
    seed: SeedOpt = 0,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML config: its [fusion] is compared.")] = None,
) -> None:
    """Clip-level face + voice fusion on RAVDESS, actor-wise: each model alone, fixed weights, the configured
    rule and the confidence rule with parameters chosen by nested CV (out-of-fold predictions of both models)."""
    import json

    from emoscore.config import load_config
    from emoscore.fusion_eval import evaluate_fusion, format_table
    from emoscore.speech_train import out_of_fold_predictions as voice_oof
    from emoscore.visual_train import out_of_fold_predictions as face_oof

    settings = load_config(config)

    def log(msg: str) -> None:
        typer.echo(f"  {msg}", err=True)

    result = evaluate_fusion(face_oof(landmarks, folds, seed, log), voice_oof(ravdess, folds, seed, log),
                             settings.fusion, folds, seed, settings.smoothing.uniform_quadrant_prior)
    typer.echo(f"{result['n']} clips of actors {result['actors']}, {folds} actor-wise folds "
               f"(quadrants {'with' if result['uniform_quadrant_prior'] else 'without'} the uniform prior)")
    for line in format_table(result):
        typer.echo(line)
    typer.echo(f"chosen per fold: {json.dumps(result['chosen_per_fold'])}")
    typer.echo(f"chosen on all actors: {json.dumps(result['chosen_on_all'])}")


# --- visual (face landmark) emotion model ----------------------------------------------------------

LandmarksOpt = Annotated[Path | None, typer.Option(
    "--landmarks", help="Official RAVDESS landmark CSVs (Actor_NN/01-01-*.csv, OpenFace columns x_0..y_67).")]
VideosOpt = Annotated[Path | None, typer.Option(
    "--videos", help="RAVDESS videos (Actor_NN/01-01-*.mp4) or face-crop videos (*.avi), landmarked with dlib.")]
ImagesOpt = Annotated[Path | None, typer.Option(
    "--images", help="Faces-in-the-wild folder: images/*.jpg + labels.csv (image,emotion,identity).")]
FaceCacheOpt = Annotated[Path | None, typer.Option(
    "--cache", help="Folder where dlib landmarks of photos and videos are stored and reused.")]


@train_app.command("visual")
@handle_errors
def train_visual(
    landmarks: LandmarksOpt = None,
    videos: VideosOpt = None,
    crops: Annotated[Path | None, typer.Option(
        help="RAVDESS face-crop videos (MM-VV-EE-II-SS-RR-AA.avi), landmarked with dlib.")] = None,
    images: ImagesOpt = None,
    cache: FaceCacheOpt = None,
    out: OutOpt = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping on validation actors).")] = 60,
    seed: SeedOpt = 0,
    photo_weight: Annotated[float, typer.Option(
        help="Total loss weight of the photos relative to all RAVDESS faces.")] = 1.0,
    cv_folds: Annotated[int, typer.Option(
        help="Also run grouped cross-validation (RAVDESS by actor, photos by identity) with this many folds.")] = 0,
    points: Annotated[str | None, typer.Option(
        help="Landmarks the model reads: all or no-jaw [default: constants.FACE_POINTS].")] = None,
    arch: Annotated[str, typer.Option(help="Network: cnn or mlp.")] = "cnn",
    quadrant_loss: Annotated[float, typer.Option(help="Weight of the auxiliary quadrant loss.")] = 0.5,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs; 0 trains all --epochs.")] = 10,
) -> None:
    """Train the facial-landmark emotion CNN on every given face source, split by person, and record it."""
    from emoscore.constants import FACE_POINTS
    from emoscore.visual_train import VisualTrainOptions, train_visual_model

    options = VisualTrainOptions(
        landmarks=landmarks, videos=videos, crops=crops, photos=images, cache=cache, out=checkpoint_dir(out),
        epochs=epochs, seed=seed, photo_weight=photo_weight, cv_folds=cv_folds, arch=arch,
        quadrant_loss=quadrant_loss, patience=patience, command=invoked_command(), points=points or FACE_POINTS)
    metrics = train_visual_model(options, log=typer.echo)
    echo_visual("test actors (never seen in training):", metrics)


@eval_app.command("visual")
@handle_errors
def eval_visual(
    landmarks: LandmarksOpt = None,
    videos: VideosOpt = None,
    images: ImagesOpt = None,
    actors: ActorsOpt = None,
    cache: FaceCacheOpt = None,
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Evaluate the visual emotion model on RAVDESS landmarks or videos (the given actors, else the test actors,
    else every actor present) and/or a faces-in-the-wild folder (every identity in it)."""
    from emoscore.visual_train import evaluate_visual_model

    metrics = evaluate_visual_model(checkpoint_dir(checkpoints), landmarks, videos, images, parse_actors(actors),
                                    cache)
    echo_visual("visual model:", metrics)


def echo_visual(title: str, metrics: dict[str, Any]) -> None:
    """echo_metrics plus the visual model's nested parts: per-quadrant recall, video frames/clips, photos."""
    echo_metrics(title, metrics)
    if "quadrant_recall" in metrics:
        typer.echo("  quadrant recall          " + "  ".join(f"{q} {r if r is None else f'{r:.2f}'}"
                                                            for q, r in metrics["quadrant_recall"].items()))
    for key, title_ in (("dlib_video_frames", "dlib video frames:"), ("dlib_video_clips", "dlib video clips:"),
                        ("photos", "photos (calm counted as neutral):")):
        if key in metrics:
            echo_visual(title_, metrics[key])


# --- music ---------------------------------------------------------------------------------------

@train_app.command("music")
@handle_errors
def train_music(
    data: Annotated[Path, typer.Option("--data", help="Quadrant-labelled MIDI: Q1..Q4 subfolders, or "
                                                      "EMOPIA files Qn_*.mid (split csvs beside the folder).")],
    vgmidi: Annotated[Path | None, typer.Option("--vgmidi", help="VGMIDI folder (vgmidi_labelled.csv, "
                                                                 "phrases/).")] = None,
    out: OutOpt = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs per stage (early stopping on validation).")] = 8,
    seed: SeedOpt = 0,
    eval_pieces: Annotated[int, typer.Option("--eval-pieces", help="Generated pieces per quadrant "
                                                                   "for the judge's check.")] = 8,
) -> None:
    """Train the four quadrant LSTMs and the music-emotion judge, and record them in the manifest."""
    import dataclasses

    from emoscore.music.lstm import LstmOptions
    from emoscore.music.train import MusicTrainOptions, train_music_models

    options = MusicTrainOptions(data=data, vgmidi=vgmidi, out=checkpoint_dir(out), seed=seed,
                                lstm=dataclasses.replace(LstmOptions(), epochs=epochs), eval_pieces=eval_pieces,
                                command=invoked_command())
    result = train_music_models(options, log=typer.echo)
    for quadrant, metrics in result["lstm"].items():
        typer.echo(f"{quadrant} LSTM validation loss {metrics['val_loss']:.3f} nats/note")
    echo_metrics("judge on EMOPIA test clips:", result["judge"])
    if result["generated"]:
        echo_metrics("MIDI judge on generated pieces (piano part):", result["generated"]["overall"])


@eval_app.command("music")
@handle_errors
def eval_music(
    n: Annotated[int, typer.Option("--n", help="Pieces per quadrant.")] = 8,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of each piece.")] = 30.0,
    seed: SeedOpt = 0,
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Generate pieces per quadrant; report the judge's agreement and statistics against the training data."""
    from emoscore.config import load_config
    from emoscore.music.evaluate import evaluate_generated

    result = evaluate_generated(checkpoint_dir(checkpoints), load_config(None).music, n, seconds, seed,
                                log=typer.echo)
    echo_music_verdicts(result, load_emopia_properties(checkpoint_dir(checkpoints)))


def load_emopia_properties(checkpoints: Path) -> dict[str, Any]:
    """EMOPIA's per-quadrant properties as `train music-judge` measured them ({} when not measured)."""
    import json

    path = checkpoints / "music_metrics.json"
    return dict(json.loads(path.read_text()).get("emopia_properties") or {}) if path.exists() else {}


def echo_music_verdicts(result: dict[str, Any], emopia: dict[str, Any]) -> None:
    """Both judges' agreement, per quadrant, and the properties table (composed mean [min..max] vs EMOPIA
    mean [p10..p90])."""
    if "overall_audio" in result:
        echo_metrics("audio judge on generated pieces (rendered full arrangement):", result["overall_audio"])
    echo_metrics("MIDI judge on generated pieces (piano part):", result["overall"])
    echo_metrics("MIDI judge on generated pieces (full arrangement):", result["overall_full_arrangement"])
    for quadrant, info in result["per_quadrant"].items():
        audio = f"audio judge {info['audio']['agreement']:.2f}  " if "audio" in info else ""
        typer.echo(f"{quadrant}: {audio}MIDI judge {info['midi']['agreement']:.2f}")
        for key, value in info["properties"].items():
            ref = emopia.get(quadrant, {}).get(key)
            typer.echo(f"  {key:<20} composed {value[0]:7.2f} [{value[3]:.2f}..{value[4]:.2f}]   EMOPIA "
                       + (f"{ref[0]:7.2f} [{ref[1]:.2f}..{ref[2]:.2f}]" if ref else "-"))
    typer.echo(f"generation speed: {result['seconds_per_second']:.1f} s of music per s of wall time")


@train_app.command("music-judge")
@handle_errors
def train_music_judge(
    data: Annotated[Path, typer.Option("--data", help="EMOPIA MIDI files Qn_*.mid (split csvs beside the "
                                                      "folder), or Q1..Q4 subfolders.")],
    vgmidi: Annotated[Path | None, typer.Option("--vgmidi", help="VGMIDI folder (vgmidi_labelled.csv, "
                                                                 "phrases/).")] = None,
    cache: Annotated[Path, typer.Option("--cache", help="Folder where renders and audio features of the "
                                                        "clips are kept and reused.")] = Path(
        "/tmp/emoscore-cache/music"),
    seconds: Annotated[float, typer.Option("--seconds", help="Render each clip from its start for this long; "
                                                             "also the length of the judged pieces.")] = 30.0,
    eval_pieces: Annotated[int, typer.Option("--eval-pieces", help="Composed pieces per quadrant to judge "
                                                                   "after training.")] = 10,
    eval_seed: Annotated[int, typer.Option("--eval-seed", help="Their seeds are eval_seed * 7919 + 0..n-1.")] = 1,
    out: OutOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Train the MIDI judge and the audio judge (on fluidsynth renders) without retraining the LSTMs, measure
    EMOPIA's music properties, judge composed pieces; record both judges in the manifest."""
    from emoscore.errors import InputError
    from emoscore.music.train import JudgeTrainOptions, train_music_judges

    if not 5 <= seconds <= 120:
        raise InputError(f"--seconds must be within 5..120, got {seconds}")
    options = JudgeTrainOptions(data=data, out=checkpoint_dir(out), cache=cache, vgmidi=vgmidi, seed=seed,
                                seconds=seconds, eval_pieces=eval_pieces, eval_seed=eval_seed,
                                command=invoked_command())
    result = train_music_judges(options, log=typer.echo)
    echo_metrics("MIDI judge on EMOPIA test clips:", result["judge"])
    echo_metrics("audio judge on EMOPIA test renders:", result["audio_judge"])
    if result["generated"]:
        echo_music_verdicts(result["generated"], result["emopia_properties"])


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


def main() -> None:  # pragma: no cover - console entry point
    app()
