"""One named track per part in the written soundtrack MIDI (emoscore.music.midifile)."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pretty_midi

from emoscore.music.midifile import part_of, write_midi


def two_segment_midi() -> pretty_midi.PrettyMIDI:
    """A melody and a pad whose program changes at 4 s, the two pads overlapping for a cross-fade."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for name, program, pitches, start in (("melody Acoustic Grand Piano", 0, [72, 74, 76], 0.0),
                                          ("pad String Ensemble 1", 48, [60, 64], 0.0),
                                          ("pad Pad 2 (warm)", 89, [57, 60], 3.5)):
        inst = pretty_midi.Instrument(program=program, name=name)
        for k, pitch in enumerate(pitches):
            inst.notes.append(pretty_midi.Note(80, pitch, start + k, start + k + 0.9))
        inst.control_changes.append(pretty_midi.ControlChange(64, 127, start))
        midi.instruments.append(inst)
    return midi


def notes_of(midi: pretty_midi.PrettyMIDI) -> list[tuple[float, int, int]]:
    return sorted((round(n.start, 3), n.pitch, i.program) for i in midi.instruments for n in i.notes)


def test_part_of_reads_the_role_from_the_track_name() -> None:
    assert part_of("pad Warm Pad") == "pad"
    assert part_of("Bass") == "bass"
    assert part_of("") is None
    assert part_of("drums") is None


def test_each_part_is_one_named_track_and_nothing_changes(tmp_path: Path) -> None:
    midi = two_segment_midi()
    plain, merged = tmp_path / "plain.mid", tmp_path / "merged.mid"
    midi.write(str(plain))
    write_midi(midi, merged)
    names = [next((m.name for m in t if m.type == "track_name"), None) for t in mido.MidiFile(merged).tracks]
    assert names[1:] == ["melody", "pad"]
    assert len(names) == 3  # the conductor track first
    back, reference = pretty_midi.PrettyMIDI(str(merged)), pretty_midi.PrettyMIDI(str(plain))
    assert notes_of(back) == notes_of(reference)
    pedal = sorted(round(c.time, 3) for i in back.instruments for c in i.control_changes if c.number == 64)
    assert pedal == [0.0, 0.0, 3.5]
    np.testing.assert_allclose(back.get_end_time(), reference.get_end_time())
