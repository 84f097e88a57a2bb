"""Token strips, token HTML and feature bar charts, on hand-made values."""

import numpy as np
import pytest

from tf_ig2 import visualize


def test_token_strip_colours_follow_signs():
    strip = visualize.token_strip(["the", "cat", "sat"], [1.0, 0.0, -0.5], height=24).numpy()
    assert strip.shape[0] == 24 and strip.shape[2] == 3 and strip.dtype == np.float32
    assert 0.0 <= strip.min() and strip.max() <= 1.0
    width = strip.shape[1]
    first, middle, last = strip[2, 2], strip[2, width // 2], strip[2, width - 3]
    np.testing.assert_allclose(first, [1.0, 0.0, 0.0], atol=1e-6)      # strongest positive: red
    np.testing.assert_allclose(last, [0.5, 0.5, 1.0], atol=3e-3)       # half as negative: light blue
    np.testing.assert_allclose(middle, [1.0, 1.0, 1.0], atol=1e-6)     # zero: white (no text at row 2)


def test_token_strip_all_zero_and_mismatch():
    strip = visualize.token_strip(["a", "b"], [0.0, 0.0]).numpy()
    assert np.all(np.isfinite(strip))
    with pytest.raises(ValueError, match="same length"):
        visualize.token_strip(["a"], [0.1, 0.2])


def test_token_html_escapes_and_colours():
    snippet = visualize.token_html(["<b>", "ok"], [-2.0, 1.0])
    assert "&lt;b&gt;" in snippet and "<b>" not in snippet
    assert "rgb(0, 0, 255)" in snippet and "rgb(255, 128, 128)" in snippet
    assert 'title="-2"' in snippet


def test_feature_bars_order_and_direction():
    chart = visualize.feature_bars(["small", "big negative", "medium"], [0.1, -1.0, 0.5],
                                   row_height=20, width=400).numpy()
    assert chart.shape == (60, 400, 3)
    axis = 160 + 120
    # First row: the largest magnitude, negative: a blue bar left of the axis.
    row = chart[10]
    assert np.allclose(row[axis - 20], [0.2, 0.35, 0.85], atol=3e-3)
    assert np.allclose(row[axis + 20], 1.0)
    # Second row: 0.5, positive: red right of the axis, half as long.
    red = np.all(np.isclose(chart[30], [0.85, 0.2, 0.2], atol=3e-3), axis=1)
    assert red[axis + 1:].sum() == pytest.approx(58, abs=1)
    top = visualize.feature_bars(["a", "b", "c"], [1, 2, 3], top=2).numpy()
    assert top.shape[0] == 2 * 20
