"""`emoscore eval music`: does the generated music carry the intended quadrant, and does it look like the
training data?

The judge hears the piano part (the LSTM's notes as arranged: in the quadrant's key, register, tempo and
dynamics), which is what it was trained on (EMOPIA piano clips); pad and bass are left out because no
training clip had them. The full arrangement's verdict is reported beside it for information.
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


def evaluate_generated(checkpoints: Path, config: MusicConfig, n: int = 8, seconds: float = 30.0, seed: int = 0,
                       log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Compose `n` pieces per quadrant, judge them, compare their statistics with the training data.

    Returns {"overall": 4Q/arousal/valence agreement on the piano part, "overall_full_arrangement": ...,
    "per_quadrant": {Q: {"agreement", "stats", "reference"}}, "seconds_per_second": generation speed}.
    """
    from emoscore.music.compose import compose_piece

    judge = MusicJudge(checkpoints)
    reference = load_reference(checkpoints)
    truth, melodies, fulls, per_q = [], [], [], {}
    wall = 0.0
    for qi, q in enumerate(QUADRANTS):
        stats: dict[str, list[float]] = {k: [] for k in STAT_KEYS}
        for k in range(n):
            started = time.perf_counter()
            midi = compose_piece(q, seconds, config, checkpoints, seed=seed * 7919 + k)
            wall += time.perf_counter() - started
            melody = part_notes(midi, "melody")
            melodies.append(melody)
            fulls.append(part_notes(midi, None))
            truth.append(qi)
            for key, value in piece_stats(melody, seconds).items():
                stats[key].append(value)
        per_q[q] = {"stats": {k: mean_std(v) for k, v in stats.items()}, "reference": reference.get(q, {})}
        log(f"  {q}: {n} pieces of {seconds:.0f} s, density {per_q[q]['stats']['density']} notes/s "
            f"(training {reference.get(q, {}).get('density')})")
    y = np.array(truth)
    pred = judge.predict_proba(melodies).argmax(axis=1)
    pred_full = judge.predict_proba(fulls).argmax(axis=1)
    for qi, q in enumerate(QUADRANTS):
        per_q[q]["agreement"] = round(float((pred[y == qi] == qi).mean()), 3)
        per_q[q]["judged_as"] = [int((pred[y == qi] == j).sum()) for j in range(len(QUADRANTS))]
    return {"overall": quadrant_metrics(y, pred), "overall_full_arrangement": quadrant_metrics(y, pred_full),
            "per_quadrant": per_q, "pieces": int(len(y)), "seconds": seconds,
            "seconds_per_second": round(len(y) * seconds / max(wall, 1e-9), 1)}
