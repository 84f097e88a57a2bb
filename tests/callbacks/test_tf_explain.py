"""The tf-explain style explainer: a uint8 grid of overlays, saved as a PNG and read back."""

import cv2
import numpy as np
import pytest

from tf_ig2 import visualize
from tf_ig2.callbacks.tf_explain import TfExplainIG2
from tf_ig2.methods.ig2 import ig2

from conftest import small_cnn


@pytest.fixture
def data(rng):
    images = rng.uniform(0.0, 1.0, size=(5, 8, 8, 1)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    references = rng.uniform(0.0, 1.0, size=(2, 8, 8, 1)).astype(np.float32)
    return images, labels, references


def test_explain_returns_a_uint8_grid_of_the_overlays(data):
    images, labels, references = data
    model = small_cnn()
    grid = TfExplainIG2().explain((images, labels), model, class_index=None, references=references, steps=8)
    assert grid.dtype == np.uint8 and grid.shape == (16, 24, 3)  # 5 images: 3 columns, 2 rows
    explanation = ig2(model, images, references, labels, steps=8)
    expected = visualize.grid(visualize.overlay(images, explanation.attributions)).numpy()
    np.testing.assert_allclose(grid, np.round(expected * 255.0), atol=1.0)
    np.testing.assert_array_equal(grid[8:, 16:], 0)  # the empty sixth cell


def test_class_index_and_display_options(data):
    images, _, references = data
    model = small_cnn()
    explainer = TfExplainIG2()
    grid = explainer.explain(images, model, 2, references, steps=4, columns=5, colormap="jet", alpha=1.0)
    assert grid.shape == (8, 40, 3)
    explanation = ig2(model, images, references, 2, steps=4)
    expected = visualize.colorize(visualize.magnitude_map(explanation.attributions), "jet").numpy()
    np.testing.assert_allclose(grid.reshape(8, 5, 8, 3).transpose(1, 0, 2, 3), np.round(expected * 255.0), atol=1.0)


def test_save_writes_a_png_that_reads_back(tmp_path, data):
    images, labels, references = data
    explainer = TfExplainIG2()
    grid = explainer.explain((images, labels), small_cnn(), None, references, steps=4)
    explainer.save(grid, tmp_path / "outputs", "ig2.png")
    path = tmp_path / "outputs" / "ig2.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    read_back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert read_back.shape == grid.shape
    np.testing.assert_array_equal(read_back[..., ::-1], grid)  # OpenCV reads BGR


def test_malformed_arguments_raise(tmp_path, data):
    images, _, references = data
    explainer = TfExplainIG2()
    with pytest.raises(ValueError, match="references"):
        explainer.explain(images, small_cnn(), 0, None)
    with pytest.raises(TypeError, match="unknown option"):
        explainer.explain(images, small_cnn(), 0, references, stepz=3)
    with pytest.raises(ValueError, match="grid"):
        explainer.save(np.zeros((4, 4), np.uint8), tmp_path, "bad.png")
    with pytest.raises(OSError):
        explainer.save(np.zeros((4, 4, 3), np.uint8), tmp_path, "no_extension")
