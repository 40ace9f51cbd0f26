"""The music-emotion judge's features and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoscore.music import events as ev
from emoscore.music import judge as jd

DATA = Path(__file__).parent / "data" / "music"


@pytest.mark.parametrize("name", ["Q1_0vLPYiPN7qY_2.mid", "Q3_0wRQRwnQiqY_0.mid", "vgmidi_boggys_igloo_happy_0.mid"])
def test_features_of_real_clips(name: str) -> None:
    notes = ev.read_midi_notes(DATA / name)
    values = jd.features(notes)
    assert values.shape == (jd.N_FEATURES,) and np.isfinite(values).all()
    assert values[:12].sum() == pytest.approx(1.0)  # relative pitch-class histogram
    quantized = jd.features(ev.quantize(notes))
    assert np.isfinite(quantized).all()


def test_features_are_transposition_invariant_in_key_and_time() -> None:
    notes = ev.read_midi_notes(DATA / "Q1_0vLPYiPN7qY_2.mid")
    a, b = jd.features(notes), jd.features(ev.transpose(notes, 5))
    names = list(jd.FEATURE_NAMES)
    keyless = [i for i, n in enumerate(names) if not n.startswith(("pitch_", "low_", "high_"))]
    np.testing.assert_allclose(a[keyless], b[keyless], atol=1e-9)


def test_features_of_too_few_notes_are_zero() -> None:
    assert not jd.features(np.zeros((1, 4))).any()


def test_quadrant_metrics_known_answer() -> None:
    truth = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    pred = np.array([0, 0, 2, 2, 0, 1, 3, 3])  # Q2->Q1 (valence error), Q4->Q3 (valence), Q3->Q4 (valence)
    m = jd.quadrant_metrics(truth, pred)
    assert m["accuracy_4q"] == pytest.approx(5 / 8)
    assert m["arousal_accuracy"] == 1.0 and m["valence_accuracy"] == pytest.approx(5 / 8)
    assert m["recall_Q1"] == 1.0 and m["recall_Q2"] == 0.5
