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

from collections.abc import Callable, Iterable, Iterator

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
    return _activity(level, _band_ratio(frames, sample_rate), frame_seconds, hangover_seconds)


def _activity(level: np.ndarray, band_ratio: np.ndarray, frame_seconds: float, hangover_seconds: float
              ) -> np.ndarray:
    """(n_frames,) bool speech decision from each frame's level (dBFS) and speech-band energy fraction."""
    loud = (level > VAD_MIN_DB) & (level > _noise_floor(level, frame_seconds) + VAD_MARGIN_DB)
    speech = loud & (band_ratio >= VAD_MIN_BAND_RATIO)
    return _hold(speech, round(hangover_seconds / frame_seconds))


def voice_activity_blocks(blocks: Iterable[np.ndarray], sample_rate: int, frame_seconds: float = 0.02,
                          hangover_seconds: float = 0.2) -> np.ndarray:
    """voice_activity of the signal that `blocks` ((m,) or (m, c) pieces, in order) make up, one block of
    1024 frames at a time: the same frames, the same result, memory independent of the length."""
    if sample_rate <= 0 or frame_seconds <= 0:
        raise InputError(f"sample_rate and frame_seconds must be > 0, got {sample_rate}, {frame_seconds}")
    hop = max(1, round(frame_seconds * sample_rate))
    levels, ratios = [], []
    for chunk in rechunk(blocks, hop * 1024):
        frames = _frames(to_mono(chunk), hop)
        levels.append(_db((frames.astype(np.float64) ** 2).mean(axis=1)))
        ratios.append(_band_ratio(frames, sample_rate))
    if not levels:
        return np.zeros(1, dtype=bool)
    return _activity(np.concatenate(levels), np.concatenate(ratios), frame_seconds, hangover_seconds)


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
    if not activity.any() or n_samples == 0:
        return np.ones(n_samples, dtype=np.float32)
    edges, linear = _duck_curve(activity, sample_rate, duck_db, attack_ms, release_ms, frame_seconds)
    gain = np.empty(n_samples, dtype=np.float32)
    for first in range(0, n_samples, CHUNK_SAMPLES):
        count = min(CHUNK_SAMPLES, n_samples - first)
        gain[first:first + count] = _duck_gain(edges, linear, duck_db, first, count)
    return gain


def _duck_gain(edges: np.ndarray, linear: np.ndarray, duck_db: float, first: int, count: int) -> np.ndarray:
    """(count,) float32 ducking gain of samples first .. first + count - 1 from _duck_curve's breakpoints."""
    samples = np.arange(first, first + count)
    return np.clip(np.interp(samples, edges, linear), 10 ** (duck_db / 20), 1.0).astype(np.float32)


def _duck_curve(activity: np.ndarray, sample_rate: int, duck_db: float, attack_ms: float, release_ms: float,
                frame_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(sample positions, linear gains) of the ducking curve's breakpoints: one per frame edge."""
    target = np.where(activity, float(duck_db), 0.0)
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
    return edges, 10 ** (edge_db / 20)


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
    return _gated_level(np.concatenate([_block_powers(x[i:i + step], block) for i in range(0, len(x), step)]))


def gated_rms_db_blocks(blocks: Iterable[np.ndarray], sample_rate: int) -> float:
    """gated_rms_db of the signal that `blocks` (consecutive pieces) make up, a chunk at a time."""
    block = max(1, round(LOUDNESS_BLOCK_SECONDS * sample_rate))
    step = block * max(1, CHUNK_SAMPLES // block)
    powers = [_block_powers(chunk, block) for chunk in rechunk(blocks, step)]
    return _gated_level(np.concatenate(powers)) if powers else SILENCE_DB


def _block_powers(x: np.ndarray, block: int) -> np.ndarray:
    """(ceil(len(x) / block),) float32 mean power (over samples and channels) of each block of x."""
    power = (np.asarray(x, dtype=np.float64) ** 2).reshape(len(x), -1).mean(axis=1).astype(np.float32)
    return _frames(power, block).mean(axis=1)


def _gated_level(power: np.ndarray) -> float:
    """dBFS of the mean block power over the blocks that pass the absolute and relative gates."""
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


# --- The mix as a stream -------------------------------------------------------------------------


def rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The signal of consecutive `blocks` as pieces of exactly `size` samples (the last one shorter)."""
    pending: list[np.ndarray] = []
    have = 0
    for block in blocks:
        while len(block):
            take = min(size - have, len(block))
            pending.append(block[:take])
            have += take
            block = block[take:]
            if have == size:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, have = [], 0
    if have:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def limit_blocks(blocks: Iterable[np.ndarray], n: int, ceiling_db: float,
                 sample_rate: int = OUTPUT_SAMPLE_RATE) -> Iterator[np.ndarray]:
    """limit_peaks of the n-sample signal that `blocks` make up, as CHUNK_SAMPLES pieces: the same samples
    (the same chunks, each with its 10 ms of context), holding one chunk back for the look-ahead."""
    ceiling = float(10 ** (ceiling_db / 20))
    radius = max(1, round(LIMITER_LOOKAHEAD_SECONDS * sample_rate))
    chunks = rechunk(blocks, CHUNK_SAMPLES)
    current = next(chunks, None)
    before: np.ndarray | None = None
    first = 0
    while current is not None:
        following = next(chunks, None)
        last = first + len(current)
        ahead = current[:0] if following is None else following[:2 * radius]
        block = np.concatenate([x for x in (before, current, ahead) if x is not None])
        skip = 0 if before is None else len(before)
        gain = _limiter_gain(block, ceiling, radius, first == 0, last + 2 * radius >= n or following is None)
        out = current * gain[skip:skip + len(current)].reshape((-1,) + (1,) * (current.ndim - 1))
        yield np.clip(out, -ceiling, ceiling, out=out)
        before = current[max(0, len(current) - 2 * radius):]
        current, first = following, last


def _fade_ramps(n: int, sample_rate: int, fade_out_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(fade-in ramp, fade-out ramp) as _fade_in_place applies them to an n-sample signal."""
    ramps = []
    for seconds in (FADE_IN_SECONDS, fade_out_seconds):
        n_fade = min(round(seconds * sample_rate), n)
        if n_fade < 0:
            raise InputError(f"fade length must be >= 0 samples, got {n_fade}")
        ramps.append((0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n_fade))).astype(np.float32))
    return ramps[0], ramps[1][::-1]


def _apply_fades(bed: np.ndarray, first: int, n: int, ramp_in: np.ndarray, ramp_out: np.ndarray) -> None:
    """Fade the block `bed` (samples first .. of an n-sample signal) in place, as _fade_in_place would."""
    last = first + len(bed)
    if first < len(ramp_in):
        end = min(last, len(ramp_in))
        bed[:end - first] *= ramp_in[first:end].reshape((-1,) + (1,) * (bed.ndim - 1))
    start = max(first, n - len(ramp_out))
    if start < last:
        bed[start - first:] *= ramp_out[start - (n - len(ramp_out)):last - (n - len(ramp_out))].reshape(
            (-1,) + (1,) * (bed.ndim - 1))


def mix_blocks(music: Callable[[], Iterator[np.ndarray]], dialogue: Callable[[], Iterator[np.ndarray]] | None,
               n: int, sample_rate: int, config: MixConfig | None = None, replace_audio: bool = False,
               fade_out_seconds: float = 2.0) -> Iterator[np.ndarray]:
    """mix()'s soundtrack as consecutive (m, 2) float32 blocks, equal to mix(dialogue, music, ...) sample for
    sample, in memory that does not grow with the length.

    music, dialogue: callables returning a fresh iterator over the stereo signal's blocks (n samples in all;
    dialogue fitted to n, e.g. media.raw_blocks(path, 2, n)); each is read twice - first to measure (music
    level, voice activity), then to mix. dialogue None or replace_audio: the music alone, as in mix().
    """
    config = config or MixConfig()
    alone = dialogue is None or replace_audio
    target = (config.music_alone_loudness_db if alone else config.music_loudness_db) + config.music_gain_db
    level = gated_rms_db_blocks(music(), sample_rate)
    scale = None if level <= SILENCE_DB else np.float32(10 ** ((target - level) / 20))
    curve = None
    if dialogue is not None and not alone:
        duck_envelope(np.zeros(1, bool), 0, sample_rate, config.duck_db, config.attack_ms, config.release_ms)
        activity = voice_activity_blocks(dialogue(), sample_rate)
        if activity.any() and n > 0:
            curve = _duck_curve(activity, sample_rate, config.duck_db, config.attack_ms, config.release_ms, 0.02)
    ramp_in, ramp_out = _fade_ramps(n, sample_rate, fade_out_seconds)
    speech = None if dialogue is None or alone else rechunk(dialogue(), CHUNK_SAMPLES)

    def beds() -> Iterator[np.ndarray]:
        first = 0
        for block in rechunk(music(), CHUNK_SAMPLES):
            bed = to_stereo(block) * scale if scale is not None else to_stereo(block).copy()
            _apply_fades(bed, first, n, ramp_in, ramp_out)
            if speech is not None:
                if curve is not None:
                    bed *= _duck_gain(curve[0], curve[1], config.duck_db, first, len(bed))[:, None]
                bed += to_stereo(next(speech))
            first += len(bed)
            yield bed

    yield from limit_blocks(beds(), n, config.peak_limit_db, sample_rate)
