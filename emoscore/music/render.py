"""MIDI to stereo audio with FluidSynth and a General MIDI soundfont.

Events (program selects, control changes, note on/off) are sent to a `fluidsynth.Synth` in time order
and the audio between events is pulled with `get_samples`, so the output is exactly the requested number
of samples, in stereo, whatever the MIDI holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.constants import OUTPUT_SAMPLE_RATE
from emoscore.errors import InputError, MediaToolError

SYSTEM_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
BUNDLED_SOUNDFONT = "TimGM6mb.sf2"  # shipped inside the pretty_midi package
GAIN = 0.4  # FluidSynth master gain: headroom for a dense arrangement
DRUM_CHANNEL = 9
# Sort order of simultaneous events: controls and note-offs before note-ons.
_CC, _OFF, _ON = 0, 1, 2


def find_soundfont(path: str = "") -> Path:
    """The soundfont to use: `path` if given (InputError if missing), else FluidR3_GM when installed,
    else pretty_midi's bundled TimGM6mb.sf2."""
    if path:
        chosen = Path(path).expanduser()
        if not chosen.is_file():
            raise InputError(f"soundfont not found: {chosen}")
        return chosen
    if SYSTEM_SOUNDFONT.is_file():
        return SYSTEM_SOUNDFONT
    import pretty_midi

    bundled = Path(pretty_midi.__file__).parent / BUNDLED_SOUNDFONT
    if not bundled.is_file():
        raise InputError("no General MIDI soundfont found; install fluid-soundfont-gm or pass one")
    return bundled


def midi_events(midi: Any) -> tuple[list[tuple[float, int, int, int, int]], list[tuple[int, int, bool]]]:
    """Time-sorted (seconds, kind, channel, a, b) events and (channel, program, is_drum) per instrument.

    Melodic instruments get channels 0..15 skipping 9 (instruments beyond 15 share channels); drums 9.
    """
    events: list[tuple[float, int, int, int, int]] = []
    programs: list[tuple[int, int, bool]] = []
    melodic = [c for c in range(16) if c != DRUM_CHANNEL]
    n_melodic = 0
    for inst in midi.instruments:
        if inst.is_drum:
            channel = DRUM_CHANNEL
        else:
            channel = melodic[n_melodic % len(melodic)]
            n_melodic += 1
        programs.append((channel, int(inst.program), bool(inst.is_drum)))
        for cc in inst.control_changes:
            events.append((float(cc.time), _CC, channel, int(cc.number), int(cc.value)))
        for note in inst.notes:
            events.append((float(note.start), _ON, channel, int(note.pitch), int(note.velocity)))
            events.append((float(note.end), _OFF, channel, int(note.pitch), 0))
    events.sort(key=lambda e: (e[0], e[1]))
    return events, programs


def _open_synth(soundfont: Path, sample_rate: int, programs: list[tuple[int, int, bool]]) -> Any:
    import fluidsynth

    # Dynamic sample loading reads only the samples of the programs used (same audio, bit for bit): a few MB
    # and ~0.05 s instead of all 141 MB of FluidR3_GM and ~0.7 s.
    synth = fluidsynth.Synth(gain=GAIN, samplerate=float(sample_rate), **{"synth.dynamic-sample-loading": 1})
    sfid = synth.sfload(str(soundfont))
    if sfid < 0:
        synth.delete()
        raise MediaToolError(f"fluidsynth cannot load soundfont {soundfont}")
    for channel, program, is_drum in programs:
        synth.program_select(channel, sfid, 128 if is_drum else 0, 0 if is_drum else program)
    return synth


def _pull(synth: Any, n: int) -> np.ndarray:
    """(n, 2) float32 in [-1, 1]."""
    if n <= 0:
        return np.zeros((0, 2), np.float32)
    raw = np.asarray(synth.get_samples(n), dtype=np.int16).reshape(-1, 2)
    return raw.astype(np.float32) / 32768.0


def render_midi(midi: Any, duration: float, sample_rate: int = OUTPUT_SAMPLE_RATE, soundfont: str = "") -> np.ndarray:
    """Render `midi` to (round(duration * sample_rate), 2) float32 stereo: events past `duration` are
    dropped, a shorter piece is padded with the synth's release tail (then silence). render_blocks joined."""
    return np.concatenate(list(render_blocks(midi, duration, sample_rate, soundfont)))


def render_blocks(midi: Any, duration: float, sample_rate: int = OUTPUT_SAMPLE_RATE, soundfont: str = "",
                  block: int = 1 << 18) -> Iterator[np.ndarray]:
    """The rendered audio as consecutive (m, 2) float32 blocks of `block` samples (the last one shorter): events
    past `duration` are dropped, a shorter piece is padded with the synth's release tail (then silence); memory
    stays at one block whatever the duration."""
    if not duration > 0:
        raise InputError(f"render duration must be > 0 s, got {duration}")
    total = int(round(duration * sample_rate))
    events, programs = midi_events(midi)
    synth = _open_synth(find_soundfont(soundfont), sample_rate, programs)
    buffer = np.zeros((min(block, total), 2), dtype=np.float32)
    state = {"done": 0, "filled": 0}

    def pull_until(at: int) -> Iterator[np.ndarray]:
        while state["done"] < at:
            n = min(at - state["done"], len(buffer) - state["filled"], 1 << 16)
            buffer[state["filled"]:state["filled"] + n] = _pull(synth, n)
            state["done"] += n
            state["filled"] += n
            if state["filled"] == len(buffer) or state["done"] == total:
                yield buffer[:state["filled"]].copy()
                state["filled"] = 0

    try:
        for time, kind, channel, a, b in events:
            yield from pull_until(min(int(round(time * sample_rate)), total))
            if state["done"] >= total:
                break
            if kind == _ON:
                synth.noteon(channel, a, b)
            elif kind == _OFF:
                synth.noteoff(channel, a)
            else:
                synth.cc(channel, a, b)
        yield from pull_until(total)
    finally:
        synth.delete()


def render_to_files(midi: Any, duration: float, wav: Path, raw: Path, sample_rate: int = OUTPUT_SAMPLE_RATE,
                    soundfont: str = "") -> int:
    """Render `midi` block by block into `wav` (16-bit, byte for byte media.write_wav of render_midi's audio)
    and `raw` (interleaved int16 as fluidsynth made it: media.raw_blocks(raw, 2, dtype="<i2") gives back
    render_midi's float samples exactly). Returns the number of samples."""
    from emoscore.media import WavWriter

    n = 0
    with WavWriter(wav, sample_rate) as writer, open(raw, "wb") as f:
        for block in render_blocks(midi, duration, sample_rate, soundfont):
            writer.write(block)
            np.round(block * 32768.0).astype("<i2").tofile(f)
            n += len(block)
    return n
