"""The batch review page: index.html with one row per clip, for an editor to audition a folder's results.

Each row holds a thumbnail of the scored video, its timeline picture, players for the scored video and the
music stem, the segment list, loudness and warnings (or the error of a clip that failed). The page is
self-contained: images are embedded as data: URIs, the players point at the outputs by relative path, and it
loads nothing from the network and runs no script. Every row starts with a solid status bar (ROW_COLOURS) so
a screenshot can be checked row by row.
"""

from __future__ import annotations

import base64
import html
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoscore.errors import OutputError
from emoscore.fileio import write_text_atomic

REVIEW_NAME = "index.html"
GENERATOR = "emoscore review"  # the page's <meta name="generator">: only such a page is ever replaced
THUMBNAIL_WIDTH = 240  # pixels
ROW_COLOURS: dict[str, str] = {"done": "#1f9d55", "skipped": "#3f7fbf", "failed": "#cc2936"}
QUADRANT_COLOURS: dict[str, str] = {"Q1": "#f2c14e", "Q2": "#e4572e", "Q3": "#4f6d7a", "Q4": "#76b041"}
STYLE = """
body { font: 14px/1.4 sans-serif; margin: 16px; background: #fafafa; color: #222; }
h1 { font-size: 20px; margin: 0 0 12px; }
.row { display: flex; gap: 12px; align-items: flex-start; background: #fff; border: 1px solid #ddd;
       margin: 0 0 16px; padding: 8px 8px 8px 0; }
.bar { width: 10px; align-self: stretch; flex: none; }
.media { display: flex; flex-direction: column; gap: 6px; flex: none; }
.thumb { width: 240px; background: #000; }
.timeline { width: 100%; max-width: 900px; border: 1px solid #eee; display: block; margin: 0 0 6px; }
.info { flex: 1; min-width: 0; }
.info h2 { font-size: 16px; margin: 0 0 6px; }
table { border-collapse: collapse; }
td { padding: 1px 8px 1px 0; }
.q { display: inline-block; width: 28px; text-align: center; color: #fff; border-radius: 3px; }
.warn { color: #9a6700; margin: 4px 0; }
.error { color: #cc2936; font-weight: bold; }
video { width: 240px; }
audio { width: 240px; }
"""


@dataclass(frozen=True)
class ReviewItem:
    """One clip of the batch: its input, where its scored video is (or would be), status and message."""

    input: Path
    output: Path
    status: str  # "done", "skipped" or "failed"
    message: str = ""


def write_review(items: Sequence[Any], folder: Path) -> Path | None:
    """Write folder/index.html for batch items (anything with input, output, status, message).

    Returns the page's path, or None when folder already holds an index.html that emoscore did not write
    (it is never replaced).
    """
    page = folder / REVIEW_NAME
    rows = [ReviewItem(Path(i.input), Path(i.output), str(i.status), str(i.message)) for i in items]
    try:
        if page.exists() and GENERATOR not in page.read_text(errors="replace")[:2000]:
            return None
        write_text_atomic(page, render_page(rows, folder), overwrite=True)
    except OSError as exc:
        raise OutputError(f"cannot write the review page {page}: {exc.strerror or exc}") from None
    return page


def render_page(rows: Sequence[ReviewItem], folder: Path) -> str:
    """The whole HTML document."""
    counts = ", ".join(f"{sum(r.status == s for r in rows)} {s}" for s in ROW_COLOURS)
    body = "\n".join(render_row(row, folder) for row in rows)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="generator" content="{GENERATOR}">\n'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "media-src 'self' file:; style-src 'unsafe-inline'\">\n"
            f"<title>emoscore review</title>\n<style>{STYLE}</style></head>\n<body>\n"
            f"<h1>emoscore review: {len(rows)} clip{'s' * (len(rows) != 1)} ({counts})</h1>\n{body}\n"
            "</body></html>\n")


def render_row(row: ReviewItem, folder: Path) -> str:
    """One clip's <div class="row">."""
    colour = ROW_COLOURS.get(row.status, "#888")
    data = _timeline_data(row.output)
    media = "" if row.status == "failed" else _media_cell(row.output, folder)
    details = _details(row, {} if row.status == "failed" else data)
    return (f'<div class="row" data-status="{html.escape(row.status)}">'
            f'<div class="bar" style="background:{colour}"></div>{media}'
            f'<div class="info"><h2>{html.escape(row.input.name)} <small>({html.escape(row.status)})</small></h2>'
            f"{details}</div></div>")


def _media_cell(output: Path, folder: Path) -> str:
    parts = []
    thumb = thumbnail_jpeg(output)
    if thumb:
        parts.append(f'<img class="thumb" alt="thumbnail" src="{_data_uri(thumb, "image/jpeg")}">')
    if output.is_file():
        parts.append(f'<video controls preload="none" src="{_relative(output, folder)}"></video>')
    music = output.with_name(output.stem + ".music.wav")
    if music.is_file():
        parts.append(f'<audio controls preload="none" src="{_relative(music, folder)}"></audio>')
    return f'<div class="media">{"".join(parts)}</div>'


def _details(row: ReviewItem, data: dict[str, Any]) -> str:
    out = []
    png = row.output.with_name(row.output.stem + ".timeline.png")
    if row.status != "failed" and png.is_file():
        out.append(f'<img class="timeline" alt="timeline" src="{_data_uri(png.read_bytes(), "image/png")}">')
    if row.status == "failed":
        out.append(f'<p class="error">{html.escape(row.message or "failed")}</p>')
    segments = data.get("segments") or []
    if segments:
        out.append("<table>" + "".join(_segment_row(s) for s in segments) + "</table>")
    loudness = (data.get("meta") or {}).get("loudness") or {}
    if loudness.get("output"):
        out.append(f"<p>loudness: mix {loudness['output']['integrated_lufs']:.1f} LUFS, true peak "
                   f"{loudness['output']['true_peak_dbtp']:.1f} dBTP</p>")
    warnings = list((data.get("meta") or {}).get("warnings") or [])
    if row.status != "failed" and row.message and row.message not in warnings:
        warnings.append(row.message)
    out += [f'<p class="warn">warning: {html.escape(w)}</p>' for w in warnings]
    return "".join(out)


def _segment_row(seg: dict[str, Any]) -> str:
    quadrant = str(seg.get("quadrant", "?"))
    colour = QUADRANT_COLOURS.get(quadrant, "#888")
    return (f'<tr><td>{float(seg["start"]):.1f}&ndash;{float(seg["end"]):.1f} s</td>'
            f'<td><span class="q" style="background:{colour}">{html.escape(quadrant)}</span></td>'
            f'<td>{html.escape(str(seg.get("emotion", "")))}</td>'
            f'<td>valence {float(seg.get("valence", 0)):+.2f}, arousal {float(seg.get("arousal", 0)):+.2f}</td>'
            f'<td>confidence {float(seg.get("confidence", 0)):.2f}</td></tr>')


def _timeline_data(output: Path) -> dict[str, Any]:
    path = output.with_name(output.stem + ".timeline.json")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _relative(path: Path, folder: Path) -> str:
    """A relative URL from the page's folder to `path` (percent-encoded)."""
    from urllib.parse import quote

    return quote(Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix())


def thumbnail_jpeg(video: Path, width: int = THUMBNAIL_WIDTH) -> bytes:
    """A JPEG of the frame a third into `video`, `width` pixels wide; b"" when it cannot be decoded."""
    from emoscore import media

    if not video.is_file():
        return b""
    try:
        at = media.probe(video).duration / 3
    except Exception:  # a broken output must not stop the page
        return b""
    command = [media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-ss", f"{at:.3f}", "-i", str(video),
               "-frames:v", "1", "-vf", f"scale={width}:-2", "-f", "image2pipe", "-vcodec", "mjpeg", "-"]
    result = subprocess.run(command, capture_output=True, check=False, timeout=60)
    return result.stdout if result.returncode == 0 else b""
