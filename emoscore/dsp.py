"""The speech features of speech.extract_features in plain numpy: librosa's STFT, mel MFCC, chroma (with its
tuning estimate), RMS and spectral centroid, computed the same way, without librosa or numba.

Importing librosa costs ~1 s and ~180 MB, and its numba kernels compile on the first call after an install
(tens of seconds) or load from the cache (~1 s). This module needs numpy only, works through the signal in
blocks of frames (memory bounded whatever the length) and matches librosa 0.11 to float32 rounding
(tests/test_runtime.py compares the two on real speech).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

N_MELS = 40
BLOCK_FRAMES = 4096  # STFT frames per block: 16 MB of float32 frames at n_fft 1024
TUNING_RESOLUTION = 0.01  # fractions of a chroma bin (librosa.estimate_tuning)
PIPTRACK_FMIN, PIPTRACK_FMAX, PIPTRACK_THRESHOLD = 150.0, 4000.0, 0.1


# --- filter banks (librosa.filters.mel, librosa.filters.chroma, scipy's orthonormal DCT-II) --------------

def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mels = f / f_sp
    log_part = f >= min_log_hz
    return np.where(log_part, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.cache
def mel_filters(sample_rate: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32 Slaney-normalised triangular filters from 0 Hz to Nyquist."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


@functools.cache
def chroma_filters(sample_rate: int, n_fft: int, tuning: float, n_chroma: int = 12) -> np.ndarray:
    """(n_chroma, 1 + n_fft // 2) float32 Gaussian chroma bumps (octave weighting around C5, C first)."""
    frequencies = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (a440 / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidth = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * d / np.tile(binwidth, (n_chroma, 1))) ** 2)
    norm = np.sqrt((weights**2).sum(axis=0, keepdims=True))
    weights = weights / np.where(norm < np.finfo(weights.dtype).tiny, 1.0, norm)
    weights *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2.0) ** 2)), (n_chroma, 1))
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(weights[:, : int(1 + n_fft / 2)], dtype=np.float32)


@functools.cache
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II rows (scipy.fft.dct(norm="ortho"))."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


# --- framing and the STFT ---------------------------------------------------------------------------

def frame_blocks(audio: np.ndarray, n_fft: int, hop: int, block: int | None = None) -> Iterator[np.ndarray]:
    """Centred frames (zero-padded by n_fft // 2 at both ends), `block` (default BLOCK_FRAMES) at a time:
    (m, n_fft) float32 views. There are 1 + len(audio) // hop frames in all.
    """
    block = block or BLOCK_FRAMES
    padded = np.pad(np.asarray(audio, dtype=np.float32), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    for first in range(0, len(frames), block):
        yield frames[first:first + block]


@functools.cache
def _hann(n_fft: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic, as scipy's fftbins=True


def magnitude(frames: np.ndarray) -> np.ndarray:
    """(m, n_fft) frames -> (1 + n_fft // 2, m) float32 |STFT| (Hann window; float64 FFT, complex64 result)."""
    spectrum = np.fft.rfft(frames * _hann(frames.shape[1]), axis=1).astype(np.complex64)
    return np.abs(spectrum).T


# --- tuning (librosa.estimate_tuning over piptrack) --------------------------------------------------------

def _peaks(power: np.ndarray, sample_rate: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """piptrack on one block of power spectra (bins, m): (frequencies, magnitudes) of its interpolated peaks."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    x = power * (power > PIPTRACK_THRESHOLD * power.max(axis=0, keepdims=True))
    is_max = np.zeros(power.shape, dtype=bool)
    is_max[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    is_max[-1] = x[-1] > x[-2]
    is_max &= ((freqs >= PIPTRACK_FMIN) & (freqs < min(PIPTRACK_FMAX, sample_rate / 2)))[:, None]
    a = power[2:] + power[:-2] - 2 * power[1:-1]
    b = (power[2:] - power[:-2]) / 2
    shift = np.zeros_like(power)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift[1:-1] = np.where(np.abs(b) >= np.abs(a), 0, -b / a)
    avg = np.gradient(power, axis=0)
    rows, cols = np.nonzero(is_max)
    pitch = (rows + shift[rows, cols]) * float(sample_rate) / n_fft
    mag = power[rows, cols] + 0.5 * avg[rows, cols] * shift[rows, cols]
    return pitch, mag


def tuning_from_peaks(pitch: np.ndarray, mag: np.ndarray, n_chroma: int = 12) -> float:
    """The histogram peak of the peaks' deviation from equal temperament, in fractions of a chroma bin."""
    found = pitch > 0
    threshold = np.median(mag[found]) if found.any() else 0.0
    frequencies = pitch[(mag >= threshold) & found]
    frequencies = frequencies[frequencies > 0]
    if not len(frequencies):
        return 0.0
    residual = np.mod(n_chroma * np.log2(frequencies / (440.0 / 16)), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / TUNING_RESOLUTION)) + 1)
    counts, edges = np.histogram(residual, bins)
    return float(edges[np.argmax(counts)])


# --- the features ----------------------------------------------------------------------------------------

def speech_features(audio: np.ndarray, sample_rate: int, n_fft: int, hop: int, n_mfcc: int,
                    n_chroma: int) -> np.ndarray:
    """(1 + len(audio) // hop, n_mfcc + n_chroma + 2) float32: MFCC (40 mel bands, dB), raw chroma (tuned),
    RMS (linear), spectral centroid (Hz) per centred frame; two passes over blocks of frames."""
    mel = mel_filters(sample_rate, n_fft)
    dct = dct_matrix(n_mfcc, N_MELS)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    parts, peaks = [], []
    for frames in frame_blocks(audio, n_fft, hop):
        mag = magnitude(frames)
        power = mag**2
        mel_db = 10.0 * np.log10(np.maximum(1e-10, mel @ power))
        rms = np.sqrt(np.mean(frames.astype(np.float32) ** 2, axis=1, dtype=np.float32))
        total = mag.sum(axis=0)
        centroid = (freqs[:, None] * mag).sum(axis=0) / np.where(total < np.finfo(np.float32).tiny, 1.0, total)
        parts.append(np.hstack([(dct @ mel_db).T, np.zeros((len(frames), n_chroma)), rms[:, None],
                                centroid[:, None]]).astype(np.float32))
        peaks.append(_peaks(power, sample_rate, n_fft))
    features = np.concatenate(parts)
    tuning = tuning_from_peaks(np.concatenate([p for p, _ in peaks]), np.concatenate([m for _, m in peaks]),
                               n_chroma)
    chroma_fb = chroma_filters(sample_rate, n_fft, tuning, n_chroma)
    first = 0
    for frames in frame_blocks(audio, n_fft, hop):  # second pass: chroma needs the tuning of the whole clip
        features[first:first + len(frames), n_mfcc:n_mfcc + n_chroma] = (chroma_fb @ magnitude(frames) ** 2).T
        first += len(frames)
    return features
