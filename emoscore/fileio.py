"""Safe writing: every output goes to a temporary file beside its target and is renamed into place,
so an error or Ctrl-C never leaves a half-written file, and nothing existing is overwritten unless asked."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emoscore.errors import OutputError

NAME_MAX = 255  # bytes in one file name on Linux/macOS file systems (ext4, APFS, tmpfs...)
SHORT_NAME = 60  # bytes of a name kept in temporary and claim file names


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def short_name(name: str, limit: int = SHORT_NAME) -> str:
    """At most `limit` bytes of `name` (whole characters), for temporary names built from it."""
    return os.fsencode(name)[:limit].decode("utf-8", errors="ignore")


def check_name_length(path: Path) -> None:
    """OutputError if the file name of `path` is longer than the file system allows."""
    size = len(os.fsencode(path.name))
    if size > NAME_MAX:
        raise OutputError(f"output name too long ({size} bytes, the limit is {NAME_MAX}): "
                          f"{short_name(path.name, 40)}…{path.suffix}; use a shorter input name or -o")


def check_writable(path: Path, overwrite: bool) -> None:
    """Raise OutputError if `path` exists (and overwrite is False), its name is too long or its folder
    cannot be written."""
    check_name_length(path)
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{short_name(target.stem)}.", suffix=f".part{target.suffix}",
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


def finite_json(data: Any) -> Any:
    """`data` with every NaN/inf float (numpy scalars and arrays included) replaced by None: valid JSON."""
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_json(value) for value in data]
    if hasattr(data, "tolist") and not isinstance(data, str):  # numpy scalar or array
        return finite_json(data.tolist())
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text (no NaN/Infinity tokens, which JSON does not have): non-finite numbers become null."""
    return json.dumps(finite_json(data), indent=indent, allow_nan=False)


def write_json_atomic(target: Path, data: Any, overwrite: bool = True) -> None:
    write_text_atomic(target, dumps_json(data) + "\n", overwrite)


def _claim_owner(claim: Path) -> int | None:
    """The pid written in `claim` if that process is still running, else None (a stale claim)."""
    try:
        pid = int(claim.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's
    return pid


def claim_path(output: Path) -> Path:
    """The claim file of `output`: hidden, beside it, named after it (shortened, with a hash of the name)."""
    digest = hashlib.sha1(os.fsencode(output.name)).hexdigest()[:10]
    return output.with_name(f".{short_name(output.name)}.{digest}.emoscore-claim")


@contextlib.contextmanager
def claim_output(output: Path) -> Iterator[Path]:
    """Hold an exclusive claim (O_EXCL file with our pid) on `output` while it is being produced.

    OutputError if another running process holds it, whatever --overwrite says; a claim left behind by a
    process that no longer runs is taken over. The claim file is removed on exit, error or Ctrl-C.
    """
    claim = claim_path(output)
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            owner = _claim_owner(claim)
            if owner is not None:
                raise OutputError(f"{output} is being written by another emoscore run (pid {owner}); "
                                  "wait for it to finish") from None
            claim.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot claim output {output}: {exc.strerror}") from None
    else:
        raise OutputError(f"{output} is being written by another emoscore run; wait for it to finish")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
        yield claim
    finally:
        claim.unlink(missing_ok=True)
