"""Mixing the soundtrack under the dialogue: voice activity, ducking, loudness, fades, peak limiting.

Audio is float32 in [-1, 1]; mono is (n,), stereo is (n, 2); the soundtrack is stereo at
constants.OUTPUT_SAMPLE_RATE unless a function says otherwise.

- Loudness is RMS in dBFS over the non-silent part of the signal: 50 ms blocks are gated at -70 dBFS and at
  20 dB under the ungated level (EBU R128's two gates, without its K-weighting), so a quiet intro or a
  silent tail does not push the music up.
- Ducking looks ahead (the file is offline): the gain reaches duck_db by the time speech starts, ramping
  linearly in dB over attack_ms before it and back to 0 dB over release_ms after it.
- The limiter is a look-ahead brickwall with smooth gain ramps; its output never exceeds the ceiling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emoscore.config import MixConfig
from emoscore.constants import OUTPUT_SAMPLE_RATE
from emoscore.errors import InputError

SILENCE_DB = -120.0  # the level reported for digital silence
LOUDNESS_BLOCK_SECONDS = 0.05
ABSOLUTE_GATE_DB = -70.0
RELATIVE_GATE_DB = -20.0
VAD_MIN_DB = -55.0  # frames quieter than this (dBFS) are never speech
VAD_MARGIN_DB = 10.0  # speech is at least this far above the local noise floor
VAD_FLOOR_SECONDS = 4.0  # the noise floor is the quietest 0.5 s block within this span
VAD_SPEECH_BAND_HZ = (300.0, 3400.0)
VAD_MIN_BAND_RATIO = 0.3  # fraction of a frame's energy in the speech band
FADE_IN_SECONDS = 0.05
LIMITER_LOOKAHEAD_SECONDS = 0.005
CHUNK_SAMPLES = 1 << 18  # samples per block of the block-wise stages (~6 s at 44.1 kHz)


def _db(power: np.ndarray | float) -> np.ndarray:
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENCE_DB)


def to_mono(x: np.ndarray) -> np.ndarray:
    """(n,) or (n, c) -> (n,) float32 mean over channels."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        return x.mean(axis=1)
    raise InputError(f"audio must be (n,) or (n, channels), got shape {x.shape}")


def to_stereo(x: np.ndarray) -> np.ndarray:
    """(n,), (n, 1) or (n, 2) -> (n, 2) float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] not in (1, 2):
        raise InputError(f"audio must be mono (n,) or stereo (n, 2), got shape {x.shape}")
    return np.repeat(x, 2, axis=1) if x.shape[1] == 1 else x


def sliding_min(x: np.ndarray, radius: int) -> np.ndarray:
    """(n,) minimum of x over [i - radius, i + radius] for each i (van Herk / Gil-Werman, O(n))."""
    x = np.asarray(x, dtype=np.float64)
    if radius <= 0 or len(x) == 0:
        return x.copy()
    width = 2 * radius + 1
    n_blocks = -(-(len(x) + 2 * radius) // width)
    padded = np.full(n_blocks * width + width, np.inf)
    padded[radius:radius + len(x)] = x
    blocks = padded.reshape(-1, width)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    i = np.arange(len(x))
    return np.minimum(suffix[i], prefix[i + width - 1])


# --- Voice activity and ducking ------------------------------------------------------------------


def _frames(x: np.ndarray, hop: int) -> np.ndarray:
    n_frames = max(1, -(-len(x) // hop))
    padded = np.zeros(n_frames * hop, dtype=np.float32)
    padded[:len(x)] = x
    return padded.reshape(n_frames, hop)


def _band_ratio(frames: np.ndarray, sample_rate: int, chunk: int = 4096) -> np.ndarray:
    """(n_frames,) fraction of each frame's spectral energy inside VAD_SPEECH_BAND_HZ."""
    freqs = np.fft.rfftfreq(frames.shape[1], 1.0 / sample_rate)
    band = (freqs >= VAD_SPEECH_BAND_HZ[0]) & (freqs <= VAD_SPEECH_BAND_HZ[1])
    ratio = np.zeros(len(frames))
    for first in range(0, len(frames), chunk):
        power = np.abs(np.fft.rfft(frames[first:first + chunk] * np.hanning(frames.shape[1]), axis=1)) ** 2
        ratio[first:first + chunk] = power[:, band].sum(axis=1) / np.maximum(power.sum(axis=1), 1e-20)
    return ratio


def _noise_floor(level_db: np.ndarray, frame_seconds: float) -> np.ndarray:
    """(n_frames,) local noise floor: the quietest 0.5 s block mean within VAD_FLOOR_SECONDS."""
    per_block = max(1, round(0.5 / frame_seconds))
    blocks = _frames(level_db, per_block)
    block_means = blocks.mean(axis=1)
    block_means[-1] = level_db[(len(blocks) - 1) * per_block:].mean()
    floor = sliding_min(block_means, max(1, round(VAD_FLOOR_SECONDS / 2 / 0.5)))
    return np.repeat(floor, per_block)[:len(level_db)]


def _hold(active: np.ndarray, frames: int) -> np.ndarray:
    """Keep each active frame active for `frames` more frames (hangover)."""
    counts = np.cumsum(np.concatenate([[0], active.astype(np.int64)]))
    starts = np.maximum(np.arange(len(active)) - frames, 0)
    return (counts[np.arange(len(active)) + 1] - counts[starts]) > 0


def voice_activity(dialogue: np.ndarray, sample_rate: int, frame_seconds: float = 0.02,
                   hangover_seconds: float = 0.2) -> np.ndarray:
    """(ceil(n / hop),) bool per frame of frame_seconds: someone is speaking.

    A frame is speech when its RMS is above VAD_MIN_DB and VAD_MARGIN_DB over the local noise floor, and at
    least VAD_MIN_BAND_RATIO of its energy lies in 300-3400 Hz; activity is held for hangover_seconds.
    """
    if sample_rate <= 0 or frame_seconds <= 0:
        raise InputError(f"sample_rate and frame_seconds must be > 0, got {sample_rate}, {frame_seconds}")
    hop = max(1, round(frame_seconds * sample_rate))
    frames = _frames(to_mono(dialogue), hop)
    level = np.concatenate([_db((frames[i:i + 4096].astype(np.float64) ** 2).mean(axis=1))
                            for i in range(0, len(frames), 4096)])
    loud = (level > VAD_MIN_DB) & (level > _noise_floor(level, frame_seconds) + VAD_MARGIN_DB)
    speech = loud & (_band_ratio(frames, sample_rate) >= VAD_MIN_BAND_RATIO)
    return _hold(speech, round(hangover_seconds / frame_seconds))


def duck_envelope(activity: np.ndarray, n_samples: int, sample_rate: int, duck_db: float, attack_ms: float,
                  release_ms: float, frame_seconds: float = 0.02) -> np.ndarray:
    """(n_samples,) float32 linear gain: 1 away from speech, 10 ** (duck_db / 20) during it.

    activity: (n_frames,) bool, frame i covering samples [i * hop, (i + 1) * hop). The gain ramps linearly in
    dB, reaching duck_db at speech onset (attack, look-ahead) and recovering over release_ms after it.
    """
    if duck_db > 0 or attack_ms <= 0 or release_ms <= 0:
        raise InputError(f"need duck_db <= 0 and attack/release > 0 ms, got {duck_db}, {attack_ms}, "
                         f"{release_ms}")
    activity = np.asarray(activity, dtype=bool)
    target = np.where(activity, float(duck_db), 0.0)
    if not activity.any() or n_samples == 0:
        return np.ones(n_samples, dtype=np.float32)
    i = np.arange(len(target))
    rise = -duck_db * frame_seconds * 1000 / release_ms  # dB per frame after speech
    fall = -duck_db * frame_seconds * 1000 / attack_ms  # dB per frame before speech
    after = rise * i + np.minimum.accumulate(target - rise * i)
    gain_db = -fall * i + np.minimum.accumulate((after + fall * i)[::-1])[::-1]
    gain_db[activity] = duck_db  # exact plateaus despite the rounding of the ramps above
    gain_db[gain_db > -1e-9] = 0.0
    # Values at frame edges (the more ducked of the two frames an edge separates), so that every sample of a
    # speech frame gets exactly the ducked gain; linear in between.
    edge_db = np.concatenate([gain_db[:1], np.minimum(gain_db[:-1], gain_db[1:]), gain_db[-1:]])
    edges = np.arange(len(edge_db)) * frame_seconds * sample_rate
    linear = 10 ** (edge_db / 20)
    gain = np.empty(n_samples, dtype=np.float32)
    for first in range(0, n_samples, CHUNK_SAMPLES):
        samples = np.arange(first, min(first + CHUNK_SAMPLES, n_samples))
        gain[first:first + len(samples)] = np.clip(np.interp(samples, edges, linear), 10 ** (duck_db / 20), 1.0)
    return gain


# --- Loudness, fades, limiting -------------------------------------------------------------------


def rms_db(x: np.ndarray) -> float:
    """RMS level of all samples (and channels) in dBFS; SILENCE_DB for digital silence or no samples."""
    x = np.asarray(x, dtype=np.float64)
    return float(_db(np.mean(x**2))) if x.size else SILENCE_DB


def gated_rms_db(x: np.ndarray, sample_rate: int) -> float:
    """RMS in dBFS over the 50 ms blocks that pass the absolute and relative gates (see module docstring)."""
    if len(x) == 0:
        return SILENCE_DB
    block = max(1, round(LOUDNESS_BLOCK_SECONDS * sample_rate))
    step = block * max(1, CHUNK_SAMPLES // block)  # whole blocks per chunk: the same blocks as in one go
    power = np.concatenate([_frames((np.asarray(x[i:i + step], dtype=np.float64) ** 2).reshape(
        len(x[i:i + step]), -1).mean(axis=1).astype(np.float32), block).mean(axis=1) for i in range(0, len(x), step)])
    kept = power[_db(power) > ABSOLUTE_GATE_DB]
    if len(kept) == 0:
        return SILENCE_DB
    kept = kept[_db(kept) > _db(kept.mean()) + RELATIVE_GATE_DB]
    return float(_db(kept.mean()))


def normalise_loudness(music: np.ndarray, target_db: float,
                       sample_rate: int = OUTPUT_SAMPLE_RATE) -> np.ndarray:
    """Scale music so its gated RMS is target_db dBFS; silence is returned unchanged (float32 copy)."""
    music = np.asarray(music, dtype=np.float32)
    level = gated_rms_db(music, sample_rate) if len(music) else SILENCE_DB
    if level <= SILENCE_DB:
        return music.copy()
    return (music * np.float32(10 ** ((target_db - level) / 20))).astype(np.float32)


def fade_out(x: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """Copy of x (n,) or (n, c) with a raised-cosine fade over its last `seconds`; the last sample is 0."""
    return _fade(x, round(seconds * sample_rate), at_end=True)


def fade_in(x: np.ndarray, sample_rate: int, seconds: float = FADE_IN_SECONDS) -> np.ndarray:
    """Copy of x (n,) or (n, c) with a raised-cosine fade over its first `seconds`; the first sample is 0."""
    return _fade(x, round(seconds * sample_rate), at_end=False)


def _fade(x: np.ndarray, n_fade: int, at_end: bool) -> np.ndarray:
    return _fade_in_place(np.array(x, dtype=np.float32, copy=True), n_fade, at_end)


def _fade_in_place(x: np.ndarray, n_fade: int, at_end: bool) -> np.ndarray:
    """x (float32, modified) with the raised-cosine ramp over its first or last n_fade samples."""
    if n_fade < 0:
        raise InputError(f"fade length must be >= 0 samples, got {n_fade}")
    n_fade = min(n_fade, len(x))
    if n_fade == 0:
        return x
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n_fade))).astype(np.float32)  # 0 -> 1
    ramp = ramp.reshape((-1,) + (1,) * (x.ndim - 1))
    if at_end:
        x[len(x) - n_fade:] *= ramp[::-1]
    else:
        x[:n_fade] *= ramp
    return x


def limit_peaks(x: np.ndarray, ceiling_db: float, sample_rate: int = OUTPUT_SAMPLE_RATE,
                in_place: bool = False) -> np.ndarray:
    """x (n,) or (n, c) with |x| <= 10 ** (ceiling_db / 20) everywhere, channels linked: a copy, or x itself
    (float32, modified) with in_place.

    The gain is the needed reduction's minimum over +-5 ms, averaged over +-5 ms (so it ramps smoothly and
    is already at the needed level at every peak); a final clip guards against rounding. Works through the
    signal in blocks of CHUNK_SAMPLES (each with the 10 ms of context its gain depends on), so its memory
    does not grow with the length.
    """
    x = np.asarray(x, dtype=np.float32)
    ceiling = float(10 ** (ceiling_db / 20))
    radius = max(1, round(LIMITER_LOOKAHEAD_SECONDS * sample_rate))
    out = x if in_place else np.empty_like(x)
    before = x[:0].copy()  # the original samples just before the block (out may have overwritten them)
    for first in range(0, len(x), CHUNK_SAMPLES):
        last = min(first + CHUNK_SAMPLES, len(x))
        hi = min(len(x), last + 2 * radius)
        block = np.concatenate([before, x[first:hi]])
        lo = first - len(before)
        gain = _limiter_gain(block, ceiling, radius, lo == 0, hi == len(x))[first - lo:last - lo]
        before = x[max(first, last - 2 * radius):last].copy()
        np.multiply(x[first:last], gain.reshape((-1,) + (1,) * (x.ndim - 1)), out=out[first:last])
    return np.clip(out, -ceiling, ceiling, out=out)


def _limiter_gain(x: np.ndarray, ceiling: float, radius: int, at_start: bool, at_end: bool) -> np.ndarray:
    """(len(x),) float32 limiter gain of a block; exact for samples >= 2 * radius from a block edge that is
    not an end of the signal (`at_start`, `at_end`: the edges where the signal's own edge padding applies)."""
    peak = np.abs(x).reshape(len(x), -1).max(axis=1)
    if peak.max(initial=0.0) <= ceiling:
        return np.ones(len(x), dtype=np.float32)
    needed = np.minimum(1.0, ceiling / np.maximum(peak.astype(np.float64), 1e-12))
    floor = sliding_min(needed, radius)
    padded = np.pad(floor, radius, mode="edge")
    if not at_start:
        padded[:radius] = 1.0  # never read for the block's exact samples
    if not at_end:
        padded[-radius:] = 1.0
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    return ((sums[2 * radius + 1:] - sums[:-(2 * radius + 1)]) / (2 * radius + 1)).astype(np.float32)


# --- The mix -------------------------------------------------------------------------------------


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """x trimmed or zero-padded at the end to n samples."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros((n - len(x),) + x.shape[1:], dtype=x.dtype)])


def mix(dialogue: np.ndarray | None, music: np.ndarray, sample_rate: int, config: MixConfig | None = None,
        replace_audio: bool = False, fade_out_seconds: float = 2.0) -> np.ndarray:
    """The soundtrack (len(music), 2) float32: music levelled, faded, ducked under speech, plus dialogue.

    dialogue: (n,) or (n, 2) at sample_rate, padded/trimmed to len(music) and otherwise untouched; None
    or replace_audio gives the music alone, without ducking, at the louder music_alone_loudness_db (it is
    then the whole soundtrack, not a bed). The sum is peak-limited.
    """
    config = config or MixConfig()
    music = to_stereo(music)
    alone = dialogue is None or replace_audio
    level = (config.music_alone_loudness_db if alone else config.music_loudness_db) + config.music_gain_db
    bed = normalise_loudness(music, level, sample_rate)  # the one full-length copy; the rest works in place
    _fade_in_place(bed, round(FADE_IN_SECONDS * sample_rate), at_end=False)
    _fade_in_place(bed, round(fade_out_seconds * sample_rate), at_end=True)
    if dialogue is not None and not alone:
        speech = fit_length(to_stereo(dialogue), len(bed))
        activity = voice_activity(speech, sample_rate)
        bed *= duck_envelope(activity, len(bed), sample_rate, config.duck_db, config.attack_ms,
                             config.release_ms)[:, None]
        bed += speech
    return limit_peaks(bed, config.peak_limit_db, sample_rate, in_place=True)


def master(mixed: np.ndarray, sample_rate: int, loudness_lufs: float | None = None) -> tuple[np.ndarray, Any]:
    """The final mix and its loudness.LoudnessReport: at `loudness_lufs` (BS.1770, true peak <= -1 dBTP)
    when a target is given, else unchanged (only measured)."""
    from emoscore import loudness

    if loudness_lufs is None:
        return mixed, loudness.measure(mixed, sample_rate)
    return loudness.normalise(mixed, sample_rate, loudness_lufs)
