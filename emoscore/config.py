"""Run configuration: frozen dataclasses, loaded from a TOML file in configs/ and validated in one place.

`load_config(None)` gives configs/default.toml's values (the same as the dataclass defaults); a user's
file may set any subset of keys. Unknown keys and out-of-range values raise ConfigError naming them.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoscore.errors import ConfigError


@dataclass(frozen=True)
class AnalysisConfig:
    """How the video is sampled and cut into analysis windows."""

    frame_rate: float = 4.0  # video frames sampled per second for face analysis
    window_seconds: float = 3.0  # analysis window length
    hop_seconds: float = 1.0  # step between window starts
    max_face_width: int = 640  # frames are downscaled to at most this width before detection

    def validate(self) -> None:
        _positive(self, "frame_rate", "window_seconds", "hop_seconds", "max_face_width")
        if self.hop_seconds > self.window_seconds:
            raise ConfigError("analysis.hop_seconds must not exceed analysis.window_seconds")


@dataclass(frozen=True)
class FusionConfig:
    """Late fusion of the two emotion models."""

    visual_weight: float = 0.75
    audio_weight: float = 0.25

    def validate(self) -> None:
        _positive(self, "visual_weight", "audio_weight")


@dataclass(frozen=True)
class SmoothingConfig:
    """How per-window probabilities become segments."""

    min_segment_seconds: float = 4.0  # no segment shorter than this (except a whole clip that is shorter)
    switch_penalty: float = 2.0  # Viterbi log-cost of changing quadrant between windows
    scene_snap_seconds: float = 1.5  # a boundary this close to a scene cut moves onto it
    scene_threshold: float = 0.35  # histogram distance in [0, 1] above which two sampled frames are a cut

    def validate(self) -> None:
        _positive(self, "min_segment_seconds", "scene_threshold")
        _non_negative(self, "switch_penalty", "scene_snap_seconds")


@dataclass(frozen=True)
class MusicConfig:
    """Generation and rendering of the soundtrack."""

    temperature: float = 1.0
    top_p: float = 0.92
    transition_seconds: float = 1.0  # crossfade/cadence length at a segment boundary
    fade_out_seconds: float = 2.0
    soundfont: str = ""  # path to a .sf2; empty picks the best General MIDI soundfont installed

    def validate(self) -> None:
        _positive(self, "temperature", "top_p")
        _non_negative(self, "transition_seconds", "fade_out_seconds")
        if self.top_p > 1:
            raise ConfigError("music.top_p must be in (0, 1]")


@dataclass(frozen=True)
class MixConfig:
    """Mixing the soundtrack under the dialogue."""

    music_gain_db: float = 0.0  # user trim on top of loudness normalisation
    music_loudness_db: float = -26.0  # target RMS level of the music bed, dBFS
    duck_db: float = -10.0  # extra attenuation of the music while someone speaks
    attack_ms: float = 60.0
    release_ms: float = 400.0
    peak_limit_db: float = -1.0  # the mix never peaks above this

    def validate(self) -> None:
        _positive(self, "attack_ms", "release_ms")
        if self.duck_db > 0 or self.peak_limit_db > 0:
            raise ConfigError("mix.duck_db and mix.peak_limit_db must be <= 0 dB")


@dataclass(frozen=True)
class Config:
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    music: MusicConfig = field(default_factory=MusicConfig)
    mix: MixConfig = field(default_factory=MixConfig)

    def validate(self) -> None:
        for section in dataclasses.fields(self):
            getattr(self, section.name).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _positive(obj: object, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise ConfigError(f"{type(obj).__name__}.{name} must be > 0, got {getattr(obj, name)!r}")


def _non_negative(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{type(obj).__name__}.{name} must be >= 0, got {getattr(obj, name)!r}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key(s) in [{where}]: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config [{where}.{name}] must be a table")
            kwargs[name] = _build(type(default), value, f"{where}.{name}".strip("."))
        elif isinstance(default, float) and isinstance(value, int | float) and not isinstance(value, bool):
            kwargs[name] = float(value)
        elif type(value) is not type(default):
            raise ConfigError(f"config {where}.{name} must be {type(default).__name__}, got {value!r}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> Config:
    config: Config = _build(Config, values, "")
    config.validate()
    return config


def load_config(path: Path | None = None) -> Config:
    """Read and validate a TOML config; None gives the defaults."""
    if path is None:
        return config_from_dict({})
    try:
        with open(path, "rb") as fh:
            values = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} does not parse: {exc}") from None
    return config_from_dict(values)
