"""RAVDESS in its official layout: `Actor_NN/MM-VV-EE-II-SS-RR-AA.ext`.

MM modality (01 audio-video, 02 video-only, 03 audio-only), VV vocal channel (01 speech, 02 song),
EE emotion 01..08, II intensity, SS statement, RR repetition, AA actor (odd male, even female).
Splits are always by actor: the same speaker never sits in two of train / validation / test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoscore.constants import RAVDESS_EMOTION_CODES
from emoscore.errors import DataError

_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")

# The fixed actor-wise split used for the shipped checkpoints (actors 21-24 are the official hold-out
# that ../shared does not carry; users who have them evaluate with --actors 21,22,23,24).
TEST_ACTORS: tuple[int, ...] = (17, 18, 19, 20)
VAL_ACTORS: tuple[int, ...] = (15, 16)


@dataclass(frozen=True)
class RavdessItem:
    path: Path
    modality: int
    vocal_channel: int
    emotion: int  # 0..7, index into constants.EMOTIONS
    intensity: int
    statement: int
    repetition: int
    actor: int


def parse_name(path: Path) -> RavdessItem | None:
    """Parse an official RAVDESS file name; None if the name does not follow the scheme."""
    match = _NAME.match(path.stem)
    if match is None:
        return None
    mm, vv, ee, ii, ss, rr, aa = match.groups()
    if ee not in RAVDESS_EMOTION_CODES:
        return None
    return RavdessItem(path, int(mm), int(vv), RAVDESS_EMOTION_CODES[ee], int(ii), int(ss), int(rr), int(aa))


def scan(root: Path, suffixes: Iterable[str]) -> list[RavdessItem]:
    """All RAVDESS files under `root` (any depth) with one of `suffixes`, sorted by path.

    Raises DataError if the folder is missing or holds no file named in the official scheme.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"RAVDESS folder not found: {root}")
    wanted = {s.lower() for s in suffixes}
    items = [item for p in sorted(root.rglob("*")) if p.suffix.lower() in wanted
             if (item := parse_name(p)) is not None]
    if not items:
        raise DataError(f"no RAVDESS files ({'/'.join(sorted(wanted))}, named MM-VV-EE-II-SS-RR-AA) under {root}")
    return items


def split_by_actor(items: Sequence[RavdessItem], test_actors: Sequence[int] = TEST_ACTORS,
                   val_actors: Sequence[int] = VAL_ACTORS
                   ) -> tuple[list[RavdessItem], list[RavdessItem], list[RavdessItem]]:
    """(train, validation, test) lists: every actor lands in exactly one of them."""
    if set(test_actors) & set(val_actors):
        raise DataError("an actor cannot be both a validation and a test actor")
    test = [i for i in items if i.actor in test_actors]
    val = [i for i in items if i.actor in val_actors]
    train = [i for i in items if i.actor not in test_actors and i.actor not in val_actors]
    if not train or not test:
        raise DataError(f"actor split leaves an empty set (train {len(train)}, test {len(test)} files)")
    return train, val, test


def clip_key(item: RavdessItem) -> str:
    """"EE-II-SS-RR-AA": the part of a RAVDESS name shared by a clip's audio, video and landmark files
    (emotion, intensity, statement, repetition, actor)."""
    return "-".join(item.path.stem.split("-")[2:])


def select_actors(items: Sequence[RavdessItem], actors: Sequence[int]) -> list[RavdessItem]:
    chosen = [i for i in items if i.actor in set(actors)]
    if not chosen:
        raise DataError(f"no files of actors {list(actors)}")
    return chosen


def actor_folds(actors: Sequence[int], folds: int, seed: int) -> list[tuple[int, ...]]:
    """`folds` disjoint, near-equal actor groups covering the distinct `actors`, shuffled by `seed`."""
    order = np.random.default_rng(seed).permutation(sorted(set(actors)))
    if folds < 2 or folds > len(order):
        raise DataError(f"cross-validation needs 2..{len(order)} folds, got {folds}")
    return [tuple(sorted(int(a) for a in order[k::folds])) for k in range(folds)]
