"""Guided IG: agreement with PAIR saliency's reference, completeness, batching and validation."""

import keras
import numpy as np
import pytest
import saliency.core.guided_ig as saliency_guided_ig
import tensorflow as tf

from tf_ig2 import defaults
from tf_ig2.engine.model_view import ModelView, target_scores
from tf_ig2.methods.guided_ig import GuidedIG, integrate_guided
from tf_ig2.methods.integrated_gradients import IntegratedGradients

from conftest import small_cnn


def small_dense(features=6, classes=3, seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(8, activation="tanh", name="hidden"),
        keras.layers.Dense(classes, activation="softmax", name="logits"),
    ])


class _NumpyWithOldQuantile:
    """numpy, except that ``quantile`` still takes the ``interpolation=`` keyword numpy 2.4 removed."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(values, quantile, interpolation="linear", **options):
        return np.quantile(values, quantile, method=interpolation, **options)


@pytest.fixture
def reference_guided_ig(monkeypatch):
    """PAIR saliency's ``guided_ig_impl`` on eager gradients of the pre-softmax target score."""
    monkeypatch.setattr(saliency_guided_ig, "np", _NumpyWithOldQuantile())

    def compute(model, inputs, baselines, targets, *, steps, fraction, max_dist):
        view = ModelView(model, need_representation=False)
        results = []
        for point, baseline, target in zip(inputs, baselines, targets):
            def gradient(z, target=target):
                z = tf.constant(np.asarray(z, np.float32)[None])
                with tf.GradientTape() as tape:
                    tape.watch(z)
                    score = target_scores(view(z, representation=False)[1], tf.constant([target]))
                return tape.gradient(score, z)[0].numpy()

            results.append(saliency_guided_ig.guided_ig_impl(
                point, baseline, gradient, steps=steps, fraction=fraction, max_dist=max_dist))
        return np.stack(results)

    return compute


def scores(model, points, targets):
    view = ModelView(model, need_representation=False)
    return target_scores(view(tf.constant(points), representation=False)[1], tf.constant(targets)).numpy()


@pytest.mark.parametrize("steps, fraction, max_dist, count", [
    (defaults.GUIDED_IG_STEPS, defaults.GUIDED_IG_FRACTION, defaults.GUIDED_IG_MAX_DIST, 1),
    (40, 0.1, 1.0, 2),
    (30, 1.0, 0.3, 2),
    (25, 0.5, 0.0, 2),
])
def test_matches_saliency_on_cnn(reference_guided_ig, rng, steps, fraction, max_dist, count):
    model = small_cnn()
    inputs = rng.uniform(0.0, 1.0, (count, 8, 8, 1)).astype(np.float32)
    baselines = rng.uniform(0.0, 1.0, (count, 8, 8, 1)).astype(np.float32)
    baselines[-1, :3] = inputs[-1, :3]  # features with no straight line to walk
    targets = np.arange(count) % 3
    explanation = GuidedIG(model, steps, fraction, max_dist).explain(inputs, baselines[:, None], targets)
    expected = reference_guided_ig(model, inputs, baselines, targets,
                                   steps=steps, fraction=fraction, max_dist=max_dist)
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(expected)) > 1e-2
    assert explanation.method == "guided_ig"
    np.testing.assert_array_equal(explanation.counterfactuals, baselines[:, None])


def test_matches_saliency_on_dense_with_shared_baselines(reference_guided_ig, rng):
    model = small_dense()
    inputs = rng.normal(size=(2, 6)).astype(np.float32)
    baselines = np.stack([np.zeros(6, np.float32), rng.normal(size=6).astype(np.float32)])
    explanation = GuidedIG(model, 30, 0.3, 0.1).explain(inputs, baselines)  # predicted classes
    predicted = np.argmax(model(inputs).numpy(), axis=1)
    np.testing.assert_array_equal(explanation.targets, predicted)
    expected = np.mean([
        reference_guided_ig(model, inputs, np.repeat(baseline[None], 2, 0), predicted,
                            steps=30, fraction=0.3, max_dist=0.1)
        for baseline in baselines], axis=0)
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-5, atol=1e-6)
    gap = scores(model, inputs, predicted) - np.mean(
        [scores(model, np.repeat(baseline[None], 2, 0), predicted) for baseline in baselines], axis=0)
    np.testing.assert_allclose(explanation.target_scores - explanation.counterfactual_scores, gap, atol=1e-5)


@pytest.mark.parametrize("max_dist", [defaults.GUIDED_IG_MAX_DIST, 1.0, 0.0])
def test_completeness(rng, max_dist):
    model = small_cnn()
    inputs = rng.uniform(0.0, 1.0, (3, 8, 8, 1)).astype(np.float32)
    explanation = GuidedIG(model, max_dist=max_dist).explain(inputs, 0.0, targets=[0, 1, 2])
    gap = scores(model, inputs, [0, 1, 2]) - scores(model, np.zeros_like(inputs), [0, 1, 2])
    np.testing.assert_allclose(explanation.target_scores - explanation.counterfactual_scores, gap, atol=1e-5)
    summed = explanation.attributions.reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(summed - gap, explanation.delta, atol=1e-5)
    assert np.all(np.abs(gap) > 0.05)
    assert np.all(explanation.relative_delta < 0.02), explanation.relative_delta


def test_zero_max_dist_is_left_riemann_integrated_gradients(rng):
    model = small_dense()
    inputs = rng.normal(size=(2, 6)).astype(np.float32)
    baseline = rng.normal(size=6).astype(np.float32)
    steps = 50
    explanation = GuidedIG(model, steps, max_dist=0.0).explain(inputs, baseline, targets=[0, 2])
    view = ModelView(model, need_representation=False)
    expected = np.zeros_like(inputs, dtype=np.float64)
    for k in range(steps):
        points = tf.constant(baseline + (k / steps) * (inputs - baseline))
        with tf.GradientTape() as tape:
            tape.watch(points)
            score = target_scores(view(points, representation=False)[1], tf.constant([0, 2]))
        expected += (inputs - baseline) / steps * tape.gradient(score, points).numpy()
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-5, atol=1e-6)
    straight = IntegratedGradients(model, steps=256).explain(inputs, baseline, targets=[0, 2])
    scale = np.max(np.abs(straight.attributions))
    np.testing.assert_allclose(explanation.attributions, straight.attributions, atol=0.05 * scale)
    assert not np.allclose(explanation.attributions, straight.attributions, rtol=0, atol=1e-7)


def test_batch_size_tensor_input_and_no_retracing(rng):
    model = small_cnn()
    inputs = rng.uniform(0.0, 1.0, (3, 8, 8, 1)).astype(np.float32)
    baselines = rng.uniform(0.0, 1.0, (2, 8, 8, 1)).astype(np.float32)
    whole = GuidedIG(model, 20, 0.25, 0.1).explain(inputs, baselines, targets=[2, 0, 1])
    chunked_explainer = GuidedIG(model, 20, 0.25, 0.1, batch_size=2)
    chunked = chunked_explainer.explain(inputs, baselines, targets=[2, 0, 1])
    np.testing.assert_allclose(chunked.attributions, whole.attributions, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(chunked.delta, whole.delta, rtol=1e-5, atol=1e-6)
    traced = chunked_explainer.tracing_count
    assert traced > 0
    from_tensor = chunked_explainer.explain(tf.constant(inputs), tf.constant(baselines), targets=[2, 0, 1])
    np.testing.assert_array_equal(from_tensor.attributions, chunked.attributions)
    chunked_explainer.explain(inputs[:1] * 0.5, baselines, targets=1)
    assert chunked_explainer.tracing_count == traced


def test_input_equal_to_baseline_gets_zero_and_leaves_others_alone(rng):
    model = small_dense()
    inputs = rng.normal(size=(3, 6)).astype(np.float32)
    baselines = rng.normal(size=(3, 1, 6)).astype(np.float32)
    baselines[1, 0] = inputs[1]
    explainer = GuidedIG(model, 25, 0.2, 0.5)
    together = explainer.explain(inputs, baselines, targets=[0, 1, 2])
    np.testing.assert_array_equal(together.attributions[1], np.zeros(6, np.float32))
    for row in (0, 2):
        alone = explainer.explain(inputs[row:row + 1], baselines[row:row + 1], targets=[row])
        np.testing.assert_allclose(together.attributions[row], alone.attributions[0], rtol=1e-6, atol=1e-7)


def test_callable_target_and_eager_tensor_function(rng):
    model = small_dense()
    inputs = rng.normal(size=(2, 6)).astype(np.float32)
    by_index = GuidedIG(model, 10, 0.5, 0.2).explain(inputs, 0.0, targets=1)
    by_callable = GuidedIG(model, 10, 0.5, 0.2).explain(inputs, 0.0, targets=lambda outputs: outputs[:, 1])
    np.testing.assert_allclose(by_callable.attributions, by_index.attributions, rtol=1e-6, atol=1e-7)
    assert by_callable.targets is None
    eager = integrate_guided(ModelView(model, need_representation=False), tf.constant(inputs),
                             tf.zeros_like(inputs), tf.constant([1, 1], tf.int32),
                             steps=10, fraction=0.5, max_dist=0.2)
    np.testing.assert_allclose(eager["attributions"].numpy(), by_index.attributions, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("arguments, error, text", [
    ({"steps": 0}, ValueError, "steps=0"),
    ({"steps": 2.5}, TypeError, "steps=2.5"),
    ({"fraction": 0.0}, ValueError, "fraction=0.0"),
    ({"fraction": 1.5}, ValueError, "fraction=1.5"),
    ({"max_dist": -0.1}, ValueError, "max_dist=-0.1"),
    ({"max_dist": 1.01}, ValueError, "max_dist=1.01"),
    ({"max_dist": "far"}, TypeError, "max_dist='far'"),
    ({"batch_size": 0}, ValueError, "batch_size=0"),
])
def test_rejects_bad_settings(arguments, error, text):
    with pytest.raises(error, match=text):
        GuidedIG(small_dense(), **arguments)


def test_rejects_mismatched_baselines(rng):
    explainer = GuidedIG(small_dense(), 5)
    inputs = rng.normal(size=(2, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="baselines"):
        explainer.explain(inputs, np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="N=2"):
        explainer.explain(inputs, np.zeros((3, 1, 6), np.float32))
    with pytest.raises(TypeError, match="inputs"):
        explainer.explain(inputs.astype(np.int32))
