"""Training and evaluation of the speech emotion CNN on RAVDESS speech, split by actor."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import (
    AUDIO_LEVEL,
    AUDIO_SAMPLE_RATE,
    AUDIO_WINDOW_FRAMES,
    AUDIO_WINDOW_SECONDS,
    N_AUDIO_FEATURES,
    N_EMOTIONS,
)
from emoscore.data import ravdess
from emoscore.data.ravdess import TEST_ACTORS, VAL_ACTORS, clip_key
from emoscore.errors import DataError
from emoscore.metrics import EMOTION_TO_QUADRANT, emotion_metrics, headline
from emoscore.speech import MODEL_NAME, extract_features, feature_constants, fit_window, normalise_window
from emoscore.speech_augment import augment, channel, mask_window

AUDIO_SUFFIXES = (".wav", ".flac")
WINDOW_SAMPLES = int(AUDIO_WINDOW_SECONDS * AUDIO_SAMPLE_RATE)  # 48000
DEGRADED_SEED = 7_919  # seeds the channel of each clip's degraded test copy (with the clip's own seed)
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "emoscore-cache" / "voice"
CV_VAL_ACTORS = 2  # actors of each cross-validation fold's training side held out for early stopping
AUGMENT_VERSION = 2  # bump when clip_windows or speech_augment change, so cached features are rebuilt
MASK_SEED = 4_241  # seeds the masks of the training windows (with the training seed)
UNIFORM_PRIOR_KEYS = ("quadrant_accuracy", "quadrant_balanced_accuracy", "quadrant_recall")
# Options added after out-of-fold caches were written: left out of the cache key at the values those caches
# were made with, so they stay valid.
LATER_OPTIONS: dict[str, Any] = {"deltas": False, "pooling": "mean-max", "masks": 0, "cv_ensemble": 1}


@dataclass(frozen=True)
class AudioTrainOptions:
    ravdess: Path
    out: Path
    epochs: int = 60
    seed: int = 0
    augment_copies: int = 3  # augmented variants per training clip, besides the clip itself
    channel_augment: float = 0.8  # share of augmented copies also passed through a random real channel
    level: str = AUDIO_LEVEL  # loudness feature: "relative" or "absolute" (speech.normalise_window)
    ensemble: int = 3  # CNNs trained with different seeds whose probabilities are averaged
    batch_size: int = 32
    patience: int = 12
    quadrant_loss: float = 1.0  # weight of the auxiliary quadrant cross-entropy (0: emotion loss only)
    deltas: bool = False  # also feed the model each feature's change over time (a fixed layer inside it)
    pooling: str = "mean-max"  # pooling over time: "mean-max", or "mean-max-var" (adds the variance)
    masks: int = 0  # SpecAugment-style time and feature masks per augmented training window (0: none)
    test_actors: tuple[int, ...] = TEST_ACTORS
    val_actors: tuple[int, ...] = VAL_ACTORS
    cv_folds: int = 0  # > 0: also record actor-wise cross-validation (clean and channel-degraded speech)
    cv_ensemble: int = 3  # CNNs (seeds) averaged in each cross-validation fold (as in the shipped model)
    max_files: int | None = None  # cap for quick runs (tests)
    command: str = "emoscore train audio"
    workers: int = 2
    cache: Path | None = None  # folder for cached features and out-of-fold predictions (None: no cache)
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


def clip_windows(path: Path, copies: int, seed: int, channel_share: float = 0.0) -> np.ndarray:
    """(2 + copies, 150, 27) raw (unnormalised) feature windows of one clip: the clean centred crop, `copies`
    augmented crops (each also through a random channel with probability `channel_share`), and last the
    clip through a random channel alone (the "degraded" test condition, the same for every recipe)."""
    rng = np.random.default_rng(seed)
    audio = load_clip(path)
    crops = [crop_speech(audio, None)]
    for _ in range(copies):
        varied = augment(audio, rng)
        crops.append(crop_speech(channel(varied, rng) if rng.random() < channel_share else varied, rng))
    crops.append(crop_speech(channel(audio, np.random.default_rng([seed, DEGRADED_SEED])), None))
    return np.stack([fit_window(extract_features(c), 0) for c in crops])


def _clip_job(args: tuple[Path, int, int, float]) -> np.ndarray:
    return clip_windows(*args)


def raw_windows(items: Sequence[ravdess.RavdessItem], copies: int, seed: int, channel_share: float, workers: int,
                log: Callable[[str], None], what: str, cache: Path | None = None) -> np.ndarray:
    """(n, 2 + copies, 150, 27) raw windows of all items (see clip_windows), computed in parallel processes
    and kept in `cache` (keyed by the files and the recipe) when given."""
    key = _cache_key(_identity(items), copies, seed, channel_share, AUGMENT_VERSION)
    cached = cache / f"windows-{key}.npy" if cache is not None else None
    if cached is not None and cached.exists():
        log(f"  {what} features from {cached}")
        return np.load(cached)
    jobs = [(item.path, copies, seed * 100_003 + i, channel_share) for i, item in enumerate(items)]
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
    x = np.stack(out)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, x)
    return x


def _identity(items: Sequence[ravdess.RavdessItem]) -> list[tuple[str, int]]:
    """What identifies a set of clips for the cache wherever the folder is: names and sizes."""
    return [(i.path.name, i.path.stat().st_size) for i in items]


def _cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def model_inputs(raw: np.ndarray, parts: slice | int, level: str) -> np.ndarray:
    """Normalised model inputs (m, 150, 27) from the chosen parts of raw windows (n, k, 150, 27), clip-major."""
    chosen = raw[:, parts]
    flat = chosen.reshape(-1, *raw.shape[2:]) if chosen.ndim == 4 else chosen
    return np.stack([normalise_window(w, level) for w in flat]) if len(flat) else flat


def build_windows(items: Sequence[ravdess.RavdessItem], copies: int, seed: int, workers: int,
                  log: Callable[[str], None], what: str, level: str = AUDIO_LEVEL, channel_share: float = 0.0,
                  cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised inputs of the clean and `copies` augmented crops: (n * (1 + copies), 150, 27) and labels."""
    raw = raw_windows(items, copies, seed, channel_share, workers, log, what, cache)
    y = np.repeat(np.array([item.emotion for item in items]), 1 + copies)
    return model_inputs(raw, slice(0, 1 + copies), level), y


def time_difference(x: Any) -> Any:
    """(batch, frames, c) -> (batch, frames, c): each channel's centred difference (x[t+1] - x[t-1]) / 2, a
    fixed (non-trainable) depthwise convolution, so the model's input stays the 27 score-path features."""
    from emoscore.tf_util import tf

    layer = tf().keras.layers.DepthwiseConv1D(3, padding="same", use_bias=False, trainable=False, name="deltas")
    out = layer(x)
    kernel = np.zeros((3, int(x.shape[-1]), 1), np.float32)
    kernel[0], kernel[2] = -0.5, 0.5
    layer.set_weights([kernel])
    return out


def pool_over_time(x: Any, pooling: str) -> Any:
    """(batch, frames, c) -> (batch, 2c) mean and max over time, or (batch, 3c) with the variance too."""
    from emoscore.tf_util import tf

    layers = tf().keras.layers
    mean = layers.GlobalAveragePooling1D()(x)
    pooled = [mean, layers.GlobalMaxPooling1D()(x)]
    if pooling == "mean-max-var":
        square_mean = layers.GlobalAveragePooling1D()(layers.Multiply()([x, x]))
        pooled.append(layers.Subtract()([square_mean, layers.Multiply()([mean, mean])]))
    elif pooling != "mean-max":
        raise ValueError(f"unknown pooling {pooling!r}")
    return layers.Concatenate()(pooled)


def build_model(train_x: np.ndarray, seed: int, name: str = "speech_emotion_cnn", deltas: bool = False,
                pooling: str = "mean-max") -> Any:
    """The 1D CNN: (150, 27) frames -> 8 emotion probabilities. Feature scaling (and with `deltas` the
    features' changes over time) is inside the model; `pooling` see pool_over_time."""
    from emoscore.tf_util import tf

    keras = tf().keras
    layers = keras.layers
    norm = layers.Normalization(axis=-1)
    norm.adapt(train_x.reshape(-1, N_AUDIO_FEATURES))
    inputs = keras.Input((AUDIO_WINDOW_FRAMES, N_AUDIO_FEATURES))
    x = norm(inputs)
    if deltas:
        x = layers.Concatenate()([x, time_difference(x)])
    x = layers.GaussianNoise(0.1, seed=seed)(x)
    for filters, kernel, pool in ((64, 5, True), (96, 5, True), (128, 3, True), (128, 3, False)):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        if pool:
            x = layers.MaxPooling1D(2)(x)
        x = layers.SpatialDropout1D(0.1, seed=seed)(x)
    x = layers.Dropout(0.4, seed=seed)(pool_over_time(x, pooling))
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
    model = build_model(train[0], seed, name, options.deltas, options.pooling)
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


@dataclass(frozen=True)
class SpeechData:
    """Every clip's raw windows (n, 2 + copies, 150, 27) (see clip_windows), labels (n,), actors (n,)."""

    items: list[ravdess.RavdessItem]
    raw: np.ndarray
    y: np.ndarray
    actors: np.ndarray

    def inputs(self, actors: Sequence[int], parts: slice | int, level: str) -> tuple[np.ndarray, np.ndarray]:
        """Normalised inputs and labels of the given actors' clips, parts of each clip (clip-major)."""
        mask = np.isin(self.actors, list(actors))
        x = model_inputs(self.raw[mask], parts, level)
        return x, np.repeat(self.y[mask], len(x) // max(int(mask.sum()), 1))


def load_speech_data(options: AudioTrainOptions, log: Callable[[str], None]) -> SpeechData:
    """The speech clips (vocal channel 01) under options.ravdess with their raw windows."""
    items = [i for i in ravdess.scan(options.ravdess, AUDIO_SUFFIXES) if i.vocal_channel == 1][: options.max_files]
    raw = raw_windows(items, options.augment_copies, options.seed, options.channel_augment, options.workers, log,
                      "clip", options.cache)
    return SpeechData(items, raw, np.array([i.emotion for i in items]), np.array([i.actor for i in items]))


def train_on(options: AudioTrainOptions, data: SpeechData, train_actors: Sequence[int], val_actors: Sequence[int],
             log: Callable[[str], None]) -> tuple[Any, list[Any]]:
    """An ensemble trained on the clean + augmented windows of `train_actors`, early-stopped on `val_actors`."""
    train = data.inputs(train_actors, slice(0, 1 + options.augment_copies), options.level)
    if options.masks:
        train = (masked(train[0], 1 + options.augment_copies, options.masks, options.seed), train[1])
    val = data.inputs(val_actors, 0, options.level)
    return fit_ensemble(options, train, val, log)


def masked(x: np.ndarray, per_clip: int, masks: int, seed: int) -> np.ndarray:
    """Training inputs (n * per_clip, 150, 27), clip-major with each clip's clean window first: every other
    (augmented) window gets `masks` time and feature masks filled with the inputs' mean (speech_augment)."""
    fill = x.reshape(-1, x.shape[-1]).mean(axis=0)
    rng = np.random.default_rng([seed, MASK_SEED])
    out = x.copy()
    for i in range(len(x)):
        if i % per_clip:
            out[i] = mask_window(x[i], masks, fill, rng)
    return out


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)


def cross_validate(options: AudioTrainOptions, data: SpeechData, folds: int,
                   log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities of every clip from options.cv_ensemble CNNs trained without its actor's fold.

    In each fold CV_VAL_ACTORS of the remaining actors early-stop the training. Returns "clean" and "degraded"
    (n, 8) probabilities (the degraded copy: the clip through a random real channel), cached in options.cache.
    """
    ignored = ("ravdess", "out", "command", "workers", "cache", "ensemble", "cv_folds")
    recipe = {k: v for k, v in dataclasses.asdict(options).items()
              if k not in ignored and not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}
    key = _cache_key(_identity(data.items), recipe, folds, AUGMENT_VERSION)
    cached = options.cache / f"oof-{key}.npz" if options.cache is not None else None
    if cached is not None and cached.exists():
        log(f"out-of-fold predictions from {cached}")
        return dict(np.load(cached))
    n = len(data.items)
    result = {"clean": np.zeros((n, N_EMOTIONS), np.float32), "degraded": np.zeros((n, N_EMOTIONS), np.float32)}
    per_fold = dataclasses.replace(options, ensemble=options.cv_ensemble)
    for k, test_actors in enumerate(ravdess.actor_folds(data.actors.tolist(), folds, options.seed)):
        rest = [a for a in sorted(set(data.actors.tolist())) if a not in test_actors]
        n_val = min(CV_VAL_ACTORS, len(rest) - 1)
        val_actors = [int(a) for a in np.random.default_rng([options.seed, k]).choice(rest, n_val, replace=False)]
        log(f"fold {k + 1}/{folds}: test actors {list(test_actors)}, validation actors {sorted(val_actors)}")
        model, _ = train_on(per_fold, data, [a for a in rest if a not in val_actors], val_actors, log)
        mask = np.isin(data.actors, test_actors)
        result["clean"][mask] = predict(model, data.inputs(test_actors, 0, options.level)[0])
        result["degraded"][mask] = predict(model, data.inputs(test_actors, -1, options.level)[0])
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, clean=result["clean"], degraded=result["degraded"])
    return result


def cv_summary(y: np.ndarray, probs: dict[str, np.ndarray], folds: int) -> dict[str, Any]:
    """Headline metrics of out-of-fold predictions on clean and on channel-degraded speech; each condition's
    "uniform_prior" has the quadrant metrics read with the uniform quadrant prior, as the timeline and the
    fusion evaluation read them (each quadrant's mass divided by its number of emotions)."""
    out: dict[str, Any] = {"folds": folds, "n": int(len(y))}
    for condition, p in probs.items():
        out[condition] = headline(emotion_metrics(y, p))
        uniform = headline(emotion_metrics(y, p, uniform_prior=True))
        out[condition]["uniform_prior"] = {k: uniform[k] for k in UNIFORM_PRIOR_KEYS}
    return out


def out_of_fold_predictions(ravdess_root: Path, folds: int = 5, seed: int = 0,
                            log: Callable[[str], None] = lambda _: None, cache: Path | None = DEFAULT_CACHE
                            ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(keys "EE-II-SS-RR-AA", (n, 8) probabilities each from a model trained without that clip's actor,
    (n,) true emotion) for every speech clip under `ravdess_root`, with the shipped training recipe."""
    options = AudioTrainOptions(ravdess=ravdess_root, out=Path("."), seed=seed, cache=cache)
    data = load_speech_data(options, log)
    probs = cross_validate(options, data, folds, log)["clean"]
    return [clip_key(i) for i in data.items], probs, data.y


# The recipes --compare-recipes cross-validates (changes to AudioTrainOptions); the shipped one is among them.
# Every one has channel augmentation; "1 CNN" / "3 CNNs": members averaged in each fold (cv_ensemble).
# Measured on actors 1-20 (8-class / quadrant, clean): relative 1 CNN 0.546 / 0.677, absolute 0.528 / 0.669,
# deltas + variance pooling 0.558 / 0.684 (but degraded 0.493 vs 0.512), with 2 masks 0.508 / 0.666, and
# the shipped 3 CNNs 0.583 / 0.706 (uniform-prior Q3 recall 0.39 -> 0.53): seeds, not these layers, gained.
RECIPES: dict[str, dict[str, Any]] = {
    "absolute level, 1 CNN": {"level": "absolute", "cv_ensemble": 1},
    "relative level, 1 CNN": {"level": "relative", "cv_ensemble": 1},
    "relative level, deltas + variance pooling, 1 CNN": {"deltas": True, "pooling": "mean-max-var",
                                                         "cv_ensemble": 1},
    "relative level, deltas + variance pooling + 2 masks, 1 CNN": {"deltas": True, "pooling": "mean-max-var",
                                                                   "masks": 2, "cv_ensemble": 1},
    "relative level, 3 CNNs (shipped)": {"level": "relative", "cv_ensemble": 3},
}


def compare_recipes(options: AudioTrainOptions, folds: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Actor-wise CV of each training recipe in RECIPES (clean and degraded test speech)."""
    out = {}
    for name, changes in RECIPES.items():
        log(f"recipe: {name}")
        variant = dataclasses.replace(options, **changes)
        data = load_speech_data(variant, log)
        out[name] = cv_summary(data.y, cross_validate(variant, data, folds, log), folds)
    return out


def train_audio_model(options: AudioTrainOptions, log: Callable[[str], None] = print,
                      compare: bool = False) -> dict[str, Any]:
    """Train on RAVDESS speech, evaluate on the test actors (clean and channel-degraded), optionally
    cross-validate actor-wise (options.cv_folds) and compare recipes; save the model and its manifest entry.

    Returns the metrics (also written to <out>/audio_metrics.json).
    """
    started = time.monotonic()
    data = load_speech_data(options, log)
    present = set(data.actors.tolist())
    test_actors = [a for a in options.test_actors if a in present]
    val_actors = [a for a in options.val_actors if a in present]
    train_actors = sorted(present - set(test_actors) - set(val_actors))
    if not train_actors or not test_actors or set(test_actors) & set(val_actors):
        raise DataError(f"actor split leaves no training or test actors (present {sorted(present)})")
    log(f"train actors {train_actors}, validation {val_actors}, test {test_actors}")
    model, members = train_on(options, data, train_actors, val_actors, log)
    test_x, test_y = data.inputs(test_actors, 0, options.level)
    metrics = emotion_metrics(test_y, predict(model, test_x))
    metrics["test_actors"] = list(test_actors)
    metrics["degraded"] = headline(emotion_metrics(test_y, predict(model, data.inputs(test_actors, -1,
                                                                                       options.level)[0])))
    metrics["member_accuracy"] = [round(emotion_metrics(test_y, predict(m, test_x))["accuracy"], 4) for m in members]
    if options.cv_folds:
        metrics["cross_validation"] = cv_summary(data.y, cross_validate(options, data, options.cv_folds, log),
                                                 options.cv_folds)
    if compare and options.cv_folds:
        metrics["recipes"] = compare_recipes(options, options.cv_folds, log)
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    _save(options, model, metrics, data, (train_actors, val_actors, test_actors))
    return metrics


def _save(options: AudioTrainOptions, model: Any, metrics: dict[str, Any], data: SpeechData,
          split: tuple[list[int], list[int], list[int]]) -> None:
    from emoscore.checkpoints import record_model
    from emoscore.tf_util import save_keras

    counts = [int(np.isin(data.actors, part).sum()) for part in split]
    options.out.mkdir(parents=True, exist_ok=True)
    save_keras(model, options.out / "audio.keras")
    (options.out / "audio_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    record_model(options.out, MODEL_NAME, "audio-cnn", {"model": "audio.keras"},
                 constants=feature_constants(), command=options.command, metrics=metrics,
                 data=f"RAVDESS speech ({options.ravdess.name}): {counts[0]} train clips of actors {split[0]}, "
                      f"{counts[1]} validation (actors {split[1]}), {counts[2]} test (actors {split[2]})",
                 extra={"seed": options.seed, "augment_copies": options.augment_copies,
                        "channel_augment": options.channel_augment, "level": options.level,
                        "ensemble": options.ensemble, "quadrant_loss": options.quadrant_loss,
                        "deltas": options.deltas, "pooling": options.pooling, "masks": options.masks,
                        "cv_ensemble": options.cv_ensemble})
    from emoscore.export import export_model  # the .tflite that `score` runs

    export_model(options.out, MODEL_NAME)


def evaluate_audio_model(root: Path, checkpoints: Path, actors: Sequence[int] | None = None,
                         log: Callable[[str], None] = lambda _: None, workers: int = 2) -> dict[str, Any]:
    """Metrics of the installed speech model on the given actors' clips (default: the test actors when the
    folder has them, else every actor in it)."""
    from emoscore.speech import SpeechEmotionModel

    model = SpeechEmotionModel(checkpoints)
    items = [i for i in ravdess.scan(root, AUDIO_SUFFIXES) if i.vocal_channel == 1]
    if actors is None:
        present = {i.actor for i in items}
        actors = [a for a in ravdess.TEST_ACTORS if a in present] or sorted(present)
    items = ravdess.select_actors(items, actors)
    x, y = build_windows(items, 0, 0, workers, log, "eval")
    metrics = emotion_metrics(y, model.predict(x))
    metrics["actors"] = sorted({i.actor for i in items})
    return metrics
