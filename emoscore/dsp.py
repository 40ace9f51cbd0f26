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
BLOCK_FRAMES = 1024  # STFT frames per block (~20 s of speech): ~25 MB of float64 temporaries at n_fft 1024
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


# --- BS.1770 loudness (pyloudnorm's meter, without scipy.signal) -----------------------------------------

K_TAPS = 1 << 14  # K-weighting impulse response length: its slowest pole (38 Hz high-pass) decays below 1e-30
CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs
LOUDNESS_BLOCK, LOUDNESS_OVERLAP = 0.4, 0.75  # seconds, fraction
FILTER_BLOCK = 1 << 16  # samples per overlap-add block


def _biquad(kind: str, gain_db: float, q: float, fc: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook (b, a), normalised by a0, as pyloudnorm's IIRfilter builds them."""
    big_a = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * (fc / rate)
    alpha = np.sin(w0) / (2.0 * q)
    cos, root = np.cos(w0), 2 * np.sqrt(big_a) * alpha
    if kind == "high_shelf":
        b = big_a * np.array([(big_a + 1) + (big_a - 1) * cos + root, -2 * ((big_a - 1) + (big_a + 1) * cos),
                              (big_a + 1) + (big_a - 1) * cos - root])
        a = np.array([(big_a + 1) - (big_a - 1) * cos + root, 2 * ((big_a - 1) - (big_a + 1) * cos),
                      (big_a + 1) - (big_a - 1) * cos - root])
    else:  # high_pass
        b = np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2])
        a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return b / a[0], a / a[0]


@functools.cache
def k_weighting_response(rate: int) -> np.ndarray:
    """(K_TAPS,) impulse response of BS.1770's K-weighting (1500 Hz +4 dB shelf, then 38 Hz high-pass): the
    inverse FFT of the two biquads' frequency response on a grid twice as long (time aliasing < 1e-30)."""
    size = 2 * K_TAPS
    z = np.exp(-2j * np.pi * np.arange(size // 2 + 1) / size)  # z^-1 on the unit circle
    response = np.ones(len(z), dtype=complex)
    for b, a in (_biquad("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0, rate), _biquad("high_pass", 0.0, 0.5, 38.0, rate)):
        response *= (b[0] + b[1] * z + b[2] * z**2) / (a[0] + a[1] * z + a[2] * z**2)
    return np.fft.irfft(response, size)[:K_TAPS]


def k_weighted_energy(channel: np.ndarray, rate: int, at: np.ndarray) -> np.ndarray:
    """Cumulative energy of one K-weighted channel before each sample index `at` (sorted, 0..n): FFT
    overlap-add in float64 a block at a time, so memory stays at a few blocks whatever the length."""
    response = k_weighting_response(rate)
    size = 1 << int(np.ceil(np.log2(FILTER_BLOCK + K_TAPS)))
    spectrum = np.fft.rfft(response, size)
    out = np.zeros(len(at))
    carry, total = np.zeros(K_TAPS), 0.0
    for first in range(0, len(channel), FILTER_BLOCK):
        piece = np.asarray(channel[first:first + FILTER_BLOCK], dtype=np.float64)
        filtered = np.fft.irfft(np.fft.rfft(piece, size) * spectrum, size)[:len(piece) + K_TAPS]
        filtered[:K_TAPS] += carry
        carry = filtered[len(piece):len(piece) + K_TAPS].copy()
        cum = total + np.concatenate([[0.0], np.cumsum(filtered[:len(piece)] ** 2)])
        inside = (at >= first) & (at <= first + len(piece))
        out[inside] = cum[at[inside] - first]
        total = cum[-1]
    return out


def loudness_blocks(n: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) sample bounds of BS.1770's 400 ms gating blocks (75 % overlap) over n samples, as
    pyloudnorm places them."""
    n_blocks = int(np.round((n / rate - LOUDNESS_BLOCK) / (LOUDNESS_BLOCK * (1 - LOUDNESS_OVERLAP)))) + 1
    j = np.arange(n_blocks)
    lower = (LOUDNESS_BLOCK * (j * (1 - LOUDNESS_OVERLAP)) * rate).astype(int)
    upper = np.minimum((LOUDNESS_BLOCK * (j * (1 - LOUDNESS_OVERLAP) + 1) * rate).astype(int), n)
    return lower, upper


def gated_loudness(z: np.ndarray) -> float:
    """BS.1770 gated loudness in LUFS from (channels, blocks) mean-square K-weighted block energies: -70 LUFS
    absolute and -10 LU relative gates; -inf (or nan) for silence."""
    gains = np.array(CHANNEL_GAINS[:len(z)])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10((gains * z).sum(axis=0))
        kept = block_lufs >= -70.0
        relative = -0.691 + 10.0 * np.log10((gains[:, 0] * z[:, kept].mean(axis=1)).sum()) - 10.0
        kept = (block_lufs > relative) & (block_lufs > -70.0)
        mean = np.nan_to_num(z[:, kept].mean(axis=1)) if kept.any() else np.zeros(len(z))
        return float(-0.691 + 10.0 * np.log10((gains[:, 0] * mean).sum()))


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """BS.1770-4 gated loudness in LUFS of (n,) or (n, channels <= 5) audio, computed as pyloudnorm's Meter
    (400 ms blocks, 75 % overlap, -70 LUFS absolute and -10 LU relative gates); -inf for silence."""
    x = np.asarray(audio)
    x = x[:, None] if x.ndim == 1 else x
    lower, upper = loudness_blocks(len(x), rate)
    edges = np.unique(np.concatenate([lower, upper]))
    cums = [k_weighted_energy(x[:, i], rate, edges) for i in range(x.shape[1])]
    z = np.stack([cum[np.searchsorted(edges, upper)] - cum[np.searchsorted(edges, lower)] for cum in cums])
    return gated_loudness(z / (LOUDNESS_BLOCK * rate))
