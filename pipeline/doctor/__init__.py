"""`avel doctor`: what this machine lacks for the stages, found before a stage fails on it.

Each module checks one area and returns `Check`s (report.py): tools (ffmpeg, yt-dlp, the JS
runtime), access (work directory, weights cache, cookies, proxy), gpu (CUDA, torch, device
JPEG decode), weights (each extractor's cached file and its checksum), disk (free space
against the dataset's estimated size). `checks.run_checks` runs them in that order.
"""
