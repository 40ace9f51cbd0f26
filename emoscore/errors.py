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
├── ConfigError                    exit 10  a config file that does not parse or validate
└── MediaToolError                 exit 11  ffmpeg or fluidsynth failed on input they should accept
"""

from __future__ import annotations


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
