"""The editor's loop: --segments and edited timelines parse, check and round-trip through `score`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emoscore.cli import app
from emoscore.config import Config, load_config
from emoscore.edits import EDITED_SOURCE, parse_segments, read_timeline
from emoscore.errors import InputError
from emoscore.pipeline import stem_path
from emoscore.timeline import Segment, timeline_to_csv, timeline_to_json

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def resolve(text: str, duration: float) -> list[Segment]:
    return list(parse_segments(text).resolve(duration, Config()).segments)


# --- --segments ----------------------------------------------------------------------------------


def test_segments_string_with_open_ends_and_valence_arousal() -> None:
    edit = parse_segments("0-4.5:Q1,4.5-12:Q3@0.3,-0.6,12-:Q4")
    edit.resolve(20.0, Config())
    segs = edit.resolve(20.0, Config()).segments
    assert len(edit.notes) == 1 and "segment 2" in edit.notes[0]  # once, however often it is resolved
    assert [(s.start, s.end, s.quadrant) for s in segs] == [(0, 4.5, "Q1"), (4.5, 12, "Q3"), (12, 20, "Q4")]
    # Q3 is negative valence: (0.3, -0.6) lies outside it, so the quadrant's centre is used (with a note)
    assert (segs[1].valence, segs[1].arousal) == (-0.5, -0.5)
    assert (segs[0].valence, segs[0].arousal) == (0.5, 0.5)  # quadrant centre by default
    assert segs[2].emotion in ("neutral", "calm") and segs[0].emotion in ("happy", "surprised")


def test_segments_valence_arousal_inside_the_quadrant_are_kept() -> None:
    edit = parse_segments("-3:Q2@-0.7,0.2,3-:q3@-0.1,-0.9")
    segs = edit.resolve(10.0, Config()).segments
    assert (segs[0].valence, segs[0].arousal) == (-0.7, 0.2)
    assert (segs[1].quadrant, segs[1].valence, segs[1].arousal) == ("Q3", -0.1, -0.9)
    assert edit.notes == []


def test_a_last_end_within_tolerance_snaps_to_the_clip_end() -> None:
    assert resolve("0-2:Q1,2-10.02:Q4", 10.0)[-1].end == 10.0


@pytest.mark.parametrize(("text", "duration", "names"), [
    ("0-4:Q1,5-10:Q2", 10.0, ["segment 2 (5-10:Q2)", "gap"]),
    ("0-6:Q1,5-10:Q2", 10.0, ["segment 2 (5-10:Q2)", "overlaps"]),
    ("0-4:Q1,4-12:Q2", 10.0, ["segment 2 (4-12:Q2)", "past the clip's end"]),
    ("0-4:Q1,4-:Q7", 10.0, ["segment 2 (4-:Q7)", "unknown quadrant 'Q7'"]),
    ("0-4:Q1,4-8:Q2", 10.0, ["segment 2 (4-8:Q2)", "gap at the end"]),
    ("0-4:Q1@1.5,0.2,4-:Q2", 10.0, ["segment 1", "valence 1.5"]),
    ("0-4:Q1,4-4:Q2,4-:Q3", 10.0, ["segment 2 (4-4:Q2)", "not after its start"]),
    ("0-4:Q1,12-:Q2", 10.0, ["segment 2 (12-:Q2)"]),
])
def test_bad_segments_name_the_segment(text: str, duration: float, names: list[str]) -> None:
    with pytest.raises(InputError) as info:
        resolve(text, duration)
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message


@pytest.mark.parametrize("text", ["", "0-4", "0-4:Q1,banana", "0-4:Q1@0.2", "a-b:Q1"])
def test_segments_that_do_not_parse(text: str) -> None:
    with pytest.raises(InputError, match="segment|empty"):
        parse_segments(text)


# --- Edited timeline files -----------------------------------------------------------------------


def golden() -> dict:
    return json.loads((DATA / "golden" / "talking-head-b.timeline.json").read_text())


def test_timeline_json_keeps_its_windows_and_takes_the_edited_segments(tmp_path: Path) -> None:
    data = golden()
    duration = data["duration"]
    first = data["segments"][0]
    data["segments"] = [dict(first, end=2.0), dict(first, start=2.0, quadrant="Q3", valence=-0.4, arousal=-0.2)]
    path = tmp_path / "edited.timeline.json"
    path.write_text(json.dumps(data))
    edit = read_timeline(path)
    timeline = edit.resolve(duration, Config(), "talking-head-b.mp4")
    assert edit.notes == []
    edit.resolve(duration, Config(), "other.mp4")
    assert edit.notes == ["timeline JSON edited.timeline.json was written for talking-head-b.mp4, not other.mp4"]
    assert [(s.start, s.end, s.quadrant) for s in timeline.segments] == [(0, 2.0, first["quadrant"]),
                                                                         (2.0, duration, "Q3")]
    assert timeline.segments[1].emotion == "sad"  # the stale emotion follows the new quadrant
    assert len(timeline.times) == len(data["windows"])
    np.testing.assert_allclose(timeline.probs[0], [data["windows"][0][e] for e in data["emotions"]], atol=1e-3)
    # the outputs follow: JSON and CSV of the re-scored timeline carry the edit and the original windows
    out = timeline_to_json(timeline, {})
    assert [s["quadrant"] for s in out["segments"]] == [first["quadrant"], "Q3"]
    assert timeline_to_csv(timeline).count("\n") == len(data["windows"]) + 1


def test_timeline_csv_windows_become_runs_of_the_quadrant_column(tmp_path: Path) -> None:
    config = load_config(None)
    text = "start,end,quadrant,valence,arousal\n" + "".join(
        f"{t},{t + 3},{'Q1' if t < 4 else 'Q3'},{0.4 if t < 4 else -0.4},{0.3 if t < 4 else -0.3}\n"
        for t in range(8))
    path = tmp_path / "edited.timeline.csv"
    path.write_text(text)
    segs = read_timeline(path).resolve(10.0, config).segments
    # window 3 (3-6 s, centre 4.5) is Q1, window 4 (4-7 s, centre 5.5) is Q3: the boundary is at 5.0
    assert [(s.start, s.end, s.quadrant) for s in segs] == [(0.0, 5.0, "Q1"), (5.0, 10.0, "Q3")]
    assert segs[0].valence == pytest.approx(0.4) and segs[1].arousal == pytest.approx(-0.3)


def test_timeline_csv_is_smoothed_like_recognition(tmp_path: Path) -> None:
    """A one-window blip (as the raw per-window argmax often has) merges away; an edit over 8 windows stays."""
    def csv_text(quadrant_of: dict[int, str]) -> str:
        rows = [f"{t},{min(t + 3, 20)},{quadrant_of.get(t, 'Q4')},0.3,-0.3\n" for t in range(18)]
        return "start,end,quadrant,valence,arousal\n" + "".join(rows)

    path = tmp_path / "t.csv"
    path.write_text(csv_text({5: "Q2"}))
    assert [s.quadrant for s in read_timeline(path).resolve(20.0, load_config(None)).segments] == ["Q4"]
    path.write_text(csv_text({5: "Q2", **{t: "Q3" for t in range(9, 17)}}))
    segs = read_timeline(path).resolve(20.0, load_config(None)).segments
    assert [s.quadrant for s in segs] == ["Q4", "Q3"]
    assert segs[1].start == pytest.approx(10.0)  # midway between the centres of windows 8 (9.5) and 9 (10.5)
    assert (segs[1].valence, segs[1].arousal) == (-0.5, -0.5)  # (0.3, -0.3) is not Q3: its centre, with a note
    path.write_text(csv_text({3: "Q9"}))
    with pytest.raises(InputError, match="row 4 .*unknown quadrant 'Q9'"):
        read_timeline(path)


def test_timeline_csv_of_segments(tmp_path: Path) -> None:
    path = tmp_path / "cuts.csv"
    path.write_text("start,end,quadrant\n0,3,Q4\n3,7,Q2\n7,9.5,Q1\n")
    timeline = read_timeline(path).resolve(9.5, Config())
    assert [s.quadrant for s in timeline.segments] == ["Q4", "Q2", "Q1"]
    assert set(timeline.sources) == {EDITED_SOURCE}  # no recognition ran: windows made from the segments


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"windows": []}', "no 'segments' list"),
    ('{"segments": [{"start": 0, "end": "x", "quadrant": "Q1"}]}', "segment 1"),
    ('{"segments": [], "scene_cuts": [1.0, "soon"]}', "scene cut 2: expected a number"),
    ('{"segments": [], "windows": [{"start": "0", "end": 3}]}', "window 1 start: expected a number"),
    ('{"segments": [], "windows": [{"start": 0, "end": 3, "neutral": 0.5}]}', "window 1 calm"),
])
def test_bad_timeline_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_timeline(path)


def test_cli_rejects_bad_editor_options(tmp_path: Path) -> None:
    clip = str(DATA / "talking-head-b.mp4")
    out = str(tmp_path / "x.mp4")
    cases = [
        ["--segments", "0-2:Q1,3-:Q2"],
        ["--segments", "0-2:Q1", "--timeline", str(tmp_path / "t.json")],
        ["--stems", "drums"],
    ]
    for extra in cases:
        result = runner.invoke(app, ["score", clip, "-o", out, *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert "error:" in result.output
    for extra in (["--variations", "-1"], ["--variations", "21"], ["--loudness", "3"], ["--loudness", "nan"]):
        result = runner.invoke(app, ["score", clip, "-o", out, *extra])
        assert result.exit_code == 10, (extra, result.output)  # out-of-range settings, as config.OPTION_RANGES
        assert extra[0] in result.output
    result = runner.invoke(app, ["score", str(DATA), "-o", str(tmp_path), "--segments", "0-:Q1"])
    assert result.exit_code == 2 and "folder" in result.output


# --- The round trip ------------------------------------------------------------------------------


def first_onset(midi_path: Path, programs: set[int], role: str) -> float:
    """Earliest note onset (s) of the `role` instruments (named by compose.py) with one of `programs`."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(midi_path))
    onsets = [n.start for inst in midi.instruments if inst.name.startswith(role) and inst.program in programs
              for n in inst.notes]
    return min(onsets) if onsets else float("inf")


def otio_markers(path: Path) -> list[tuple[float, str]]:
    import opentimelineio as otio

    timeline = otio.adapters.read_from_file(str(path))
    return [(m.marked_range.start_time.to_seconds(), m.name) for c in timeline.find_clips() for m in c.markers]


@pytest.mark.slow
def test_round_trip_score_edit_rescore(tmp_path: Path) -> None:
    """Score, move a boundary and change a quadrant in the JSON, re-score: the music changes at the new boundary."""
    config = load_config(None)
    source = DATA / "talking-head-b.mp4"
    first = tmp_path / "b.mp4"
    start = time.perf_counter()
    assert runner.invoke(app, ["score", str(source), "-o", str(first)]).exit_code == 0
    first_seconds = time.perf_counter() - start
    data = json.loads(stem_path(first, ".timeline.json").read_text())
    duration = data["duration"]
    quadrant = data["segments"][0]["quadrant"]
    other = "Q3" if quadrant != "Q3" else "Q1"
    for boundary in (2.0, 3.0):  # a new boundary, then moved
        data["segments"] = [dict(data["segments"][0], start=0.0, end=boundary),
                            dict(data["segments"][0], start=boundary, end=duration, quadrant=other)]
        edited = tmp_path / "b.edited.json"
        edited.write_text(json.dumps(data))
        out = tmp_path / f"b{boundary:g}.mp4"
        start = time.perf_counter()
        result = runner.invoke(app, ["score", str(source), "-o", str(out), "--timeline", str(edited)])
        rescore_seconds = time.perf_counter() - start
        assert result.exit_code == 0, result.output
        written = json.loads(stem_path(out, ".timeline.json").read_text())
        assert [s["quadrant"] for s in written["segments"]] == [quadrant, other]
        assert written["meta"]["edited_from"].endswith("b.edited.json")
        old_bass = config.music.style(quadrant).bass_program
        new_bass = config.music.style(other).bass_program
        onset = first_onset(stem_path(out, ".music.mid"), {new_bass}, "bass")
        assert abs(onset - boundary) < 0.15, (boundary, onset)  # the new quadrant's bass enters at the boundary
        assert first_onset(stem_path(out, ".music.mid"), {old_bass}, "bass") < boundary
        markers = otio_markers(stem_path(out, ".markers.otio"))
        assert [round(start, 1) for start, _ in markers] == [0.0, boundary]  # the markers follow the edit
        assert markers[1][1].startswith(other)
        assert rescore_seconds < first_seconds
