"""`avel run --stages ...,export`: the dataset's own format into `W/export/<format>`, through the
same dispatch as `avel export` (this step imported a module that did not exist before)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.export.formats import export_for_run
from tests.fixtures_export import fill_store, llp_workdir


def test_run_exports_an_llp_workdir_in_the_avvp_layout(tmp_path, shared_data):
    wd = llp_workdir(tmp_path / "w", shared_data, limit=3)
    stored = fill_store(wd, "vggish", (10, 128), seed=1)
    fill_store(wd, "resnet152", (80, 2048), seed=2)  # LLP exports need all three features
    fill_store(wd, "r2plus1d_18", (10, 512), seed=3)
    report = export_for_run(wd, load_config(wd))
    assert report["format"] == "llp" and report["rows"] == 3
    out = wd / "export" / "llp"
    for clip, array in stored.items():  # LLP names a file by the clip's first 11 characters
        np.testing.assert_array_equal(np.load(out / "feats" / "vggish" / f"{clip[:11]}.npy"), array)


def test_a_dataset_without_an_original_format_is_bad_input(tmp_path, shared_data):
    wd = llp_workdir(tmp_path / "w", shared_data, limit=1)
    config = load_config(wd)
    config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, name="vggsound"))
    with pytest.raises(InputError, match="'vggsound' has no original export format") as err:
        export_for_run(wd, config)
    assert err.value.field == "dataset.name"
