"""Faithfulness metrics checked against closed forms and an independent numpy implementation."""

import math

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2 import metrics
from tf_ig2.explanation import Explanation

from conftest import small_cnn

# -- an independent reference implementation ----------------------------------------------------

def reference_counts(units, steps):
    return [int(math.floor(k * units / steps + 0.5)) for k in range(steps + 1)]


def reference_order(attributions, grouped):
    """Feature indices from most to least attributed; ties keep the lower index first."""
    values = attributions.sum(axis=-1) if grouped else attributions
    values = values.reshape(-1)
    return sorted(range(values.size), key=lambda index: (-float(values[index]), index))


def reference_blur(image, sigma, truncate=3.0):
    """Normalised Gaussian blur of one (H, W, C) image, pixel by pixel."""
    height, width, _ = image.shape
    radius = max(1, int(math.ceil(truncate * sigma)))
    out = np.zeros_like(image, dtype=np.float64)
    for row in range(height):
        for column in range(width):
            total, weight = 0.0, 0.0
            for d_row in range(-radius, radius + 1):
                for d_column in range(-radius, radius + 1):
                    r, c = row + d_row, column + d_column
                    if 0 <= r < height and 0 <= c < width:
                        w = math.exp(-(d_row ** 2 + d_column ** 2) / (2 * sigma ** 2))
                        total = total + w * image[r, c].astype(np.float64)
                        weight += w
            out[row, column] = total / weight
    return out


def reference_curves(score_fn, inputs, attributions, fills, steps, grouped):
    """Deletion and insertion curves, one perturbed input at a time."""
    deletion = np.zeros((len(inputs), steps + 1))
    insertion = np.zeros((len(inputs), steps + 1))
    for n, (x, a, fill) in enumerate(zip(inputs, attributions, fills)):
        order = reference_order(a, grouped)
        unit_shape = x.shape[:-1] if grouped else x.shape
        for k, count in enumerate(reference_counts(len(order), steps)):
            moved = np.zeros(int(np.prod(unit_shape)), bool)
            moved[order[:count]] = True
            moved = moved.reshape(unit_shape)
            if grouped:
                moved = np.repeat(moved[..., None], x.shape[-1], axis=-1)
            deletion[n, k] = score_fn(np.where(moved, fill, x)[None], n)
            insertion[n, k] = score_fn(np.where(moved, x, fill)[None], n)
    return deletion, insertion


def reference_area(curve):
    return np.trapezoid(curve, np.linspace(0.0, 1.0, curve.shape[-1]), axis=-1)


# -- models ---------------------------------------------------------------------------------------

def linear_model(weights, bias, softmax=False):
    features, classes = weights.shape
    model = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(classes, activation="softmax" if softmax else None, name="linear"),
    ])
    model.layers[-1].set_weights([weights, bias])
    return model


@pytest.fixture
def linear():
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(6, 3)).astype(np.float32)
    bias = rng.normal(size=(3,)).astype(np.float32)
    inputs = rng.normal(size=(4, 6)).astype(np.float32)
    return weights, bias, inputs


# -- linear model: closed forms -------------------------------------------------------------------

def test_linear_deletion_and_insertion_closed_form(linear):
    weights, bias, inputs = linear
    model = linear_model(weights, bias, softmax=True)  # the curves score logits, not probabilities
    targets = np.array([0, 1, 2, 1])
    contributions = inputs * weights[:, targets].T  # gradient x input, exact for a linear model
    deletion = metrics.deletion_curve(model, inputs, contributions, targets, steps=6)
    insertion = metrics.insertion_curve(model, inputs, contributions, targets, steps=6)
    for n in range(len(inputs)):
        ordered = np.sort(contributions[n])[::-1]
        # With a zero fill, removing feature i takes its contribution w_i x_i off the logit.
        expected_deletion = bias[targets[n]] + ordered.sum() - np.concatenate([[0.0], np.cumsum(ordered)])
        expected_insertion = bias[targets[n]] + np.concatenate([[0.0], np.cumsum(ordered)])
        np.testing.assert_allclose(deletion[n], expected_deletion, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(insertion[n], expected_insertion, rtol=1e-5, atol=1e-5)
    assert deletion.shape == (4, 7) and deletion.dtype == np.float32
    # Contributions leave in decreasing order: the deletion curve is convex, insertion concave.
    assert np.all(np.diff(deletion, n=2, axis=1) >= -1e-5) and np.all(np.diff(insertion, n=2, axis=1) <= 1e-5)


def test_linear_areas_and_diffid_closed_form(linear):
    weights, bias, inputs = linear
    model = linear_model(weights, bias)
    targets = 1
    contributions = inputs * weights[:, 1]
    ordered = -np.sort(-contributions, axis=1)
    partial = np.concatenate([np.zeros((4, 1)), np.cumsum(ordered, axis=1)], axis=1)
    expected_insertion = reference_area(bias[1] + partial)
    expected_deletion = reference_area(bias[1] + partial[:, -1:] - partial)
    np.testing.assert_allclose(metrics.deletion_score(model, inputs, contributions, targets, steps=6),
                               expected_deletion, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(metrics.insertion_score(model, inputs, contributions, targets, steps=6),
                               expected_insertion, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(metrics.diffid(model, inputs, contributions, targets, steps=6),
                               expected_insertion - expected_deletion, rtol=1e-5, atol=1e-5)
    # The true ranking beats its reverse.
    assert np.all(metrics.diffid(model, inputs, contributions, targets, steps=6)
                  > metrics.diffid(model, inputs, -contributions, targets, steps=6))


def test_mean_and_reference_fills_on_linear_model(linear):
    weights, bias, inputs = linear
    model = linear_model(weights, bias)
    rng = np.random.default_rng(5)
    attributions = rng.normal(size=inputs.shape).astype(np.float32)
    mean = rng.normal(size=(6,)).astype(np.float32)
    references = rng.normal(size=inputs.shape).astype(np.float32)
    targets = np.array([2, 0, 1, 0])

    def score(points, n):
        return float((points.astype(np.float64) @ weights[:, targets[n]] + bias[targets[n]])[0])

    for fill, values, fills in (("mean", mean, np.broadcast_to(mean, inputs.shape)),
                                ("reference", references, references)):
        for steps in (6, 4, 9):  # dividing, not dividing and exceeding the 6 features
            expected_deletion, expected_insertion = reference_curves(score, inputs, attributions, fills, steps, False)
            deletion = metrics.deletion_curve(model, inputs, attributions, targets, fill=fill, fill_values=values,
                                              steps=steps, batch_size=5)
            insertion = metrics.insertion_curve(model, inputs, attributions, targets, fill=fill, fill_values=values,
                                                steps=steps)
            np.testing.assert_allclose(deletion, expected_deletion, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(insertion, expected_insertion, rtol=1e-5, atol=1e-5)


def test_feature_counts_round_half_up():
    assert list(metrics.feature_counts(6, 4)) == reference_counts(6, 4) == [0, 2, 3, 5, 6]
    assert list(metrics.feature_counts(3, 6)) == [0, 1, 1, 2, 2, 3, 3]
    assert list(metrics.feature_counts(64, 64)) == list(range(65))


def test_ties_keep_feature_order():
    weights = np.eye(4, dtype=np.float32)[:, :2] + 0.5
    model = linear_model(weights, np.zeros(2, np.float32))
    inputs = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    tied = np.ones_like(inputs)
    deletion = metrics.deletion_curve(model, inputs, tied, 0, steps=4)
    # Equal attributions: features leave in index order 0, 1, 2, 3.
    logits = [(inputs[0] * (np.arange(4) >= count)) @ weights[:, 0] for count in range(5)]
    np.testing.assert_allclose(deletion[0], logits, rtol=1e-6)


def test_area_under_curve_matches_trapezoid():
    rng = np.random.default_rng(0)
    curves = rng.normal(size=(5, 11)).astype(np.float32)
    np.testing.assert_allclose(metrics.area_under_curve(curves), reference_area(curves), rtol=1e-5, atol=1e-6)
    assert metrics.area_under_curve(np.array([0.0, 1.0], np.float32)) == pytest.approx(0.5)
    assert metrics.area_under_curve(np.array([2.0, 2.0, 2.0], np.float32)) == pytest.approx(2.0)


# -- tiny CNN: every fill against the numpy implementation ---------------------------------------

def logits_fn(model, targets):
    def score(points, n):
        return float(np.asarray(model(points.astype(np.float32), training=False))[0, targets[n]])
    return score


@pytest.mark.parametrize("fill", ["zero", "mean", "blur", "reference"])
def test_cnn_curves_match_numpy(fill):
    rng = np.random.default_rng(1)
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    attributions = rng.normal(size=inputs.shape).astype(np.float32)
    model = small_cnn(softmax=True)
    logits_model = small_cnn(softmax=False)  # same seed, same weights, no softmax
    predicted = np.argmax(np.asarray(logits_model(inputs)), axis=1)
    sigma = 1.3
    values, fills = None, np.zeros_like(inputs)
    if fill == "mean":
        values = rng.random((8, 8, 1)).astype(np.float32)
        fills = np.broadcast_to(values, inputs.shape)
    elif fill == "reference":
        values = rng.random(inputs.shape).astype(np.float32)
        fills = values
    elif fill == "blur":
        fills = np.stack([reference_blur(image, sigma) for image in inputs])
    expected_deletion, expected_insertion = reference_curves(
        logits_fn(logits_model, predicted), inputs, attributions, fills, 10, False)
    options = dict(fill=fill, fill_values=values, steps=10, sigma=sigma, batch_size=7)
    deletion = metrics.deletion_curve(model, inputs, attributions, **options)  # targets=None: predicted class
    insertion = metrics.insertion_curve(model, inputs, attributions, **options)
    np.testing.assert_allclose(deletion, expected_deletion, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(insertion, expected_insertion, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics.diffid(model, inputs, attributions, **options),
                               reference_area(expected_insertion) - reference_area(expected_deletion),
                               rtol=1e-4, atol=1e-5)


def test_channels_move_together():
    rng = np.random.default_rng(2)
    inputs = rng.random((2, 6, 6, 3)).astype(np.float32)
    attributions = rng.normal(size=inputs.shape).astype(np.float32)
    model = small_cnn(input_shape=(6, 6, 3), softmax=False)
    targets = np.array([1, 2])
    expected_deletion, expected_insertion = reference_curves(
        logits_fn(model, targets), inputs, attributions, np.zeros_like(inputs), 12, True)
    np.testing.assert_allclose(metrics.deletion_curve(model, inputs, attributions, targets, steps=12),
                               expected_deletion, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics.insertion_curve(model, inputs, attributions, targets, steps=12),
                               expected_insertion, rtol=1e-4, atol=1e-5)
    # Ungrouped, each of the 108 values is its own feature.
    expected_ungrouped, _ = reference_curves(
        logits_fn(model, targets), inputs, attributions, np.zeros_like(inputs), 12, False)
    np.testing.assert_allclose(
        metrics.deletion_curve(model, inputs, attributions, targets, steps=12, group_channels=False),
        expected_ungrouped, rtol=1e-4, atol=1e-5)


def test_gaussian_blur_matches_numpy_and_keeps_constants():
    rng = np.random.default_rng(4)
    images = rng.random((2, 7, 9, 2)).astype(np.float32)
    for sigma in (0.6, 2.0, 5.0):  # kernel radius below and above the image size
        blurred = np.asarray(metrics.gaussian_blur(images, sigma))
        expected = np.stack([reference_blur(image, sigma) for image in images])
        np.testing.assert_allclose(blurred, expected, rtol=1e-5, atol=1e-6)
    constant = np.full((1, 5, 5), 0.7, np.float32)
    np.testing.assert_allclose(np.asarray(metrics.gaussian_blur(constant, 1.5)), constant, rtol=1e-6)


def test_explanation_input_uses_its_targets_and_callable_targets():
    rng = np.random.default_rng(6)
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    model = small_cnn(softmax=True)
    explanation = tf_ig2.IntegratedGradients(model, steps=8).explain(inputs, 0.0, targets=[2, 0, 1])
    from_explanation = metrics.deletion_curve(model, inputs, explanation, steps=8)
    from_arrays = metrics.deletion_curve(model, inputs, explanation.attributions, [2, 0, 1], steps=8)
    np.testing.assert_array_equal(from_explanation, from_arrays)

    def second_logit(outputs):
        return outputs[:, 1]

    by_callable = metrics.insertion_curve(model, inputs, explanation.attributions, second_logit, steps=8)
    by_index = metrics.insertion_curve(model, inputs, explanation.attributions, 1, steps=8)
    np.testing.assert_allclose(by_callable, by_index, rtol=1e-6)


def test_regression_output_with_integer_target():
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(5, 1)).astype(np.float32)
    model = linear_model(weights, np.zeros(1, np.float32))
    inputs = rng.normal(size=(3, 5)).astype(np.float32)
    contributions = inputs * weights[:, 0]
    curve = metrics.deletion_curve(model, inputs, contributions, 0, steps=5)
    np.testing.assert_allclose(curve[:, 0], contributions.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(curve[:, -1], 0.0, atol=1e-6)


def test_no_retracing_across_calls():
    rng = np.random.default_rng(8)
    model = small_cnn()
    inputs = rng.random((4, 8, 8, 1)).astype(np.float32)
    attributions = rng.normal(size=inputs.shape).astype(np.float32)
    metrics.diffid(model, inputs, attributions, fill="blur", sigma=1.0, steps=5)
    count = metrics.curves._scorer(model, None).tracing_count
    for size in (2, 3):  # other batch sizes and another number of inputs: same shapes per feature
        metrics.diffid(model, inputs[:size], attributions[:size] * size, fill="blur", sigma=1.0, steps=5)
    assert metrics.curves._scorer(model, None).tracing_count == count


# -- completeness and stability --------------------------------------------------------------------

def test_completeness_error_from_delta():
    explanation = Explanation(
        attributions=np.zeros((3, 2), np.float32), counterfactuals=np.zeros((3, 1, 2), np.float32),
        target_scores=np.array([1.0, 2.0, -1.0], np.float32),
        counterfactual_scores=np.array([0.0, 1.5, 1.0], np.float32),
        delta=np.array([0.1, -0.25, 0.0], np.float32), method="ig2")
    np.testing.assert_allclose(metrics.completeness_error(explanation), [0.1, 0.25, 0.0], rtol=1e-6)
    np.testing.assert_allclose(metrics.completeness_error(explanation, relative=True), [0.1, 0.5, 0.0], rtol=1e-6)


def test_completeness_error_of_ig_on_linear_model(linear):
    weights, bias, inputs = linear
    explanation = tf_ig2.IntegratedGradients(linear_model(weights, bias), steps=4).explain(inputs, 0.0, 1)
    # IG is exact on a linear model: the gap is float32 round-off only.
    assert np.all(metrics.completeness_error(explanation) < 1e-4)
    assert np.all(metrics.completeness_error(explanation, relative=True) < 1e-4)


def test_stability_analytic():
    rng = np.random.default_rng(9)
    features, scale = 20000, 0.05
    inputs = (rng.random((3, features)) + 0.5).astype(np.float32)
    norms = np.linalg.norm(inputs, axis=1)
    # A(z) = z: the change is ||e|| / ||x||, and ||e|| concentrates at scale * sqrt(D).
    for reduction in ("max", "mean"):
        change = metrics.stability(lambda z: z, inputs, noise_scale=scale, samples=4, seed=1, reduction=reduction)
        np.testing.assert_allclose(change, scale * math.sqrt(features) / norms, rtol=0.03)
    high = metrics.stability(lambda z: z, inputs, noise_scale=scale, samples=6, seed=2, reduction="max")
    mean = metrics.stability(lambda z: z, inputs, noise_scale=scale, samples=6, seed=2, reduction="mean")
    assert np.all(high >= mean)
    # A(z) = 3z: relative change is scale-free.
    np.testing.assert_allclose(metrics.stability(lambda z: 3 * z, inputs, noise_scale=scale, samples=6, seed=2),
                               high, rtol=1e-5)
    # Attributions that ignore the input are perfectly stable.
    constant = metrics.stability(lambda z: np.ones_like(z), inputs, noise_scale=scale, samples=3, seed=0)
    np.testing.assert_array_equal(constant, np.zeros(3, np.float32))


def test_stability_clips_to_value_range_and_is_seeded():
    features, scale = 20000, 0.1
    inputs = np.zeros((2, features), np.float32)

    def shifted(z):
        return z + 1.0  # ||A(x)|| = sqrt(D)

    # Noise clipped at 0 is half-normal: ||clip(e)|| ~ scale * sqrt(D / 2).
    change = metrics.stability(shifted, inputs, noise_scale=scale, samples=3, seed=0, value_range=(0.0, 1.0))
    np.testing.assert_allclose(change, scale / math.sqrt(2.0), rtol=0.03)
    again = metrics.stability(shifted, inputs, noise_scale=scale, samples=3, seed=0, value_range=(0.0, 1.0))
    other = metrics.stability(shifted, inputs, noise_scale=scale, samples=3, seed=1, value_range=(0.0, 1.0))
    np.testing.assert_array_equal(change, again)
    assert not np.array_equal(change, other)


def test_stability_of_ig2_runs_batched():
    rng = np.random.default_rng(10)
    model = small_cnn()
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    references = rng.random((2, 8, 8, 1)).astype(np.float32)
    calls = []

    def explain(batch):
        calls.append(batch.shape)
        return tf_ig2.ig2(model, batch, references, targets=[0, 1, 2], steps=8, value_range=(0.0, 1.0))

    change = metrics.stability(explain, inputs, noise_scale=0.01, samples=2, seed=0, value_range=(0.0, 1.0))
    assert change.shape == (3,) and change.dtype == np.float32 and np.all(np.isfinite(change))
    assert calls == [(3, 8, 8, 1)] * 3


# -- bad arguments ---------------------------------------------------------------------------------

def test_bad_arguments(linear):
    weights, bias, inputs = linear
    model = linear_model(weights, bias)
    attributions = np.ones_like(inputs)
    with pytest.raises(ValueError, match="fill"):
        metrics.deletion_curve(model, inputs, attributions, fill="noise")
    with pytest.raises(TypeError, match="fill"):
        metrics.deletion_curve(model, inputs, attributions, fill=0)
    with pytest.raises(ValueError, match="fill_values"):
        metrics.deletion_curve(model, inputs, attributions, fill="mean")
    with pytest.raises(ValueError, match="fill_values"):
        metrics.deletion_curve(model, inputs, attributions, fill="zero", fill_values=np.zeros(6))
    with pytest.raises(ValueError, match="fill_values"):
        metrics.insertion_curve(model, inputs, attributions, fill="reference", fill_values=inputs[:2])
    with pytest.raises(ValueError, match="fill_values"):
        metrics.insertion_curve(model, inputs, attributions, fill="mean", fill_values=np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="blur"):
        metrics.deletion_curve(model, inputs, attributions, fill="blur")
    with pytest.raises(ValueError, match="attributions"):
        metrics.deletion_curve(model, inputs, attributions[:, :5])
    with pytest.raises(ValueError, match="steps=0"):
        metrics.deletion_curve(model, inputs, attributions, steps=0)
    with pytest.raises(ValueError, match="sigma"):
        metrics.deletion_curve(model, inputs, attributions, sigma=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        metrics.deletion_curve(model, inputs, attributions, batch_size=0)
    with pytest.raises(ValueError, match="group_channels"):
        metrics.deletion_curve(model, inputs, attributions, group_channels=True)
    with pytest.raises(ValueError, match="targets"):
        metrics.deletion_curve(model, inputs, attributions, targets=3)
    with pytest.raises(TypeError, match="inputs"):
        metrics.deletion_curve(model, inputs.astype(np.int32), attributions)
    with pytest.raises(ValueError, match="finite"):
        metrics.insertion_curve(model, inputs, attributions * np.nan)
    with pytest.raises(ValueError, match="inputs"):
        metrics.deletion_curve(model, np.ones((4, 7), np.float32), np.ones((4, 7), np.float32))
    with pytest.raises(TypeError, match="model"):
        metrics.deletion_curve(lambda z: z, inputs, attributions)
    with pytest.raises(ValueError, match="2 points"):
        metrics.area_under_curve(np.ones((3, 1), np.float32))
    with pytest.raises(TypeError, match="explanation"):
        metrics.completeness_error(attributions)
    with pytest.raises(ValueError, match="images"):
        metrics.gaussian_blur(inputs, 1.0)
    with pytest.raises(TypeError, match="explainer_fn"):
        metrics.stability(None, inputs)
    with pytest.raises(ValueError, match="reduction"):
        metrics.stability(lambda z: z, inputs, reduction="median")
    with pytest.raises(ValueError, match="noise_scale"):
        metrics.stability(lambda z: z, inputs, noise_scale=0.0)
    with pytest.raises(ValueError, match="samples"):
        metrics.stability(lambda z: z, inputs, samples=0)
    with pytest.raises(ValueError, match="shape"):
        metrics.stability(lambda z: z[:, :3], inputs)
    with pytest.raises(ValueError, match="value_range"):
        metrics.stability(lambda z: z, inputs, value_range=(0.0, 1.0))
