"""A toy training run (tiny LSTMs, 2 epochs x 2 steps) into tmp, then generation from it: invariants on
every generated piece, determinism, soundtracks across quadrants, and the `compose` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from typer.testing import CliRunner

from emoscore.checkpoints import load_manifest
from emoscore.cli import app
from emoscore.config import MusicConfig
from emoscore.constants import QUADRANTS
from emoscore.errors import ChecksumError, InputError
from emoscore.music.compose import SegmentSpec, compose_piece, compose_soundtrack, load_sampler
from emoscore.music.evaluate import part_notes
from emoscore.music.lstm import LstmOptions
from emoscore.music.sampler import SamplingControls
from emoscore.music.train import MusicTrainOptions, train_music_models

SCALES = {"Q1": (0, 2, 4, 5, 7, 9, 11), "Q2": (0, 2, 3, 5, 7, 8, 11), "Q3": (0, 2, 3, 5, 7, 8, 10),
          "Q4": (0, 2, 4, 5, 7, 9, 11)}
STEP = {"Q1": 0.15, "Q2": 0.12, "Q3": 0.45, "Q4": 0.35}  # seconds between onsets


def synth_piece(path: Path, quadrant: str, rng: np.random.Generator, n: int = 140) -> None:
    """A random walk in the quadrant's scale, its speed and loudness by arousal."""
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    degree, t = 7, 0.0
    for _ in range(n):
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 20))
        pitch = 57 + 12 * (degree // 7) + SCALES[quadrant][degree % 7]
        vel = 95 if quadrant in ("Q1", "Q2") else 55
        piano.notes.append(pretty_midi.Note(vel, pitch, t, t + STEP[quadrant] * 1.5))
        t += STEP[quadrant] * float(rng.choice([1, 1, 2]))
    midi.instruments.append(piano)
    midi.write(str(path))


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Checkpoints of a toy run on synthetic EMOPIA-layout data (one song per quadrant and split)."""
    root = tmp_path_factory.mktemp("music")
    (root / "midis").mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        rows = ["fname,label"]
        for q in QUADRANTS:
            for k in range(2 if split == "train" else 1):
                name = f"{q}_{split}song_{k}"
                synth_piece(root / "midis" / f"{name}.mid", q, rng)
                rows.append(f"{name},{q}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    out = root / "checkpoints"
    options = MusicTrainOptions(data=root / "midis", out=out, seed=1, eval_pieces=1, eval_seconds=6.0,
                                lstm=LstmOptions(units=16, epochs=2, pretrain_epochs=2, steps_per_epoch=2,
                                                 batch_size=8, stride=16))
    train_music_models(options, log=lambda _: None)
    return out


def test_toy_training_records_every_model(toy: Path) -> None:
    models = load_manifest(toy)["models"]
    assert {"music_q1", "music_q2", "music_q3", "music_q4", "music_judge"} <= set(models)
    entry = models["music_q3"]
    assert entry["metrics"]["val_loss"] > 0 and entry["constants"]["seq_len"] == 64
    assert "accuracy_4q" in models["music_judge"]["metrics"]
    assert (toy / "music_q1.keras").stat().st_size < 10_000_000


def check_piece(midi: pretty_midi.PrettyMIDI, seconds: float) -> None:
    """Invariants of every generated piece."""
    assert midi.get_end_time() == pytest.approx(seconds, abs=1e-9)
    notes = part_notes(midi, None)
    assert len(notes) and notes[:, 1].max() <= seconds + 1e-9
    assert notes[:, 2].min() >= 21 and notes[:, 2].max() <= 108
    assert (notes[:, 1] - notes[:, 0]).min() > 0.01
    covered = 0.0
    for start, end in notes[np.argsort(notes[:, 0]), :2]:
        assert start - covered <= 2.0, f"silence from {covered:.2f} s to {start:.2f} s"
        covered = max(covered, end)
    assert seconds - covered <= 2.0
    density = len(part_notes(midi, "melody")) / seconds
    assert 0.3 <= density <= 25
    assert {inst.name.split()[0] for inst in midi.instruments} == {"melody", "pad", "bass"}


def check_arrangement(midi: pretty_midi.PrettyMIDI, seconds: float, quadrant: str) -> None:
    """The melody leads (louder in RMS than pad and bass, each rendered alone), its density lies in the
    quadrant's band, and the MIDI's tempo map puts the melody's grid onsets on sixteenth-note ticks."""
    from emoscore.music.properties import part_balance

    balance = part_balance(midi, seconds)
    assert balance["pad_db"] < -1.0 and balance["bass_db"] < -1.0, balance
    style = MusicConfig().style(quadrant)
    density = len(part_notes(midi, "melody")) / seconds
    assert style.min_notes_per_second * 0.95 <= density <= style.max_notes_per_second + 1e-9, density
    sixteenth = midi.resolution // 4
    ticks = np.array([midi.time_to_tick(n.start) for n in midi.instruments[0].notes])
    assert np.mean(ticks % sixteenth == 0) > 0.9
    pedal = [cc for cc in midi.instruments[0].control_changes if cc.number == 64]
    assert (len(pedal) > 0) == (style.pedal > 0)


@pytest.mark.parametrize("quadrant", QUADRANTS)
def test_generated_piece_invariants(toy: Path, quadrant: str) -> None:
    check_piece(compose_piece(quadrant, 9.5, MusicConfig(), toy, seed=3), 9.5)
    for seed in (1, 2, 3):
        check_arrangement(compose_piece(quadrant, 12.0, MusicConfig(), toy, seed=seed), 12.0, quadrant)


def test_tempo_map_of_a_soundtrack_follows_its_segments(toy: Path) -> None:
    segments = [SegmentSpec(0.0, 6.0, "Q3", -0.5, -0.5), SegmentSpec(6.0, 12.0, "Q1", 0.5, 0.5)]
    midi = compose_soundtrack(segments, 12.0, MusicConfig(), toy, seed=2)
    times, bpm = midi.get_tempo_changes()
    assert bpm[0] == pytest.approx(MusicConfig().q3.tempo, rel=1e-3)
    assert bpm[-1] == pytest.approx(MusicConfig().q1.tempo, rel=1e-3)
    assert 5.0 < times[1] < times[-1] < 7.0  # the ramp sits around the boundary
    reread = pretty_midi.PrettyMIDI(_written(midi, toy.parent / "map.mid"))
    np.testing.assert_allclose(reread.get_tempo_changes()[1], bpm, rtol=1e-3)
    starts = np.sort([n.start for n in midi.instruments[0].notes])
    again = np.sort([n.start for n in reread.instruments[0].notes])
    np.testing.assert_allclose(again, starts, atol=0.003)  # note times survive the round trip


def _written(midi: pretty_midi.PrettyMIDI, path: Path) -> str:
    midi.write(str(path))
    return str(path)


def test_same_seed_same_notes_other_seed_other_notes(toy: Path) -> None:
    def notes(seed: int) -> np.ndarray:
        return part_notes(compose_piece("Q2", 6.0, MusicConfig(), toy, seed=seed), "melody")

    np.testing.assert_array_equal(notes(5), notes(5))
    assert not np.array_equal(notes(5), notes(6))


def test_primed_generation_covers_the_span(toy: Path) -> None:
    sampler = load_sampler(toy, "Q1")
    prime = np.array([[0, 39, 3, 5], [2, 43, 3, 5], [2, 46, 3, 5]], np.int32)
    tokens = sampler.generate(64, SamplingControls(max_shift=8), seed=2, prime=prime)
    onsets = np.cumsum(tokens[:, 0])
    assert onsets[-1] < 64 and 64 - onsets[-1] <= 8 and np.diff(np.r_[0, onsets]).max() <= 8
    again = sampler.generate(64, SamplingControls(max_shift=8), seed=2, prime=prime)
    np.testing.assert_array_equal(tokens, again)


def test_key_tempo_and_valence_arousal(toy: Path) -> None:
    midi = compose_piece(None, 5.0, MusicConfig(), toy, valence=-0.8, arousal=-0.7, tempo=70, key="Eb major")
    check_piece(midi, 5.0)
    assert midi.get_tempo_changes()[1][0] == pytest.approx(70)
    assert {inst.program for inst in midi.instruments} == {0, 49, 42}  # Q3: piano, slow strings, cello
    with pytest.raises(InputError):
        compose_piece(None, 5.0, MusicConfig(), toy, valence=0.5)


def test_soundtrack_across_quadrants_ends_exactly(toy: Path) -> None:
    segments = [SegmentSpec(0.0, 4.2, "Q4", 0.5, -0.4), SegmentSpec(4.2, 9.0, "Q2", -0.6, 0.7),
                SegmentSpec(9.0, 13.37, "Q3", -0.5, -0.6)]
    midi = compose_soundtrack(segments, 13.37, MusicConfig(), toy, seed=4)
    check_piece(midi, 13.37)
    programs = {inst.program for inst in midi.instruments}
    assert {61, 89, 49} <= programs  # each quadrant's pad (brass, warm pad, slow strings)
    bad = [SegmentSpec(0.0, 4.0, "Q1", 0.5, 0.5), SegmentSpec(5.0, 9.0, "Q2", -0.5, 0.5)]
    with pytest.raises(InputError, match="tile"):
        compose_soundtrack(bad, 9.0, MusicConfig(), toy)


def test_altered_checkpoint_is_refused(toy: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "ck"
    shutil.copytree(toy, copy)
    with open(copy / "music_q1.keras", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ChecksumError):
        compose_piece("Q1", 3.0, MusicConfig(), copy)


def test_compose_command(toy: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "piece.mid"
    args = ["compose", "--quadrant", "Q3", "--seconds", "4", "-o", str(out), "--checkpoints", str(toy)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    before = out.read_bytes()
    assert pretty_midi.PrettyMIDI(str(out)).get_end_time() == pytest.approx(4.0, abs=0.01)
    again = runner.invoke(app, [*args, "--seed", "9"])
    assert again.exit_code == 6 and "exists" in again.output
    assert out.read_bytes() == before
    wav = tmp_path / "piece.wav"
    result = runner.invoke(app, [*args, "--overwrite", "--wav", str(wav), "--arousal", "0.5"])
    assert result.exit_code == 2  # --quadrant with --arousal is ambiguous
    result = runner.invoke(app, [*args, "--overwrite", "--wav", str(wav)])
    assert result.exit_code == 0, result.output
    assert wav.stat().st_size > 4 * 44_100 * 2 * 2
