"""The extract stage: one runner drives every extractor over a shard's cut clips."""
