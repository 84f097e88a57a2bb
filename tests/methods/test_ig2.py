"""IG²: analytic answers, an independent reference loop, axioms and invariances."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2.methods import ig2 as gradpath

from conftest import nearest_reference, small_cnn


def reference_ig2(model, x, references, target, steps, step_size=None, value_range=None):
    """A deliberately simple eager loop, one pair at a time, written from the equations.

    The representation is the input of the last Dense layer, taken from a functional sub-model;
    the target score is that layer's pre-activation computed by hand from its weights.
    """
    features = keras.Model(model.inputs[0], model.get_layer("features").output)
    kernel, bias = (w.numpy() for w in model.get_layer("logits").weights)

    def logit(z):
        return tf.linalg.matvec(tf.transpose(kernel), features(z)[0]) [target] + bias[target]

    attributions, ends = [], []
    for x_r in references:
        target_representation = features(x_r[None]).numpy()
        eta = 2.0 * np.linalg.norm(x - x_r) / steps if step_size is None else step_size
        point = x[None].astype(np.float32)
        path = [point]
        for _ in range(steps):
            variable = tf.Variable(point)
            with tf.GradientTape() as tape:
                distance = tf.reduce_sum((features(variable) - target_representation) ** 2)
            gradient = tape.gradient(distance, variable).numpy()
            norm = np.sqrt((gradient ** 2).sum())
            point = point - (eta * gradient / norm if norm > 0 else 0.0)
            if value_range is not None:
                point = np.clip(point, *value_range)
            path.append(point.astype(np.float32))
        total = np.zeros_like(x)
        for j in range(steps):
            variable = tf.Variable(path[j])
            with tf.GradientTape() as tape:
                score = logit(variable)
            total += ((path[j] - path[j + 1]) * tape.gradient(score, variable).numpy())[0]
        attributions.append(total)
        ends.append(path[-1][0])
    attributions = np.mean(attributions, axis=0)
    ends = np.stack(ends)
    scores = [float(logit(tf.constant(end[None]))) for end in ends]
    delta = attributions.sum() - (float(logit(tf.constant(x[None]))) - np.mean(scores))
    return attributions, ends, delta


@pytest.fixture(scope="module")
def model():
    return small_cnn()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.random((3, 8, 8, 1)).astype(np.float32), rng.random((4, 8, 8, 1)).astype(np.float32)


@pytest.mark.parametrize("target", [0, 2])
@pytest.mark.parametrize("value_range", [None, (0.0, 1.0)])
def test_matches_independent_reference_loop(model, data, target, value_range):
    inputs, references = data
    # The published path (constant steps) and rule (left) are what the reference loop computes.
    explanation = tf_ig2.IG2(model, steps=12, value_range=value_range, step_schedule="constant").explain(
        inputs, references, target)
    for n in range(len(inputs)):
        attributions, ends, delta = reference_ig2(model, inputs[n], references, target, 12, value_range=value_range)
        np.testing.assert_allclose(explanation.counterfactuals[n], ends, atol=2e-5)
        np.testing.assert_allclose(explanation.attributions[n], attributions, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(explanation.delta[n], delta, atol=2e-5)


def test_fixed_step_size_matches_reference(model, data):
    inputs, references = data
    explanation = tf_ig2.IG2(model, steps=8, step_size=0.05, step_schedule="constant").explain(
        inputs[:1], references[:2], 1)
    attributions, ends, _ = reference_ig2(model, inputs[0], references[:2], 1, 8, step_size=0.05)
    np.testing.assert_allclose(explanation.counterfactuals[0], ends, atol=2e-5)
    np.testing.assert_allclose(explanation.attributions[0], attributions, atol=2e-5, rtol=1e-4)
    # Every step has length eta unless the gradient vanished: the path is 8 * 0.05 long at most.
    path = tf_ig2.IG2(model, steps=8, step_size=0.05, step_schedule="constant").explain(
        inputs[:1], references[:2], 1, return_path=True).path
    lengths = np.sqrt(((np.diff(path, axis=2)) ** 2).reshape(1, 2, 8, -1).sum(-1))
    np.testing.assert_allclose(lengths, 0.05, rtol=1e-4)


def linear_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3, 4)), keras.layers.Flatten(), keras.layers.Dense(5, name="linear")])


@pytest.mark.parametrize("representation_layer", ["output", "flatten"])
def test_linear_model_closed_form(representation_layer):
    model = linear_model()
    if representation_layer == "flatten":
        representation_layer = model.layers[0].name
    rng = np.random.default_rng(2)
    inputs, references = rng.normal(size=(4, 3, 4)).astype(np.float32), rng.normal(size=(6, 3, 4)).astype(np.float32)
    targets = np.array([0, 1, 4, 2])
    explainer = tf_ig2.IG2(model, steps=20, representation_layer=representation_layer)
    explanation = explainer.explain(inputs, references, targets)
    kernel = model.layers[-1].weights[0].numpy()  # (12, 5)
    weights = kernel[:, targets].T.reshape(4, 3, 4)
    expected = weights * (inputs - explanation.counterfactuals.mean(axis=1))
    np.testing.assert_allclose(explanation.attributions, expected, atol=1e-5)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-4)
    # The path moves towards each reference: the representation distance shrinks.
    assert np.all(explanation.representation_distance[..., 1] < explanation.representation_distance[..., 0])


def test_path_axioms(model, data):
    inputs, references = data
    explainer = tf_ig2.IG2(model, steps=30, value_range=(0.0, 1.0))
    explanation = explainer.explain(inputs, references, return_path=True)
    path = explanation.path
    assert path.shape == (3, 4, 31, 8, 8, 1)
    np.testing.assert_array_equal(path[:, :, 0], np.broadcast_to(inputs[:, None], path[:, :, 0].shape))
    np.testing.assert_array_equal(path[:, :, -1], explanation.counterfactuals)
    assert path.min() >= 0.0 and path.max() <= 1.0
    start, end = explanation.representation_distance[..., 0], explanation.representation_distance[..., 1]
    assert np.all(end < start)
    features = keras.Model(model.inputs[0], model.get_layer("features").output)
    along = np.stack([
        np.linalg.norm(features(path[:, r, j]).numpy() - features(references[r:r + 1]).numpy(), axis=1)
        for r in range(4) for j in (0, 10, 20, 30)
    ]).reshape(4, 4, 3)
    # Fixed-length steps fall fast, then circle the reference: every later point is nearer than x.
    assert np.all(along[:, 1:] < along[:, :1]), "representation distance must fall along the path"
    assert np.all(end < 0.5 * start)
    np.testing.assert_allclose(along[:, 0].T, start, rtol=1e-4)


def test_reported_delta_equals_recomputed(model, data):
    inputs, references = data
    explanation = tf_ig2.IG2(model, steps=20, value_range=(0.0, 1.0)).explain(inputs, references)
    logits = keras.Sequential(model.layers[:-1] + [keras.layers.Dense(3, name="copy")])
    logits.build((None, 8, 8, 1))
    logits.layers[-1].set_weights(model.layers[-1].get_weights())
    n, r = explanation.counterfactuals.shape[:2]
    targets = explanation.targets
    np.testing.assert_array_equal(targets, np.argmax(model(inputs).numpy(), axis=1))
    start = logits(inputs).numpy()[np.arange(n), targets]
    ends = logits(explanation.counterfactuals.reshape(n * r, 8, 8, 1)).numpy().reshape(n, r, 3)
    end = ends[np.arange(n), :, targets].mean(axis=1)
    np.testing.assert_allclose(explanation.target_scores, start, atol=1e-5)
    np.testing.assert_allclose(explanation.counterfactual_scores, end, atol=1e-5)
    recomputed = explanation.attributions.reshape(n, -1).sum(1) - (start - end)
    np.testing.assert_allclose(explanation.delta, recomputed, atol=1e-4)


def test_delta_shrinks_with_more_steps(model, data):
    inputs, references = data
    coarse = tf_ig2.IG2(model, steps=10, value_range=(0.0, 1.0)).explain(inputs, references, 0)
    fine = tf_ig2.IG2(model, steps=400, value_range=(0.0, 1.0)).explain(inputs, references, 0)
    assert np.mean(np.abs(fine.delta)) < 0.5 * np.mean(np.abs(coarse.delta))
    assert np.all(np.abs(fine.delta) < 0.05 * np.abs(fine.target_scores - fine.counterfactual_scores) + 1e-3)


def test_zero_gradient_means_no_move(model, data):
    inputs, _ = data
    explanation = tf_ig2.IG2(model, steps=5).explain(inputs[:2], inputs[:1])
    assert np.all(np.isfinite(explanation.attributions))
    np.testing.assert_array_equal(explanation.counterfactuals[0, 0], inputs[0])
    np.testing.assert_array_equal(explanation.attributions[0], 0.0)


def test_invariances(model, data):
    inputs, references = data
    # A path a fifth as long as the shortest way to a reference never reaches the valley of the
    # representation distance, where it would bounce and round-off would decide where it goes;
    # chunked, permuted and single runs then agree to float32 round-off on any CPU.
    settings = dict(steps=10, step_size=0.2 * nearest_reference(inputs, references) / 10)
    explainer = tf_ig2.IG2(model, **settings)
    full = explainer.explain(inputs, references)
    assert np.all(full.representation_distance[..., 1] < full.representation_distance[..., 0])
    chunked = tf_ig2.IG2(model, batch_size=5, **settings).explain(inputs, references)
    tensor = explainer.explain(tf.constant(inputs), tf.constant(references))
    order = [3, 1, 0, 2]
    permuted = explainer.explain(inputs, references[order])
    for other in (chunked, tensor, permuted):
        np.testing.assert_allclose(other.attributions, full.attributions, atol=1e-6)
        np.testing.assert_allclose(other.delta, full.delta, atol=1e-5)
    np.testing.assert_allclose(permuted.counterfactuals, full.counterfactuals[:, order], atol=1e-6)
    np.testing.assert_allclose(chunked.representation_distance, full.representation_distance, atol=1e-5)
    one = explainer.explain(inputs[1:2], references)
    np.testing.assert_allclose(one.attributions[0], full.attributions[1], atol=1e-6)
    assert full.attributions.dtype == np.float32 and full.attributions.shape == inputs.shape


def test_no_retracing(model, data):
    inputs, references = data
    explainer = tf_ig2.IG2(model, steps=4, batch_size=5)
    explainer.explain(inputs, references)
    count = explainer.tracing_count
    for size in (3, 2, 1, 3):
        explainer.explain(inputs[:size], references[:3])
    assert explainer.tracing_count == count
    tf_ig2.ig2(model, inputs, references, steps=4)
    cached = [e for e in gradpath._EXPLAINERS.values() if e.model is model][-1]
    count = cached.tracing_count
    tf_ig2.ig2(model, inputs[:2], references, steps=4)
    assert cached.tracing_count == count


def test_per_input_references_and_targets(model, data):
    inputs, references = data
    per_input = np.stack([references[[0, 1]], references[[2, 3]], references[[1, 3]]])
    explainer = tf_ig2.IG2(model, steps=6)
    explanation = explainer.explain(inputs, per_input, targets=[0, 1, 2])
    for n in range(3):
        alone = explainer.explain(inputs[n:n + 1], per_input[n], targets=[0, 1, 2][n])
        np.testing.assert_allclose(explanation.attributions[n], alone.attributions[0], atol=1e-6)
    by_callable = explainer.explain(inputs, per_input, targets=lambda logits: logits[:, 1])
    by_index = explainer.explain(inputs, per_input, targets=1)
    np.testing.assert_allclose(by_callable.attributions, by_index.attributions, atol=1e-6)
    assert by_callable.targets is None and list(by_index.targets) == [1, 1, 1]


def test_softmax_is_scored_as_logits(data):
    inputs, references = data
    with_softmax, without = small_cnn(softmax=True), small_cnn(softmax=False)
    a = tf_ig2.IG2(with_softmax, steps=6).explain(inputs, references, 1)
    b = tf_ig2.IG2(without, steps=6).explain(inputs, references, 1)
    np.testing.assert_allclose(a.attributions, b.attributions, atol=1e-6)
    # The user's model is left as it was.
    assert with_softmax.layers[-1].activation.__name__ == "softmax"
    np.testing.assert_allclose(with_softmax(inputs).numpy().sum(1), 1.0, atol=1e-5)


class Subclassed(keras.Model):
    def __init__(self, softmax_inside=False):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, activation="tanh")
        self.flatten = keras.layers.Flatten()
        self.features = keras.layers.Dense(16, activation="tanh")
        self.head = keras.layers.Dense(3)
        self.softmax_inside = softmax_inside

    def call(self, inputs):
        logits = self.head(self.features(self.flatten(self.conv(inputs))))
        return tf.nn.softmax(logits) if self.softmax_inside else logits


def test_sequential_functional_subclassed_agree(data):
    inputs, references = data
    sequential = small_cnn(softmax=False)
    x = keras.Input((8, 8, 1))
    y = x
    for layer in sequential.layers:
        y = layer(y)
    functional = keras.Model(x, y)
    subclassed = Subclassed()
    subclassed(inputs)
    twins = [subclassed.conv, subclassed.flatten, subclassed.features, subclassed.head]
    for source, target in zip(sequential.layers, twins):
        target.set_weights(source.get_weights())
    results = [tf_ig2.IG2(m, steps=6, representation_layer=layer).explain(inputs, references, 2).attributions
               for m, layer in ((sequential, "features"), (functional, "features"), (subclassed, subclassed.features))]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], atol=1e-6)
    default = tf_ig2.IG2(subclassed, steps=6).explain(inputs, references, 2).attributions
    np.testing.assert_allclose(default, results[0], atol=1e-6)


def test_softmax_inside_subclassed_model_warns(data):
    inputs, references = data
    model = Subclassed(softmax_inside=True)
    model(inputs)
    with pytest.warns(UserWarning, match="probabilities"):
        tf_ig2.IG2(model, steps=2).explain(inputs, references)


def test_representation_layer_choices(model, data):
    inputs, references = data
    by_index = tf_ig2.IG2(model, steps=4, representation_layer=2).explain(inputs, references, 0)
    by_name = tf_ig2.IG2(model, steps=4, representation_layer="features").explain(inputs, references, 0)
    by_layer = tf_ig2.IG2(model, steps=4, representation_layer=model.get_layer("features")).explain(
        inputs, references, 0)
    default = tf_ig2.IG2(model, steps=4).explain(inputs, references, 0)
    for other in (by_name, by_layer, default):
        np.testing.assert_allclose(other.attributions, by_index.attributions, atol=1e-6)
    assert default.representation == "input of layer 'logits'"
    assert by_name.representation == "output of layer 'features'"
    output = tf_ig2.IG2(model, steps=4, representation_layer="output").explain(inputs, references, 0)
    assert output.representation.startswith("model output")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": 2.5}, TypeError, "steps"),
    ({"step_size": -1.0}, ValueError, "step_size"),
    ({"step_size": "fast"}, ValueError, "step_size"),
    ({"value_range": (1.0, 0.0)}, ValueError, "low <= high"),
    ({"value_range": 3}, TypeError, "value_range"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"representation_layer": "nope"}, ValueError, "Available layers: 'conv', 'flatten', 'features', 'logits'"),
    ({"representation_layer": 9}, ValueError, "index"),
    ({"representation_layer": 1.5}, TypeError, "representation_layer"),
])
def test_bad_settings(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        tf_ig2.IG2(model, **kwargs)


def test_bad_model():
    with pytest.raises(TypeError, match="model"):
        tf_ig2.IG2(lambda x: x)


@pytest.mark.parametrize("inputs, references, targets, error, match", [
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros((3, 8, 8, 2), np.float32), None, ValueError,
     "references.*Received: shape"),
    (np.zeros((8, 8, 1), np.float32), np.zeros((3, 8, 8, 1), np.float32), None, ValueError,
     r"inputs.*\(N, 8, 8, 1\).*Received: shape \(8, 8, 1\)"),
    (np.zeros((2, 8, 9, 1), np.float32), np.zeros((3, 8, 9, 1), np.float32), None, ValueError,
     r"inputs.*\(N, 8, 8, 1\)"),
    (np.full((2, 8, 8, 1), np.nan, np.float32), np.zeros((3, 8, 8, 1), np.float32), None, ValueError, "inputs.*finite"),
    (np.zeros((2, 8, 8, 1), np.float32), np.full((3, 8, 8, 1), np.inf, np.float32), None, ValueError,
     "references.*finite"),
    (np.zeros((2, 8, 8, 1), np.uint8), np.zeros((3, 8, 8, 1), np.float32), None, TypeError, "inputs.*floating"),
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros((0, 8, 8, 1), np.float32), None, ValueError, "references.*empty"),
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros((3, 8, 8, 1), np.float32), 3, ValueError, r"targets.*\[0, 2\]"),
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros((3, 8, 8, 1), np.float32), [0, 1, 2], ValueError, "targets.*2 ints"),
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros((3, 8, 8, 1), np.float32), "cat", TypeError, "targets"),
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros((3, 2, 8, 8, 1), np.float32), None, ValueError, "N=2"),
])
def test_bad_input(model, inputs, references, targets, error, match):
    with pytest.raises(error, match=match):
        tf_ig2.IG2(model, steps=2).explain(inputs, references, targets)


def test_inputs_outside_value_range(model, data):
    inputs, references = data
    with pytest.raises(ValueError, match="inputs.*value_range"):
        tf_ig2.IG2(model, steps=2, value_range=(0.0, 0.5)).explain(inputs, references)
    with pytest.raises(ValueError, match="value_range.*broadcast"):
        tf_ig2.IG2(model, steps=2, value_range=(np.zeros(3), 1.0)).explain(inputs, references)


def test_per_feature_value_range(model, data):
    inputs, references = data
    low = np.zeros((8, 8, 1), np.float32)
    high = np.full((8, 8, 1), 1.0, np.float32)
    high[:4] = 0.6
    inputs = np.minimum(inputs, high)
    references = np.minimum(references, high)
    path = tf_ig2.IG2(model, steps=10, value_range=(low, high)).explain(inputs, references, return_path=True).path
    assert np.all(path <= high) and np.all(path >= low)


def test_ig2_unknown_option(model, data):
    with pytest.raises(TypeError, match="stepz"):
        tf_ig2.ig2(model, *data, stepz=3)


def test_explanation_repr_is_a_short_summary(model, data):
    explanation = tf_ig2.IG2(model, steps=2).explain(*data)
    text = repr(explanation)
    assert "attributions=<float32 (3, 8, 8, 1)>" in text and "counterfactuals=<float32 (3, 4, 8, 8, 1)>" in text
    assert "method='ig2'" in text and "max |delta|=" in text and len(text) < 600


def test_callable_targets_cache_is_bounded_and_reused(model, data):
    from tf_ig2.engine.compiled_model import CALLABLE_CACHE_SIZE

    inputs, references = data
    explainer = tf_ig2.IG2(model, steps=2)
    pick = lambda logits: logits[:, 1]  # noqa: E731
    explainer.explain(inputs, references, targets=pick)
    count = explainer.tracing_count
    explainer.explain(inputs[:2], references, targets=pick)
    assert explainer.tracing_count == count
    for column in range(3 * CALLABLE_CACHE_SIZE):
        explainer.explain(inputs, references, targets=lambda logits, c=column % 3: logits[:, c])
    assert sum(key[1] is not None for key in explainer._compiled._functions) == CALLABLE_CACHE_SIZE


def test_functional_form_caches_explainers_by_option_values(model, data):
    inputs, references = data
    for _ in range(3):  # equal array options (new objects each call) reuse one explainer: no retracing
        tf_ig2.ig2(model, inputs, references, steps=2, value_range=(np.zeros(()), np.ones(())))
    same = [e for e in gradpath._EXPLAINERS.values() if e.model is model and e.steps == 2]
    assert len(same) == 1 and same[0].tracing_count <= 2
    tf_ig2.ig2(model, inputs, references, steps=2, value_range=(np.zeros(()), np.full((), 2.0)))
    ranges = sorted(float(e.value_range[1]) for e in gradpath._EXPLAINERS.values()
                    if e.model is model and e.steps == 2)
    assert ranges == [1.0, 2.0]  # another range is another explainer, never a recycled one


def test_trapezoid_quadrature_needs_two_points():
    from tf_ig2.methods.integrated_gradients import quadrature

    with pytest.raises(ValueError, match="steps.*>= 2 for the trapezoid rule"):
        quadrature(1, "trapezoid")
    alphas, weights = quadrature(1, "midpoint")
    assert alphas.tolist() == [0.5] and weights.tolist() == [1.0]


def test_explanation_method_is_required():
    with pytest.raises(TypeError, match="method"):
        tf_ig2.Explanation(attributions=np.zeros((1, 2)), counterfactuals=np.zeros((1, 1, 2)),
                           target_scores=np.zeros(1), counterfactual_scores=np.zeros(1), delta=np.zeros(1))
