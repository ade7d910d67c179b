"""PCA + uint8 postprocess against the published formula computed here with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors import vggish
from extractors.vggish import VGGishExtractor


@pytest.fixture(scope="module")
def pca_path(shared_data):
    return shared_data / "vggish" / "vggish_pca_params.npz"


def _published(embeddings, path):
    # release: E · (x − μ) per row, clip to [−2, 2], (y + 2)·255/4, astype(uint8)
    params = np.load(path)
    y = (params["pca_eigen_vectors"] @ (embeddings.T - params["pca_means"].reshape(-1, 1))).T
    return ((np.clip(y, -2, 2) + 2) * (255.0 / 4)).astype(np.uint8)


def _embedding_with_projection(path, wanted):
    """An embedding whose PCA projection is exactly `wanted` (solve E·(x − μ) = y)."""
    params = np.load(path)
    return params["pca_means"] + np.linalg.solve(params["pca_eigen_vectors"], wanted)


def test_matches_published_formula_on_fixed_inputs(pca_path):
    rng = np.random.default_rng(3)
    embeddings = rng.uniform(0, 2, size=(7, 128))
    ours = vggish.postprocess(embeddings, pca_path)
    assert ours.dtype == np.uint8 and ours.shape == (7, 128)
    np.testing.assert_array_equal(ours, _published(embeddings, pca_path))


def test_truncates_where_rounding_would_differ(pca_path):
    wanted = np.full(128, 100.7 * 4 / 255 - 2)  # scales to 100.7
    wanted[1] = 3.0  # clipped to 255
    wanted[2] = -9.0  # clipped to 0
    x = _embedding_with_projection(pca_path, wanted)[None]
    truncated = vggish.postprocess(x, pca_path)
    rounded = vggish.postprocess(x, pca_path, rounding="round")
    assert truncated[0, 0] == 100 and rounded[0, 0] == 101
    assert truncated[0, 1] == rounded[0, 1] == 255 and truncated[0, 2] == rounded[0, 2] == 0
    np.testing.assert_array_equal(truncated, _published(x, pca_path))


def test_extractor_quantizes_like_postprocess(pca_path):
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 2, size=(5, 128))
    x[0] = _embedding_with_projection(pca_path, np.full(128, 100.7 * 4 / 255 - 2))
    ex = VGGishExtractor("ave", weights="random", pca=pca_path)
    for rounding in ("truncate", "round"):
        ex.rounding = rounding
        ours = ex._quantize(torch.from_numpy(x).float().double().float()).numpy()
        expected = vggish.postprocess(x.astype(np.float32).astype(np.float64), pca_path, rounding)
        np.testing.assert_array_equal(ours, expected.astype(np.float32))


def test_bad_pca_file_names_file_and_key(tmp_path):
    bad = tmp_path / "pca.npz"
    np.savez(bad, pca_means=np.zeros(128))
    with pytest.raises(KeyError, match="pca_eigen_vectors"):
        vggish.postprocess(np.zeros((1, 128)), bad)
    with pytest.raises(FileNotFoundError, match="avel weights fetch vggish"):
        vggish.postprocess(np.zeros((1, 128)), tmp_path / "absent.npz")
