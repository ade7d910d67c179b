"""The download stage: yt-dlp (or local files) → `raw/<shard>/`, failures classified."""
