"""`emoscore train music`: the four quadrant LSTMs and the music-emotion judge, recorded in the manifest.

1. Read every labelled MIDI (EMOPIA or 4Q layout, plus VGMIDI), estimate its key and move it to
   C major / A minor, tokenize.
2. Pre-train one LSTM on all quadrants (early stopping on all validation pieces), then fine-tune a copy
   per quadrant (early stopping on that quadrant's validation pieces): one file per quadrant.
3. Train the judge on the piano clips' train split (validation picks the classifier), test it.
4. Generate pieces per quadrant and let the judge say whether they carry the intended quadrant.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import QUADRANTS
from emoscore.data import music as data
from emoscore.errors import DataError
from emoscore.music import judge as judge_mod
from emoscore.music.events import piece_stats, preprocess_notes, quantize, read_midi_notes, vocab_constants
from emoscore.music.lstm import SEQ_LEN, LstmOptions, build_model, compile_model, fit, make_windows, reset_optimizer

VOCAB_FILE = "music_vocab.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class MusicTrainOptions:
    data: Path
    out: Path
    vgmidi: Path | None = None
    seed: int = 0
    lstm: LstmOptions = field(default_factory=LstmOptions)
    pretrain: bool = True
    eval_pieces: int = 8  # generated pieces per quadrant for the judge's agreement
    eval_seconds: float = 30.0
    max_files: int | None = None  # per source, for quick runs (tests)
    command: str = "emoscore train music"


@dataclass
class Piece:
    item: data.MusicItem
    tokens: np.ndarray  # (n, 4) in C major / A minor
    notes: np.ndarray  # original note array, seconds


def load_corpus(options: MusicTrainOptions, log: Log) -> list[Piece]:
    """Every labelled piece, tokenized in the common key. Raises DataError on a bad layout or file."""
    items = data.scan_quadrant_folder(options.data)[: options.max_files]
    if options.vgmidi is not None:
        items += data.scan_vgmidi(options.vgmidi)[: options.max_files]
    pieces = []
    for item in items:
        notes = read_midi_notes(item.path)
        if len(notes) < 8:
            log(f"  skipped {item.path.name}: {len(notes)} notes")
            continue
        tokens, _ = preprocess_notes(notes)
        pieces.append(Piece(item, tokens, notes))
    if not pieces:
        raise DataError(f"no usable MIDI (8 notes or more) under {options.data}")
    log(f"{len(pieces)} pieces, {sum(len(p.tokens) for p in pieces)} notes: "
        + ", ".join(f"{q} {sum(p.item.quadrant == q for p in pieces)}" for q in QUADRANTS))
    return pieces


def windows_of(pieces: Sequence[Piece], split: str, quadrant: str | None, stride: int) -> np.ndarray:
    chosen = [p.tokens for p in pieces if p.item.split == split and quadrant in (None, p.item.quadrant)]
    return make_windows(chosen, stride)


def reference_stats(pieces: Sequence[Piece]) -> dict[str, dict[str, list[float]]]:
    """Per quadrant, mean and std of density, pitch range, pitch-class entropy, 4-gram repetition of the
    training pieces (seconds at their own tempo)."""
    out: dict[str, dict[str, list[float]]] = {}
    for q in QUADRANTS:
        stats = [piece_stats(p.notes) for p in pieces if p.item.quadrant == q and p.item.split == "train"]
        out[q] = {k: [float(np.mean([s[k] for s in stats])), float(np.std([s[k] for s in stats]))]
                  for k in (stats[0] if stats else {})}
    return out


def train_lstms(pieces: Sequence[Piece], options: MusicTrainOptions, log: Log) -> dict[str, dict[str, Any]]:
    """Pre-train on all quadrants, fine-tune per quadrant, save music_qN.keras. Returns metrics per quadrant."""
    from emoscore.tf_util import save_keras, seed_everything

    lo = options.lstm
    windows = {q: (windows_of(pieces, "train", q, lo.stride // 2), windows_of(pieces, "val", q, lo.stride // 2))
               for q in QUADRANTS}
    for q, (train, val) in windows.items():
        if not len(train) or not len(val):
            raise DataError(f"{q}: {len(train)} train / {len(val)} validation windows of {SEQ_LEN} notes; "
                            f"need both (more or longer pieces)")
    seed_everything(options.seed)
    model = build_model(lo.units, lo.layers, lo.dropout)
    compile_model(model, lo.learning_rate)
    shared_loss = None
    if options.pretrain:
        train_all, val_all = windows_of(pieces, "train", None, lo.stride), windows_of(pieces, "val", None, lo.stride)
        log(f"pre-training on all quadrants: {len(train_all)} train / {len(val_all)} validation windows")
        pretrain = dataclasses.replace(lo, epochs=min(lo.pretrain_epochs, lo.epochs), max_windows=None)
        shared_loss = fit(model, train_all, val_all, pretrain, options.seed, log, "all")
    shared = model.get_weights()
    metrics: dict[str, dict[str, Any]] = {}
    for q in QUADRANTS:
        started = time.monotonic()
        train, val = windows[q]
        seed_everything(options.seed)
        model.set_weights(shared)  # the same model object: Keras keeps its traced train step
        reset_optimizer(model, lo.learning_rate / 2 if options.pretrain else lo.learning_rate)
        log(f"{q}: fine-tuning on {len(train)} train / {len(val)} validation windows")
        val_loss = fit(model, train, val, lo, options.seed, log, q)
        save_keras(model, options.out / f"music_{q.lower()}.keras")
        metrics[q] = {"val_loss": round(val_loss, 4), "train_windows": int(len(train)),
                      "val_windows": int(len(val)), "pretrain_val_loss": shared_loss,
                      "train_seconds": round(time.monotonic() - started, 1)}
    return metrics


def train_judge(pieces: Sequence[Piece], options: MusicTrainOptions, log: Log) -> dict[str, Any]:
    """Fit the judge on the piano clips (not VGMIDI) as the LSTM sees them (quantized to its grid, so
    generated pieces are judged on equal terms), save it, return its test metrics."""
    clips = [p for p in pieces if p.item.source != "vgmidi"]

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        chosen = [p for p in clips if p.item.split == split]
        return (judge_mod.feature_matrix([quantize(p.notes) for p in chosen]),
                np.array([QUADRANTS.index(p.item.quadrant) for p in chosen], dtype=np.int64))

    train, val, test = xy("train"), xy("val"), xy("test")
    if min(len(train[1]), len(val[1]), len(test[1])) == 0:
        raise DataError("the judge needs train, validation and test clips; the data has an empty split")
    log(f"judge: {len(train[1])} train / {len(val[1])} validation / {len(test[1])} test clips")
    model, name, scores = judge_mod.train_judge(train, val, options.seed, log)
    judge_mod.save_judge(model, options.out / judge_mod.JUDGE_FILE)
    metrics = judge_mod.quadrant_metrics(test[1], model.predict(test[0]))
    metrics.update(classifier=name, val_accuracy=scores[name], train_clips=int(len(train[1])))
    return metrics


def data_description(pieces: Sequence[Piece], options: MusicTrainOptions) -> str:
    counts = {s: sum(p.item.split == s for p in pieces) for s in data.SPLITS}
    sources = sorted({p.item.source for p in pieces})
    return (f"{', '.join(sources)} from {options.data}" + (f" and {options.vgmidi}" if options.vgmidi else "")
            + f": {counts['train']} train / {counts['val']} validation / {counts['test']} test pieces "
            f"(EMOPIA official song-level split; other pieces split by song hash)")


def record_all(options: MusicTrainOptions, pieces: Sequence[Piece], lstm: dict[str, dict[str, Any]],
               judge: dict[str, Any], generated: dict[str, Any] | None) -> None:
    from emoscore.checkpoints import record_model
    from emoscore.music.compose import model_name

    lo = options.lstm
    constants = {**vocab_constants(), "seq_len": SEQ_LEN, "units": lo.units, "layers": lo.layers}
    what = data_description(pieces, options)
    agreement = (generated or {}).get("per_quadrant", {})
    for q in QUADRANTS:
        record_model(options.out, model_name(q), "music-lstm",
                     {"model": f"music_{q.lower()}.keras", "vocab": VOCAB_FILE}, constants=constants, data=what,
                     command=options.command, metrics={**lstm[q], "generated": agreement.get(q, {})},
                     extra={"seed": options.seed, "quadrant": q})
    judge_metrics = {**judge, "generated": (generated or {}).get("overall", {})}
    record_model(options.out, judge_mod.JUDGE_NAME, "music-judge", {"model": judge_mod.JUDGE_FILE},
                 constants=judge_mod.judge_constants(), command=options.command, metrics=judge_metrics,
                 data=f"EMOPIA piano clips: {judge['train_clips']} train (+ validation for selection), "
                      f"{judge['n']} test", extra={"seed": options.seed, "input": "piano part (the LSTM's notes)"})
    from emoscore.export import LSTM_KINDS, export_all  # the .npz weights that `compose` runs

    export_all(options.out, kinds=LSTM_KINDS)


def train_music_models(options: MusicTrainOptions, log: Log = print) -> dict[str, Any]:
    """Train and record everything; returns {"lstm": ..., "judge": ..., "generated": ...}."""
    from emoscore.config import load_config
    from emoscore.fileio import write_json_atomic
    from emoscore.music.evaluate import evaluate_generated

    started = time.monotonic()
    pieces = load_corpus(options, log)
    options.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(options.out / VOCAB_FILE, {**vocab_constants(), "seq_len": SEQ_LEN,
                                                 "reference_stats": reference_stats(pieces)})
    lstm = train_lstms(pieces, options, log)
    judge = train_judge(pieces, options, log)
    record_all(options, pieces, lstm, judge, None)
    generated = None
    if options.eval_pieces > 0:
        generated = evaluate_generated(options.out, load_config(None).music, options.eval_pieces,
                                       options.eval_seconds, options.seed, log)
        record_all(options, pieces, lstm, judge, generated)
    result = {"lstm": lstm, "judge": judge, "generated": generated,
              "train_seconds": round(time.monotonic() - started, 1)}
    path = options.out / "music_metrics.json"
    previous = json.loads(path.read_text()) if path.exists() else {}  # keeps what `train music-judge` wrote
    write_json_atomic(path, {**previous, **result})
    return result


# --- `emoscore train music-judge`: both judges, without retraining the LSTMs ----------------------

@dataclass(frozen=True)
class JudgeTrainOptions:
    data: Path
    out: Path
    cache: Path  # renders and audio features of the training clips are kept and reused here
    vgmidi: Path | None = None
    seed: int = 0
    seconds: float = 30.0  # each clip is rendered from its start for this long
    soundfont: str = ""
    eval_pieces: int = 10  # composed pieces per quadrant judged after training (0: none)
    eval_seed: int = 1  # their seeds: eval_seed * 7919 + 0..eval_pieces-1
    command: str = "emoscore train music-judge"


def train_audio_judge_on(items: Sequence[data.MusicItem], options: JudgeTrainOptions, log: Log) -> dict[str, Any]:
    """Fit the audio judge on the renders of the train + validation clips (and VGMIDI), classifier chosen by
    song-grouped CV; save it; return its metrics on EMOPIA's test renders."""
    from emoscore.music import audio_judge as aj

    fit_items = [i for i in items if i.split != "test" or i.source == "vgmidi"]
    test_items = [i for i in items if i.split == "test" and i.source != "vgmidi"]
    if not test_items:
        raise DataError("the audio judge needs EMOPIA test clips; the data has none")
    log(f"audio judge: rendering / reading {len(items)} clips ({options.seconds:.0f} s each) under {options.cache}")
    fit = aj.labelled_set(fit_items, options.cache, options.seconds, options.soundfont, log)
    test = aj.labelled_set(test_items, options.cache, options.seconds, options.soundfont, log)
    model, name, scores = aj.train_audio_judge(fit, options.seed, log)
    judge_mod.save_judge(model, options.out / aj.AUDIO_JUDGE_FILE)
    metrics = judge_mod.quadrant_metrics(test.y, model.predict(test.x))
    metrics.update(classifier=name, cv_accuracy=round(scores[name], 4), cv_folds=aj.CV_FOLDS,
                   train_clips=int(len(fit.y)), cv_scores={k: round(v, 4) for k, v in scores.items()})
    return metrics


def record_judges(options: JudgeTrainOptions, midi_judge: dict[str, Any], audio: dict[str, Any],
                  generated: dict[str, Any] | None) -> None:
    from emoscore.checkpoints import record_model
    from emoscore.music import audio_judge as aj

    gen = generated or {}
    record_model(options.out, judge_mod.JUDGE_NAME, "music-judge", {"model": judge_mod.JUDGE_FILE},
                 constants=judge_mod.judge_constants(), command=options.command,
                 metrics={**midi_judge, "generated": gen.get("overall", {})},
                 data=f"EMOPIA piano clips from {options.data}: {midi_judge['train_clips']} train (+ validation "
                      f"for selection), {midi_judge['n']} test", extra={"seed": options.seed, "input": "piano part"})
    record_model(options.out, aj.AUDIO_JUDGE_NAME, "music-audio-judge", {"model": aj.AUDIO_JUDGE_FILE},
                 constants=aj.audio_judge_constants(), command=options.command,
                 metrics={**audio, "generated": gen.get("overall_audio", {})},
                 data=f"fluidsynth renders (first {options.seconds:.0f} s) of EMOPIA train + validation clips"
                      + (f" and VGMIDI ({options.vgmidi})" if options.vgmidi else "")
                      + f": {audio['train_clips']} clips; {audio['n']} EMOPIA test clips",
                 extra={"seed": options.seed, "input": "rendered full arrangement, mono 22.05 kHz"})


def train_music_judges(options: JudgeTrainOptions, log: Log = print) -> dict[str, Any]:
    """Train the MIDI and audio judges (the LSTMs stay as they are), measure EMOPIA's properties, judge
    composed pieces; record both judges and update music_metrics.json. Returns those metrics."""

    from emoscore.config import load_config
    from emoscore.fileio import write_json_atomic
    from emoscore.music.evaluate import evaluate_generated, reference_properties

    started = time.monotonic()
    music_options = MusicTrainOptions(data=options.data, out=options.out, vgmidi=options.vgmidi, seed=options.seed)
    pieces = load_corpus(music_options, log)
    options.out.mkdir(parents=True, exist_ok=True)
    midi_judge = train_judge(pieces, music_options, log)
    audio = train_audio_judge_on([p.item for p in pieces], options, log)
    record_judges(options, midi_judge, audio, None)
    reference = reference_properties(options.data, options.cache, options.seconds, options.soundfont, log)
    generated = None
    if options.eval_pieces > 0:
        generated = evaluate_generated(options.out, load_config(None).music, options.eval_pieces,
                                       options.seconds, options.eval_seed, log)
        record_judges(options, midi_judge, audio, generated)
    path = options.out / "music_metrics.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    result = {**previous, "judge": midi_judge, "audio_judge": audio, "generated": generated,
              "emopia_properties": reference, "judge_train_seconds": round(time.monotonic() - started, 1)}
    write_json_atomic(path, result)
    return result
