"""Segment markers for edit suites: an OpenTimelineIO timeline, and through OTIO's adapters a CMX 3600 EDL and
Final Cut Pro (7) XML.

The timeline holds one video track with one clip (the scored video, frames at the video's rate) and one marker
per segment on that clip: the marker spans the segment (start and length rounded to whole frames), is coloured
by quadrant and named "Q3 sad v-0.30 a-0.60 c0.72" (quadrant, emotion, valence, arousal, confidence); the
comment repeats it in words. EDL markers become `* LOC:` lines (a point, upper case: the format's limits) in
non-drop-frame timecode at the nominal rate (30 for 29.97 fps; open the EDL at that rate); FCP XML keeps
their spans. The EDL adapter ships as PyPI otio-cmx3600-adapter, the FCP XML one as
otio-fcp-adapter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.errors import InputError, MediaToolError
from emoscore.fileio import atomic_path

# Output suffix -> OTIO adapter name.
INTERCHANGE_SUFFIXES: dict[str, str] = {
    ".markers.otio": "otio_json",
    ".markers.edl": "cmx_3600",
    ".markers.xml": "fcp_xml",
}
QUADRANT_COLOURS: dict[str, str] = {"Q1": "YELLOW", "Q2": "RED", "Q3": "BLUE", "Q4": "GREEN"}


def frames(seconds: float, rate: float) -> int:
    """Whole frames at `rate` nearest to `seconds` (halves round up)."""
    return int(math.floor(seconds * rate + 0.5))


def marker_name(segment: Any) -> str:
    """'Q3 sad v-0.30 a-0.60 c0.72' for a timeline.Segment."""
    return (f"{segment.quadrant} {segment.emotion} v{segment.valence:+.2f} a{segment.arousal:+.2f} "
            f"c{segment.confidence:.2f}")


def marker_comment(segment: Any) -> str:
    return (f"emoscore segment {segment.start:.2f}-{segment.end:.2f} s: quadrant {segment.quadrant} "
            f"({segment.emotion}), valence {segment.valence:.2f}, arousal {segment.arousal:.2f}, "
            f"confidence {segment.confidence:.2f}")


def timecode_rate(fps: float) -> float:
    """The rate an EDL's timecode counts at: the video's, or for 29.97/23.976/59.94 the nominal 30/24/60
    (non-drop-frame: frame numbers are the video's frames; the EDL adapter cannot read drop-frame locators)."""
    return float(fps) if abs(fps - round(fps)) < 1e-6 else float(round(fps))


def markers_timeline(segments: Sequence[Any], duration: float, fps: float, media_name: str,
                     rate: float | None = None) -> Any:
    """An otio.schema.Timeline: one clip of `duration` seconds named media_name, one marker per segment.

    Times are whole frames of the video (at `fps`) expressed at `rate` (default: fps); see timecode_rate.
    """
    import opentimelineio as otio

    if not fps > 0 or not duration > 0:
        raise InputError(f"markers need fps > 0 and duration > 0, got {fps} and {duration}")
    rate = float(fps) if rate is None else float(rate)

    def span(start: float, end: float) -> Any:
        first = frames(start, fps)
        return otio.opentime.TimeRange(otio.opentime.RationalTime(first, rate),
                                       otio.opentime.RationalTime(max(frames(end, fps) - first, 1), rate))

    whole = span(0.0, duration)
    clip = otio.schema.Clip(name=media_name, source_range=whole,
                            media_reference=otio.schema.ExternalReference(target_url=media_name,
                                                                          available_range=whole))
    for segment in segments:
        clip.markers.append(otio.schema.Marker(
            name=marker_name(segment), marked_range=span(segment.start, segment.end),
            color=getattr(otio.schema.MarkerColor, QUADRANT_COLOURS[segment.quadrant]),
            metadata={"emoscore": {"start": segment.start, "end": segment.end, "quadrant": segment.quadrant,
                                   "emotion": segment.emotion, "valence": segment.valence,
                                   "arousal": segment.arousal, "confidence": segment.confidence}},
            comment=marker_comment(segment)))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(clip)
    timeline = otio.schema.Timeline(name=Path(media_name).stem)
    timeline.global_start_time = otio.opentime.RationalTime(0, rate)
    timeline.tracks.append(track)
    return timeline


def write_markers(timeline: Any, path: Path, adapter: str, overwrite: bool = True) -> None:
    """Write `timeline` with the named OTIO adapter, atomically; MediaToolError when the adapter fails."""
    import opentimelineio as otio

    if adapter not in otio.adapters.available_adapter_names():
        raise MediaToolError(f"OpenTimelineIO adapter {adapter!r} is not installed "
                             "(pip install otio-cmx3600-adapter otio-fcp-adapter)")
    with atomic_path(path, overwrite) as tmp:
        try:
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name=adapter)
        except Exception as exc:  # adapters raise their own exception types
            raise MediaToolError(f"OpenTimelineIO could not write {path.name}: {exc}") from None


def write_interchange(segments: Sequence[Any], duration: float, fps: float, video: Path) -> list[Path]:
    """Write clip.markers.otio/.edl/.xml beside the scored `video` clip.mp4 for its `segments`; the paths."""
    written = []
    for suffix, adapter in INTERCHANGE_SUFFIXES.items():
        rate = timecode_rate(fps) if adapter == "cmx_3600" else fps
        path = video.with_name(video.stem + suffix)
        write_markers(markers_timeline(segments, duration, fps, video.name, rate), path, adapter)
        written.append(path)
    return written


# --- Per-part stems ------------------------------------------------------------------------------


def part_of(instrument: Any) -> str:
    """The part an instrument plays: the first word of its name ("melody Acoustic Grand Piano" -> "melody"),
    as music/compose.py names them; "melody" for an instrument without a known part name."""
    from emoscore.music.compose import ROLES
    from emoscore.music.midifile import part_of as named_part

    return named_part(instrument.name or "") or ROLES[0]


def render_parts(midi: Any, duration: float, sample_rate: int, soundfont: str = "") -> dict[str, np.ndarray]:
    """{part: (round(duration * sample_rate), 2) float32} for each of compose.ROLES: the instruments of that
    part rendered alone (silence for a part with none), sample-aligned with render_midi of the whole piece."""
    import copy

    from emoscore.music.compose import ROLES
    from emoscore.music.render import render_midi

    parts = {}
    for role in ROLES:
        alone = copy.deepcopy(midi)
        alone.instruments = [inst for inst in alone.instruments if part_of(inst) == role]
        if alone.instruments:
            parts[role] = render_midi(alone, duration, sample_rate, soundfont)
        else:
            parts[role] = np.zeros((int(round(duration * sample_rate)), 2), dtype=np.float32)
    return parts
