"""The `emoscore` command line: a thin layer over the library.

Heavy imports (TensorFlow, librosa, dlib) happen inside each command, after argument parsing, so
`emoscore --help` stays fast. Every EmoscoreError becomes one red line on stderr and its exit code.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from emoscore.errors import EmoscoreError

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


def handle_errors(func: F) -> F:
    """Turn the package's exceptions (and Ctrl-C) into a one-line message and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EmoscoreError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

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
        headline = {k: v for k, v in entry.get("metrics", {}).items() if isinstance(v, int | float)}
        shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in list(headline.items())[:4])
        typer.echo(f"{name:<10} {entry['kind']:<14} {shown}")


# --- speech emotion model ------------------------------------------------------------------------

@train_app.command("audio")
@handle_errors
def train_audio(
    ravdess: Annotated[Path, typer.Option("--ravdess", help="RAVDESS speech folder (Actor_NN/03-01-*.wav|flac).")],
    out: OutOpt = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping on validation actors).")] = 60,
    seed: SeedOpt = 0,
) -> None:
    """Train the speech emotion CNN, split by actor, and record it in the manifest."""
    from emoscore.speech_train import AudioTrainOptions, train_audio_model

    options = AudioTrainOptions(ravdess=ravdess, out=checkpoint_dir(out), epochs=epochs, seed=seed,
                                command=" ".join(["emoscore", *sys.argv[1:]]))
    metrics = train_audio_model(options, log=typer.echo)
    echo_metrics("test actors (never seen in training):", metrics)


@eval_app.command("audio")
@handle_errors
def eval_audio(
    ravdess: Annotated[Path, typer.Option("--ravdess", help="RAVDESS speech folder.")],
    actors: ActorsOpt = None,
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Evaluate the speech emotion model on the given actors."""
    from emoscore.speech_train import evaluate_audio_model

    metrics = evaluate_audio_model(ravdess, checkpoint_dir(checkpoints), parse_actors(actors))
    echo_metrics("speech model:", metrics)


def main() -> None:  # pragma: no cover - console entry point
    app()
