"""The editor's corrections: an edited timeline (JSON or CSV) or a --segments string -> a Timeline to compose from.

Sources (all times in seconds):
- the timeline JSON that `score` wrote, hand-edited: its "segments" (start, end, quadrant, optional valence,
  arousal, confidence, emotion) are used as they are; its "windows" are kept for the CSV and the picture.
- the timeline CSV that `score` wrote (one row per analysis window), hand-edited in its `quadrant` column:
  the column is smoothed into segments as recognition is (see smoothed_runs), boundaries midway between the
  centres of the windows either side; valence/arousal are the means of the run's windows of its quadrant.
  A CSV whose rows do not overlap (start,end,quadrant[,valence,arousal]) is read as one row per segment.
- `--segments "0-4.5:Q1,4.5-12:Q3@0.3,-0.6,12-:Q4"`: start-end:quadrant[@valence,arousal]; an empty start is
  the previous end (0 for the first), an empty end the next start (the clip's end for the last).

Segments must tile [0, duration]: a gap, an overlap, a time past the end (beyond END_TOLERANCE_SECONDS), an
unknown quadrant or a valence/arousal outside [-1, 1] is an InputError naming the segment. A valence/arousal
pair that lies outside the segment's (edited) quadrant is replaced by the quadrant's centre, with a note.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.config import Config, SmoothingConfig
from emoscore.constants import EMOTION_QUADRANT, EMOTIONS, QUADRANT_VA, QUADRANTS
from emoscore.errors import InputError
from emoscore.speech import window_starts
from emoscore.timeline import (
    Segment,
    Timeline,
    quadrant_probs,
    run_edges,
    runs,
    smooth_states,
    window_centres,
)

END_TOLERANCE_SECONDS = 0.05  # a last segment ending this close to the clip's end is snapped to it
JOIN_TOLERANCE_SECONDS = 1e-3  # the largest gap or overlap between neighbours that is not an error
ONE_HOT_FLOOR = 0.01  # probability left to the other quadrants when smoothing a CSV's quadrant column
EDITED_SOURCE = "edited"  # the `source` of windows synthesised from segments (no recognition ran)
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_SPEC = re.compile(rf"^\s*(?P<start>{_NUMBER})?\s*-\s*(?P<end>{_NUMBER})?\s*:\s*(?P<q>[A-Za-z0-9]+)\s*"
                   rf"(?:@\s*(?P<v>[-+]?(?:{_NUMBER}))\s*,\s*(?P<a>[-+]?(?:{_NUMBER})))?\s*$")
# A comma starts a new segment only when what follows looks like "start-end:" (valence,arousal has no colon).
_SPLIT = re.compile(rf",(?=\s*(?:{_NUMBER})?\s*-\s*(?:{_NUMBER})?\s*:)")


@dataclass(frozen=True)
class Draft:
    """A segment as written by the editor: None for a bound or value left open."""

    label: str  # how to name it in an error: "segment 2 (4.5-12:Q3)"
    start: float | None
    end: float | None
    quadrant: str
    valence: float | None = None
    arousal: float | None = None
    confidence: float | None = None
    emotion: str | None = None


@dataclass(frozen=True)
class EditedTimeline:
    """Segments from the editor, plus the analysis windows of the timeline they came from (if any)."""

    drafts: tuple[Draft, ...]
    source: str  # "timeline JSON <name>", "timeline CSV <name>" or "--segments"
    windows: tuple[dict[str, Any], ...] = ()  # rows as timeline_to_json writes them
    scene_cuts: tuple[float, ...] = ()
    notes: list[str] = field(default_factory=list)
    from_windows: bool = False  # the segments come from the windows' quadrant column (a timeline CSV)
    made_for: str | None = None  # the input the timeline JSON was written for (its meta.input)

    def resolve(self, duration: float, config: Config, input_name: str | None = None) -> Timeline:
        """The Timeline to compose from: segments checked against `duration` (InputError naming the segment).

        A timeline written for another input than `input_name` is used, with a note."""
        drafts = smoothed_runs(self.windows, duration, config.smoothing) if self.from_windows else self.drafts
        notes: list[str] = []
        if self.made_for and input_name and self.made_for != input_name:
            notes.append(f"{self.source} was written for {self.made_for}, not {input_name}")
        segments = resolve_segments(drafts, duration, notes)
        self.notes[:] = notes  # the notes of the latest resolve (it may run more than once)
        return to_timeline(segments, self.windows, self.scene_cuts, duration, config)


# --- Parsing ------------------------------------------------------------------------------------


def parse_segments(text: str) -> EditedTimeline:
    """`0-4.5:Q1,4.5-12:Q3@0.3,-0.6,12-:Q4` -> drafts; InputError naming the part that does not parse."""
    parts = _SPLIT.split(text.strip()) if text.strip() else []
    if not parts:
        raise InputError("--segments is empty; expected e.g. '0-4.5:Q1,4.5-12:Q3@0.3,-0.6,12-:Q4'")
    drafts = []
    for i, part in enumerate(parts, start=1):
        match = _SPEC.match(part)
        if match is None:
            raise InputError(f"segment {i} ({part.strip()!r}) does not parse; expected start-end:Qn[@valence,arousal]")
        g = match.groupdict()
        drafts.append(Draft(f"segment {i} ({part.strip()})", _float(g["start"]), _float(g["end"]),
                            g["q"].upper(), _float(g["v"]), _float(g["a"])))
    return EditedTimeline(tuple(drafts), "--segments")


def read_timeline(path: Path) -> EditedTimeline:
    """An edited timeline file: .json (segments) or .csv (windows, or one row per segment)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such timeline file: {path}")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        return _from_json(text, path.name)
    if path.suffix.lower() == ".csv":
        return _from_csv(text, path.name)
    raise InputError(f"--timeline must be a .json or .csv timeline, got {path.name}")


def _float(text: str | None) -> float | None:
    return None if text is None or text == "" else float(text)


def _from_json(text: str, name: str) -> EditedTimeline:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
        raise InputError(f"{name} has no 'segments' list; not an emoscore timeline")
    drafts = tuple(_draft_from_record(i, record) for i, record in enumerate(data["segments"], start=1))
    windows = _checked_windows(data.get("windows") or (), name)
    cuts = tuple(_number(c, f"{name}: scene cut {i}") for i, c in enumerate(data.get("scene_cuts") or (), start=1))
    meta = data.get("meta")
    made_for = meta.get("input") if isinstance(meta, dict) and isinstance(meta.get("input"), str) else None
    return EditedTimeline(drafts, f"timeline JSON {name}", windows, cuts, made_for=made_for)


def _number(value: Any, where: str) -> float:
    """A finite number from an edited JSON field, else a one-line InputError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _checked_windows(raw: Any, name: str) -> tuple[dict[str, Any], ...]:
    """The analysis windows of an edited JSON; each needs numeric start, end and emotion probabilities."""
    if not isinstance(raw, list | tuple):
        raise InputError(f"{name}: 'windows' must be a list")
    for i, window in enumerate(raw, start=1):
        if not isinstance(window, dict):
            raise InputError(f"{name}: window {i} must be an object, got {window!r}")
        for key in ("start", "end", *EMOTIONS):
            _number(window.get(key), f"{name}: window {i} {key}")
    return tuple(raw)


def _draft_from_record(i: int, record: Any) -> Draft:
    if not isinstance(record, dict):
        raise InputError(f"segment {i}: expected an object with start, end, quadrant; got {record!r}")
    label = f"segment {i} ({record.get('start', '?')}-{record.get('end', '?')}:{record.get('quadrant', '?')})"
    try:
        values = {k: _optional_number(record.get(k)) for k in ("start", "end", "valence", "arousal", "confidence")}
    except (TypeError, ValueError):
        raise InputError(f"{label}: start, end, valence, arousal and confidence must be numbers") from None
    emotion = record.get("emotion")
    return Draft(label, values["start"], values["end"], str(record.get("quadrant", "")).upper(),
                 values["valence"], values["arousal"], values["confidence"],
                 str(emotion) if emotion is not None else None)


def _optional_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    return float(value)


def _from_csv(text: str, name: str) -> EditedTimeline:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"start", "end", "quadrant"} <= set(rows[0]):
        raise InputError(f"{name} needs a header with start, end, quadrant and at least one row")
    try:
        starts = [float(r["start"]) for r in rows]
        ends = [float(r["end"]) for r in rows]
    except (TypeError, ValueError):
        raise InputError(f"{name}: start and end must be numbers in every row") from None
    overlapping = any(s < e - JOIN_TOLERANCE_SECONDS for s, e in zip(starts[1:], ends[:-1], strict=True))
    if not overlapping:
        return EditedTimeline(tuple(_draft_from_record(i, r) for i, r in enumerate(rows, start=1)),
                              f"timeline CSV {name}")
    windows = tuple(_window_row(i, r, name) for i, r in enumerate(rows, start=1))
    for i, window in enumerate(windows, start=1):
        if window["quadrant"] not in QUADRANTS:
            raise InputError(f"{name} row {i} ({window['start']:g}-{window['end']:g} s): unknown quadrant "
                             f"{window['quadrant']!r}; use one of {', '.join(QUADRANTS)}")
    return EditedTimeline((), f"timeline CSV {name}", windows, from_windows=True)


def _window_row(i: int, row: dict[str, str], name: str) -> dict[str, Any]:
    """A CSV window row with its numbers parsed, in the shape timeline_to_json writes."""
    out: dict[str, Any] = {"quadrant": (row.get("quadrant") or "").strip().upper(),
                           "source": row.get("source") or EDITED_SOURCE}
    try:
        for key in ("start", "end", "valence", "arousal", *EMOTIONS):
            out[key] = float(row[key]) if row.get(key) not in (None, "") else None
        for key in ("visual_present", "audio_present"):
            out[key] = bool(int(row.get(key) or 0))
    except ValueError:
        raise InputError(f"{name} row {i}: a value that is not a number") from None
    return out


def smoothed_runs(windows: Sequence[dict[str, Any]], duration: float, smoothing: SmoothingConfig
                  ) -> tuple[Draft, ...]:
    """The windows' `quadrant` column smoothed as recognition is (timeline.smooth_states: Viterbi with the
    switch penalty, runs shorter than min_segment_seconds merged) -> drafts with boundaries midway between
    the centres of the windows either side. An unedited CSV thus gives back the segments `score` found;
    an edit to fewer windows than the minimum segment length is merged away (use the JSON or --segments)."""
    rows = [w for w in windows if w["start"] < duration]
    if not rows:
        raise InputError(f"the timeline's windows all start after the clip's end ({duration:g} s)")
    centres = np.array([(w["start"] + min(w["end"], duration)) / 2 for w in rows])
    chosen = np.array([QUADRANTS.index(w["quadrant"]) for w in rows])
    qprobs = np.full((len(rows), len(QUADRANTS)), ONE_HOT_FLOOR)
    qprobs[np.arange(len(rows)), chosen] = 1.0 - ONE_HOT_FLOOR * (len(QUADRANTS) - 1)
    states = smooth_states(qprobs, centres, duration, smoothing)
    edges = run_edges(states, centres, duration)
    drafts = []
    for k, (first, stop, state) in enumerate(runs(states)):
        quadrant = QUADRANTS[state]
        own = [w for w in rows[first:stop] if w["quadrant"] == quadrant]
        label = f"windows {first + 1}-{stop} ({rows[first]['start']:g}-{rows[stop - 1]['end']:g} s, {quadrant})"
        drafts.append(Draft(label, float(edges[k]), float(edges[k + 1]), quadrant, _mean_of(own, "valence"),
                            _mean_of(own, "arousal")))
    return tuple(drafts)


def _mean_of(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


# --- Checking against the clip -------------------------------------------------------------------


def resolve_segments(drafts: Sequence[Draft], duration: float, notes: list[str] | None = None) -> list[Segment]:
    """Drafts -> segments that tile [0, duration]; InputError naming the first bad segment."""
    if not drafts:
        raise InputError("no segments given")
    notes = notes if notes is not None else []
    segments = []
    edge = 0.0
    for i, draft in enumerate(drafts):
        start = edge if draft.start is None else draft.start
        end = _end_of(drafts, i, duration)
        _check_draft(draft, start, end, edge, duration)
        if end > duration or (i == len(drafts) - 1 and end >= duration - END_TOLERANCE_SECONDS):
            end = duration
        segments.append(_segment(draft, start, end, notes))
        edge = end
    if edge < duration - END_TOLERANCE_SECONDS:
        raise InputError(f"{drafts[-1].label}: the segments end at {edge:g} s but the clip lasts {duration:g} s "
                         "(gap at the end)")
    return segments


def _end_of(drafts: Sequence[Draft], i: int, duration: float) -> float:
    draft = drafts[i]
    if draft.end is not None:
        return draft.end
    if i + 1 < len(drafts) and drafts[i + 1].start is not None:
        return float(drafts[i + 1].start)  # type: ignore[arg-type]
    if i + 1 == len(drafts):
        return duration
    raise InputError(f"{draft.label}: an open end needs the next segment's start")


def _check_draft(draft: Draft, start: float, end: float, edge: float, duration: float) -> None:
    if draft.quadrant not in QUADRANTS:
        raise InputError(f"{draft.label}: unknown quadrant {draft.quadrant!r}; use one of {', '.join(QUADRANTS)}")
    if start > edge + JOIN_TOLERANCE_SECONDS:
        raise InputError(f"{draft.label}: gap from {edge:g} s to {start:g} s before it")
    if start < edge - JOIN_TOLERANCE_SECONDS:
        raise InputError(f"{draft.label}: overlaps the previous segment (starts at {start:g} s, before {edge:g} s)")
    if start >= duration:
        raise InputError(f"{draft.label}: starts at {start:g} s, past the clip's end ({duration:g} s)")
    if end > duration + END_TOLERANCE_SECONDS:
        raise InputError(f"{draft.label}: ends at {end:g} s, past the clip's end ({duration:g} s)")
    if not end > start:
        raise InputError(f"{draft.label}: ends at {end:g} s, not after its start {start:g} s")
    for name, value in (("valence", draft.valence), ("arousal", draft.arousal),
                        ("confidence", draft.confidence)):
        low = 0.0 if name == "confidence" else -1.0
        if value is not None and not low <= value <= 1.0:
            raise InputError(f"{draft.label}: {name} {value:g} is outside [{low:g}, 1]")


def _segment(draft: Draft, start: float, end: float, notes: list[str]) -> Segment:
    centre = tuple(0.5 * c for c in QUADRANT_VA[draft.quadrant])
    valence = centre[0] if draft.valence is None else draft.valence
    arousal = centre[1] if draft.arousal is None else draft.arousal
    if (draft.valence is not None or draft.arousal is not None) and not _in_quadrant(valence, arousal,
                                                                                    draft.quadrant):
        notes.append(f"{draft.label}: valence/arousal ({valence:g}, {arousal:g}) lie outside {draft.quadrant}; "
                     f"using its centre ({centre[0]:g}, {centre[1]:g})")
        valence, arousal = centre
    emotion = draft.emotion
    if emotion not in EMOTIONS or EMOTION_QUADRANT[str(emotion)] != draft.quadrant:
        emotion = next(e for e in EMOTIONS if EMOTION_QUADRANT[e] == draft.quadrant)
    confidence = 1.0 if draft.confidence is None else draft.confidence
    return Segment(float(start), float(end), draft.quadrant, float(valence), float(arousal), float(confidence),
                   str(emotion))


def _in_quadrant(valence: float, arousal: float, quadrant: str) -> bool:
    """True when (valence, arousal) lies in the quadrant (or on one of its axes)."""
    sv, sa = QUADRANT_VA[quadrant]
    return valence * sv >= 0 and arousal * sa >= 0


# --- The Timeline for the outputs ----------------------------------------------------------------


def to_timeline(segments: Sequence[Segment], windows: Sequence[dict[str, Any]], cuts: Sequence[float],
                duration: float, config: Config) -> Timeline:
    """A Timeline holding the editor's segments; its windows are the original analysis windows when the edit
    came with them, else windows synthesised from the segments (source "edited", probabilities spread evenly
    over the segment quadrant's emotions)."""
    rows = [w for w in windows if w.get("start") is not None and w["start"] < duration
            and all(w.get(e) is not None for e in EMOTIONS)]
    if not rows:
        rows = synthetic_windows(segments, duration, config)
    times = np.array([w["start"] for w in rows], dtype=np.float64)
    probs = np.array([[w[e] for e in EMOTIONS] for w in rows], dtype=np.float32)
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-6)
    zeros = np.zeros_like(probs)
    window_seconds = max(float(np.median([w["end"] - w["start"] for w in rows])), 1e-3)
    return Timeline(
        times=times, window_seconds=window_seconds, duration=float(duration), probs=probs,
        quadrant_probs=quadrant_probs(probs, config.smoothing.uniform_quadrant_prior), visual_probs=zeros,
        audio_probs=zeros, visual_present=np.array([bool(w.get("visual_present")) for w in rows]),
        audio_present=np.array([bool(w.get("audio_present")) for w in rows]),
        sources=np.array([str(w.get("source") or EDITED_SOURCE) for w in rows]),
        quadrants=np.array([str(w.get("quadrant") or "") for w in rows]),
        valence=np.array([_or(w.get("valence"), 0.0) for w in rows]),
        arousal=np.array([_or(w.get("arousal"), 0.0) for w in rows]),
        segments=tuple(segments), scene_cuts=np.array([c for c in cuts if 0 < c < duration], dtype=np.float64))


def _or(value: Any, default: float) -> float:
    return default if value is None else float(value)


def synthetic_windows(segments: Sequence[Segment], duration: float, config: Config) -> list[dict[str, Any]]:
    """One window per analysis hop, each taking the segment that holds its centre."""
    window, hop = config.analysis.window_seconds, config.analysis.hop_seconds
    starts = window_starts(duration, window, hop)
    rows = []
    for start, centre in zip(starts, window_centres(starts, window, duration), strict=True):
        seg = next((s for s in segments if s.start <= centre < s.end), segments[-1])
        members = [e for e in EMOTIONS if EMOTION_QUADRANT[e] == seg.quadrant]
        row: dict[str, Any] = {"start": float(start), "end": float(min(start + window, duration))}
        row.update({e: (1.0 / len(members) if e in members else 0.0) for e in EMOTIONS})
        row.update(quadrant=seg.quadrant, valence=seg.valence, arousal=seg.arousal, visual_present=False,
                   audio_present=False, source=EDITED_SOURCE)
        rows.append(row)
    return rows
