"""Shared fixtures. Tests never need ../shared: what they read is committed in tests/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def clip_a() -> Path:
    return DATA / "talking-head-a.mp4"


@pytest.fixture
def clip_b() -> Path:
    return DATA / "talking-head-b.mp4"


@pytest.fixture
def shipped_checkpoints() -> Path:
    return ROOT / "checkpoints"
