"""On-disk stores: cut clips (`clips/<shard>.h5`) and features (`features/<name>/`).

`pipeline.store.open_features` is the documented entry point for reading features.
"""

from pipeline.store.features import FeatureReader, open_features

__all__ = ["FeatureReader", "open_features"]
