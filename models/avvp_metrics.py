"""Kept importable where it was documented: the code lives in `models.metrics.avvp`."""

from models.metrics.avvp import *  # noqa: F401,F403
