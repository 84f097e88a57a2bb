"""The metrics with several targets per input: (N, T, *S) attributions are scored per target.

Every result must equal scoring each target's (N, *S) attributions on its own, and the T targets
must go through the same compiled scorer as one target.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2 import metrics

from conftest import small_cnn

#: One input scored in another batch composition may differ by float32 rounding only.
SAME = dict(rtol=1e-5, atol=1e-5)
CURVES = (metrics.deletion_curve, metrics.insertion_curve)
SCORES = (metrics.deletion_score, metrics.insertion_score, metrics.diffid)


def linear_model(weights, bias):
    model = keras.Sequential([keras.Input((weights.shape[0],)), keras.layers.Dense(weights.shape[1], name="linear")])
    model.layers[-1].set_weights([weights, bias])
    return model


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(6, 4)).astype(np.float32)
    bias = rng.normal(size=(4,)).astype(np.float32)
    inputs = rng.normal(size=(5, 6)).astype(np.float32)
    targets = rng.integers(0, 4, size=(5, 3))
    attributions = inputs[:, None] * weights.T[targets]  # (N, T, F) gradient x input of each target
    return linear_model(weights, bias), inputs, targets, attributions.astype(np.float32), weights, bias


@pytest.fixture(scope="module")
def cnn():
    rng = np.random.default_rng(4)
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    attributions = rng.normal(size=(3, 2, 8, 8, 1)).astype(np.float32)
    return small_cnn(softmax=True), inputs, np.array([[2, 0], [1, 1], [0, 2]]), attributions


@pytest.mark.parametrize("function", CURVES + SCORES, ids=lambda function: function.__name__)
def test_each_target_equals_scoring_it_alone(linear, function):
    model, inputs, targets, attributions, _, _ = linear
    together = function(model, inputs, attributions, targets, steps=6)
    assert together.dtype == np.float32
    assert together.shape == ((5, 3, 7) if function in CURVES else (5, 3))
    for column in range(3):
        alone = function(model, inputs, attributions[:, column], targets[:, column], steps=6)
        np.testing.assert_allclose(together[:, column], alone, **SAME)


def test_linear_closed_form_per_target(linear):
    model, inputs, targets, attributions, _, bias = linear
    deletion = metrics.deletion_curve(model, inputs, attributions, targets, steps=6)
    for n in range(len(inputs)):
        for t in range(targets.shape[1]):
            ordered = np.sort(attributions[n, t])[::-1]  # a zero fill takes w_i x_i off the logit
            expected = bias[targets[n, t]] + ordered.sum() - np.concatenate([[0.0], np.cumsum(ordered)])
            np.testing.assert_allclose(deletion[n, t], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fill", ["zero", "mean", "blur", "reference"])
@pytest.mark.parametrize("batch_size", [None, 5])
def test_cnn_fills_and_chunks_across_inputs(cnn, fill, batch_size):
    """A batch of 5 evaluations cuts through rows and inputs: 3 inputs x 2 targets x 5 points."""
    model, inputs, targets, attributions = cnn
    fill_values = {"mean": inputs.mean(axis=0), "reference": inputs[::-1].copy()}.get(fill)
    options = dict(fill=fill, fill_values=fill_values, steps=4, sigma=1.0, batch_size=batch_size)
    for function in CURVES:
        together = function(model, inputs, attributions, targets, **options)
        assert together.shape == (3, 2, 5)
        for column in range(2):
            alone = function(model, inputs, attributions[:, column], targets[:, column], **options)
            np.testing.assert_allclose(together[:, column], alone, **SAME)


def test_explanations_of_several_targets(cnn):
    model, inputs, targets, _ = cnn
    explanation = tf_ig2.IntegratedGradients(model, steps=8).explain(inputs, 0.0, targets=targets)
    assert explanation.target_count == 2
    diffid = metrics.diffid(model, inputs, explanation, steps=4)
    top = tf_ig2.IntegratedGradients(model, steps=8).explain(inputs, 0.0, top_k=2)
    top_scores = metrics.insertion_score(model, inputs, top.attributions, "top-2", steps=4)
    for column in range(2):
        np.testing.assert_allclose(diffid[:, column],
                                   metrics.diffid(model, inputs, explanation.select_target(column), steps=4), **SAME)
        np.testing.assert_allclose(top_scores[:, column],
                                   metrics.insertion_score(model, inputs, top.select_target(column), steps=4), **SAME)
    errors = metrics.completeness_error(explanation, relative=True)
    assert errors.shape == (3, 2)
    for column in range(2):
        np.testing.assert_array_equal(errors[:, column],
                                      metrics.completeness_error(explanation.select_target(column), relative=True))


def test_a_callable_returning_several_scores(cnn):
    model, inputs, _, attributions = cnn

    def first_and_third(outputs):
        return tf.gather(outputs, [0, 2], axis=1)

    by_callable = metrics.deletion_curve(model, inputs, attributions, first_and_third, steps=4)
    by_index = metrics.deletion_curve(model, inputs, attributions, np.tile([[0, 2]], (3, 1)), steps=4)
    np.testing.assert_allclose(by_callable, by_index, **SAME)


def test_one_compiled_scorer_for_one_and_several_targets(cnn):
    model, inputs, targets, attributions = cnn
    metrics.deletion_curve(model, inputs, attributions[:, 0], targets[:, 0], steps=4)
    traced = metrics.curves._scorer(model, None).tracing_count
    metrics.deletion_curve(model, inputs, attributions, targets, steps=4)
    metrics.deletion_curve(model, inputs[:2], np.concatenate([attributions] * 2, axis=1)[:2],
                           np.tile(targets, 2)[:2], steps=4)  # other N and T: the same function
    assert metrics.curves._scorer(model, None).tracing_count == traced


def test_one_target_is_unchanged(linear):
    model, inputs, targets, attributions, weights, bias = linear
    single = metrics.deletion_curve(model, inputs, attributions[:, 0], targets[:, 0], steps=6)
    assert single.shape == (5, 7)
    one_column = metrics.deletion_curve(model, inputs, attributions[:, :1], targets[:, :1], steps=6)
    assert one_column.shape == (5, 1, 7)  # an explicit target axis of 1 is kept
    np.testing.assert_allclose(one_column[:, 0], single, **SAME)


def test_area_under_curves_of_several_targets():
    rng = np.random.default_rng(0)
    curves = rng.normal(size=(4, 3, 9)).astype(np.float32)
    areas = metrics.area_under_curve(curves)
    assert areas.shape == (4, 3)
    np.testing.assert_allclose(areas, metrics.area_under_curve(curves.reshape(12, 9)).reshape(4, 3), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, T, K \+ 1\)"):
        metrics.area_under_curve(np.ones((2, 2, 2, 3), np.float32))


def test_stability_per_target(cnn):
    model, inputs, targets, _ = cnn
    explainer = tf_ig2.IntegratedGradients(model, steps=8)
    options = dict(samples=3, noise_scale=0.05, value_range=(0.0, 1.0))
    together = metrics.stability(lambda x: explainer.explain(x, 0.0, targets=targets), inputs, **options)
    assert together.shape == (3, 2)
    for column in range(2):
        alone = metrics.stability(lambda x, c=column: explainer.explain(x, 0.0, targets=targets[:, c]), inputs,
                                  **options)
        np.testing.assert_allclose(together[:, column], alone, rtol=1e-4, atol=1e-6)
    calls = iter(range(10))

    def changing(x):  # several targets, then one
        return explainer.explain(x, 0.0, targets=targets if next(calls) == 0 else targets[:, 0])

    with pytest.raises(ValueError, match="one shape for the inputs and their noisy copies"):
        metrics.stability(changing, inputs, **options)


def test_several_targets_need_matching_targets(linear, cnn):
    model, inputs, targets, attributions, _, _ = linear
    with pytest.raises(ValueError, match=r"need their targets: \(N, T\) class indices"):
        metrics.deletion_curve(model, inputs, attributions)
    with pytest.raises(ValueError, match=r"need their targets"):
        metrics.diffid(model, inputs, attributions)
    with pytest.raises(ValueError, match=r"must hold the \(N, T\) = \(5, 3\) targets"):
        metrics.deletion_curve(model, inputs, attributions, targets[:, :2])
    with pytest.raises(ValueError, match=r"must hold the \(N, T\) = \(5, 3\) targets"):
        metrics.deletion_curve(model, inputs, attributions, targets[:, 0])
    with pytest.raises(ValueError, match=r"or \(N, T, \*S\) for T targets per input"):
        metrics.deletion_curve(model, inputs, attributions[:, :, :5], targets)
    with pytest.raises(ValueError, match="targets"):
        metrics.deletion_curve(model, inputs, attributions[:, 0], targets)  # one target's attributions
    cnn_model, cnn_inputs, _, cnn_attributions = cnn
    with pytest.raises(ValueError, match=r"\(N, T\) scores with T = 2"):
        metrics.deletion_curve(cnn_model, cnn_inputs, cnn_attributions, lambda outputs: outputs[:, 0], steps=4)
