"""The `emoscore train` and `emoscore eval` sub-commands: rebuild the models from their datasets and measure
them. Registered on the main app by emoscore.cli (import that module, not this one, first), whose error
handling and shared options they use.

Heavy imports (TensorFlow, librosa, dlib) happen inside each command, after argument parsing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from emoscore.cli import ActorsOpt, CheckpointsOpt, OutOpt, SeedOpt, checkpoint_dir, fail, handle_errors

train_app = typer.Typer(help="Rebuild the models from their datasets.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure a trained model.", no_args_is_help=True)


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
    cv_ensemble: Annotated[int, typer.Option(
        min=1, help="CNNs (seeds) averaged in each cross-validation fold, as --ensemble in the shipped model.")] = 3,
    compare_recipes: Annotated[bool, typer.Option(
        help="With --cv-folds: also cross-validate the other training recipes and record their scores.")] = False,
    cache: Annotated[Path | None, typer.Option(
        help="Folder for cached features and out-of-fold predictions [default: <tmp>/emoscore-cache/voice].")
    ] = None,
) -> None:
    """Train the speech emotion CNN, split by actor, and record it in the manifest."""
    from emoscore.speech_train import DEFAULT_CACHE, AudioTrainOptions, train_audio_model

    options = AudioTrainOptions(ravdess=ravdess, out=checkpoint_dir(out), epochs=epochs, seed=seed, ensemble=ensemble,
                                cv_folds=cv_folds, cv_ensemble=cv_ensemble, cache=cache or DEFAULT_CACHE,
                                command=invoked_command())
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
    from emoscore.visual_cv import cached_person_context
    from emoscore.visual_train import out_of_fold_predictions as face_oof

    settings = load_config(config)

    def log(msg: str) -> None:
        typer.echo(f"  {msg}", err=True)

    face = face_oof(landmarks, folds, seed, log)
    result = evaluate_fusion(face, voice_oof(ravdess, folds, seed, log), settings.fusion, folds, seed,
                             settings.smoothing.uniform_quadrant_prior, cached_person_context(landmarks, folds, seed))
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
    epochs: Annotated[int, typer.Option(help="Epochs (the most, with early stopping on validation actors).")] = 30,
    seed: SeedOpt = 0,
    photo_weight: Annotated[float, typer.Option(
        help="Total loss weight of the photos relative to all RAVDESS faces.")] = 0.3,
    cv_folds: Annotated[int, typer.Option(
        help="Also run grouped cross-validation (RAVDESS by actor, photos by identity) with this many folds.")] = 0,
    points: Annotated[str | None, typer.Option(
        help="Landmarks the model reads: all or no-jaw [default: constants.FACE_POINTS].")] = None,
    arch: Annotated[str, typer.Option(help="Network: cnn, cnn-skip or mlp.")] = "cnn-skip",
    quadrant_loss: Annotated[float, typer.Option(help="Weight of the auxiliary quadrant loss.")] = 0.5,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs; 0 trains all --epochs.")] = 0,
    features: Annotated[str | None, typer.Option(
        help="Per-landmark features: coords, distances or both [default: constants.FACE_FEATURES].")] = None,
    alignment: Annotated[str | None, typer.Option(
        help="Face alignment: eyes, stable or procrustes [default: constants.FACE_ALIGNMENT].")] = None,
    augment_copies: Annotated[int, typer.Option(help="Jittered copies per RAVDESS face.")] = 1,
    jitter: Annotated[float, typer.Option(help="Scale of the geometric jitter; 0 mirrors only.")] = 0.0,
    balance: Annotated[float, typer.Option(help="Class-balance power within each source (1: inverse frequency).")
                       ] = 0.5,
    ensemble: Annotated[int, typer.Option(min=1, help="Networks (seeds) averaged inside the one model.")] = 1,
    input_noise: Annotated[float, typer.Option(help="Gaussian noise on the standardised features in training.")
                           ] = 0.2,
    calibration: Annotated[str | None, typer.Option(
        help="What the model reads: both (each face as it is and against the person's own mean face: a shot in "
             "`score`, other clips in training), calibrated or none [default: constants.FACE_CALIBRATION_INPUT].")
                           ] = None,
    same_emotion_share: Annotated[float, typer.Option(
        help="Share of training contexts made of moments of the face's own emotion.")] = 0.0,
) -> None:
    """Train the facial-landmark emotion CNN on every given face source, split by person, and record it."""
    from emoscore.constants import FACE_ALIGNMENT, FACE_CALIBRATION_INPUT, FACE_FEATURES, FACE_POINTS
    from emoscore.visual_train import VisualTrainOptions, train_visual_model

    options = VisualTrainOptions(
        landmarks=landmarks, videos=videos, crops=crops, photos=images, cache=cache, out=checkpoint_dir(out),
        epochs=epochs, seed=seed, photo_weight=photo_weight, cv_folds=cv_folds, arch=arch,
        quadrant_loss=quadrant_loss, patience=patience, command=invoked_command(), points=points or FACE_POINTS,
        features=features or FACE_FEATURES, alignment=alignment or FACE_ALIGNMENT, augment_copies=augment_copies,
        jitter=jitter, balance=balance, ensemble=ensemble, input_noise=input_noise,
        calibration=calibration or FACE_CALIBRATION_INPUT, same_emotion_share=same_emotion_share)
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
    for context, m in metrics.get("person_context", {}).items():  # the faces seen against more of their person
        recall = " ".join(f"{q} {r:.2f}" for q, r in m.get("quadrant_recall", {}).items() if r is not None)
        typer.echo(f"seen with {context}: accuracy {m['accuracy']:.3f}, quadrant {m['quadrant_accuracy']:.3f} "
                   f"({recall})")


# --- music ---------------------------------------------------------------------------------------

MusicDataOpt = Annotated[Path, typer.Option(
    "--data", help="Quadrant-labelled MIDI: Q1..Q4 subfolders, or EMOPIA files Qn_*.mid "
                   "(split csvs beside the folder).")]
JudgeDataOpt = Annotated[Path, typer.Option(
    "--data", help="EMOPIA MIDI files Qn_*.mid (split csvs beside the folder), or Q1..Q4 subfolders.")]
VgmidiOpt = Annotated[Path | None, typer.Option("--vgmidi", help="VGMIDI folder (vgmidi_labelled.csv, phrases/).")]


@train_app.command("music")
@handle_errors
def train_music(
    data: MusicDataOpt,
    vgmidi: VgmidiOpt = None,
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
    data: JudgeDataOpt,
    vgmidi: VgmidiOpt = None,
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
