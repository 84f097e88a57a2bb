"""Straight-line Integrated Gradients: closed forms, PAIR saliency agreement, completeness."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2.methods.integrated_gradients import quadrature

from conftest import small_cnn


class Quadratic(keras.layers.Layer):
    """f(x) = sum_i a_i x_i^2 + c_i x_i, one output."""

    def __init__(self, a, c):
        super().__init__()
        self.a, self.c = tf.constant(a), tf.constant(c)

    def call(self, inputs):
        flat = tf.reshape(inputs, [tf.shape(inputs)[0], -1])
        return tf.reduce_sum(self.a * flat ** 2 + self.c * flat, axis=1, keepdims=True)


def quadratic_model(size, seed=0):
    rng = np.random.default_rng(seed)
    a, c = rng.normal(size=size).astype(np.float32), rng.normal(size=size).astype(np.float32)
    inputs = keras.Input((size,))
    return keras.Model(inputs, Quadratic(a, c)(inputs)), a, c


def test_trapezoid_is_exact_on_separable_quadratic():
    model, a, c = quadratic_model(6)
    rng = np.random.default_rng(1)
    x, b = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=(5, 1, 6)).astype(np.float32)
    explanation = tf_ig2.IntegratedGradients(model, steps=3).explain(x, b, targets=0)
    expected = a * (x ** 2 - b[:, 0] ** 2) + c * (x - b[:, 0])
    np.testing.assert_allclose(explanation.attributions, expected, atol=1e-5)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-4)


class Cubic(keras.layers.Layer):
    """f(x) = sum_i x_i^3, whose IG against 0 is exactly x_i^3."""

    def call(self, inputs):
        return tf.reduce_sum(inputs ** 3, axis=1, keepdims=True)


@pytest.mark.parametrize("rule, order", [("uniform", 1), ("midpoint", 2), ("trapezoid", 2)])
def test_rules_converge_at_their_order_on_a_cubic(rule, order):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Cubic()(inputs))
    x = np.array([[1.0, -0.5, 2.0, 0.25]], np.float32)
    errors = [np.abs(tf_ig2.IntegratedGradients(model, steps=s, rule=rule).explain(x, targets=0).attributions[0]
                     - x[0] ** 3).max()
              for s in (9, 33)]
    assert errors[0] > 1e-3
    # Four times the points: the error falls by about 4 (first order) or 16 (second order).
    assert errors[1] < errors[0] / (4 ** order) * 1.5


def test_quadrature_weights_sum_to_one():
    for rule in ("trapezoid", "midpoint", "uniform"):
        alphas, weights = quadrature(9, rule)
        assert alphas.shape == weights.shape == (9,)
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
        assert alphas.min() >= 0 and alphas.max() <= 1


def test_matches_pair_saliency_integrated_gradients():
    saliency = pytest.importorskip("saliency.core")
    model = small_cnn()
    view = tf_ig2.engine.model_view.ModelView(model, need_representation=False)
    rng = np.random.default_rng(3)
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    baseline = rng.random((8, 8, 1)).astype(np.float32)
    targets = [0, 2, 1]
    ours = tf_ig2.IntegratedGradients(model, steps=20, rule="uniform").explain(inputs, baseline, targets)

    def call_model(x_value_batch, call_model_args=None, expected_keys=None):
        points = tf.constant(np.asarray(x_value_batch, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(points)
            scores = view(points, representation=False)[1][:, call_model_args["target"]]
        return {saliency.INPUT_OUTPUT_GRADIENTS: tape.gradient(scores, points).numpy()}

    method = saliency.IntegratedGradients()
    for n, target in enumerate(targets):
        theirs = method.GetMask(inputs[n], call_model, {"target": target}, x_baseline=baseline,
                               x_steps=20, batch_size=7)
        np.testing.assert_allclose(ours.attributions[n], theirs, atol=1e-6, rtol=1e-4)


def test_completeness_improves_with_steps():
    model = small_cnn()
    rng = np.random.default_rng(4)
    inputs = rng.random((4, 8, 8, 1)).astype(np.float32)
    deltas = [np.abs(tf_ig2.IntegratedGradients(model, steps=s).explain(inputs).delta).mean() for s in (4, 16, 64)]
    assert deltas[2] < deltas[1] < deltas[0]
    assert deltas[2] < 1e-3


def test_baseline_layouts_and_averaging():
    model = small_cnn()
    rng = np.random.default_rng(5)
    inputs = rng.random((2, 8, 8, 1)).astype(np.float32)
    baselines = rng.random((3, 8, 8, 1)).astype(np.float32)
    explainer = tf_ig2.IntegratedGradients(model, steps=8)
    shared = explainer.explain(inputs, baselines, targets=1)
    singles = [explainer.explain(inputs, baselines[r], targets=1).attributions for r in range(3)]
    np.testing.assert_allclose(shared.attributions, np.mean(singles, axis=0), atol=1e-6)
    assert shared.counterfactuals.shape == (2, 3, 8, 8, 1)
    zero_scalar = explainer.explain(inputs, 0.0, targets=1)
    zero_array = explainer.explain(inputs, np.zeros((2, 1, 8, 8, 1), np.float32), targets=1)
    np.testing.assert_allclose(zero_scalar.attributions, zero_array.attributions, atol=1e-7)
    chunked = tf_ig2.IntegratedGradients(model, steps=8, batch_size=4).explain(inputs, baselines, targets=1)
    np.testing.assert_allclose(chunked.attributions, shared.attributions, atol=1e-6)
    assert shared.method == "ig" and shared.representation_distance is None


@pytest.mark.parametrize("kwargs, error", [
    ({"steps": 0}, ValueError), ({"steps": 1}, ValueError), ({"rule": "simpson"}, ValueError),
    ({"batch_size": -2}, ValueError), ({"steps": "8"}, TypeError),
])
def test_bad_settings(kwargs, error):
    with pytest.raises(error):
        tf_ig2.IntegratedGradients(small_cnn(), **kwargs)


def test_bad_baselines():
    explainer = tf_ig2.IntegratedGradients(small_cnn(), steps=4)
    with pytest.raises(ValueError, match="baselines"):
        explainer.explain(np.zeros((2, 8, 8, 1), np.float32), np.zeros((4, 4), np.float32))
