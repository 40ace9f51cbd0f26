"""emoscore: score videos of people speaking with music that follows their emotions.

Importing the package is cheap: TensorFlow, librosa, dlib and the media stack load only
inside the functions that need them.
"""

__version__ = "0.1.0"
