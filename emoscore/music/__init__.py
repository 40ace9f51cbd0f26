"""Quadrant music: note events, per-quadrant LSTMs, arrangement, soundtrack composition, rendering, judge.

Importing this package is cheap; TensorFlow, music21 and fluidsynth are imported inside the functions
that need them.
"""
