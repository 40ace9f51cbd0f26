"""Quadrant-labelled music datasets in their official layouts.

- 4Q layout (Panda et al. 2018): `ROOT/Q1/*.mid` .. `ROOT/Q4/*.mid` (its audio must become MIDI first).
- EMOPIA: `ROOT/Qn_<song>_<clip>.mid`, with the official song-level split `train.csv`, `val.csv`, `test.csv`
  (columns fname,label) beside ROOT (in its parent folder) or inside it.
- VGMIDI: `ROOT/vgmidi_labelled.csv` (valence, arousal in {-1, 1}; column `midi` = `labelled/phrases/<file>`)
  with the files in `ROOT/phrases/`.

Files without an official split are split by a stable hash of their song name, so every clip of one song
lands in the same split.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from emoscore.constants import QUADRANTS
from emoscore.errors import DataError

MIDI_SUFFIXES: tuple[str, ...] = (".mid", ".midi")
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".aiff", ".aif", ".opus")
SPLITS: tuple[str, ...] = ("train", "val", "test")
_EMOPIA_NAME = re.compile(r"^(Q[1-4])_(.+)_(\d+)$")
_CLIP_SUFFIX = re.compile(r"_\d+$")


@dataclass(frozen=True)
class MusicItem:
    path: Path
    quadrant: str  # "Q1".."Q4"
    song: str  # clips of one song share this and always share a split
    split: str  # "train" | "val" | "test"
    source: str  # "emopia" | "4q" | "vgmidi"


def hash_split(song: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """A stable split for `song` from its sha1 (the same on every machine)."""
    u = int(hashlib.sha1(song.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def _reject_audio(root: Path) -> None:
    audio = [p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES]
    if audio:
        raise DataError(f"{root} holds {len(audio)} audio file(s) such as {audio[0].name}: music training "
                        f"needs MIDI; transcribe the audio to MIDI first (e.g. with basic-pitch)")


def _official_split(root: Path) -> dict[str, str]:
    """fname -> split from EMOPIA's train/val/test.csv beside `root` or inside it; {} when absent."""
    for folder in (root.parent, root):
        if all((folder / f"{s}.csv").exists() for s in SPLITS):
            table: dict[str, str] = {}
            for split in SPLITS:
                with open(folder / f"{split}.csv", newline="", encoding="utf-8") as fh:
                    for row in csv.DictReader(fh):
                        table[Path(row["fname"]).stem] = split
            return table
    return {}


def scan_quadrant_folder(root: Path) -> list[MusicItem]:
    """Every labelled MIDI file under `root` in the 4Q (Q1..Q4 subfolders) or EMOPIA (Qn_ prefix) layout.

    Raises DataError for a missing folder, audio files, or no labelled MIDI at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"music data folder not found: {root}")
    _reject_audio(root)
    items = _scan_4q(root) if any((root / q).is_dir() for q in QUADRANTS) else _scan_emopia(root)
    if not items:
        raise DataError(f"no quadrant-labelled MIDI under {root}: expected Q1..Q4 subfolders or files "
                        f"named Q1_*.mid .. Q4_*.mid")
    return items


def _scan_4q(root: Path) -> list[MusicItem]:
    items = []
    for quadrant in QUADRANTS:
        for path in sorted((root / quadrant).rglob("*")) if (root / quadrant).is_dir() else []:
            if path.suffix.lower() in MIDI_SUFFIXES:
                song = f"{quadrant}/{path.stem}"
                items.append(MusicItem(path, quadrant, song, hash_split(song), "4q"))
    return items


def _scan_emopia(root: Path) -> list[MusicItem]:
    official = _official_split(root)
    items = []
    for path in sorted(root.iterdir()):
        match = _EMOPIA_NAME.match(path.stem)
        if path.suffix.lower() not in MIDI_SUFFIXES or match is None:
            continue
        song = f"{match.group(1)}_{match.group(2)}"
        split = official.get(path.stem) if official else hash_split(song)
        if split is not None:  # clips outside the official split are left out, as EMOPIA does
            items.append(MusicItem(path, match.group(1), song, split, "emopia"))
    return items


def va_quadrant(valence: float, arousal: float) -> str:
    """The Russell quadrant of a (valence, arousal) pair; zero counts as positive."""
    if arousal >= 0:
        return "Q1" if valence >= 0 else "Q2"
    return "Q4" if valence >= 0 else "Q3"


def scan_vgmidi(root: Path) -> list[MusicItem]:
    """VGMIDI's labelled pieces; split by piece (all phrases of a piece together)."""
    root = Path(root)
    table = root / "vgmidi_labelled.csv"
    if not table.exists():
        raise DataError(f"VGMIDI table not found: {table}")
    items = []
    with open(table, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                name = Path(row["midi"]).name
                quadrant = va_quadrant(float(row["valence"]), float(row["arousal"]))
            except (KeyError, ValueError) as exc:
                raise DataError(f"{table}: bad row {row!r} ({exc})") from None
            path = root / "phrases" / name
            if not path.exists():
                raise DataError(f"VGMIDI file listed in {table.name} is missing: {path}")
            song = _CLIP_SUFFIX.sub("", Path(name).stem)
            items.append(MusicItem(path, quadrant, song, hash_split(song), "vgmidi"))
    if not items:
        raise DataError(f"no rows in {table}")
    return items

