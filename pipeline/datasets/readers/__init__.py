"""Readers for the list files each dataset ships, one module per dataset.

Each returns a DataFrame with the manifest's common columns (clip_id, video_id, start_s,
end_s, labels, split) plus its own; `pipeline.datasets.manifest` adds sources and validates.
"""
