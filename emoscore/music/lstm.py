"""The note LSTM: (shift, pitch, duration, velocity) embeddings -> LSTM layers -> four softmax heads.

One model per quadrant. Training windows are SEQ_LEN notes of one piece (teacher forcing: inputs are
notes 0..T-1 with a BOS row first, targets notes 1..T). Keras is used for training and for the file
format; `emoscore export` writes the weights to an .npz (lstm_weights / save_weights) and generation runs
them one step at a time in numpy (LstmStep, used by sampler.py), without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.music.events import BOS, FIELD_SIZES, FIELDS

SEQ_LEN = 64  # notes per training window
EMBED_DIMS: dict[str, int] = {"shift": 16, "pitch": 48, "duration": 12, "velocity": 8}


@dataclass(frozen=True)
class LstmOptions:
    units: int = 192
    layers: int = 1
    dropout: float = 0.2
    batch_size: int = 64
    stride: int = 32  # notes between window starts (fine-tuning uses half)
    learning_rate: float = 2e-3
    epochs: int = 6  # most fine-tuning epochs per quadrant
    pretrain_epochs: int = 10  # most pre-training epochs (all quadrants)
    patience: int = 2
    max_windows: int | None = 4000  # training windows per fine-tuning run, sampled; None keeps all
    steps_per_epoch: int | None = None  # cap for toy runs


def build_model(units: int, layers: int, dropout: float = 0.0) -> Any:
    """Keras model: 4 int inputs (batch, T) -> 4 logit outputs (batch, T, field size)."""
    from emoscore.tf_util import tf

    keras = tf().keras
    inputs = {f: keras.Input((None,), dtype="int32", name=f) for f in FIELDS}
    embedded = [keras.layers.Embedding(size + 1, EMBED_DIMS[f], name=f"embed_{f}")(inputs[f])
                for f, size in zip(FIELDS, FIELD_SIZES, strict=True)]
    x = keras.layers.Concatenate(name="concat")(embedded)
    for i in range(layers):
        x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = {f: keras.layers.Dense(size, name=f"head_{f}")(x) for f, size in zip(FIELDS, FIELD_SIZES,
                                                                                 strict=True)}
    return keras.Model(inputs, outputs, name="note_lstm")


def compile_model(model: Any, learning_rate: float) -> None:
    from emoscore.tf_util import tf

    keras = tf().keras
    losses = {f: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for f in FIELDS}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0), loss=losses)


def reset_optimizer(model: Any, learning_rate: float) -> None:
    """A fresh optimizer state (step count, moments) at `learning_rate`, keeping the compiled model."""
    for variable in model.optimizer.variables:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    model.optimizer.learning_rate.assign(learning_rate)


def make_windows(pieces: Sequence[np.ndarray], stride: int, seq_len: int = SEQ_LEN) -> np.ndarray:
    """(n, seq_len + 1, 4) int32 windows: each piece gets a BOS row first; short pieces are BOS-padded
    at the start (a padded window starts at BOS, so the model learns to begin unprimed)."""
    bos = np.array(BOS, np.int32)[None]
    windows = []
    for tokens in pieces:
        seq = np.concatenate([bos, tokens.astype(np.int32)])
        if len(seq) < seq_len + 1:
            continue
        for start in range(0, len(seq) - seq_len, stride):
            windows.append(seq[start:start + seq_len + 1])
    return np.stack(windows) if windows else np.zeros((0, seq_len + 1, 4), np.int32)


def split_xy(windows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Inputs (rows 0..T-1) and targets (rows 1..T) per field."""
    x = {f: windows[:, :-1, i] for i, f in enumerate(FIELDS)}
    y = {f: windows[:, 1:, i] for i, f in enumerate(FIELDS)}
    return x, y


def fit(model: Any, train: np.ndarray, val: np.ndarray, options: LstmOptions, seed: int,
        log: Callable[[str], None], what: str) -> float:
    """Train with early stopping on the validation windows; restores the best weights.

    Returns the best validation loss (sum of the four heads' cross-entropy, nats per note).
    """
    from emoscore.tf_util import tf

    keras = tf().keras
    rng = np.random.default_rng(seed)
    if options.max_windows is not None and len(train) > options.max_windows:
        train = train[rng.choice(len(train), options.max_windows, replace=False)]
    x, y = split_xy(train)
    vx, vy = split_xy(val)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience,
                                               restore_best_weights=True),
                 keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: log(
                     f"  {what} epoch {e + 1:2d}  loss {logs['loss']:.3f}  val_loss {logs['val_loss']:.3f}"))]
    if options.steps_per_epoch:  # a toy run: only the first batches of each epoch
        keep = min(len(train), options.steps_per_epoch * options.batch_size)
        x, y = {k: v[:keep] for k, v in x.items()}, {k: v[:keep] for k, v in y.items()}
    history = model.fit(x, y, batch_size=options.batch_size, validation_data=(vx, vy), epochs=options.epochs,
                        shuffle=True, verbose=0, callbacks=callbacks)
    return float(min(history.history["val_loss"]))


def lstm_weights(model: Any) -> dict[str, Any]:
    """The arrays a sampler needs: embeddings, per-layer (kernel, recurrent, bias), per-head (W, b)."""
    names = {layer.name: layer for layer in model.layers}
    layers = []
    i = 0
    while f"lstm_{i}" in names:
        layers.append([np.asarray(w) for w in names[f"lstm_{i}"].get_weights()])
        i += 1
    return {
        "embed": [np.asarray(names[f"embed_{f}"].get_weights()[0]) for f in FIELDS],
        "lstm": layers,
        "heads": [[np.asarray(w) for w in names[f"head_{f}"].get_weights()] for f in FIELDS],
    }


# --- inference without TensorFlow ------------------------------------------------------------------

def save_weights(weights: dict[str, Any], path: Path) -> None:
    """Write lstm_weights() arrays to an uncompressed .npz (atomically)."""
    from emoscore.fileio import atomic_path

    arrays = {f"embed_{i}": w for i, w in enumerate(weights["embed"])}
    for i, (kernel, recurrent, bias) in enumerate(weights["lstm"]):
        arrays.update({f"lstm_{i}_kernel": kernel, f"lstm_{i}_recurrent": recurrent, f"lstm_{i}_bias": bias})
    for i, (w, b) in enumerate(weights["heads"]):
        arrays.update({f"head_{i}_w": w, f"head_{i}_b": b})
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})  # type: ignore[arg-type]


def load_weights(path: Path) -> dict[str, Any]:
    """The save_weights() file back as lstm_weights()'s dict of float32 arrays."""
    with np.load(Path(path)) as data:
        n_layers = sum(k.endswith("_kernel") for k in data.files)
        return {"embed": [data[f"embed_{i}"] for i in range(len(FIELDS))],
                "lstm": [[data[f"lstm_{i}_{k}"] for k in ("kernel", "recurrent", "bias")] for i in range(n_layers)],
                "heads": [[data[f"head_{i}_w"], data[f"head_{i}_b"]] for i in range(len(FIELDS))]}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # = 1 / (1 + exp(-x)), without overflow warnings


class LstmStep:
    """One step of the note LSTM in numpy, state explicit: Keras' LSTM cell (gates i, f, c, o; sigmoid and
    tanh activations) on the embeddings of one token, then the four heads in one matrix product.

    State h, c: (layers, units) float32. Logits: one array per field, sizes FIELD_SIZES.
    """

    def __init__(self, weights: dict[str, Any]) -> None:
        self.embed = [np.asarray(w, np.float32) for w in weights["embed"]]
        self.lstm = [[np.asarray(w, np.float32) for w in layer] for layer in weights["lstm"]]
        self.units = int(self.lstm[0][1].shape[0])
        self.head_w = np.concatenate([np.asarray(w, np.float32) for w, _ in weights["heads"]], axis=1)
        self.head_b = np.concatenate([np.asarray(b, np.float32) for _, b in weights["heads"]])
        self._splits = np.cumsum([len(b) for _, b in weights["heads"]])[:-1]

    def zero_state(self) -> tuple[np.ndarray, np.ndarray]:
        zeros = np.zeros((len(self.lstm), self.units), np.float32)
        return zeros, zeros.copy()

    def __call__(self, h: np.ndarray, c: np.ndarray, token: Sequence[int] | np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """State (h, c) and token (4,) ints -> new (h, c) and the four logit vectors."""
        x = np.concatenate([e[int(t)] for e, t in zip(self.embed, token, strict=True)])
        hs, cs = [], []
        for layer, (kernel, recurrent, bias) in enumerate(self.lstm):
            z = x @ kernel + h[layer] @ recurrent + bias
            gi, gf, gc, go = np.split(z, 4)
            c_new = _sigmoid(gf) * c[layer] + _sigmoid(gi) * np.tanh(gc)
            x = _sigmoid(go) * np.tanh(c_new)
            hs.append(x)
            cs.append(c_new)
        logits = np.split(x @ self.head_w + self.head_b, self._splits)
        return np.stack(hs), np.stack(cs), logits
