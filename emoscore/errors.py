"""The exception tree emoscore raises. The CLI turns each into a one-line message and an exit code.

EmoscoreError                      exit 1
├── InputError                     exit 2   a bad argument or a missing input file
│   ├── NotAVideoError             exit 3   the file is not a readable video (corrupt, truncated, wrong format)
│   ├── NoVideoStreamError         exit 4
│   └── EmptyMediaError            exit 5   zero duration
├── OutputError                    exit 6   an output exists (and no --overwrite) or cannot be written
├── ModelError                     exit 7   a checkpoint is missing, unreadable or incompatible
│   └── ChecksumError              exit 8   a checkpoint's sha256 differs from the manifest
├── DataError                      exit 9   training data missing or in the wrong layout
├── ConfigError                    exit 10  a config file or command-line option out of its range
└── MediaToolError                 exit 11  ffmpeg or fluidsynth failed on input they should accept

KeyboardInterrupt (Ctrl-C)         exit 130
└── Terminated (SIGTERM, SIGHUP)   exit 128 + signal: 143 SIGTERM, 129 SIGHUP

`as_emoscore_error` turns anything else (a full disk, a bug) into one of these, so nothing escapes as a
traceback: an OSError while writing (disk full, read-only, name too long) is an OutputError, the rest exit 1.
"""

from __future__ import annotations

import errno
import signal


class EmoscoreError(Exception):
    """Base class of every error emoscore raises on purpose."""

    exit_code = 1


class InputError(EmoscoreError):
    exit_code = 2


class NotAVideoError(InputError):
    exit_code = 3


class NoVideoStreamError(InputError):
    exit_code = 4


class EmptyMediaError(InputError):
    exit_code = 5


class OutputError(EmoscoreError):
    exit_code = 6


class ModelError(EmoscoreError):
    exit_code = 7


class ChecksumError(ModelError):
    exit_code = 8


class DataError(EmoscoreError):
    exit_code = 9


class ConfigError(EmoscoreError):
    exit_code = 10


class MediaToolError(EmoscoreError):
    exit_code = 11


INTERRUPTED_EXIT = 130  # 128 + SIGINT, the shell's code for Ctrl-C


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread by the CLI's handler and handled like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 128 + the signal number for a Terminated."""
    return exc.exit_code if isinstance(exc, Terminated) else INTERRUPTED_EXIT


# errno values that mean "this output cannot be written here" rather than a bug.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
                 errno.EFBIG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}


def as_emoscore_error(exc: Exception) -> EmoscoreError:
    """Any exception as an EmoscoreError with a one-line message (itself when it already is one)."""
    if isinstance(exc, EmoscoreError):
        return exc
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno in _WRITE_ERRNOS:
            return OutputError(f"cannot write output{where}: {reason}")
        return EmoscoreError(f"system error{where}: {reason}")
    if type(exc).__name__ == "LibsndfileError":  # soundfile's write errors (a full disk) are not OSErrors
        return OutputError(f"cannot write audio: {exc}")
    if isinstance(exc, MemoryError):
        return EmoscoreError("out of memory")
    text = " ".join(str(exc).split())[:300]
    return EmoscoreError(f"unexpected {type(exc).__name__}: {text or 'no message'} (a bug: please report it)")
