"""Evaluation exactly as the original code computes it, and the reports written next to it."""
