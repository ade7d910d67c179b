"""The cut stage: ffmpeg → 16 kHz audio and recipe frames per clip, into `clips/<shard>.h5`."""
