"""Safe writing: every output goes to a temporary file beside its target and is renamed into place,
so an error or Ctrl-C never leaves a half-written file, and nothing existing is overwritten unless asked."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emoscore.errors import OutputError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_writable(path: Path, overwrite: bool) -> None:
    """Raise OutputError if `path` exists (and overwrite is False) or its folder cannot be written."""
    if path.exists() and not overwrite:
        raise OutputError(f"output exists: {path} (pass --overwrite to replace it)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target` (same suffix); on success rename it onto `target`.

    On any exception the temporary file is removed and `target` is left as it was.
    """
    target = Path(target)
    check_writable(target, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str, overwrite: bool = True) -> None:
    with atomic_path(target, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: Path, data: Any, overwrite: bool = True) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False) + "\n", overwrite)
