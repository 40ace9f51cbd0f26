"""Markers for edit suites (OTIO, CMX 3600 EDL, FCP XML), per-part stems and variations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoscore import media
from emoscore.cli import app
from emoscore.interchange import (
    INTERCHANGE_SUFFIXES,
    markers_timeline,
    part_of,
    render_parts,
    timecode_rate,
    write_interchange,
)
from emoscore.pipeline import PART_SUFFIXES, SOUNDTRACK_SUFFIXES, stem_path, variation_path
from emoscore.timeline import Segment

runner = CliRunner()
SEGMENTS = [Segment(0.0, 4.5, "Q1", 0.42, 0.31, 0.78, "happy"), Segment(4.5, 12.3, "Q3", -0.5, -0.4, 0.6, "sad"),
            Segment(12.3, 20.0, "Q4", 0.3, -0.2, 0.55, "calm")]


def read_back(path: Path, adapter: str, fps: float) -> list[tuple[str, float, float]]:
    import opentimelineio as otio

    rate = timecode_rate(fps)  # an EDL does not state its rate; 29.97 fps is counted as 30 non-drop frames
    extra = {"rate": rate} if adapter == "cmx_3600" else {}
    timeline = otio.adapters.read_from_file(str(path), adapter_name=adapter, **extra)
    to_seconds = (lambda t: t.rescaled_to(rate).value / fps) if adapter == "cmx_3600" else (lambda t: t.to_seconds())
    return [(m.name, to_seconds(m.marked_range.start_time), to_seconds(m.marked_range.duration))
            for clip in timeline.find_clips() for m in clip.markers]


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
def test_markers_read_back_with_every_adapter(tmp_path: Path, fps: float) -> None:
    video = tmp_path / "clip.scored.mp4"
    paths = write_interchange(SEGMENTS, 20.0, fps, video)
    assert [p.name for p in paths] == [f"clip.scored{s}" for s in INTERCHANGE_SUFFIXES]
    frame = 1 / fps
    for path, adapter in zip(paths, INTERCHANGE_SUFFIXES.values(), strict=True):
        markers = read_back(path, adapter, fps)
        assert len(markers) == len(SEGMENTS), adapter
        for (name, start, length), seg in zip(markers, SEGMENTS, strict=True):
            assert name.upper().startswith(f"{seg.quadrant} {seg.emotion}".upper()), (adapter, name)
            assert start == pytest.approx(seg.start, abs=frame / 2 + 1e-6), adapter
            if adapter != "cmx_3600":  # EDL locators are points in time
                assert length == pytest.approx(seg.duration, abs=frame + 1e-6), adapter


def test_otio_markers_carry_the_numbers() -> None:
    timeline = markers_timeline(SEGMENTS, 20.0, 25.0, "clip.mp4")
    marker = timeline.find_clips()[0].markers[1]
    assert marker.name == "Q3 sad v-0.50 a-0.40 c0.60"
    assert marker.color == "BLUE" and "valence -0.50" in marker.comment
    assert dict(marker.metadata["emoscore"])["quadrant"] == "Q3"


def tiny_arrangement() -> object:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for name, program, pitch in (("melody Acoustic Grand Piano", 0, 72), ("pad String Ensemble 1", 48, 60),
                                 ("bass Cello", 42, 36)):
        inst = pretty_midi.Instrument(program=program, name=name)
        inst.notes = [pretty_midi.Note(90, pitch, 0.5 * k, 0.5 * k + 0.4) for k in range(6)]
        midi.instruments.append(inst)
    return midi


def test_parts_are_sample_aligned_and_add_up_to_the_music() -> None:
    from emoscore.music.render import render_midi

    midi = tiny_arrangement()
    parts = render_parts(midi, 3.5, 44100)
    whole = render_midi(midi, 3.5, 44100)
    assert set(parts) == {"melody", "pad", "bass"}
    for audio in parts.values():
        assert audio.shape == whole.shape and np.abs(audio).max() > 0.01
    summed = sum(parts.values())
    assert np.corrcoef(summed[:, 0], whole[:, 0])[0, 1] > 0.95


def test_part_of_reads_the_role_from_the_instrument_name() -> None:
    import pretty_midi

    assert part_of(pretty_midi.Instrument(0, name="bass Cello")) == "bass"
    assert part_of(pretty_midi.Instrument(0, name="something else")) == "melody"


@pytest.mark.slow
def test_variations_and_part_stems(tmp_path: Path, clip_b: Path) -> None:
    out = tmp_path / "b.mp4"
    result = runner.invoke(app, ["score", str(clip_b), "-o", str(out), "--segments", "0-2:Q2,2-:Q4",
                                 "--variations", "2", "--stems", "parts"])
    assert result.exit_code == 0, result.output
    mix = media.read_audio(stem_path(out, ".mix.wav"), 44100, channels=2)
    musics = []
    for video in (out, variation_path(out, 1), variation_path(out, 2)):
        assert video.exists() and media.probe(video).has_audio
        for suffix in SOUNDTRACK_SUFFIXES + PART_SUFFIXES:
            assert stem_path(video, suffix).stat().st_size > 0, (video.name, suffix)
        for suffix in PART_SUFFIXES:
            assert len(media.read_audio(stem_path(video, suffix), 44100, channels=2)) == len(mix)
        musics.append(stem_path(video, ".music.mid").read_bytes())
    assert len(set(musics)) == 3  # three different soundtracks (seeds 0, 1, 2)
    for suffix in INTERCHANGE_SUFFIXES:
        assert stem_path(out, suffix).exists()
    again = runner.invoke(app, ["score", str(clip_b), "-o", str(out), "--segments", "0-:Q1", "--variations", "2"])
    assert again.exit_code == 6  # refuses to overwrite a variation either
