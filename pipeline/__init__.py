"""avel's pipeline: manifest → download → cut → extract → export → train, one stage at a time.

The stages share a work directory, a config (`avel.yaml`), per-shard ledgers and the
feature store; `extractors` and `models` never import from here.
"""

__version__ = "0.1.0"
