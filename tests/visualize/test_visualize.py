"""Image maps: hand-made attributions with known maps, ranges, edge cases and argument checks."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tf_ig2 import defaults, visualize


def _numpy(tensor):
    assert isinstance(tensor, tf.Tensor) and tensor.dtype == tf.float32
    return tensor.numpy()


# -- magnitude_map --------------------------------------------------------------------------------
@pytest.mark.parametrize("percentile", [50.0, 90.0, 99.0, 100.0])
def test_magnitude_map_matches_numpy_percentile_scaling(rng, percentile):
    attributions = rng.normal(size=(3, 7, 5, 3)).astype(np.float32)
    maps = _numpy(visualize.magnitude_map(attributions, percentile=percentile))
    summed = np.abs(attributions.astype(np.float64)).sum(axis=-1)
    for index in range(3):
        expected = np.clip(summed[index] / np.percentile(summed[index], percentile), 0.0, 1.0)
        np.testing.assert_allclose(maps[index], expected, rtol=1e-5, atol=1e-6)


def test_magnitude_map_sums_magnitudes_not_signed_values():
    attributions = np.zeros((1, 2, 2, 3), np.float32)
    attributions[0, 0, 0] = [1.0, -1.0, 0.0]  # signed sum 0, magnitude 2
    attributions[0, 1, 1] = [0.5, 0.5, 0.0]  # magnitude 1
    maps = _numpy(visualize.magnitude_map(attributions, percentile=100.0))
    np.testing.assert_allclose(maps[0], [[1.0, 0.0], [0.0, 0.5]], atol=1e-7)


def test_all_negative_attributions_give_a_full_map_like_positive_ones():
    negative = -np.linspace(0.1, 1.0, 2 * 6 * 6 * 1, dtype=np.float32).reshape(2, 6, 6, 1)
    maps = _numpy(visualize.magnitude_map(negative))
    np.testing.assert_array_equal(maps, _numpy(visualize.magnitude_map(-negative)))
    assert maps.min() > 0.05 and maps.max() == 1.0


def test_all_zero_attributions_stay_zero_without_nan():
    zeros = np.zeros((2, 5, 3, 3), np.float32)
    maps = _numpy(visualize.magnitude_map(zeros))
    np.testing.assert_array_equal(maps, np.zeros((2, 5, 3), np.float32))
    signed = _numpy(visualize.diverging_map(zeros))
    np.testing.assert_array_equal(signed, np.ones((2, 5, 3, 3), np.float32))  # zero is white
    blended = _numpy(visualize.overlay(zeros, zeros, alpha=0.5))
    np.testing.assert_allclose(blended, np.broadcast_to(0.5 * visualize.colormap_table("inferno")[0], blended.shape),
                               atol=1e-6)


@pytest.mark.parametrize("scale", [1e-12, 1e-30, 1e-42])
def test_tiny_attributions_are_not_blank(scale):
    base = np.linspace(1.0, 3.0, 16, dtype=np.float64).reshape(1, 4, 4, 1)
    tiny = (base * scale).astype(np.float32)
    maps = _numpy(visualize.magnitude_map(tiny, percentile=100.0))
    assert np.all(np.isfinite(maps)) and maps.max() == 1.0
    # Subnormal float32 values (1e-42) keep only a few significant bits.
    tolerance = 0.2 if scale < 1e-38 else 1e-6
    np.testing.assert_allclose(maps[0], (base / base.max())[0, ..., 0], atol=tolerance)


def test_one_hot_pixel_stays_visible_when_the_percentile_is_zero():
    attributions = np.zeros((1, 31, 17), np.float32)
    attributions[0, 12, 5] = -4.0
    maps = _numpy(visualize.magnitude_map(attributions))  # 99th percentile of the map is 0
    expected = np.zeros((1, 31, 17), np.float32)
    expected[0, 12, 5] = 1.0
    np.testing.assert_array_equal(maps, expected)


def test_maps_are_per_image():
    attributions = np.stack([np.full((4, 4), 1e-3), np.full((4, 4), 1e3)])[..., None]
    maps = _numpy(visualize.magnitude_map(attributions))
    np.testing.assert_allclose(maps, 1.0)


def test_tensors_and_arrays_give_the_same_map(rng):
    attributions = rng.normal(size=(2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(_numpy(visualize.magnitude_map(attributions)),
                                  _numpy(visualize.magnitude_map(tf.constant(attributions))))


# -- diverging_map --------------------------------------------------------------------------------
def test_diverging_map_colours_and_symmetric_scale():
    attributions = np.array([[[2.0, -1.0, 0.0]]], np.float32)  # (1, 1, 3)
    rgb = _numpy(visualize.diverging_map(attributions, percentile=100.0))
    np.testing.assert_allclose(rgb[0, 0], [[1.0, 0.0, 0.0], [0.5, 0.5, 1.0], [1.0, 1.0, 1.0]], atol=1e-7)


def test_diverging_map_of_all_negative_attributions_is_blue_and_in_range(rng):
    attributions = -np.abs(rng.normal(size=(2, 9, 6, 3))).astype(np.float32) - 0.1
    rgb = _numpy(visualize.diverging_map(attributions))
    assert rgb.shape == (2, 9, 6, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    np.testing.assert_array_equal(rgb[..., 2], 1.0)  # blue channel full everywhere
    assert rgb[..., 0].min() == 0.0  # the strongest pixels are fully saturated


# -- colorize --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, code", [("inferno", cv2.COLORMAP_INFERNO), ("viridis", cv2.COLORMAP_VIRIDIS),
                                        ("jet", cv2.COLORMAP_JET)])
def test_colorize_matches_opencv_colormaps(name, code):
    ramp = np.arange(256, dtype=np.uint8)[None, None, :]  # (1, 1, 256)
    reference = cv2.applyColorMap(ramp[0], code)[None, ..., ::-1] / 255.0
    rgb = _numpy(visualize.colorize(ramp / 255.0, name))
    assert rgb.shape == (1, 1, 256, 3)
    np.testing.assert_allclose(rgb, reference, atol=1e-6)  # the 256 entries are OpenCV's, exactly


def test_colorize_clips_and_accepts_a_channel_axis():
    maps = np.array([[[-1.0, 0.0, 1.0, 2.0]]])[..., None]  # (1, 1, 4, 1)
    rgb = _numpy(visualize.colorize(maps, "jet"))
    table = visualize.colormap_table("jet")
    np.testing.assert_allclose(rgb[0, 0], [table[0], table[0], table[-1], table[-1]], atol=1e-7)


# -- overlay ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 5, 7), (2, 5, 7, 1), (2, 11, 3, 3)])
def test_overlay_shapes_and_range_for_grey_and_colour_images(rng, shape):
    images = rng.uniform(-3.0, 40.0, size=shape).astype(np.float32)
    attributions = rng.normal(size=shape).astype(np.float32)
    blended = _numpy(visualize.overlay(images, attributions))
    assert blended.shape == shape[:3] + (3,)
    assert np.all(np.isfinite(blended)) and blended.min() >= 0.0 and blended.max() <= 1.0


def test_overlay_endpoints_are_the_rescaled_image_and_the_coloured_map(rng):
    images = rng.integers(0, 256, size=(2, 6, 5, 3)).astype(np.uint8)
    attributions = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
    only_image = _numpy(visualize.overlay(images, attributions, alpha=0.0))
    low = images.reshape(2, -1).min(axis=1)[:, None, None, None].astype(np.float64)
    high = images.reshape(2, -1).max(axis=1)[:, None, None, None].astype(np.float64)
    np.testing.assert_allclose(only_image, (images - low) / (high - low), atol=1e-6)
    only_map = _numpy(visualize.overlay(images, attributions, alpha=1.0, colormap="viridis"))
    expected = _numpy(visualize.colorize(visualize.magnitude_map(attributions), "viridis"))
    np.testing.assert_allclose(only_map, expected, atol=1e-6)


def test_overlay_resizes_a_smaller_map():
    images = np.zeros((1, 8, 6, 1), np.float32)
    attributions = np.ones((1, 4, 3), np.float32)
    blended = _numpy(visualize.overlay(images, attributions, alpha=1.0))
    brightest = visualize.colormap_table("inferno")[-1]
    np.testing.assert_allclose(blended, np.broadcast_to(brightest, (1, 8, 6, 3)), atol=1e-6)


def test_constant_images_are_clipped_not_divided_by_zero():
    images = np.full((2, 3, 3, 1), 0.25, np.float32)
    images[1] = 7.0
    rescaled = _numpy(visualize.rescale_images(images))
    np.testing.assert_allclose(rescaled[0], 0.25)
    np.testing.assert_allclose(rescaled[1], 1.0)


# -- grid and upscale ------------------------------------------------------------------------------
def test_grid_places_images_row_by_row_with_black_padding():
    images = np.stack([np.full((2, 3, 3), (index + 1) / 10.0, np.float32) for index in range(5)])
    tiles = _numpy(visualize.grid(images))  # ceil(sqrt(5)) = 3 columns, 2 rows
    assert tiles.shape == (4, 9, 3)
    np.testing.assert_allclose(tiles[0:2, 6:9], 0.3)
    np.testing.assert_allclose(tiles[2:4, 3:6], 0.5)
    np.testing.assert_array_equal(tiles[2:4, 6:9], 0.0)
    assert _numpy(visualize.grid(images, columns=2)).shape == (6, 6, 3)
    assert _numpy(visualize.grid(images[:, :, :, :1])).shape == (4, 9, 3)


def test_upscale_repeats_pixels():
    images = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
    large = _numpy(visualize.upscale(images, 3))
    assert large.shape == (1, 6, 6, 1)
    np.testing.assert_array_equal(large[0, :3, 3:, 0], 1.0)


# -- argument checks -------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, match", [
    (lambda: visualize.magnitude_map(np.full((1, 2, 2), np.nan)), ValueError, "finite"),
    (lambda: visualize.magnitude_map(np.zeros((2, 2))), ValueError, "rank"),
    (lambda: visualize.magnitude_map(np.array([["a"]])), TypeError, "numbers"),
    (lambda: visualize.magnitude_map(np.zeros((1, 2, 2)), percentile=0), ValueError, "percentile"),
    (lambda: visualize.diverging_map(np.zeros((1, 2, 2)), percentile="99"), TypeError, "percentile"),
    (lambda: visualize.colorize(np.zeros((1, 2, 2)), "gray"), ValueError, "colormap"),
    (lambda: visualize.overlay(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), alpha=1.5), ValueError, "alpha"),
    (lambda: visualize.overlay(np.zeros((2, 2, 2)), np.zeros((1, 2, 2))), ValueError, "same number"),
    (lambda: visualize.overlay(np.zeros((1, 2, 2, 4)), np.zeros((1, 2, 2))), ValueError, "channels"),
    (lambda: visualize.grid(np.zeros((2, 2, 2, 3)), columns=0), ValueError, "columns"),
])
def test_malformed_arguments_raise_with_the_argument_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_defaults_are_used():
    attributions = np.arange(1, 101, dtype=np.float32).reshape(1, 10, 10)
    np.testing.assert_array_equal(
        _numpy(visualize.magnitude_map(attributions)),
        _numpy(visualize.magnitude_map(attributions, percentile=defaults.HEATMAP_PERCENTILE)))
