"""Run configuration: frozen dataclasses, loaded from a TOML file in configs/ and validated in one place.

`load_config(None)` gives configs/default.toml's values (the same as the dataclass defaults); a user's
file may set any subset of keys. Unknown keys and out-of-range values raise ConfigError naming them.
"""

from __future__ import annotations

import dataclasses
import math
import re
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
    # "shot": the face model reads each face against the person's mean face over its shot (calibration.py); "face":
    # each face alone, as one moment of a new person.
    face_calibration: str = "shot"

    def validate(self) -> None:
        _positive(self, "frame_rate", "window_seconds", "hop_seconds", "max_face_width")
        if self.face_calibration not in FACE_CALIBRATIONS:
            raise ConfigError(f"analysis.face_calibration must be one of {', '.join(FACE_CALIBRATIONS)}, "
                              f"not {self.face_calibration!r}")
        if self.hop_seconds > self.window_seconds:
            raise ConfigError("analysis.hop_seconds must not exceed analysis.window_seconds")


FUSION_RULES = ("fixed", "confidence", "product")
FACE_CALIBRATIONS = ("shot", "face")


@dataclass(frozen=True)
class FusionConfig:
    """Late fusion of the two emotion models (timeline.combine)."""

    visual_weight: float = 0.75  # nominal weights
    audio_weight: float = 0.25
    # "fixed": weighted mean with the nominal weights; "confidence": weighted mean, each weight x the model's
    # confidence; "product": weighted geometric mean (log-linear pooling), each exponent = nominal weight x the
    # model's reliability, so a near-uniform model changes nothing. See timeline.combine.
    rule: str = "product"
    # Chosen by actor-wise CV on RAVDESS actors 1-20 (`emoscore eval fusion`, "chosen on all actors").
    visual_reliability: float = 1.0  # "product": exponent multipliers of the nominal weights (the voice's is
    audio_reliability: float = 9.0  # relative to the face's, which stays 1 in the search)
    confidence_power: float = 6.0  # "confidence": a model's weight scales with (1 - entropy / log 8) ** this
    prior_weight: float = 0.1  # calm/neutral prior share where the surer model is uniform (x 1 - its confidence)
    q3_weight: float = 1.0  # the fused probability of sad (Q3's one emotion) x this, so Q3 is not outvoted

    def exponents(self) -> tuple[float, float]:
        """The product rule's (visual, audio) exponents where both models are present: nominal weight x
        reliability, renormalised to sum to 1."""
        ev, ea = self.visual_weight * self.visual_reliability, self.audio_weight * self.audio_reliability
        return ev / (ev + ea), ea / (ev + ea)

    def validate(self) -> None:
        _positive(self, "visual_weight", "audio_weight", "q3_weight", "visual_reliability", "audio_reliability")
        _non_negative(self, "confidence_power", "prior_weight")
        if self.rule not in FUSION_RULES:
            raise ConfigError(f"fusion.rule must be one of {', '.join(FUSION_RULES)}, got {self.rule!r}")


@dataclass(frozen=True)
class SmoothingConfig:
    """How per-window probabilities become segments."""

    min_segment_seconds: float = 4.0  # no segment shorter than this (except a whole clip that is shorter)
    switch_penalty: float = 2.0  # Viterbi log-cost of changing quadrant between windows
    scene_snap_seconds: float = 1.5  # a boundary this close to a scene cut moves onto it
    scene_threshold: float = 0.35  # histogram distance in [0, 1] above which two sampled frames are a cut
    uniform_quadrant_prior: bool = True  # undo the models' 2:3:1:2 RAVDESS prior over Q1..Q4 (timeline.py)

    def validate(self) -> None:
        _positive(self, "min_segment_seconds", "scene_threshold")
        _non_negative(self, "switch_penalty", "scene_snap_seconds")


BASS_PATTERNS = ("whole", "half", "root_fifth", "eighths", "downbeat")
PAD_PATTERNS = ("sustain", "pulse", "arpeggio")


@dataclass(frozen=True)
class QuadrantStyle:
    """How one quadrant's music is played: tempo, key, General MIDI programs, register, dynamics."""

    tempo: float = 120.0  # BPM; 120 plays the LSTM's notes at the speed of its (nominal 120 BPM) data
    key: str = "C major"  # the LSTM's notes (learned in C major / A minor) are moved to this key signature
    melody_program: int = 0  # GM program of the LSTM's piano part (0 = Acoustic Grand Piano)
    pad_program: int = 48  # GM program of the harmonic bed
    bass_program: int = 32
    melody_low: int = 48  # MIDI pitch register of the melody, inclusive
    melody_high: int = 96
    pad_low: int = 52  # lowest note of the pad voicing
    bass_low: int = 36  # lowest bass root
    melody_velocity: int = 80  # mean MIDI velocity of the melody
    pad_velocity: int = 50
    bass_velocity: int = 70
    staccato: float = 1.0  # melody note-length factor (< 1 shortens every note)
    pad_pattern: str = "sustain"  # sustain | pulse (chord on every beat, short) | arpeggio
    pulse_beats: float = 1.0  # the pulse pattern strikes its chord every this many beats
    bass_pattern: str = "half"  # whole | half | root_fifth | eighths | downbeat (one note per chord)
    chord_beats: int = 2  # harmonic rhythm: one chord per this many beats
    max_gap_seconds: float = 1.2  # longest rest between melody onsets
    max_chord: int = 4  # most melody notes struck together
    mode_bias: float = 0.3  # logits added to the tonic triad of the key's mode while sampling pitches
    min_notes_per_second: float = 3.0  # melody density band, held for every seed (thinned / re-drawn)
    max_notes_per_second: float = 8.0
    pedal: float = 0.85  # share of each chord the sustain pedal (CC64) is down; 0 = no pedal
    phrase_bars: int = 4  # bars per phrase: the melody's dynamic arch, the pad's breath, the rest at its end
    phrase_depth: float = 0.2  # melody velocity arch over a phrase: x(1 - depth) at its ends, x(1 + depth) mid
    phrase_rest_beats: float = 0.0  # no melody onset in the last beats of each phrase (a breath)
    pad_breath: float = 0.5  # the pad's CC11 expression dips by this share between phrases (0 = flat)
    bass_length_beats: float = 2.0  # note length of the "downbeat" bass pattern (one note per chord)

    def validate(self) -> None:
        _positive(self, "tempo", "staccato", "chord_beats", "pulse_beats", "max_gap_seconds", "max_chord",
                  "phrase_bars", "max_notes_per_second", "bass_length_beats")
        _non_negative(self, "mode_bias", "min_notes_per_second", "pedal", "phrase_depth", "phrase_rest_beats",
                      "pad_breath")
        if self.min_notes_per_second > self.max_notes_per_second or self.pedal > 1 or self.pad_breath > 1 \
                or self.phrase_depth >= 1:
            raise ConfigError(f"{type(self).__name__}: need min_notes_per_second <= max_notes_per_second, "
                              f"pedal and pad_breath in 0..1, phrase_depth below 1")
        for name in ("melody_program", "pad_program", "bass_program", "melody_low", "melody_high", "pad_low",
                     "bass_low", "melody_velocity", "pad_velocity", "bass_velocity"):
            if not 0 <= getattr(self, name) <= 127:
                raise ConfigError(f"{type(self).__name__}.{name} must be in 0..127, got {getattr(self, name)}")
        if self.melody_high - self.melody_low < 12:
            raise ConfigError(f"{type(self).__name__}: melody register must span at least an octave")
        if self.pad_pattern not in PAD_PATTERNS or self.bass_pattern not in BASS_PATTERNS:
            raise ConfigError(f"{type(self).__name__}: pad_pattern must be one of {PAD_PATTERNS} and "
                              f"bass_pattern one of {BASS_PATTERNS}")


@dataclass(frozen=True)
class Q1Style(QuadrantStyle):
    """Q1 happy/excited: bright, major, upbeat."""

    tempo: float = 124.0
    key: str = "G major"
    pad_program: int = 48  # String Ensemble 1
    bass_program: int = 33  # Electric Bass (finger)
    melody_low: int = 43
    melody_high: int = 91
    pad_low: int = 55
    melody_velocity: int = 84
    pad_velocity: int = 48
    bass_velocity: int = 62
    staccato: float = 0.85
    pad_pattern: str = "pulse"
    pulse_beats: float = 2.0
    bass_pattern: str = "half"
    max_gap_seconds: float = 1.2
    max_chord: int = 3
    min_notes_per_second: float = 4.5
    max_notes_per_second: float = 6.5
    pedal: float = 0.85
    phrase_depth: float = 0.1
    pad_breath: float = 0.2


@dataclass(frozen=True)
class Q2Style(QuadrantStyle):
    """Q2 angry/afraid: tense, fast, minor, low brass and strings, staccato."""

    tempo: float = 132.0
    key: str = "D minor"
    pad_program: int = 61  # Brass Section
    bass_program: int = 43  # Contrabass
    melody_low: int = 33
    melody_high: int = 84
    pad_low: int = 43
    bass_low: int = 28
    melody_velocity: int = 88
    pad_velocity: int = 62
    bass_velocity: int = 78
    staccato: float = 0.55
    pad_pattern: str = "pulse"
    bass_pattern: str = "root_fifth"
    max_gap_seconds: float = 0.8
    max_chord: int = 4
    mode_bias: float = 0.6
    min_notes_per_second: float = 7.0
    max_notes_per_second: float = 10.0
    pedal: float = 0.85
    phrase_depth: float = 0.15
    pad_breath: float = 0.3


@dataclass(frozen=True)
class Q3Style(QuadrantStyle):
    """Q3 sad: slow, minor, sparse, dark."""

    tempo: float = 72.0
    key: str = "E minor"
    pad_program: int = 49  # String Ensemble 2 (slow strings)
    bass_program: int = 42  # Cello
    melody_low: int = 40
    melody_high: int = 79
    pad_low: int = 50
    bass_low: int = 36
    melody_velocity: int = 54
    pad_velocity: int = 30
    bass_velocity: int = 38
    pad_pattern: str = "sustain"
    bass_pattern: str = "downbeat"
    chord_beats: int = 4
    max_gap_seconds: float = 1.6
    max_chord: int = 3
    mode_bias: float = 1.0
    min_notes_per_second: float = 2.2
    max_notes_per_second: float = 4.0
    pedal: float = 0.92
    phrase_depth: float = 0.3
    phrase_rest_beats: float = 2.0
    pad_breath: float = 0.8
    bass_length_beats: float = 2.0


@dataclass(frozen=True)
class Q4Style(QuadrantStyle):
    """Q4 calm/content: slow, major, soft pads."""

    tempo: float = 96.0
    key: str = "F major"
    pad_program: int = 89  # Pad 2 (warm)
    bass_program: int = 32  # Acoustic Bass
    melody_low: int = 43
    melody_high: int = 86
    pad_low: int = 53
    bass_low: int = 41
    melody_velocity: int = 58
    pad_velocity: int = 26
    bass_velocity: int = 30
    pad_pattern: str = "sustain"
    bass_pattern: str = "downbeat"
    chord_beats: int = 4
    max_gap_seconds: float = 1.5
    max_chord: int = 3
    min_notes_per_second: float = 3.0
    max_notes_per_second: float = 5.0
    pedal: float = 0.92
    phrase_depth: float = 0.2
    phrase_rest_beats: float = 1.0
    pad_breath: float = 0.8
    bass_length_beats: float = 2.0


@dataclass(frozen=True)
class MusicConfig:
    """Generation and rendering of the soundtrack."""

    temperature: float = 0.9
    top_p: float = 0.92
    transition_seconds: float = 1.0  # crossfade/cadence length at a segment boundary
    fade_out_seconds: float = 2.0
    soundfont: str = ""  # path to a .sf2; empty picks the best General MIDI soundfont installed
    repeat_penalty: float = 0.1  # logits subtracted per recent use of a pitch
    ngram_penalty: float = 1.0  # logits subtracted per repeat (beyond the first) of a recent 4-gram
    q1: Q1Style = field(default_factory=Q1Style)
    q2: Q2Style = field(default_factory=Q2Style)
    q3: Q3Style = field(default_factory=Q3Style)
    q4: Q4Style = field(default_factory=Q4Style)

    def style(self, quadrant: str) -> QuadrantStyle:
        """The style of "Q1".."Q4"."""
        style: QuadrantStyle = getattr(self, quadrant.lower())
        return style

    def validate(self) -> None:
        _positive(self, "temperature", "top_p")
        _non_negative(self, "transition_seconds", "fade_out_seconds", "repeat_penalty", "ngram_penalty")
        if self.top_p > 1:
            raise ConfigError("music.top_p must be in (0, 1]")
        for style in (self.q1, self.q2, self.q3, self.q4):
            style.validate()


@dataclass(frozen=True)
class MixConfig:
    """Mixing the soundtrack under the dialogue."""

    music_gain_db: float = 0.0  # user trim on top of loudness normalisation
    music_loudness_db: float = -26.0  # target RMS level of the music bed under dialogue, dBFS
    music_alone_loudness_db: float = -18.0  # the level when the music is the only audio (--replace-audio, no audio)
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
        check_ranges(self)
        check_music_files(self.music)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Allowed range (inclusive) of every numeric setting, by "section.key"; "music.q*" covers the four quadrant
# styles. Checked after each section's own validate(), so every value a run can use is bounded up front.
SETTING_RANGES: dict[str, tuple[float, float]] = {
    "analysis.frame_rate": (0.25, 30.0), "analysis.window_seconds": (0.5, 30.0),
    "analysis.hop_seconds": (0.1, 30.0), "analysis.max_face_width": (64, 4096),
    "fusion.visual_weight": (0.0, 1000.0), "fusion.audio_weight": (0.0, 1000.0),
    "fusion.confidence_power": (0.0, 10.0),
    "fusion.visual_reliability": (0.01, 100.0), "fusion.audio_reliability": (0.01, 100.0),
    "fusion.prior_weight": (0.0, 1.0), "fusion.q3_weight": (0.1, 10.0),
    "smoothing.min_segment_seconds": (0.5, 600.0), "smoothing.switch_penalty": (0.0, 100.0),
    "smoothing.scene_snap_seconds": (0.0, 30.0), "smoothing.scene_threshold": (0.01, 1.0),
    "music.temperature": (0.05, 5.0), "music.top_p": (0.01, 1.0), "music.transition_seconds": (0.0, 10.0),
    "music.fade_out_seconds": (0.0, 60.0), "music.repeat_penalty": (0.0, 20.0), "music.ngram_penalty": (0.0, 20.0),
    "music.q*.tempo": (40.0, 240.0), "music.q*.staccato": (0.05, 2.0), "music.q*.chord_beats": (1, 16),
    "music.q*.max_gap_seconds": (0.1, 10.0), "music.q*.max_chord": (1, 10), "music.q*.mode_bias": (0.0, 10.0),
    **{f"music.q*.{name}": (0, 127) for name in (  # General MIDI programs, pitches and velocities
        "melody_program", "pad_program", "bass_program", "melody_low", "melody_high", "pad_low", "bass_low",
        "melody_velocity", "pad_velocity", "bass_velocity")},
    "music.q*.min_notes_per_second": (0.0, 40.0), "music.q*.max_notes_per_second": (0.1, 40.0),
    "music.q*.pedal": (0.0, 1.0), "music.q*.phrase_bars": (1, 64), "music.q*.phrase_depth": (0.0, 0.99),
    "music.q*.phrase_rest_beats": (0.0, 16.0), "music.q*.pad_breath": (0.0, 1.0),
    "music.q*.bass_length_beats": (0.05, 16.0), "music.q*.pulse_beats": (0.25, 16.0),
    "mix.music_gain_db": (-60.0, 24.0), "mix.music_loudness_db": (-70.0, 0.0),
    "mix.music_alone_loudness_db": (-70.0, 0.0), "mix.duck_db": (-60.0, 0.0), "mix.attack_ms": (1.0, 5000.0),
    "mix.release_ms": (1.0, 20000.0), "mix.peak_limit_db": (-24.0, 0.0),
}
# What music.q*.key accepts (the forms events.parse_key reads): "D minor", "F# major", "Bb", "c#m".
KEY_PATTERN = re.compile(r"^\s*[A-Ga-g](#|b)?(\s*m|[\s-]+(major|minor))?\s*$", re.IGNORECASE)


def _flat(obj: object, where: str = "") -> dict[str, Any]:
    """{"section.key": value} of a config (nested dataclasses flattened)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value, name = getattr(obj, f.name), f"{where}.{f.name}".strip(".")
        out.update(_flat(value, name) if dataclasses.is_dataclass(value) else {name: value})
    return out


def check_ranges(config: Config) -> None:
    """ConfigError naming the first setting that is not finite, outside SETTING_RANGES, or not a key."""
    for name, value in _flat(config).items():
        pattern = re.sub(r"^music\.q[1-4]\.", "music.q*.", name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config {name} must be a finite number, got {value!r}")
        if pattern in SETTING_RANGES and not isinstance(value, bool):
            low, high = SETTING_RANGES[pattern]
            if not low <= value <= high:
                raise ConfigError(f"config {name} must be within {low:g}..{high:g}, got {value!r}")
        if pattern == "music.q*.key" and not KEY_PATTERN.match(value):
            raise ConfigError(f"config {name} is not a key: {value!r}; use e.g. 'D minor' or 'Bb major'")


def check_music_files(music: MusicConfig) -> None:
    """ConfigError if music.soundfont names a file that is not there (empty: the installed default)."""
    if music.soundfont and not Path(music.soundfont).expanduser().is_file():
        raise ConfigError(f"config music.soundfont: no such file: {music.soundfont}")


# Command-line options of `emoscore score`, checked with their range before any work (exit 10). Options
# added later join here: flag -> inclusive (low, high).
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "--music-gain": SETTING_RANGES["mix.music_gain_db"],
    "--seed": (0, 2**32 - 1),  # numpy's seed range
    "--jobs": (1, 64),
    "--loudness": (-40.0, -5.0),  # LUFS: web -14, broadcast -23/-24 (used by loudness.py too)
    "--variations": (0, 20),
}


def validate_options(values: dict[str, float | int | None]) -> None:
    """ConfigError for the first option (flag -> value; None = not given) that is NaN/inf or out of range."""
    for flag, value in values.items():
        if value is None:
            continue
        low, high = OPTION_RANGES[flag]
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"{flag} must be a number within {low:g}..{high:g}, got {value!r}")


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
