"""Writing the soundtrack as a Standard MIDI File with one named track per part.

compose.assemble makes one pretty_midi Instrument per (part, program): a soundtrack whose pad changes
from strings to a warm pad between segments holds two pad instruments, which pretty_midi writes as two
tracks. An editor expects one track per part, so the tracks of a part are merged into one track named
after the part ("melody", "pad", "bass"). Each instrument keeps its own MIDI channel inside that track,
so cross-faded segments (two programs of one part sounding at once) play exactly as before; the
conductor track (tempo map, key and time signatures) is left as pretty_midi wrote it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def part_of(track_name: str) -> str | None:
    """The part a track belongs to: 'pad Warm Pad' -> 'pad'; None for tracks of no part."""
    from emoscore.music.compose import ROLES  # inside: midifile imports nothing of the composer at load

    head = track_name.split(" ", 1)[0].lower()
    return head if head in ROLES else None


def _track_name(track: Any) -> str:
    return next((msg.name for msg in track if msg.type == "track_name"), "")


def merge_part_tracks(smf: Any) -> Any:
    """A mido MidiFile with the tracks of each part merged into one track named after the part, in
    compose.ROLES order after the tracks that belong to no part (the conductor track first)."""
    import mido

    from emoscore.music.compose import ROLES

    groups: dict[str, list[Any]] = {}
    others = []
    for track in smf.tracks:
        part = part_of(_track_name(track))
        if part is None:
            others.append(track)
        else:
            groups.setdefault(part, []).append(track)
    merged = mido.MidiFile(type=1, ticks_per_beat=smf.ticks_per_beat)
    merged.tracks.extend(others)
    for part in ROLES:
        if part not in groups:
            continue
        track = mido.merge_tracks(groups[part])
        for msg in [m for m in track if m.type == "track_name"]:
            _drop_keeping_time(track, msg)
        track.insert(0, mido.MetaMessage("track_name", name=part, time=0))
        merged.tracks.append(track)
    return merged


def _drop_keeping_time(track: Any, msg: Any) -> None:
    """Remove `msg` from a delta-time track without moving the messages after it."""
    index = track.index(msg)
    if index + 1 < len(track):
        track[index + 1] = track[index + 1].copy(time=track[index + 1].time + msg.time)
    del track[index]


def write_midi(midi: Any, path: Path) -> None:
    """Write a pretty_midi.PrettyMIDI to `path` with one named track per part."""
    import mido

    buffer = io.BytesIO()
    midi.write(buffer)
    buffer.seek(0)
    merge_part_tracks(mido.MidiFile(file=buffer)).save(str(path))
