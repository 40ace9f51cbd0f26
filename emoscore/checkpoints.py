"""Checkpoints and their manifest.

checkpoints/manifest.json holds one entry per model:

    {"format_version": 1,
     "models": {"audio": {"kind": "audio-cnn", "format_version": 1,
                          "files": {"model": {"path": "audio.keras", "sha256": "..."}},
                          "constants": {...}, "data": "...", "command": "emoscore train audio ...",
                          "metrics": {...}, "trained_at": "...", "emoscore_version": "0.1.0"}}}

Loading verifies every file's sha256 against the manifest and the feature constants against the
running code, and raises ChecksumError / ModelError with a clear message otherwise.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path
from typing import Any

from emoscore import __version__
from emoscore.errors import ChecksumError, ModelError
from emoscore.fileio import sha256_file, write_json_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
PACKAGE_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
# sha256 of checkpoint files already hashed by this process, keyed by what os.stat says about them: a run
# verifies each model 2-3 times (fail-fast check, load, run record), ~28 MB of hashing each time.
_HASHES: dict[tuple[str, int, int, int, int], str] = {}
# A file modified less than this long ago is always hashed again (and not cached): file times are coarse
# (a few ms), so a rewrite right after a first hash could keep the same size and mtime (git's "racy" case).
HASH_CACHE_MIN_AGE_NS = 2_000_000_000


def default_checkpoint_dir() -> Path:
    """EMOSCORE_CHECKPOINTS if set, else the checkpoints/ folder of the source tree."""
    return Path(os.environ.get("EMOSCORE_CHECKPOINTS", PACKAGE_CHECKPOINTS))


def load_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return {"format_version": MANIFEST_FORMAT, "models": {}}
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"checkpoint manifest {path} is unreadable: {exc}") from None
    if manifest.get("format_version") != MANIFEST_FORMAT:
        raise ModelError(f"checkpoint manifest {path} has format {manifest.get('format_version')!r}, "
                         f"this emoscore reads {MANIFEST_FORMAT}")
    return manifest


def record_model(folder: Path, name: str, kind: str, files: dict[str, str], *, constants: dict[str, Any],
                 data: str, command: str, metrics: dict[str, Any], extra: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Hash `files` (role -> file name inside `folder`) and write/replace the manifest entry `name`."""
    folder = Path(folder)
    entry: dict[str, Any] = {
        "kind": kind,
        "format_version": 1,
        "files": {role: {"path": fname, "sha256": sha256_file(folder / fname)}
                  for role, fname in files.items()},
        "constants": constants,
        "data": data,
        "command": command,
        "metrics": metrics,
        "trained_at": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "emoscore_version": __version__,
    }
    if extra:
        entry.update(extra)
    manifest = load_manifest(folder)
    manifest["models"][name] = entry
    write_json_atomic(folder / MANIFEST_NAME, manifest)
    return entry


def resolve_model(folder: Path, name: str, constants: dict[str, Any] | None = None) -> dict[str, Path]:
    """Return role -> verified path for model `name`; raise ModelError/ChecksumError on any mismatch.

    `constants`, when given, must equal the ones recorded at training time (key by key).
    """
    folder = Path(folder)
    entry = load_manifest(folder)["models"].get(name)
    if entry is None:
        raise ModelError(f"no model '{name}' in {folder / MANIFEST_NAME}; train it with `emoscore train`")
    paths: dict[str, Path] = {}
    for role, spec in entry["files"].items():
        path = folder / spec["path"]
        if not path.exists():
            raise ModelError(f"checkpoint file missing: {path}")
        actual = cached_sha256(path)
        if actual != spec["sha256"]:
            raise ChecksumError(f"checkpoint {path} fails its sha256 check (manifest {spec['sha256'][:12]}…, "
                                f"file {actual[:12]}…): it was changed or corrupted; retrain or restore it")
        paths[role] = path
    for key, value in (constants or {}).items():
        recorded = entry.get("constants", {}).get(key)
        if recorded != value:
            raise ModelError(f"model '{name}' was trained with {key}={recorded!r}, this emoscore uses {value!r}")
    return paths


def cached_sha256(path: Path) -> str:
    """sha256_file(path), computed once per process for a file whose (path, size, mtime_ns, inode) has not
    changed since; files modified within the last HASH_CACHE_MIN_AGE_NS are hashed every time."""
    before = os.stat(path)
    key = (str(Path(path).resolve()), before.st_size, before.st_mtime_ns, before.st_ino, before.st_dev)
    if key in _HASHES:
        return _HASHES[key]
    digest = sha256_file(path)
    after = os.stat(path)
    settled = time.time_ns() - after.st_mtime_ns > HASH_CACHE_MIN_AGE_NS
    if settled and (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns,
                                                                        before.st_ino):
        _HASHES[key] = digest
    return digest


def model_entry(folder: Path, name: str) -> dict[str, Any]:
    entry = load_manifest(folder)["models"].get(name)
    if entry is None:
        raise ModelError(f"no model '{name}' in {Path(folder) / MANIFEST_NAME}")
    return dict(entry)
