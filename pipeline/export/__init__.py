"""Export and import: the feature store ↔ the files the authors' code reads."""
