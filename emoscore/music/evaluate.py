"""`emoscore eval music`: does the generated music carry the intended quadrant, heard and read, and do its
measurable properties match real music of that quadrant?

- The audio judge (audio_judge.py) hears the rendered full arrangement (melody, pad, bass), as a listener
  would; it is the primary verdict.
- The MIDI judge (judge.py) reads the piano part (what it was trained on: EMOPIA piano clips) and, for
  information, the full arrangement's notes: a second opinion.
- The properties of issue 9's table (properties.py) per quadrant, composed vs EMOPIA renders.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emoscore.config import MusicConfig
from emoscore.constants import QUADRANTS
from emoscore.music.events import piece_stats
from emoscore.music.judge import MusicJudge, quadrant_metrics

STAT_KEYS = ("density", "pitch_range", "pc_entropy", "repeated_4grams")
Log = Callable[[str], None]


def part_notes(midi: Any, role: str | None) -> np.ndarray:
    """Notes (seconds) of the instruments whose name starts with `role` ("melody", "pad", "bass");
    None gives every instrument."""
    from emoscore.music.events import sort_notes

    chosen = [inst for inst in midi.instruments if role is None or inst.name.startswith(role)]
    rows = [(n.start, n.end, n.pitch, n.velocity) for inst in chosen for n in inst.notes]
    return sort_notes(np.array(rows, dtype=np.float64).reshape(-1, 4))


def mean_std(values: list[float]) -> list[float]:
    return [round(float(np.mean(values)), 3), round(float(np.std(values)), 3)] if values else []


def load_reference(checkpoints: Path) -> dict[str, Any]:
    from emoscore.music.train import VOCAB_FILE

    path = Path(checkpoints) / VOCAB_FILE
    return dict(json.loads(path.read_text())["reference_stats"]) if path.exists() else {}


def has_model(checkpoints: Path, name: str) -> bool:
    from emoscore.checkpoints import load_manifest

    manifest = Path(checkpoints) / "manifest.json"
    return manifest.exists() and name in load_manifest(Path(checkpoints))["models"]


def agreement(y: np.ndarray, pred: np.ndarray, qi: int) -> dict[str, Any]:
    return {"agreement": round(float((pred[y == qi] == qi).mean()), 3),
            "judged_as": [int((pred[y == qi] == j).sum()) for j in range(len(QUADRANTS))]}


def evaluate_generated(checkpoints: Path, config: MusicConfig, n: int = 8, seconds: float = 30.0, seed: int = 0,
                       log: Log = lambda _: None) -> dict[str, Any]:
    """Compose `n` pieces per quadrant (seeds seed * 7919 + 0..n-1), render them, judge them by ear (audio
    judge, when installed) and by score (MIDI judge), and measure their properties.

    Returns {"overall_audio": 4Q/arousal/valence agreement of the audio judge on the full arrangement (absent
    without an audio judge), "overall": the MIDI judge on the piano part, "overall_full_arrangement": the MIDI
    judge on every part, "per_quadrant": {Q: {"audio", "midi", "stats", "reference", "properties"}},
    "seconds_per_second": generation speed (composition only)}.
    """
    from emoscore.music.audio_features import render_mono
    from emoscore.music.audio_judge import AUDIO_JUDGE_NAME, AudioJudge
    from emoscore.music.compose import compose_piece
    from emoscore.music.properties import composed_properties, summarize

    judge = MusicJudge(checkpoints)
    audio_judge = AudioJudge(checkpoints) if has_model(checkpoints, AUDIO_JUDGE_NAME) else None
    reference = load_reference(checkpoints)
    truth, melodies, fulls, audios, per_q = [], [], [], [], {}
    wall = 0.0
    for qi, q in enumerate(QUADRANTS):
        stats: dict[str, list[float]] = {k: [] for k in STAT_KEYS}
        props = []
        for k in range(n):
            started = time.perf_counter()
            midi = compose_piece(q, seconds, config, checkpoints, seed=seed * 7919 + k)
            wall += time.perf_counter() - started
            audios.append(render_mono(midi, seconds, config.soundfont))
            props.append(composed_properties(midi, seconds, config.soundfont, audios[-1]))
            melodies.append(part_notes(midi, "melody"))
            fulls.append(part_notes(midi, None))
            truth.append(qi)
            for key, value in piece_stats(melodies[-1], seconds).items():
                stats[key].append(value)
        per_q[q] = {"stats": {k: mean_std(v) for k, v in stats.items()}, "reference": reference.get(q, {}),
                    "properties": summarize(props)}
        log(f"  {q}: {n} pieces of {seconds:.0f} s, melody {per_q[q]['properties']['melody_notes_per_s'][0]:.2f} "
            f"notes/s (training {reference.get(q, {}).get('density')})")
    y = np.array(truth)
    pred = judge.predict_proba(melodies).argmax(axis=1)
    pred_full = judge.predict_proba(fulls).argmax(axis=1)
    result: dict[str, Any] = {"overall": quadrant_metrics(y, pred),
                              "overall_full_arrangement": quadrant_metrics(y, pred_full)}
    pred_audio = audio_judge.predict_proba(audios).argmax(axis=1) if audio_judge is not None else None
    if pred_audio is not None:
        result["overall_audio"] = quadrant_metrics(y, pred_audio)
    for qi, q in enumerate(QUADRANTS):
        per_q[q]["midi"] = agreement(y, pred, qi)
        per_q[q]["midi_full_arrangement"] = agreement(y, pred_full, qi)
        if pred_audio is not None:
            per_q[q]["audio"] = agreement(y, pred_audio, qi)
    return {**result, "per_quadrant": per_q, "pieces": int(len(y)), "seconds": seconds, "first_seed": seed * 7919,
            "seconds_per_second": round(len(y) * seconds / max(wall, 1e-9), 1)}


def reference_properties(data: Path, cache: Path, seconds: float = 30.0, soundfont: str = "",
                         log: Log = lambda _: None) -> dict[str, dict[str, list[float]]]:
    """Issue 9's properties of every EMOPIA clip (first `seconds`, renders cached under `cache`), summarised
    per quadrant ([mean, p10, p90, min, max])."""
    import pretty_midi

    from emoscore.data.music import scan_quadrant_folder
    from emoscore.music.audio_features import cached_render
    from emoscore.music.properties import clip_properties, summarize

    rows: dict[str, list[dict[str, float]]] = {q: [] for q in QUADRANTS}
    for item in scan_quadrant_folder(data):
        audio = cached_render(item.path, cache, seconds, soundfont)
        rows[item.quadrant].append(clip_properties(pretty_midi.PrettyMIDI(str(item.path)), audio))
    log("  EMOPIA properties: " + ", ".join(f"{q} {len(r)} clips" for q, r in rows.items()))
    return {q: summarize(r) for q, r in rows.items() if r}
