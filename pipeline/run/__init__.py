"""`avel run` and `avel status`: stages in order, executors, and where a work directory stands."""
