"""Compiled functions trace without AutoGraph, and fall back to it for target callables that branch on tensors."""

import keras
import numpy as np
import tensorflow as tf

import tf_ig2
from tf_ig2.engine.compiled_model import CompiledFunction


def doubled_when_positive(outputs):
    """A target callable with Python control flow on a tensor value (AutoGraph converts it)."""
    if tf.reduce_sum(outputs) > 0:
        return outputs[:, 0] * 2.0
    return outputs[:, 0]


def linear_model(weights):
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(1, use_bias=False, name="score")
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([weights.reshape(3, 1)])
    return model


def test_plain_functions_trace_without_autograph():
    function = CompiledFunction(lambda values: values * 2.0, [tf.TensorSpec([None], tf.float32)])
    np.testing.assert_array_equal(function(tf.constant([1.0, 2.0])).numpy(), [2.0, 4.0])
    assert function.experimental_get_tracing_count() == 1
    assert not function._converted


def test_a_target_branching_on_tensor_values_is_traced_with_autograph():
    weights = np.array([1.0, -2.0, 0.5], np.float32)
    inputs = np.array([[1.0, 2.0, 3.0], [0.5, 0.25, 4.0]], np.float32)
    explainer = tf_ig2.IntegratedGradients(linear_model(weights), steps=4)
    explanation = explainer.explain(inputs, baselines=0.0, targets=doubled_when_positive)
    # The batch's score sum is positive at every quadrature point but alpha = 0 (all points 0): the
    # gradient is 2 w there and w at alpha = 0, whose trapezoid weight is 1 / (2 (steps - 1)) = 1/6.
    expected = weights * inputs * (2.0 - 1.0 / 6.0)
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-5, atol=1e-6)
    function = next(iter(explainer._compiled._functions.values()))
    assert function._converted


def test_a_plain_model_stays_without_autograph():
    weights = np.array([1.0, -2.0, 0.5], np.float32)
    explainer = tf_ig2.IntegratedGradients(linear_model(weights), steps=4)
    inputs = np.array([[1.0, 2.0, 3.0]], np.float32)
    explanation = explainer.explain(inputs, baselines=0.0, targets=0)
    np.testing.assert_allclose(explanation.attributions, weights * inputs, rtol=1e-5, atol=1e-6)
    assert not any(function._converted for function in explainer._compiled._functions.values())


def test_explainers_of_equal_settings_share_their_traced_functions():
    weights = np.array([1.0, -2.0, 0.5], np.float32)
    model = linear_model(weights)
    inputs = np.array([[1.0, 2.0, 3.0], [0.5, 0.25, 4.0]], np.float32)
    first = tf_ig2.IntegratedGradients(model, steps=4)
    expected = first.explain(inputs, 0.0, targets=0).attributions
    traced = first.tracing_count
    again = tf_ig2.IntegratedGradients(model, steps=4)
    np.testing.assert_array_equal(again.explain(inputs, 0.0, targets=0).attributions, expected)
    assert again.tracing_count == traced == first.tracing_count  # nothing traced for the second explainer
    other = tf_ig2.IntegratedGradients(model, steps=5)  # other settings: functions of their own
    assert other.tracing_count == 0
    other.explain(inputs, 0.0, targets=0)
    assert other.tracing_count > 0 and first.tracing_count == traced
