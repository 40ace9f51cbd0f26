"""Training and evaluation of the speech emotion CNN on RAVDESS speech, split by actor."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import (
    AUDIO_SAMPLE_RATE,
    AUDIO_WINDOW_FRAMES,
    AUDIO_WINDOW_SECONDS,
    N_AUDIO_FEATURES,
    N_EMOTIONS,
)
from emoscore.data import ravdess
from emoscore.data.ravdess import TEST_ACTORS, VAL_ACTORS
from emoscore.metrics import EMOTION_TO_QUADRANT, emotion_metrics
from emoscore.speech import MODEL_NAME, extract_features, feature_constants, fit_window, normalise_window

AUDIO_SUFFIXES = (".wav", ".flac")
WINDOW_SAMPLES = int(AUDIO_WINDOW_SECONDS * AUDIO_SAMPLE_RATE)  # 48000


@dataclass(frozen=True)
class AudioTrainOptions:
    ravdess: Path
    out: Path
    epochs: int = 60
    seed: int = 0
    augment_copies: int = 3  # augmented variants per training clip, besides the clip itself
    ensemble: int = 3  # CNNs trained with different seeds whose probabilities are averaged
    batch_size: int = 32
    patience: int = 12
    quadrant_loss: float = 1.0  # weight of the auxiliary quadrant cross-entropy (0: emotion loss only)
    test_actors: tuple[int, ...] = TEST_ACTORS
    val_actors: tuple[int, ...] = VAL_ACTORS
    max_files: int | None = None  # cap for quick runs (tests)
    command: str = "emoscore train audio"
    workers: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


def load_clip(path: Path) -> np.ndarray:
    """A RAVDESS clip as 16 kHz mono float32, resampled if the file is at another rate (the official 48 kHz)."""
    import librosa
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != AUDIO_SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=AUDIO_SAMPLE_RATE)
    return audio


def crop_speech(audio: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """A 3 s crop centred on the speech (found by trimming silence); jittered by up to 0.25 s with `rng`."""
    import librosa

    _, (start, end) = librosa.effects.trim(audio, top_db=35)
    centre = (start + end) // 2
    if rng is not None:
        centre += int(rng.integers(-AUDIO_SAMPLE_RATE // 4, AUDIO_SAMPLE_RATE // 4 + 1))
    first = centre - WINDOW_SAMPLES // 2
    padded = np.pad(audio, (WINDOW_SAMPLES, WINDOW_SAMPLES))
    return padded[first + WINDOW_SAMPLES:first + 2 * WINDOW_SAMPLES]


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random time stretch, pitch shift, gain and background noise, each as a real recording would vary."""
    import librosa

    if rng.random() < 0.6:
        audio = librosa.effects.time_stretch(audio, rate=float(rng.uniform(0.85, 1.15)))
    if rng.random() < 0.6:
        audio = librosa.effects.pitch_shift(audio, sr=AUDIO_SAMPLE_RATE, n_steps=float(rng.uniform(-2, 2)))
    audio = audio * float(10 ** (rng.uniform(-9, 6) / 20))
    if rng.random() < 0.7:
        snr_db = rng.uniform(12, 35)
        power = np.mean(audio**2) + 1e-12
        audio = audio + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(audio)).astype(np.float32)
    return audio.astype(np.float32)


def clip_windows(path: Path, copies: int, seed: int) -> np.ndarray:
    """(1 + copies, 150, 27) model inputs for one clip: the clean centred crop, then augmented crops."""
    rng = np.random.default_rng(seed)
    audio = load_clip(path)
    crops = [crop_speech(audio, None)]
    for _ in range(copies):
        crops.append(crop_speech(augment(audio, rng), rng))
    return np.stack([normalise_window(fit_window(extract_features(c), 0)) for c in crops])


def _clip_job(args: tuple[Path, int, int]) -> np.ndarray:
    return clip_windows(*args)


def build_windows(items: Sequence[ravdess.RavdessItem], copies: int, seed: int, workers: int,
                  log: Callable[[str], None], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Features for all items (in parallel processes): (n * (1 + copies), 150, 27) and labels."""
    jobs = [(item.path, copies, seed * 100_003 + i) for i, item in enumerate(items)]
    out: list[np.ndarray] = []
    step = max(len(jobs) // 10, 1)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            results = stack.enter_context(ProcessPoolExecutor(max_workers=workers)).map(_clip_job, jobs, chunksize=8)
        else:
            results = map(_clip_job, jobs)
        for i, windows in enumerate(results):
            out.append(windows)
            if (i + 1) % step == 0 or i + 1 == len(jobs):
                log(f"  {what} features {i + 1}/{len(jobs)}")
    x = np.concatenate(out)
    y = np.repeat(np.array([item.emotion for item in items]), 1 + copies)
    return x, y


def build_model(train_x: np.ndarray, seed: int, name: str = "speech_emotion_cnn") -> Any:
    """The 1D CNN: (150, 27) frames -> 8 emotion probabilities. Feature scaling is inside the model."""
    from emoscore.tf_util import tf

    keras = tf().keras
    layers = keras.layers
    norm = layers.Normalization(axis=-1)
    norm.adapt(train_x.reshape(-1, N_AUDIO_FEATURES))
    inputs = keras.Input((AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES))
    x = norm(inputs)
    x = layers.GaussianNoise(0.1, seed=seed)(x)
    for filters, kernel, pool in ((64, 5, True), (96, 5, True), (128, 3, True), (128, 3, False)):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        if pool:
            x = layers.MaxPooling1D(2)(x)
        x = layers.SpatialDropout1D(0.1, seed=seed)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    x = layers.Dropout(0.4, seed=seed)(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(N_EMOTIONS, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def emotion_loss(quadrant_weight: float) -> Callable[[Any, Any], Any]:
    """Per-window loss: label-smoothed 8-class cross-entropy plus `quadrant_weight` times the cross-entropy
    of the quadrant probabilities (emotion probabilities summed per quadrant, as the quadrant metric does)."""
    from emoscore.tf_util import tf

    keras = tf().keras
    to_quadrant = tf().constant(EMOTION_TO_QUADRANT)

    def loss(y_true: Any, y_pred: Any) -> Any:
        total = keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=0.1)
        if quadrant_weight:
            total += quadrant_weight * keras.losses.categorical_crossentropy(
                tf().matmul(y_true, to_quadrant), tf().matmul(y_pred, to_quadrant))
        return total

    return loss


def fit(options: AudioTrainOptions, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
        log: Callable[[str], None], seed: int, name: str = "speech_emotion_cnn") -> Any:
    """Train one CNN with early stopping on the validation actors (on the training loss without them).

    The loss adds an auxiliary quadrant term (options.quadrant_loss), chosen by actor-wise cross-validation
    on the training actors (it beat mixup, mixup + quadrant loss and per-window standardisation there).
    """
    from emoscore.tf_util import fit_classifier, seed_everything, tf

    seed_everything(seed)
    keras = tf().keras
    model = build_model(train[0], seed, name)
    # Compiled and fitted through a wrapper sharing the weights, so the returned model carries no compile
    # config with the custom loss (Keras could not deserialise it when the saved model is loaded).
    trainer = keras.Model(model.input, model(model.input), name=f"{name}_trainer")
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=emotion_loss(options.quadrant_loss),
                    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    fit_classifier(trainer, train[0], train[1], val, n_classes=N_EMOTIONS, epochs=options.epochs,
                   batch_size=options.batch_size, patience=options.patience, lr_patience=5, log=log)
    return model


def fit_ensemble(options: AudioTrainOptions, train: tuple[np.ndarray, np.ndarray],
                 val: tuple[np.ndarray, np.ndarray], log: Callable[[str], None]) -> tuple[Any, list[Any]]:
    """(one model averaging `options.ensemble` CNNs trained with seeds seed, seed+1, ..., the members)."""
    from emoscore.tf_util import tf

    keras = tf().keras
    members = []
    for k in range(options.ensemble):
        log(f"model {k + 1}/{options.ensemble} (seed {options.seed + k})")
        members.append(fit(options, train, val, log, options.seed + k, name=f"speech_cnn_{k}"))
    if len(members) == 1:
        return members[0], members
    inputs = keras.Input((AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES))
    outputs = keras.layers.Average()([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="speech_emotion_ensemble"), members


def train_audio_model(options: AudioTrainOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train on RAVDESS speech, evaluate on the test actors, save the model and its manifest entry.

    Returns the test-actor metrics (also written to <out>/audio_metrics.json).
    """
    from emoscore.checkpoints import record_model
    from emoscore.tf_util import save_keras

    started = time.monotonic()
    items = ravdess.scan(options.ravdess, AUDIO_SUFFIXES)
    items = [i for i in items if i.vocal_channel == 1][: options.max_files]
    train, val, test = ravdess.split_by_actor(items, options.test_actors, options.val_actors)
    log(f"{len(train)} train / {len(val)} validation / {len(test)} test clips "
        f"(test actors {list(options.test_actors)}, validation actors {list(options.val_actors)})")
    train_xy = build_windows(train, options.augment_copies, options.seed, options.workers, log, "train")
    val_xy = build_windows(val, 0, options.seed, options.workers, log, "validation") if val else (
        np.zeros((0, AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES), np.float32), np.zeros(0, int))
    test_x, test_y = build_windows(test, 0, options.seed, options.workers, log, "test")
    model, members = fit_ensemble(options, train_xy, val_xy, log)
    metrics = emotion_metrics(test_y, np.asarray(model(test_x, training=False)))
    metrics["test_actors"] = list(options.test_actors)
    metrics["member_accuracy"] = [round(emotion_metrics(test_y, np.asarray(m(test_x, training=False)))["accuracy"], 4)
                                  for m in members]
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    options.out.mkdir(parents=True, exist_ok=True)
    save_keras(model, options.out / "audio.keras")
    (options.out / "audio_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    record_model(options.out, MODEL_NAME, "audio-cnn", {"model": "audio.keras"},
                 constants=feature_constants(), command=options.command, metrics=metrics,
                 data=f"RAVDESS speech ({options.ravdess.name}): {len(train)} train clips of actors "
                      f"{sorted({i.actor for i in train})}, {len(val)} validation, {len(test)} test",
                 extra={"seed": options.seed, "augment_copies": options.augment_copies,
                        "ensemble": options.ensemble, "quadrant_loss": options.quadrant_loss})
    return metrics


def evaluate_audio_model(root: Path, checkpoints: Path, actors: Sequence[int] | None = None,
                         log: Callable[[str], None] = lambda _: None, workers: int = 2) -> dict[str, Any]:
    """Metrics of the installed speech model on the given actors' clips (default: the test actors)."""
    from emoscore.speech import SpeechEmotionModel

    model = SpeechEmotionModel(checkpoints)
    items = [i for i in ravdess.scan(root, AUDIO_SUFFIXES) if i.vocal_channel == 1]
    items = ravdess.select_actors(items, actors or ravdess.TEST_ACTORS)
    x, y = build_windows(items, 0, 0, workers, log, "eval")
    metrics = emotion_metrics(y, model.predict(x))
    metrics["actors"] = sorted({i.actor for i in items})
    return metrics
