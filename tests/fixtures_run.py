"""A served synthetic dataset and work directories configured to download from it."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_workdir(workdir: Path, source: Path, url: str, *, num_shards: int = 1,
                  extractors: tuple[str, ...] = ("vggish",), executor: str = "local") -> Path:
    """avel.yaml for the synthetic AVE-format set at `source`, served at `url`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": {"name": "ave", "source": "url", "url_template": url + "/{video_id}.mp4",
                    "files": {"annotations": str(source / "Annotations.txt"),
                              "orders_dir": str(source)}},
        "sharding": {"num_shards": num_shards},
        "download": {"mode": "full", "workers": 2, "requests_per_s": 50.0},
        "cut": {"audio_recipe": "ave", "frames_recipe": "uniform-1", "workers": 1},
        "extract": {"extractors": list(extractors), "device": "cpu", "num_workers": 0,
                    "weights": {e: "random" for e in extractors}, "batch_size": 8,
                    "options": {"vgg19": {"frames_per_segment": 1}}, "cpu_threads": 1},
        "executor": executor,
    }
    (workdir / "avel.yaml").write_text(yaml.safe_dump(config))
    return workdir
