"""`avel train` / `avel eval` / `avel compare`: features + manifest labels → the generic trainer."""
