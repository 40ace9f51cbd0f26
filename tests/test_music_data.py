"""Dataset layout readers: 4Q folders, EMOPIA names with the official split, VGMIDI; audio rejected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emoscore.data import music as dm
from emoscore.errors import DataError

DATA = Path(__file__).parent / "data" / "music"
CLIP = DATA / "Q1_0vLPYiPN7qY_2.mid"


def test_4q_layout(tmp_path: Path) -> None:
    for q in ("Q1", "Q2", "Q3", "Q4"):
        (tmp_path / q).mkdir()
        shutil.copy(CLIP, tmp_path / q / f"{q}_song.mid")
    items = dm.scan_quadrant_folder(tmp_path)
    assert [i.quadrant for i in items] == ["Q1", "Q2", "Q3", "Q4"]
    assert all(i.source == "4q" and i.split in dm.SPLITS for i in items)


def test_emopia_layout_with_official_split(tmp_path: Path) -> None:
    midis = tmp_path / "midis"
    midis.mkdir()
    for name in ("Q1_abc_0", "Q1_abc_1", "Q3_xyz_0", "Q2_left_out_0"):
        shutil.copy(CLIP, midis / f"{name}.mid")
    (midis / "notes.txt").write_text("ignored")
    (tmp_path / "train.csv").write_text("fname,label\nQ1_abc_0,Q1\nQ1_abc_1,Q1\n")
    (tmp_path / "val.csv").write_text("fname,label\nQ3_xyz_0,Q3\n")
    (tmp_path / "test.csv").write_text("fname,label\n")
    items = dm.scan_quadrant_folder(midis)
    assert [(i.path.stem, i.quadrant, i.song, i.split) for i in items] == [
        ("Q1_abc_0", "Q1", "Q1_abc", "train"), ("Q1_abc_1", "Q1", "Q1_abc", "train"),
        ("Q3_xyz_0", "Q3", "Q3_xyz", "val")]


def test_emopia_layout_without_split_keeps_songs_together(tmp_path: Path) -> None:
    for k in range(5):
        shutil.copy(CLIP, tmp_path / f"Q4_song_{k}.mid")
    items = dm.scan_quadrant_folder(tmp_path)
    assert len(items) == 5 and len({i.split for i in items}) == 1


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac"])
def test_audio_is_rejected_with_a_clear_message(tmp_path: Path, suffix: str) -> None:
    (tmp_path / "Q2").mkdir()
    (tmp_path / "Q2" / f"clip{suffix}").write_bytes(b"RIFF")
    with pytest.raises(DataError, match="transcribe the audio to MIDI first"):
        dm.scan_quadrant_folder(tmp_path)


def test_missing_or_unlabelled_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        dm.scan_quadrant_folder(tmp_path / "nope")
    shutil.copy(CLIP, tmp_path / "song.mid")
    with pytest.raises(DataError, match="no quadrant-labelled MIDI"):
        dm.scan_quadrant_folder(tmp_path)


def test_vgmidi(tmp_path: Path) -> None:
    (tmp_path / "phrases").mkdir()
    shutil.copy(CLIP, tmp_path / "phrases" / "Game_Piece, Sad_0.mid")
    shutil.copy(CLIP, tmp_path / "phrases" / "Game_Fight_0.mid")
    (tmp_path / "vgmidi_labelled.csv").write_text(
        "id,series,console,game,piece,midi,valence,arousal\n"
        '1,S,N64,G,"Piece, Sad","labelled/phrases/Game_Piece, Sad_0.mid",-1,-1\n'
        "2,S,N64,G,Fight,labelled/phrases/Game_Fight_0.mid,-1,1\n")
    items = dm.scan_vgmidi(tmp_path)
    assert [(i.quadrant, i.song) for i in items] == [("Q3", "Game_Piece, Sad"), ("Q2", "Game_Fight")]
    (tmp_path / "phrases" / "Game_Fight_0.mid").unlink()
    with pytest.raises(DataError, match="missing"):
        dm.scan_vgmidi(tmp_path)


def test_va_quadrant() -> None:
    assert [dm.va_quadrant(v, a) for v, a in ((1, 1), (-1, 1), (-1, -1), (1, -1))] == ["Q1", "Q2", "Q3", "Q4"]
