"""The real CLI: help is fast and light, bad input gives one line and a distinct exit code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emoscore import errors
from emoscore.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_help_does_not_import_tensorflow() -> None:
    code = ("import sys; from emoscore.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('tensorflow', 'librosa', 'dlib', 'cv2', 'pretty_midi', 'music21') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_command_has_help() -> None:
    for args in (["score"], ["train", "audio"], ["eval", "audio"], ["info"]):
        code, out = run(*args, "--help")
        assert code == 0 and "Usage" in out


def test_missing_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, out = run("score", str(tmp_path / "nope.mp4"))
    assert code == errors.InputError.exit_code == 2
    assert out.strip().splitlines() == [f"error: no such file or folder: {tmp_path / 'nope.mp4'}"]


def test_not_a_video_is_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is text")
    code, out = run("score", str(bad))
    assert code == errors.NotAVideoError.exit_code == 3
    assert out.startswith("error: not a readable video") and "Traceback" not in out


def test_bad_config_is_exit_10(tmp_path: Path, clip_b: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[fusion]\nvisual_weight = 'a lot'\n")
    code, out = run("score", str(clip_b), "--config", str(config), "-o", str(tmp_path / "o.mp4"))
    assert code == errors.ConfigError.exit_code and "visual_weight" in out


def test_tampered_checkpoint_is_exit_8(tmp_path: Path, clip_b: Path, shipped_checkpoints: Path) -> None:
    copy = tmp_path / "ckpt"
    shutil.copytree(shipped_checkpoints, copy)
    with open(copy / "audio.keras", "ab") as fh:
        fh.write(b"tampered")
    code, out = run("score", str(clip_b), "--checkpoints", str(copy), "-o", str(tmp_path / "o.mp4"))
    assert code == errors.ChecksumError.exit_code == 8
    assert "sha256" in out
    assert not (tmp_path / "o.mp4").exists()


def test_missing_training_data_is_exit_9(tmp_path: Path) -> None:
    code, out = run("train", "audio", "--ravdess", str(tmp_path / "none"), "--out", str(tmp_path))
    assert code == errors.DataError.exit_code and "not found" in out


@pytest.mark.parametrize("exc", [errors.InputError, errors.NotAVideoError, errors.NoVideoStreamError,
                                 errors.EmptyMediaError, errors.OutputError, errors.ModelError,
                                 errors.ChecksumError, errors.DataError, errors.ConfigError,
                                 errors.MediaToolError])
def test_exit_codes_are_distinct_and_nonzero(exc: type[errors.EmoscoreError]) -> None:
    codes = [c.exit_code for c in (errors.InputError, errors.NotAVideoError, errors.NoVideoStreamError,
                                   errors.EmptyMediaError, errors.OutputError, errors.ModelError,
                                   errors.ChecksumError, errors.DataError, errors.ConfigError,
                                   errors.MediaToolError)]
    assert len(set(codes)) == len(codes) and exc.exit_code > 1


def test_missing_output_folder_is_exit_6(tmp_path: Path, clip_b: Path) -> None:
    code, out = run("score", str(clip_b), "-o", str(tmp_path / "no" / "such" / "out.mp4"))
    assert code == errors.OutputError.exit_code == 6 and "does not exist" in out


def test_output_onto_input_or_other_container_is_refused(tmp_path: Path, clip_b: Path) -> None:
    copy = tmp_path / "in.mp4"
    shutil.copy(clip_b, copy)
    code, out = run("score", str(copy), "-o", str(copy), "--overwrite")
    assert code == errors.OutputError.exit_code and "overwrite the input" in out
    code, out = run("score", str(copy), "-o", str(tmp_path / "out.mkv"))
    assert code == errors.OutputError.exit_code and "container" in out
    assert copy.read_bytes() == clip_b.read_bytes()


def test_readme_exit_code_table_is_complete_and_true() -> None:
    """Every exit code emoscore can return has its row in the README table, and every row is a real code."""
    import re

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = set()
    for cell in re.findall(r"^\| (\d+(?: / \d+)?) \|", readme, flags=re.MULTILINE):
        rows.update(int(code) for code in cell.split(" / "))

    def tree(cls: type[errors.EmoscoreError]) -> list[type[errors.EmoscoreError]]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in tree(child))]

    codes = {cls.exit_code for cls in tree(errors.EmoscoreError)}
    signals = {errors.INTERRUPTED_EXIT, errors.Terminated(15).exit_code, errors.Terminated(1).exit_code}
    assert rows == {0} | codes | signals
