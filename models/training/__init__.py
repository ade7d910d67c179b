"""Training: the generic trainer, its families and presets, datasets and losses."""
