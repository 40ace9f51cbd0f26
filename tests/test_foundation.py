"""Config loading, the checkpoint manifest and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emoscore.checkpoints import load_manifest, record_model, resolve_model
from emoscore.config import Config, load_config
from emoscore.errors import ChecksumError, ConfigError, ModelError, OutputError
from emoscore.fileio import atomic_path, check_writable, write_json_atomic

ROOT = Path(__file__).parent.parent


def test_default_toml_matches_the_dataclass_defaults() -> None:
    assert load_config(ROOT / "configs" / "default.toml") == Config()
    assert load_config(None) == Config()


def test_config_overrides_and_rejects_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[fusion]\nvisual_weight = 1\n[smoothing]\nmin_segment_seconds = 6\n")
    config = load_config(path)
    assert config.fusion.visual_weight == 1.0 and config.smoothing.min_segment_seconds == 6.0
    for text, message in [("[fusion]\nvisual_weigth = 1\n", "visual_weigth"),
                          ("[analysis]\nframe_rate = -1\n", "frame_rate"),
                          ("[analysis]\nframe_rate = 'fast'\n", "frame_rate"),
                          ("[mix]\nduck_db = 3.0\n", "duck_db"),
                          ("[nonsense]\n", "nonsense"),
                          ("not toml ===", "does not parse")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def make_entry(folder: Path) -> None:
    (folder / "m.bin").write_bytes(b"weights")
    record_model(folder, "toy", "toy-kind", {"model": "m.bin"}, constants={"hop": 320}, data="none",
                 command="test", metrics={"accuracy": 0.5})


def test_manifest_records_and_verifies_sha256(tmp_path: Path) -> None:
    make_entry(tmp_path)
    entry = load_manifest(tmp_path)["models"]["toy"]
    import hashlib
    assert entry["files"]["model"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert resolve_model(tmp_path, "toy", {"hop": 320}) == {"model": tmp_path / "m.bin"}


def test_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    make_entry(tmp_path)
    (tmp_path / "m.bin").write_bytes(b"weightz")
    with pytest.raises(ChecksumError, match="sha256"):
        resolve_model(tmp_path, "toy")


def test_missing_or_incompatible_checkpoint_is_refused(tmp_path: Path) -> None:
    make_entry(tmp_path)
    with pytest.raises(ModelError, match="hop"):
        resolve_model(tmp_path, "toy", {"hop": 512})
    with pytest.raises(ModelError, match="no model 'other'"):
        resolve_model(tmp_path, "other")
    (tmp_path / "m.bin").unlink()
    with pytest.raises(ModelError, match="missing"):
        resolve_model(tmp_path, "toy")
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(ModelError, match="unreadable"):
        load_manifest(tmp_path)


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_check_writable_refuses_existing_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep")
    with pytest.raises(OutputError, match="exists"):
        check_writable(tmp_path / "x", overwrite=False)
    check_writable(tmp_path / "x", overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "nope" / "x", overwrite=False)


def test_every_numeric_setting_has_a_range() -> None:
    """Issue 10: every setting is bounded up front (config.SETTING_RANGES), so a new one needs its range."""
    import re

    from emoscore.config import SETTING_RANGES, check_ranges, config_from_dict
    from emoscore.config import _flat as flat

    missing = sorted({re.sub(r"^music\.q[1-4]\.", "music.q*.", name) for name, value in flat(Config()).items()
                      if isinstance(value, int | float) and not isinstance(value, bool)} - set(SETTING_RANGES))
    assert missing == []
    check_ranges(Config())
    for values, name in [({"music": {"q2": {"tempo": 1.0}}}, "music.q2.tempo"),
                         ({"music": {"q4": {"key": "H major"}}}, "music.q4.key"),
                         ({"mix": {"music_gain_db": float("nan")}}, "mix.music_gain_db"),
                         ({"smoothing": {"switch_penalty": float("inf")}}, "smoothing.switch_penalty")]:
        with pytest.raises(ConfigError, match=re.escape(name)):
            config_from_dict(values)
