"""Loudness the way editors measure it: ITU-R BS.1770-4 integrated loudness (LUFS) and true peak (dBTP).

- Integrated loudness: the BS.1770-4 meter of pyloudnorm (K-weighting, 400 ms blocks with 75 % overlap,
  absolute gate -70 LUFS, relative gate -10 LU), run as dsp.integrated_loudness - a numpy port that
  tests/test_runtime.py checks against pyloudnorm itself to 1e-6 LU - because pyloudnorm imports scipy.signal
  (1-2.5 s on every run). Clips shorter than one block are measured zero-padded to one block.
- True peak: BS.1770-4 Annex 2 - the largest absolute sample after 4x oversampling with the Annex's
  published 48-tap polyphase interpolation filter (TRUE_PEAK_PHASES), in dBTP.
- Normalising to a target: one gain to the target, then the project's look-ahead limiter keeps the true peak
  at or under the ceiling; limiting lowers the loudness a little, so the gain is corrected and the limiter rerun
  (up to NORMALISE_PASSES times) until the loudness is within TARGET_TOLERANCE_LU of the target.

Audio is float32 (n,) or (n, channels) in [-1, 1] at `sample_rate` Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoscore.config import OPTION_RANGES
from emoscore.errors import InputError

TRUE_PEAK_OVERSAMPLING = 4  # BS.1770-4 Annex 2 for 48 kHz (and 44.1 kHz) material
# BS.1770-4 Annex 2: the 4 phases x 12 taps of the interpolation filter (phases 2 and 3 mirror 1 and 0).
_PHASE_0 = (0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875,
            0.1373291015625, 0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250,
            0.0148925781250, -0.0083007812500)
_PHASE_1 = (-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500,
            0.4650878906250, 0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625,
            0.0330810546875, -0.0189208984375)
TRUE_PEAK_PHASES = np.array([_PHASE_0, _PHASE_1, _PHASE_1[::-1], _PHASE_0[::-1]], dtype=np.float32)  # (4, 12)
TRUE_PEAK_CEILING_DBTP = -1.0  # what streaming and broadcast specs ask of a final mix
LIMITER_MARGIN_DB = 0.2  # the limiter works on samples; inter-sample peaks ride up to this much above
SILENCE_LUFS = -120.0  # the loudness reported for silence (the meter's -inf)
LOUDNESS_TARGET_RANGE = OPTION_RANGES["--loudness"]  # LUFS targets emoscore accepts (web -14, broadcast -23)
TARGET_TOLERANCE_LU = 0.1
NORMALISE_PASSES = 4
BLOCK_SECONDS = 0.4


@dataclass(frozen=True)
class LoudnessReport:
    """Measurements of one signal: integrated loudness (LUFS) and true peak (dBTP)."""

    integrated_lufs: float
    true_peak_dbtp: float

    def to_dict(self) -> dict[str, float]:
        return {"integrated_lufs": round(self.integrated_lufs, 2), "true_peak_dbtp": round(self.true_peak_dbtp, 2)}


def check_target(target_lufs: float) -> None:
    """InputError unless target_lufs lies in LOUDNESS_TARGET_RANGE."""
    low, high = LOUDNESS_TARGET_RANGE
    if not low <= target_lufs <= high:
        raise InputError(f"--loudness must be within {low:g}..{high:g} LUFS (web -14, broadcast -23), "
                         f"got {target_lufs:g}")


def _as_2d(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)  # float32 stays float32: the meter works in float64 a block at a time
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] > 5:
        raise InputError(f"audio must be (n,) or (n, channels <= 5), got shape {np.shape(audio)}")
    return x


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness in LUFS; SILENCE_LUFS for silence or no samples."""
    from emoscore.dsp import integrated_loudness as bs1770  # pyloudnorm's meter without scipy.signal's 1-2 s import

    x = _as_2d(audio)
    block = int(np.ceil(BLOCK_SECONDS * sample_rate))
    if len(x) == 0 or not np.any(x):
        return SILENCE_LUFS
    if len(x) < block + 1:
        x = np.concatenate([x, np.zeros((block + 1 - len(x), x.shape[1]))])
    with np.errstate(divide="ignore"):
        value = bs1770(x, sample_rate)
    return value if np.isfinite(value) else SILENCE_LUFS


def true_peak(audio: np.ndarray) -> float:
    """BS.1770-4 true peak in dBTP: max |sample| of the 4x oversampled signal (each phase of the Annex 2 filter
    convolved with each channel) and of the samples themselves; SILENCE_LUFS for silence."""
    x = np.asarray(audio, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if x.size == 0:
        return SILENCE_LUFS
    peak = float(np.abs(x).max())
    for channel in x.T:
        for phase in TRUE_PEAK_PHASES:
            peak = max(peak, float(np.abs(np.convolve(channel, phase)).max()))
    return float(20 * np.log10(peak)) if peak > 0 else SILENCE_LUFS


def measure(audio: np.ndarray, sample_rate: int) -> LoudnessReport:
    return LoudnessReport(integrated_loudness(audio, sample_rate), true_peak(audio))


def normalise(audio: np.ndarray, sample_rate: int, target_lufs: float,
              ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> tuple[np.ndarray, LoudnessReport]:
    """(audio at target_lufs with true peak <= ceiling_dbtp, its measurements). Silence is returned as is.

    The loudness may stay under the target when the ceiling cannot allow it (a signal that is all peaks).
    """
    from emoscore.mixing import limit_peaks

    check_target(target_lufs)
    x = np.asarray(audio, dtype=np.float32)
    level = integrated_loudness(x, sample_rate)
    if level <= SILENCE_LUFS:
        return x.copy(), LoudnessReport(level, true_peak(x))
    gain_db = target_lufs - level
    out = x
    for _ in range(NORMALISE_PASSES):
        out = limit_peaks(x * np.float32(10 ** (gain_db / 20)), ceiling_dbtp - LIMITER_MARGIN_DB, sample_rate)
        level = integrated_loudness(out, sample_rate)
        if abs(level - target_lufs) <= TARGET_TOLERANCE_LU:
            break
        gain_db += target_lufs - level
    out = _under_ceiling(out, ceiling_dbtp)
    return out, measure(out, sample_rate)


def _under_ceiling(audio: np.ndarray, ceiling_dbtp: float) -> np.ndarray:
    """Scale down by the excess when inter-sample peaks still exceed the ceiling (a fraction of a dB)."""
    excess = true_peak(audio) - ceiling_dbtp
    if excess <= 0:
        return audio
    return (audio * np.float32(10 ** (-(excess + 0.01) / 20))).astype(np.float32)
