"""Kept importable where it was documented: the code lives in `models.weights.checkpoints`."""

from models.weights.checkpoints import *  # noqa: F401,F403
