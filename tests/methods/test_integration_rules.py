"""IG²'s integration rules along the GradPath: closed forms, convergence, exact completeness, and
the completeness warning."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2.methods import ig2 as gradpath
from tf_ig2.methods import integration_rules

from conftest import nearest_reference, small_cnn

RULES = gradpath.INTEGRATIONS


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.random((6, 8, 8, 1)).astype(np.float32), rng.random((4, 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def relu_cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3),
    ])


@pytest.mark.parametrize("integration", RULES)
def test_every_rule_equals_the_closed_form_on_a_linear_model(integration, rng):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="linear")])
    inputs, references = rng.random((4, 6)).astype(np.float32), rng.random((3, 6)).astype(np.float32)
    explanation = tf_ig2.IG2(model, steps=9, integration=integration, representation_layer="output",
                             value_range=(0.0, 1.0)).explain(inputs, references, targets=1)
    weights = model.get_layer("linear").kernel.numpy()[:, 1]
    expected = weights * (inputs - explanation.counterfactuals.mean(axis=1))
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-5)


def test_trapezoid_is_exact_on_a_quadratic_model(rng):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5,))
    squared = keras.layers.Lambda(lambda values: values * values)(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(squared))
    x, references = rng.random((3, 5)).astype(np.float32), rng.random((2, 5)).astype(np.float32)
    left = tf_ig2.IG2(model, steps=8, integration="left", representation_layer="output").explain(x, references, 0)
    trapezoid = tf_ig2.IG2(model, steps=8, integration="trapezoid", representation_layer="output").explain(
        x, references, 0)
    gap = np.abs(trapezoid.target_scores - trapezoid.counterfactual_scores)
    np.testing.assert_allclose(trapezoid.delta, 0.0, atol=1e-5 + 1e-4 * gap.max())
    assert np.max(np.abs(left.delta)) > 100 * np.max(np.abs(trapezoid.delta))


def test_midpoint_converges_to_exact_completeness_on_a_relu_cnn(relu_cnn, data):
    inputs, references = data
    medians = []
    for points in (1, 8, 64, 256):
        explanation = tf_ig2.IG2(relu_cnn, steps=16, value_range=(0.0, 1.0), integration="midpoint",
                                 segment_points=points).explain(inputs, references)
        medians.append(float(np.median(explanation.relative_delta)))
    assert medians == sorted(medians, reverse=True), medians
    assert medians[-1] < 0.01 and medians[0] > 10 * medians[-1], medians


def test_rescaled_is_exactly_complete_and_keeps_the_path(relu_cnn, data):
    inputs, references = data
    left = tf_ig2.IG2(relu_cnn, steps=16, value_range=(0.0, 1.0)).explain(inputs, references)
    rescaled = tf_ig2.IG2(relu_cnn, steps=16, value_range=(0.0, 1.0), integration="rescaled").explain(
        inputs, references)
    np.testing.assert_array_equal(rescaled.counterfactuals, left.counterfactuals)  # GradCF as published
    gap = np.abs(rescaled.target_scores - rescaled.counterfactual_scores)
    np.testing.assert_allclose(rescaled.delta, 0.0, atol=1e-5 + 1e-5 * gap.max())
    assert np.median(left.relative_delta) > 0.1


def test_rescale_segment_closed_forms():
    contributions = [tf.constant([[1.0, 3.0], [1.0, -1.0], [0.0, 0.0]])]
    moved = [tf.constant([[1.0, 1.0], [1.0, 1.0], [2.0, 6.0]])]
    change = tf.constant([8.0, 2.0, 4.0])
    corrected = integration_rules.rescale_segment(contributions, moved, change)[0].numpy()
    np.testing.assert_allclose(corrected[0], [2.0, 6.0])  # scaled by 8 / 4
    np.testing.assert_allclose(corrected[1], [2.0, 0.0])  # cancelling terms: (2 - 0) spread by |c|
    np.testing.assert_allclose(corrected[2], [1.0, 3.0])  # no gradient: spread by |moved|
    np.testing.assert_allclose(corrected.sum(axis=1), change.numpy())


@pytest.mark.parametrize("integration", RULES)
def test_rules_stay_close_to_the_published_rule_on_a_smooth_model(integration, data):
    """On the smooth (tanh) test CNN every rule is within 2% (of the largest attribution) of "left".

    The path stops at a third of the way to the nearest reference: a path that reaches the valley of
    the representation distance bounces, and the rules then differ by how often, not by O(h).
    """
    model = small_cnn()
    inputs, references = data
    shared = dict(value_range=(0.0, 1.0), steps=100,
                  step_size=0.3 * nearest_reference(inputs, references) / 100)
    left = tf_ig2.IG2(model, **shared).explain(inputs, references)
    other = tf_ig2.IG2(model, integration=integration, **shared).explain(inputs, references)
    scale = np.abs(left.attributions).max()
    np.testing.assert_allclose(other.attributions, left.attributions, atol=0.02 * scale)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="integration.*Received: integration='simpson'"):
        tf_ig2.IG2(small_cnn(), integration="simpson")
    with pytest.raises(ValueError, match="segment_points"):
        tf_ig2.IG2(small_cnn(), integration="midpoint", segment_points=0)


# -- the completeness warning ----------------------------------------------------------------------

def test_warning_fires_once_on_a_zigzag_model_and_names_the_value(relu_cnn, data):
    inputs, references = data
    explainer = tf_ig2.IG2(relu_cnn, steps=16, value_range=(0.0, 1.0))
    with pytest.warns(tf_ig2.CompletenessWarning, match=r"median relative completeness error .* is \d") as record:
        explanation = explainer.explain(inputs, references)
    median = float(np.median(explanation.relative_delta))
    assert f"{median:.3g}" in str(record[0].message) and "integration='rescaled'" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tf_ig2.CompletenessWarning)
        explainer.explain(inputs, references)  # once per explainer


def test_warning_stays_silent_on_the_smooth_test_model_and_with_rescaled(relu_cnn, data):
    inputs, references = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", tf_ig2.CompletenessWarning)
        tf_ig2.IG2(small_cnn(), value_range=(0.0, 1.0)).explain(inputs, references)
        tf_ig2.IG2(relu_cnn, steps=16, value_range=(0.0, 1.0), integration="rescaled").explain(inputs, references)


# -- the GradPath with momentum --------------------------------------------------------------------

def test_momentum_zero_is_the_published_path(relu_cnn, data):
    inputs, references = data
    published = tf_ig2.IG2(relu_cnn, steps=8, value_range=(0.0, 1.0)).explain(inputs, references)
    zero = tf_ig2.IG2(relu_cnn, steps=8, value_range=(0.0, 1.0), momentum=0.0).explain(inputs, references)
    np.testing.assert_array_equal(zero.counterfactuals, published.counterfactuals)
    moved = tf_ig2.IG2(relu_cnn, steps=8, value_range=(0.0, 1.0), momentum=0.9).explain(inputs, references)
    assert np.abs(moved.counterfactuals - published.counterfactuals).max() > 1e-3


def test_momentum_path_matches_a_step_by_step_loop(rng):
    """Heavy ball on unit directions, written out by hand on a model whose gradients are known."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh", name="features"),
                              keras.layers.Dense(2, name="head")])
    x, reference = rng.random((1, 4)).astype(np.float32), rng.random((1, 4)).astype(np.float32)
    steps, beta = 6, 0.5
    eta = 0.2 * float(np.linalg.norm(x - reference)) / steps  # a short path: it never bounces, round-off stays small
    explanation = tf_ig2.IG2(model, steps=steps, step_size=eta, momentum=beta, representation_layer="features").explain(
        x, reference, targets=0)
    features = keras.Model(model.inputs, model.get_layer("features").output)
    target = features(reference).numpy()
    point, velocity = x.astype(np.float64), np.zeros_like(x, np.float64)
    for _ in range(steps):
        variable = tf.Variable(point.astype(np.float32))
        with tf.GradientTape() as tape:
            distance = tf.reduce_sum((features(variable) - target) ** 2)
        gradient = tape.gradient(distance, variable).numpy().astype(np.float64)
        velocity = beta * velocity + gradient / np.linalg.norm(gradient)
        point = point - eta * velocity / np.linalg.norm(velocity)
    np.testing.assert_allclose(explanation.counterfactuals[0, 0], point[0], atol=2e-5)


@pytest.mark.parametrize("integration", RULES)
def test_momentum_keeps_the_linear_closed_form(integration, rng):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="linear")])
    inputs, references = rng.random((3, 6)).astype(np.float32), rng.random((2, 6)).astype(np.float32)
    explanation = tf_ig2.IG2(model, steps=7, integration=integration, momentum=0.8, representation_layer="output",
                             value_range=(0.0, 1.0)).explain(inputs, references, targets=2)
    weights = model.get_layer("linear").kernel.numpy()[:, 2]
    np.testing.assert_allclose(explanation.attributions, weights * (inputs - explanation.counterfactuals.mean(axis=1)),
                               rtol=1e-4, atol=1e-6)


def test_momentum_is_checked():
    with pytest.raises(ValueError, match=r"momentum.*\[0, 1\)"):
        tf_ig2.IG2(small_cnn(), momentum=1.0)
    with pytest.raises(TypeError, match="momentum"):
        tf_ig2.IG2(small_cnn(), momentum="high")
