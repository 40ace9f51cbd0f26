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

from collections.abc import Callable, Iterable, Iterator
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


# --- Streams: the same measurements and normalisation a block at a time ---------------------------------


class StreamMeter:
    """measure() of an n-sample signal fed as consecutive blocks (n known ahead): the same K-weighting
    overlap-add blocks as dsp.integrated_loudness and the same true-peak convolutions, in memory that does not
    grow with n."""

    def __init__(self, n: int, sample_rate: int, channels: int = 2) -> None:
        from emoscore import dsp

        self.n, self.rate, self.channels = n, sample_rate, channels
        self.size = max(n, int(np.ceil(BLOCK_SECONDS * sample_rate)) + 1)  # short clips: zero-padded as measure()
        self.lower, self.upper = dsp.loudness_blocks(self.size, sample_rate)
        self.edges = np.unique(np.concatenate([self.lower, self.upper]))
        response = dsp.k_weighting_response(sample_rate)
        self.fft_size = 1 << int(np.ceil(np.log2(dsp.FILTER_BLOCK + dsp.K_TAPS)))
        self.spectrum = np.fft.rfft(response, self.fft_size)
        self.cum = np.zeros((channels, len(self.edges)))
        self.carry = np.zeros((channels, dsp.K_TAPS))
        self.total = np.zeros(channels)
        self.pending: list[np.ndarray] = []
        self.have = 0
        self.done = 0  # samples filtered so far
        self.fed = 0
        self.nonzero = False
        self.peak = 0.0
        self.tail = np.zeros((0, channels), np.float32)  # the last 11 samples, for the true-peak filter

    def feed(self, block: np.ndarray) -> None:
        """Add the next (m, channels) (or (m,) mono) samples."""
        from emoscore import dsp

        x = _as_2d(block)
        self.fed += len(x)
        self.nonzero = self.nonzero or bool(np.any(x))
        self._true_peak(np.asarray(x, dtype=np.float32))
        for piece in (x[i:i + dsp.FILTER_BLOCK] for i in range(0, len(x), dsp.FILTER_BLOCK)):
            self.pending.append(piece)
            self.have += len(piece)
            while self.have >= dsp.FILTER_BLOCK:
                self._flush(dsp.FILTER_BLOCK)

    def _flush(self, count: int) -> None:
        joined = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        piece, rest = joined[:count], joined[count:]
        self.pending, self.have = ([rest] if len(rest) else []), len(rest)
        for c in range(self.channels):
            self._filter(c, np.asarray(piece[:, c], dtype=np.float64))
        self.done += len(piece)

    def _filter(self, c: int, piece: np.ndarray) -> None:
        """dsp.k_weighted_energy's loop body for one FILTER_BLOCK of channel c."""
        from emoscore import dsp

        filtered = np.fft.irfft(np.fft.rfft(piece, self.fft_size) * self.spectrum, self.fft_size)
        filtered = filtered[:len(piece) + dsp.K_TAPS]
        filtered[:dsp.K_TAPS] += self.carry[c]
        self.carry[c] = filtered[len(piece):len(piece) + dsp.K_TAPS]
        cum = self.total[c] + np.concatenate([[0.0], np.cumsum(filtered[:len(piece)] ** 2)])
        first = self.done
        inside = (self.edges >= first) & (self.edges <= first + len(piece))
        self.cum[c, inside] = cum[self.edges[inside] - first]
        self.total[c] = cum[-1]

    def _true_peak(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        self.peak = max(self.peak, float(np.abs(x).max()))
        taps = TRUE_PEAK_PHASES.shape[1] - 1
        joined = np.concatenate([self.tail, x])
        skip = len(self.tail)
        for channel in joined.T:
            for phase in TRUE_PEAK_PHASES:
                self.peak = max(self.peak, float(np.abs(np.convolve(channel, phase)[skip:len(joined)]).max()))
        self.tail = joined[-taps:]

    def result(self) -> LoudnessReport:
        """The report of what was fed (which must be n samples)."""
        if self.fed != self.n:
            raise InputError(f"the meter was told {self.n} samples and fed {self.fed}")
        if self.n == 0:
            return LoudnessReport(SILENCE_LUFS, SILENCE_LUFS)
        for channel in self.tail.T:  # the filter's ring-out past the last sample, as np.convolve's full output
            for phase in TRUE_PEAK_PHASES:
                self.peak = max(self.peak, float(np.abs(np.convolve(channel, phase)[len(self.tail):]).max()))
        self.tail = self.tail[:0]
        if self.size > self.fed:
            self.feed(np.zeros((self.size - self.fed, self.channels), np.float32))
            self.fed = self.n
        if self.have:
            self._flush(self.have)
        peak = float(20 * np.log10(self.peak)) if self.peak > 0 else SILENCE_LUFS
        return LoudnessReport(self._integrated() if self.nonzero else SILENCE_LUFS, peak)

    def _integrated(self) -> float:
        """dsp.integrated_loudness's gating on the cumulative energies at the block edges."""
        from emoscore import dsp

        z = np.stack([cum[np.searchsorted(self.edges, self.upper)] - cum[np.searchsorted(self.edges, self.lower)]
                      for cum in self.cum])
        value = dsp.gated_loudness(z / (dsp.LOUDNESS_BLOCK * self.rate))
        return value if np.isfinite(value) else SILENCE_LUFS


def measure_blocks(blocks: Iterable[np.ndarray], n: int, sample_rate: int, channels: int = 2) -> LoudnessReport:
    """measure() of the n-sample signal that `blocks` make up."""
    meter = StreamMeter(n, sample_rate, channels)
    for block in blocks:
        meter.feed(block)
    return meter.result()


def normalise_blocks(source: Callable[[], Iterator[np.ndarray]], n: int, sample_rate: int, target_lufs: float,
                     ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> Iterator[np.ndarray]:
    """normalise()'s audio (the same samples) as consecutive blocks. source: a callable returning a fresh
    iterator over the n-sample stereo signal (read once per pass: a measuring pass, up to NORMALISE_PASSES
    limiting passes, then the pass that yields)."""
    check_target(target_lufs)
    level = measure_blocks(source(), n, sample_rate).integrated_lufs
    if level <= SILENCE_LUFS:
        yield from source()
        return
    gain_db = used = target_lufs - level
    report = LoudnessReport(level, SILENCE_LUFS)
    for _ in range(NORMALISE_PASSES):
        used = gain_db
        report = measure_blocks(_limited(source, n, sample_rate, used, ceiling_dbtp), n, sample_rate)
        if abs(report.integrated_lufs - target_lufs) <= TARGET_TOLERANCE_LU:
            break
        gain_db += target_lufs - report.integrated_lufs
    excess = report.true_peak_dbtp - ceiling_dbtp
    for block in _limited(source, n, sample_rate, used, ceiling_dbtp):
        yield block if excess <= 0 else (block * np.float32(10 ** (-(excess + 0.01) / 20))).astype(np.float32)


def _limited(source: Callable[[], Iterator[np.ndarray]], n: int, sample_rate: int, gain_db: float,
             ceiling_dbtp: float) -> Iterator[np.ndarray]:
    from emoscore.mixing import limit_blocks

    gain = np.float32(10 ** (gain_db / 20))
    return limit_blocks((np.asarray(b, dtype=np.float32) * gain for b in source()), n,
                        ceiling_dbtp - LIMITER_MARGIN_DB, sample_rate)
