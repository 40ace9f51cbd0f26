"""The batch review page: structure, safety, and a real headless-chromium screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emoscore import media
from emoscore.config import Config
from emoscore.edits import read_timeline
from emoscore.plot import plot_timeline, write_png
from emoscore.review import GENERATOR, ROW_COLOURS, ReviewItem, write_review

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden" / "talking-head-b.timeline.json"
CHROMIUM = Path("/usr/bin/chromium")


def fake_outputs(folder: Path, name: str, source: Path) -> Path:
    """What `score` leaves for one clip: the video, its timeline JSON and picture, and the music stem."""
    output = folder / f"{name}.mp4"
    shutil.copy(source, output)
    data = json.loads(GOLDEN.read_text())
    data["meta"]["warnings"] = ["no face <found> in 2 windows"]
    (folder / f"{name}.timeline.json").write_text(json.dumps(data))
    timeline = read_timeline(folder / f"{name}.timeline.json").resolve(data["duration"], Config())
    write_png(folder / f"{name}.timeline.png", plot_timeline(timeline))
    media.write_wav(folder / f"{name}.music.wav", np.zeros((4410, 2), np.float32), 44100)
    return output


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, list[ReviewItem]]:
    out = tmp_path / "out dir"
    out.mkdir()
    items = [ReviewItem(DATA / "talking-head-a.mp4", fake_outputs(out, "a", DATA / "talking-head-a.mp4"), "done"),
             ReviewItem(DATA / "talking-head-b.mp4", fake_outputs(out, "b", DATA / "talking-head-b.mp4"),
                        "skipped", "output exists"),
             ReviewItem(tmp_path / "broken.mp4", out / "broken.mp4", "failed", "not a readable video: <broken>")]
    return out, items


def test_page_has_one_row_per_clip_and_nothing_remote(batch: tuple[Path, list[ReviewItem]]) -> None:
    out, items = batch
    page = write_review(items, out)
    assert page == out / "index.html"
    text = page.read_text()
    assert text.count('<div class="row"') == 3
    assert text.count("data:image/jpeg;base64,") == 2 and text.count("data:image/png;base64,") == 2
    assert 'src="a.mp4"' in text and 'src="b.music.wav"' in text
    assert "not a readable video: &lt;broken&gt;" in text and "no face &lt;found&gt;" in text
    quadrant = json.loads(GOLDEN.read_text())["segments"][0]["quadrant"]
    assert f">{quadrant}</span>" in text and "<script" not in text
    assert "http://" not in text and "https://" not in text
    assert GENERATOR in text


def test_a_foreign_index_html_is_left_alone(batch: tuple[Path, list[ReviewItem]]) -> None:
    out, items = batch
    (out / "index.html").write_text("<html>my own page</html>")
    assert write_review(items, out) is None
    assert (out / "index.html").read_text() == "<html>my own page</html>"


def test_a_page_that_cannot_be_written_is_a_warning(batch: tuple[Path, list[ReviewItem]],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import emoscore.review
    from emoscore.cli import write_review_page
    from emoscore.errors import OutputError

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    out, items = batch
    monkeypatch.setattr(emoscore.review, "write_text_atomic", refuse)
    with pytest.raises(OutputError, match="review page"):
        write_review(items, out)
    write_review_page(items, out)  # the batch's clips are done: a warning, not a failure
    assert "warning: cannot write the review page" in capsys.readouterr().err


def bar_runs(column: np.ndarray) -> list[str]:
    """Status names of the vertical runs of a status colour down one pixel column (n, 3) RGB."""
    colours = {name: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)]) for name, c in ROW_COLOURS.items()}
    labels = []
    for pixel in column.astype(int):
        match = [name for name, rgb in colours.items() if np.abs(pixel - rgb).max() <= 12]
        labels.append(match[0] if match else "")
    return [label for k, label in enumerate(labels) if label and (k == 0 or labels[k - 1] != label)]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no headless browser: /usr/bin/chromium is not installed "
                                                   "(Debian package chromium; `make system` installs it)")
def test_page_renders_in_headless_chromium(batch: tuple[Path, list[ReviewItem]], tmp_path: Path) -> None:
    import cv2

    out, items = batch
    page = write_review(items, out)
    assert page is not None
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,2000", f"--screenshot={shot}",
         page.resolve().as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console  # no console errors (CSP violations, missing files...)
    image = cv2.imread(str(shot))[:, :, ::-1]  # RGB
    assert image.std() > 20  # not blank
    assert bar_runs(image[:, 22]) == ["done", "skipped", "failed"]  # one row per clip, in order
    thumbs = image[:, 30:260]
    assert (thumbs.std(axis=(1, 2)) > 25).sum() > 100  # the thumbnails drew (a face, not a flat box)


@pytest.mark.slow
def test_batch_writes_the_review_page(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emoscore.cli import app

    videos = tmp_path / "in"
    videos.mkdir()
    for name in ("talking-head-a.mp4", "talking-head-b.mp4"):
        shutil.copy(DATA / name, videos / name)
    (videos / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["score", str(videos), "-o", str(out)])
    assert result.exit_code != 0 and "review page:" in result.output  # written even when a clip failed
    assert result.output.count(" dBTP]") == 2  # each scored clip's loudness in the summary table
    text = (out / "index.html").read_text()
    assert text.count('<div class="row"') == 3
    assert text.count('data-status="done"') == 2 and text.count('data-status="failed"') == 1
    assert 'src="talking-head-a.mp4"' in text and 'src="talking-head-b.music.wav"' in text
