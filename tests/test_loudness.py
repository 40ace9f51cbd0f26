"""BS.1770 loudness and true peak, the --loudness target, and the scored mix on the sample clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoscore import loudness, media
from emoscore.cli import app
from emoscore.errors import InputError
from emoscore.pipeline import stem_path

SR = 48_000
runner = CliRunner()


def sine(freq: float, amplitude: float, seconds: float = 5.0, sr: int = SR, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def test_sine_reads_its_bs1770_loudness() -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS; in both channels +3.01 dB more.
    mono = sine(997, 10 ** (-20 / 20))
    assert loudness.integrated_loudness(mono, SR) == pytest.approx(-23.01, abs=0.05)
    stereo = np.stack([mono, mono], axis=1)
    assert loudness.integrated_loudness(stereo, SR) == pytest.approx(-20.0, abs=0.05)


def test_true_peak_sees_between_the_samples() -> None:
    # A quarter-rate sine at 45 degrees: every sample is +-0.707 (-3 dBFS), the waveform peaks at 1.0.
    x = sine(SR / 4, 1.0, seconds=1.0, phase=np.pi / 4)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert loudness.true_peak(x) == pytest.approx(0.0, abs=0.3)


def test_silence_and_short_signals() -> None:
    assert loudness.integrated_loudness(np.zeros((SR, 2)), SR) == loudness.SILENCE_LUFS
    assert loudness.integrated_loudness(sine(997, 0.1, seconds=0.1), SR) < 0  # under one 400 ms block
    out, report = loudness.normalise(np.zeros((SR, 2), np.float32), SR, -14)
    assert not out.any() and report.integrated_lufs == loudness.SILENCE_LUFS


@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_normalise_hits_the_target_under_the_ceiling(clip_a: Path, target: float) -> None:
    dialogue = media.read_audio(clip_a, 44100, channels=2)
    out, report = loudness.normalise(dialogue, 44100, target)
    assert report.integrated_lufs == pytest.approx(target, abs=0.5)
    assert loudness.integrated_loudness(out, 44100) == pytest.approx(report.integrated_lufs, abs=1e-6)
    assert loudness.true_peak(out) <= loudness.TRUE_PEAK_CEILING_DBTP + 1e-6
    assert np.corrcoef(out[:, 0], dialogue[:, 0])[0, 1] > 0.95  # levelled, not reshaped


def test_a_peaky_signal_is_limited_to_the_ceiling() -> None:
    rng = np.random.default_rng(0)
    x = (0.01 * rng.standard_normal((SR * 4, 2))).astype(np.float32)
    x[::SR // 2] = 0.9  # clicks far above the noise
    out, report = loudness.normalise(x, SR, -14)
    assert report.true_peak_dbtp <= -1.0 + 1e-6
    assert report.integrated_lufs == pytest.approx(-14, abs=0.5)


@pytest.mark.parametrize("target", [-41.0, -4.0, 0.0])
def test_targets_out_of_range_are_refused(target: float) -> None:
    with pytest.raises(InputError, match="--loudness"):
        loudness.check_target(target)


@pytest.mark.slow
@pytest.mark.parametrize(("clip", "target", "extra"), [
    ("talking-head-a.mp4", -14.0, []),  # full recognition
    ("talking-head-b.mp4", -23.0, ["--segments", "0-2.5:Q4,2.5-:Q1"]),  # re-score path
])
def test_scored_mix_meets_the_target(tmp_path: Path, clip: str, target: float, extra: list[str]) -> None:
    source = Path(__file__).parent / "data" / clip
    out = tmp_path / clip
    result = runner.invoke(app, ["score", str(source), "-o", str(out), "--loudness", f"{target:g}", *extra])
    assert result.exit_code == 0, result.output
    assert f"(target {target:g})" in result.output and "input" in result.output
    mixed = media.read_audio(stem_path(out, ".mix.wav"), 44100, channels=2)
    assert loudness.integrated_loudness(mixed, 44100) == pytest.approx(target, abs=0.5)
    assert loudness.true_peak(mixed) <= -1.0 + 1e-6
    report = json.loads(stem_path(out, ".timeline.json").read_text())["meta"]["loudness"]
    assert report["target_lufs"] == target and report["output"]["integrated_lufs"] == pytest.approx(target, abs=0.5)
    assert report["input"]["integrated_lufs"] < -5
    original = media.read_audio(source, 16000)
    track = media.read_audio(out, 16000)  # the muxed (AAC) track
    n = min(len(original), len(track))
    assert np.corrcoef(original[:n], track[:n])[0, 1] > 0.6  # the dialogue is still there
    assert loudness.integrated_loudness(media.read_audio(out, 44100, channels=2), 44100) == pytest.approx(
        target, abs=0.5)
