"""Checkpoint import (the authors' released weights) and export."""
