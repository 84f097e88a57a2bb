"""The plain gradient and gradient × input: closed forms on toy models, several targets and inputs,
token ids, baselines, options."""

import warnings

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2.methods import registry as methods

from conftest import small_cnn

RTOL, ATOL = 1e-5, 1e-6


def linear_model(weights, bias, softmax=True):
    """``logits = x @ weights + bias`` (a softmax on top, which is scored as its logits)."""
    model = keras.Sequential([keras.Input((weights.shape[0],)),
                              keras.layers.Dense(weights.shape[1], activation="softmax" if softmax else None)])
    model.layers[-1].set_weights([weights, bias])
    return model


def quadratic_model(weights):
    """``logits_c = sum_i weights[i, c] * x_i ** 2``."""
    model = keras.Sequential([keras.Input((weights.shape[0],)), keras.layers.Lambda(lambda x: x * x),
                              keras.layers.Dense(weights.shape[1], use_bias=False)])
    model.layers[-1].set_weights([weights])
    return model


@pytest.fixture
def toy(rng):
    weights = rng.normal(size=(5, 3)).astype(np.float32)
    return {"weights": weights, "bias": rng.normal(size=3).astype(np.float32),
            "inputs": rng.normal(size=(4, 5)).astype(np.float32), "targets": np.array([0, 2, 1, 2])}


def no_warnings():
    """A context in which any warning fails the test."""
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("error")
    return context


def test_linear_model_gradient_is_its_weights(toy):
    model = linear_model(toy["weights"], toy["bias"])
    context = no_warnings()
    try:
        explanation = tf_ig2.Gradient(model).explain(toy["inputs"], targets=toy["targets"])
    finally:
        context.__exit__(None, None, None)
    np.testing.assert_allclose(explanation.attributions, toy["weights"][:, toy["targets"]].T, rtol=RTOL, atol=ATOL)
    assert explanation.method == "gradient" and explanation.attributions.dtype == np.float32
    logits = toy["inputs"] @ toy["weights"] + toy["bias"]
    np.testing.assert_allclose(explanation.target_scores, logits[np.arange(4), toy["targets"]], rtol=RTOL, atol=ATOL)
    # No path: it ends at the input, and completeness does not apply.
    np.testing.assert_array_equal(explanation.counterfactuals, toy["inputs"][:, None])
    np.testing.assert_array_equal(explanation.counterfactual_scores, explanation.target_scores)
    assert np.all(np.isnan(explanation.delta)) and np.all(np.isnan(explanation.relative_delta))


def test_quadratic_model_gradient(toy):
    model = quadratic_model(toy["weights"])
    explanation = tf_ig2.Gradient(model).explain(toy["inputs"], targets=toy["targets"])
    expected = 2.0 * toy["weights"][:, toy["targets"]].T * toy["inputs"]
    np.testing.assert_allclose(explanation.attributions, expected, rtol=RTOL, atol=ATOL)


def test_baselines_are_checked_and_not_used(toy):
    model = quadratic_model(toy["weights"])
    explainer = tf_ig2.Gradient(model, batch_size=3)
    plain = explainer.explain(toy["inputs"], targets=toy["targets"])
    traced = explainer.tracing_count
    for baselines in (0.0, np.ones((3, 5), np.float32), np.ones((4, 2, 5), np.float32)):
        other = explainer.explain(toy["inputs"], baselines, toy["targets"])
        np.testing.assert_array_equal(other.attributions, plain.attributions)
        assert other.counterfactuals.shape == (4, 1, 5)
    with pytest.raises(ValueError, match="`baselines` must match the shape of one input"):
        explainer.explain(toy["inputs"], np.ones((2, 4), np.float32), toy["targets"])
    assert explainer.tracing_count == traced  # one compiled function, whatever the baselines


def test_batches_and_repeated_calls(rng):
    model = small_cnn()
    inputs = rng.random((5, 8, 8, 1)).astype(np.float32)
    whole = tf_ig2.Gradient(model).explain(inputs)
    explainer = tf_ig2.Gradient(model, batch_size=2)
    np.testing.assert_allclose(explainer.explain(inputs).attributions, whole.attributions, rtol=RTOL, atol=ATOL)
    traced = explainer.tracing_count
    np.testing.assert_allclose(explainer.explain(inputs[:3]).attributions, whole.attributions[:3], rtol=RTOL,
                               atol=ATOL)
    assert explainer.tracing_count == traced


def test_several_targets_equal_one_call_per_target(rng):
    model = small_cnn()
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    targets = np.array([[0, 2], [1, 0], [2, 1]])
    explainer = tf_ig2.Gradient(model)
    several = explainer.explain(inputs, targets=targets)
    assert several.attributions.shape == (3, 2, 8, 8, 1) and several.target_scores.shape == (3, 2)
    for column in range(2):
        single = explainer.explain(inputs, targets=targets[:, column])
        np.testing.assert_allclose(several.attributions[:, column], single.attributions, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(several.target_scores[:, column], single.target_scores, rtol=RTOL, atol=ATOL)
    top = explainer.explain(inputs, top_k=2)
    assert top.attributions.shape == (3, 2, 8, 8, 1)
    picked = explainer.explain(inputs, targets=lambda outputs: outputs[:, 1:3])
    np.testing.assert_allclose(picked.attributions[:, 0], explainer.explain(inputs, targets=1).attributions,
                               rtol=RTOL, atol=ATOL)


def two_input_model(image_weights, vector_weights):
    """``logits = flatten(image) @ image_weights + vector @ vector_weights`` (dict inputs)."""
    image, vector = keras.Input((2, 2, 1), name="image"), keras.Input((3,), name="vector")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), vector])
    head = keras.layers.Dense(2, use_bias=False)
    model = keras.Model({"image": image, "vector": vector}, head(joined))
    head.set_weights([np.concatenate([image_weights, vector_weights])])
    return model


def test_several_inputs(rng):
    image_weights, vector_weights = rng.normal(size=(4, 2)), rng.normal(size=(3, 2))
    model = two_input_model(image_weights, vector_weights)
    inputs = {"image": rng.random((3, 2, 2, 1)).astype(np.float32), "vector": rng.random((3, 3)).astype(np.float32)}
    explanation = tf_ig2.Gradient(model).explain(inputs, targets=np.array([0, 1, 1]))
    assert set(explanation.attributions) == {"image", "vector"}
    np.testing.assert_allclose(explanation.attributions["image"].reshape(3, 4), image_weights[:, [0, 1, 1]].T,
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.attributions["vector"], vector_weights[:, [0, 1, 1]].T, rtol=RTOL,
                               atol=ATOL)
    several = tf_ig2.Gradient(model).explain(inputs, targets=np.array([[0, 1]] * 3))
    np.testing.assert_allclose(several.attributions["vector"][:, 1], np.tile(vector_weights[:, 1], (3, 1)),
                               rtol=RTOL, atol=ATOL)


def token_model(rng, vocabulary=7, width=3, length=4):
    """Embedding -> Flatten -> Dense(2): the score is linear in the embeddings."""
    tokens = keras.Input((length,), dtype="int32")
    embedding = keras.layers.Embedding(vocabulary, width, name="embedding")
    head = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(tokens, head(keras.layers.Flatten()(embedding(tokens))))
    head.set_weights([rng.normal(size=(length * width, 2)).astype(np.float32)])
    return model, head.get_weights()[0].reshape(length, width, 2)


def test_token_ids_through_the_input_layer(rng):
    model, weights = token_model(rng)
    ids = np.array([[3, 1, 0, 0], [2, 6, 5, 4]])
    explanation = tf_ig2.Gradient(model, input_layer="embedding").explain(ids, targets=np.array([1, 0]))
    # The gradient in the embedding space is the head's weights; summed per token; padding gets none.
    expected = weights.sum(axis=1)[:, [1, 0]].T * (ids != 0)
    assert explanation.attributions.shape == (2, 4)
    np.testing.assert_allclose(explanation.attributions, expected, rtol=RTOL, atol=ATOL)
    unpadded = tf_ig2.Gradient(model, input_layer="embedding", padding_id=None).explain(ids, targets=np.array([1, 0]))
    np.testing.assert_allclose(unpadded.attributions, weights.sum(axis=1)[:, [1, 0]].T, rtol=RTOL, atol=ATOL)
    several = tf_ig2.Gradient(model, input_layer="embedding").explain(ids, targets=np.array([[1, 0], [0, 1]]))
    np.testing.assert_allclose(several.attributions[:, 0], expected, rtol=RTOL, atol=ATOL)
    # Token baselines are checked like IG's, then not used.
    np.testing.assert_array_equal(
        tf_ig2.Gradient(model, input_layer="embedding").explain(ids, np.zeros((1, 4), ids.dtype),
                                                                np.array([1, 0])).attributions,
        explanation.attributions)


@pytest.mark.parametrize("options, error, message", [
    ({"steps": 3}, TypeError, r"Unknown option\(s\) \['steps'\] for method 'gradient'"),
    ({"batch_size": 0}, ValueError, "`batch_size` must be"),
    ({"padding_id": 1.5}, TypeError, "`padding_id` must be None or an int"),
])
def test_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        methods.get_method("gradient").check_options(options)
    model = linear_model(np.ones((2, 2), np.float32), np.zeros(2, np.float32))
    with pytest.raises(error if "steps" not in options else TypeError):
        tf_ig2.Gradient(model, **options)


def test_registry_entry():
    entry = methods.get_method("gradient")
    assert entry.explainer is tf_ig2.Gradient and entry.reference_keyword == "baselines"
    assert not entry.references_required and entry.scalar_reference and entry.end_name == "input"
    assert "steps" not in entry.settings.names()


# -- gradient x input ------------------------------------------------------------------------------
def test_gradient_input_of_a_linear_model_is_weights_times_input_and_complete(toy):
    model = linear_model(toy["weights"], toy["bias"])
    context = no_warnings()
    try:
        explanation = tf_ig2.GradientInput(model).explain(toy["inputs"], targets=toy["targets"])
    finally:
        context.__exit__(None, None, None)
    weights = toy["weights"][:, toy["targets"]].T
    np.testing.assert_allclose(explanation.attributions, toy["inputs"] * weights, rtol=RTOL, atol=ATOL)
    assert explanation.method == "gradient_input" and explanation.counterfactuals.shape == (4, 1, 5)
    np.testing.assert_allclose(explanation.counterfactual_scores, toy["bias"][toy["targets"]], rtol=RTOL, atol=ATOL)
    # f(x) - f(0) = w . x: an affine model's sum is exact.
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-5)


def test_gradient_input_of_a_quadratic_model_and_its_taylor_remainder(toy, rng):
    model = quadratic_model(toy["weights"])
    baselines = rng.normal(size=(4, 1, 5)).astype(np.float32)
    explanation = tf_ig2.GradientInput(model).explain(toy["inputs"], baselines, toy["targets"])
    weights, x, b = toy["weights"][:, toy["targets"]].T, toy["inputs"], baselines[:, 0]
    np.testing.assert_allclose(explanation.attributions, (x - b) * 2.0 * weights * x, rtol=RTOL, atol=1e-5)
    # delta = f(b) - f(x) - grad f(x) . (b - x) = sum_i w_i (x_i - b_i)^2
    np.testing.assert_allclose(explanation.delta, (weights * (x - b) ** 2).sum(axis=1), rtol=1e-4, atol=1e-5)


def test_gradient_input_averages_over_baselines(toy, rng):
    model = quadratic_model(toy["weights"])
    baselines = rng.normal(size=(3, 5)).astype(np.float32)
    explanation = tf_ig2.GradientInput(model, batch_size=5).explain(toy["inputs"], baselines, toy["targets"])
    gradient = 2.0 * toy["weights"][:, toy["targets"]].T * toy["inputs"]
    expected = (toy["inputs"] - baselines.mean(axis=0)) * gradient
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-4, atol=1e-5)
    assert explanation.counterfactuals.shape == (4, 3, 5)


def test_gradient_input_is_one_ig_step_with_the_gradient_at_the_input(rng):
    # IG's "uniform" rule with one point takes the gradient at the path's start: explaining b against
    # the baseline x gives (b - x) * grad f(x), the negative of gradient x input of x against b.
    model = small_cnn(softmax=False)
    inputs, baselines = rng.random((3, 8, 8, 1)).astype(np.float32), rng.random((3, 8, 8, 1)).astype(np.float32)
    targets = np.array([0, 1, 2])
    ours = tf_ig2.GradientInput(model).explain(inputs, baselines[:, None], targets)
    with warnings.catch_warnings():  # one step of IG does not add up: expected
        warnings.simplefilter("ignore", tf_ig2.CompletenessWarning)
        one_step = tf_ig2.IntegratedGradients(model, steps=1, rule="uniform").explain(baselines, inputs[:, None],
                                                                                      targets)
    np.testing.assert_allclose(ours.attributions, -one_step.attributions, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours.target_scores, one_step.counterfactual_scores, rtol=RTOL, atol=ATOL)


def test_gradient_input_several_targets_equal_one_call_per_target(rng):
    model = small_cnn()
    inputs, baselines = rng.random((3, 8, 8, 1)).astype(np.float32), rng.random((2, 8, 8, 1)).astype(np.float32)
    targets = np.array([[0, 2], [1, 0], [2, 1]])
    explainer = tf_ig2.GradientInput(model, batch_size=4)
    several = explainer.explain(inputs, baselines, targets)
    assert several.attributions.shape == (3, 2, 8, 8, 1) and several.delta.shape == (3, 2)
    for column in range(2):
        single = explainer.explain(inputs, baselines, targets[:, column])
        for field in ("target_scores", "counterfactual_scores", "delta"):
            np.testing.assert_allclose(getattr(several, field)[:, column], getattr(single, field), rtol=RTOL,
                                       atol=ATOL)
        np.testing.assert_allclose(several.attributions[:, column], single.attributions, rtol=RTOL, atol=ATOL)


def test_gradient_input_several_inputs(rng):
    image_weights, vector_weights = rng.normal(size=(4, 2)), rng.normal(size=(3, 2))
    model = two_input_model(image_weights, vector_weights)
    inputs = {"image": rng.random((3, 2, 2, 1)).astype(np.float32), "vector": rng.random((3, 3)).astype(np.float32)}
    baselines = {"image": np.full((2, 2, 1), 0.5, np.float32), "vector": np.zeros((1, 3), np.float32)}
    explanation = tf_ig2.GradientInput(model).explain(inputs, baselines, np.array([0, 1, 1]))
    np.testing.assert_allclose(explanation.attributions["image"].reshape(3, 4),
                               (inputs["image"].reshape(3, 4) - 0.5) * image_weights[:, [0, 1, 1]].T, rtol=RTOL,
                               atol=ATOL)
    np.testing.assert_allclose(explanation.attributions["vector"], inputs["vector"] * vector_weights[:, [0, 1, 1]].T,
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-5)  # a linear model


def test_gradient_input_of_token_ids(rng):
    model, weights = token_model(rng)
    embedding = model.get_layer("embedding").get_weights()[0]
    ids, baseline = np.array([[3, 1, 0, 0], [2, 6, 5, 4]]), np.zeros((1, 4), np.int64)
    explanation = tf_ig2.GradientInput(model, input_layer="embedding").explain(ids, baseline, np.array([1, 0]))
    differences = embedding[ids] - embedding[0]  # (N, T, D); padding never moves
    expected = (differences * np.moveaxis(weights[..., [1, 0]], -1, 0)).sum(axis=-1)
    assert explanation.attributions.shape == (2, 4)
    np.testing.assert_allclose(explanation.attributions, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-5)  # linear in the embeddings
    several = tf_ig2.GradientInput(model, input_layer="embedding").explain(ids, baseline, np.array([[1, 0], [0, 1]]))
    np.testing.assert_allclose(several.attributions[:, 0], expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("options, error, message", [
    ({"steps": 3}, TypeError, r"Unknown option\(s\) \['steps'\] for method 'gradient_input'"),
    ({"batch_size": -1}, ValueError, "`batch_size` must be"),
    ({"rule": "midpoint"}, TypeError, r"Unknown option\(s\) \['rule'\]"),
])
def test_gradient_input_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        methods.get_method("gradient_input").check_options(options)
    with pytest.raises((TypeError, ValueError)):
        tf_ig2.GradientInput(linear_model(np.ones((2, 2), np.float32), np.zeros(2, np.float32)), **options)
