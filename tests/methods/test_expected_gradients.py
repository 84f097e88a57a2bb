"""Expected Gradients: an independent loop, the linear closed form, completeness in expectation, seeds,
batching, several targets and inputs, token ids, refusals."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2.cli.wording import command_line_wording
from tf_ig2.methods import registry
from tf_ig2.methods.expected_gradients import ExpectedGradients

from conftest import small_cnn

#: The method against the independent loop, or against itself with other batching: the same float32
#: operations on other batch compositions, summed in another order (observed: a few 1e-8).
RTOL, ATOL = 1e-5, 1e-6


def documented_draws(seed, samples, pool_size):
    """The draws as the module documents them, written out here rather than imported."""
    generator = np.random.default_rng(seed)
    indices = generator.integers(0, pool_size, size=samples)
    alphas = generator.random(samples).astype(np.float32)
    return indices, alphas


def quiet_explain(explainer, *arguments, **keywords):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (tf_ig2.CompletenessWarning, tf_ig2.DegenerateWarning))
        return explainer.explain(*arguments, **keywords)


def oracle(score, inputs, pools, targets, seed, samples):
    """Plain eager Expected Gradients: one tf.GradientTape per (input, draw) point.

    Args:
        score: ``score(points, n, target) -> ()``, the target score of one point (a list, one
            ``(1, *S_i)`` tensor per model input) of input n.
        inputs: A list with one ``(N, *S_i)`` array per model input.
        pools: A list with one ``(N, R, *S_i)`` array per model input.
        targets: ``(N,)`` class indices.

    Returns:
        ``(attributions per input (N, *S_i), f(x) (N,), mean f(x') (N,), mean x' per input (N, *S_i))``.
    """
    count, pool_size = len(inputs[0]), pools[0].shape[1]
    indices, alphas = documented_draws(seed, samples, pool_size)
    attributions = [np.zeros(x.shape, np.float64) for x in inputs]
    scores, reference_scores = np.zeros(count), np.zeros(count)
    means = [np.zeros(x.shape, np.float64) for x in inputs]
    for n in range(count):
        x = [tf.constant(values[n:n + 1]) for values in inputs]
        scores[n] = float(score(x, n, targets[n]))
        for j, alpha in zip(indices, alphas):
            reference = [tf.constant(pool[n, j][None]) for pool in pools]
            reference_scores[n] += float(score(reference, n, targets[n])) / samples
            point = [r + alpha * (start - r) for start, r in zip(x, reference)]
            with tf.GradientTape() as tape:
                tape.watch(point)
                value = score(point, n, targets[n])
            gradients = tape.gradient(value, point)
            for index, (start, r, gradient) in enumerate(zip(x, reference, gradients)):
                attributions[index][n] += ((start - r) * gradient).numpy()[0] / samples
                means[index][n] += r.numpy()[0] / samples
    return attributions, scores, reference_scores, means


@pytest.fixture(scope="module")
def logits_cnn():
    return small_cnn(softmax=False, seed=3)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((3, 8, 8, 1)).astype(np.float32), rng.random((4, 8, 8, 1)).astype(np.float32)


# -- (a) the independent loop ------------------------------------------------------------------------
@pytest.mark.parametrize("per_input", [False, True], ids=["shared_pool", "per_input_pools"])
def test_equals_an_independent_loop_with_the_same_draws(logits_cnn, data, per_input):
    inputs, pool = data
    if per_input:
        pool = np.stack([pool, pool[::-1] * 0.5, pool + 0.25])
    targets = np.array([0, 2, 1])
    explanation = quiet_explain(ExpectedGradients(logits_cnn, samples=12, seed=7, batch_size=5), inputs, pool,
                                targets)
    pools = pool if per_input else np.broadcast_to(pool, (3,) + pool.shape)

    def score(points, n, target):
        return logits_cnn(points[0], training=False)[0, target]

    (attributions,), scores, reference_scores, (means,) = oracle(score, [inputs], [pools], targets, 7, 12)
    np.testing.assert_allclose(explanation.attributions, attributions, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.target_scores, scores, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.counterfactual_scores, reference_scores, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.counterfactuals[:, 0], means, rtol=RTOL, atol=ATOL)
    assert explanation.counterfactuals.shape == (3, 1, 8, 8, 1)
    delta = explanation.attributions.reshape(3, -1).sum(axis=1, dtype=np.float64) - (scores - reference_scores)
    np.testing.assert_allclose(explanation.delta, delta, rtol=1e-4, atol=1e-5)
    assert explanation.method == "eg" and np.array_equal(explanation.targets, targets)


# -- (b) the linear closed form ----------------------------------------------------------------------
def linear_model(features=6, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(classes, name="logits")])


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_exact_on_a_linear_model_for_any_draws(seed):
    model = linear_model()
    weights, bias = (np.asarray(value, np.float64) for value in model.get_layer("logits").get_weights())
    rng = np.random.default_rng(seed + 100)
    inputs, pool = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(5, 6)).astype(np.float32)
    targets = np.array([0, 1, 2, 1])
    explanation = ExpectedGradients(model, samples=9, seed=seed).explain(inputs, pool, targets)
    indices, _ = documented_draws(seed, 9, 5)
    drawn_mean = pool[indices].astype(np.float64).mean(axis=0)  # the alphas do not matter
    expected = weights[:, targets].T * (inputs - drawn_mean)
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(explanation.counterfactuals[:, 0], np.broadcast_to(drawn_mean, inputs.shape),
                               rtol=1e-6, atol=1e-6)
    # f(mean of the drawn references) is the counterfactual score, and the sums add up exactly.
    np.testing.assert_allclose(explanation.counterfactual_scores, drawn_mean @ weights[:, targets] + bias[targets],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-5)


def test_linear_model_with_a_pool_of_one_is_its_ig():
    model = linear_model()
    weights = model.get_layer("logits").get_weights()[0]
    rng = np.random.default_rng(3)
    inputs, pool = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(1, 6)).astype(np.float32)
    explanation = ExpectedGradients(model, samples=5).explain(inputs, pool, 2)
    np.testing.assert_allclose(explanation.attributions, weights[:, 2] * (inputs - pool[0]), rtol=1e-5, atol=1e-6)


# -- (c) completeness in expectation -----------------------------------------------------------------
def smooth_mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(12, activation="tanh"),
                             keras.layers.Dense(8, activation="softplus"), keras.layers.Dense(2, name="logits")])


def test_completeness_holds_in_expectation():
    model = smooth_mlp()
    rng = np.random.default_rng(4)
    inputs, pool = 2 * rng.normal(size=(6, 5)).astype(np.float32), 2 * rng.normal(size=(8, 5)).astype(np.float32)
    # Each seed's draws are independent of the others'; the inputs of one call share them, so one
    # call gives one independent value: its mean gap over the inputs. (Each seed is an explainer,
    # traced anew: 30 of them keep the test at a few seconds.)
    gaps, relative = [], []
    for seed in range(30):
        explanation = quiet_explain(ExpectedGradients(model, samples=4, seed=seed), inputs, pool, 0)
        gaps.append(float(np.mean(explanation.delta, dtype=np.float64)))
        relative.append(float(np.median(explanation.relative_delta)))
    gaps = np.asarray(gaps)
    error = gaps.std(ddof=1) / np.sqrt(len(gaps))
    assert abs(gaps.mean()) < 4 * error, (gaps.mean(), error)
    # Not vacuous: each call's gap is a real Monte Carlo error (far above float32 round-off), which
    # averaging over the 30 independent calls shrinks.
    assert np.median(relative) > 0.01 and gaps.std(ddof=1) > 1e3 * np.finfo(np.float32).eps
    assert error < gaps.std(ddof=1) / 5


def test_the_gap_falls_with_more_samples():
    model = smooth_mlp(seed=1)
    rng = np.random.default_rng(5)
    inputs, pool = 2 * rng.normal(size=(20, 5)).astype(np.float32), 2 * rng.normal(size=(8, 5)).astype(np.float32)
    few, many = (quiet_explain(ExpectedGradients(model, samples=samples), inputs, pool, 1).delta
                 for samples in (4, 256))
    # 64 times the draws: the root mean square gap falls by about 8.
    assert np.sqrt(np.mean(many ** 2)) < np.sqrt(np.mean(few ** 2)) / 4


def test_completeness_warning_names_more_samples():
    model = smooth_mlp()
    rng = np.random.default_rng(6)
    inputs, pool = 3 * rng.normal(size=(4, 5)).astype(np.float32), 3 * rng.normal(size=(6, 5)).astype(np.float32)
    with pytest.warns(tf_ig2.CompletenessWarning, match=r"only in expectation.*samples='4'") as caught:
        ExpectedGradients(model, samples=1, seed=2).explain(inputs, pool, 0)
    message = str(caught[0].message)
    assert "--samples 4" in command_line_wording(message) and "f(reference)" in message


# -- (d) seeds -----------------------------------------------------------------------------------------
def test_same_seed_same_result_other_seed_other_result(logits_cnn, data):
    inputs, pool = data
    first = quiet_explain(ExpectedGradients(logits_cnn, samples=6, seed=3), inputs, pool)
    again = quiet_explain(ExpectedGradients(logits_cnn, samples=6, seed=3), inputs, pool)
    other = quiet_explain(ExpectedGradients(logits_cnn, samples=6, seed=4), inputs, pool)
    for field in ("attributions", "counterfactuals", "target_scores", "counterfactual_scores", "delta"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.allclose(first.attributions, other.attributions)
    np.testing.assert_array_equal(first.target_scores, other.target_scores)


def test_an_input_does_not_depend_on_the_others_of_its_call(logits_cnn, data):
    inputs, pool = data
    explainer = ExpectedGradients(logits_cnn, samples=6)
    together = quiet_explain(explainer, inputs, pool, 1)
    alone = quiet_explain(explainer, inputs[2:], pool, 1)
    np.testing.assert_allclose(alone.attributions[0], together.attributions[2], rtol=RTOL, atol=ATOL)


# -- (e) batch size ------------------------------------------------------------------------------------
def test_batch_size_changes_nothing_but_round_off(logits_cnn, data):
    inputs, pool = data
    results = {size: quiet_explain(ExpectedGradients(logits_cnn, samples=7, batch_size=size), inputs, pool, 2)
               for size in (1, 3, None)}
    for size in (1, 3):
        for field in ("attributions", "counterfactuals", "target_scores", "counterfactual_scores", "delta"):
            np.testing.assert_allclose(getattr(results[size], field), getattr(results[None], field),
                                       rtol=RTOL, atol=ATOL)


def test_repeated_calls_do_not_retrace(logits_cnn, data):
    inputs, pool = data
    explainer = ExpectedGradients(logits_cnn, samples=5, batch_size=4)
    quiet_explain(explainer, inputs, pool, 0)
    traced = explainer.tracing_count
    quiet_explain(explainer, inputs[:2], pool[:3], np.array([1, 2]))
    quiet_explain(explainer, inputs, pool[:1], 1)
    assert explainer.tracing_count == traced


# -- (f) several targets, several inputs, token ids ----------------------------------------------------
def test_several_targets_equal_one_call_per_target(logits_cnn, data):
    inputs, pool = data
    explainer = ExpectedGradients(logits_cnn, samples=6, batch_size=4)
    targets = np.array([[0, 2], [1, 0], [2, 1]])
    several = quiet_explain(explainer, inputs, pool, targets)
    assert several.attributions.shape == (3, 2, 8, 8, 1) and several.delta.shape == (3, 2)
    for column in range(2):
        single = quiet_explain(explainer, inputs, pool, targets[:, column])
        np.testing.assert_allclose(several.attributions[:, column], single.attributions, rtol=RTOL, atol=ATOL)
        for field in ("target_scores", "counterfactual_scores", "delta"):
            np.testing.assert_allclose(getattr(several, field)[:, column], getattr(single, field),
                                       rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(several.counterfactuals, single.counterfactuals)
    top = quiet_explain(explainer, inputs, pool, top_k=2)
    assert top.attributions.shape == (3, 2, 8, 8, 1)


def two_input_model():
    keras.utils.set_random_seed(1)
    image = keras.Input((4, 4, 1), name="image")
    extra = keras.Input((3,), name="extra")
    hidden = keras.layers.Concatenate()([keras.layers.Flatten()(image), extra])
    hidden = keras.layers.Dense(8, activation="tanh", name="features")(hidden)
    return keras.Model({"image": image, "extra": extra}, keras.layers.Dense(3, name="logits")(hidden))


def test_several_inputs_equal_the_independent_loop():
    model = two_input_model()
    rng = np.random.default_rng(1)
    inputs = {"image": rng.random((2, 4, 4, 1)).astype(np.float32), "extra": rng.random((2, 3)).astype(np.float32)}
    pool = {"image": rng.random((3, 4, 4, 1)).astype(np.float32), "extra": rng.random((3, 3)).astype(np.float32)}
    targets = np.array([2, 0])
    explanation = quiet_explain(ExpectedGradients(model, samples=8, seed=5, batch_size=3), inputs, pool, targets)
    assert explanation.attributions["image"].shape == (2, 4, 4, 1)
    assert explanation.attributions["extra"].shape == (2, 3)

    def score(points, n, target):
        return model({"image": points[0], "extra": points[1]}, training=False)[0, target]

    names = ["image", "extra"]
    pools = [np.broadcast_to(pool[name], (2,) + pool[name].shape) for name in names]
    attributions, scores, reference_scores, means = oracle(score, [inputs[name] for name in names], pools, targets,
                                                           5, 8)
    for name, expected, mean in zip(names, attributions, means):
        np.testing.assert_allclose(explanation.attributions[name], expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(explanation.counterfactuals[name][:, 0], mean, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.counterfactual_scores, reference_scores, rtol=RTOL, atol=ATOL)
    several = quiet_explain(ExpectedGradients(model, samples=8, seed=5), inputs, pool, np.array([[2, 1], [0, 1]]))
    np.testing.assert_allclose(several.attributions["extra"][:, 0], explanation.attributions["extra"],
                               rtol=RTOL, atol=ATOL)


def test_token_ids_move_in_the_embedding_space():
    keras.utils.set_random_seed(2)
    embedding = keras.layers.Embedding(12, 4, name="embedding")
    head = [keras.layers.Flatten(), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(3, name="logits")]
    model = keras.Sequential([keras.Input((5,), dtype="int32"), embedding, *head])
    ids = np.array([[3, 4, 5, 0, 0], [7, 1, 2, 9, 0]], np.int32)
    pool = np.array([[0, 0, 0, 0, 0], [6, 6, 6, 6, 6], [11, 2, 0, 8, 1]], np.int32)
    targets = np.array([1, 2])
    explainer = ExpectedGradients(model, samples=10, seed=9, batch_size=7, input_layer="embedding")
    explanation = quiet_explain(explainer, ids, pool, targets)
    assert explanation.attributions.shape == (2, 5)  # per token
    np.testing.assert_array_equal(explanation.attributions[0, 3:], 0.0)  # padding never moves
    np.testing.assert_array_equal(explanation.attributions[1, 4:], 0.0)

    def score(points, n, target):
        value = points[0]
        for layer in head:
            value = layer(value)
        return value[0, target]

    embedded = embedding(ids).numpy()
    references = np.stack([embedding(pool).numpy()] * 2)  # (N, R, L, D)
    padding = (ids == 0)[:, None, :, None]
    references = np.where(padding, embedded[:, None], references)  # padding keeps the input's embedding
    (expected,), scores, reference_scores, (means,) = oracle(score, [embedded], [references], targets, 9, 10)
    np.testing.assert_allclose(explanation.attributions, expected.sum(axis=-1), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.target_scores, scores, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.counterfactual_scores, reference_scores, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(explanation.counterfactuals[:, 0], means, rtol=RTOL, atol=ATOL)
    several = quiet_explain(explainer, ids, pool, "top-2")
    assert several.attributions.shape == (2, 2, 5)


# -- (g) refusals and the registry ---------------------------------------------------------------------
@pytest.mark.parametrize("options, error, words", [
    ({"samples": 0}, ValueError, r"`samples` must be an integer >= 1\. Received: samples=0"),
    ({"samples": 2.5}, TypeError, r"`samples` must be an integer >= 1"),
    ({"seed": 1.5}, TypeError, r"`seed` must be an int >= 0 .*Received: seed=1\.5"),
    ({"seed": "0"}, TypeError, r"`seed` must be an int"),
    ({"seed": True}, TypeError, r"`seed` must be an int"),
    ({"seed": -1}, ValueError, r"`seed` must be an int >= 0"),
    ({"batch_size": 0}, ValueError, r"`batch_size` must be an integer >= 1"),
    ({"padding_id": "0"}, TypeError, r"`padding_id` must be None or an int"),
])
def test_bad_options_are_refused_clearly(options, error, words):
    with pytest.raises(error, match=words):
        ExpectedGradients(small_cnn(), **options)
    with pytest.raises(error, match=words):
        registry.get_method("eg").check_options(options)


def test_bad_references_are_refused(logits_cnn, data):
    inputs, _ = data
    explainer = ExpectedGradients(logits_cnn, samples=2)
    with pytest.raises(ValueError, match="references"):
        explainer.explain(inputs, 0.0)
    with pytest.raises(ValueError, match="references"):
        explainer.explain(inputs, np.zeros((4, 4), np.float32))


def test_a_non_finite_reference_score_names_the_pool_reference():
    inputs_layer = keras.Input((2,))
    model = keras.Model(inputs_layer, keras.layers.Dense(2)(keras.layers.Lambda(tf.math.log)(inputs_layer)))
    pool = np.array([[1.0, 2.0], [-1.0, 1.0], [3.0, 1.0]], np.float32)
    explainer = ExpectedGradients(model, samples=30)
    with pytest.raises(ValueError, match=r"reference of explained input 0 with reference 1 .*not finite"):
        explainer.explain(np.ones((2, 2), np.float32), pool, 0)


def test_registry_entry():
    entry = registry.get_method("eg")
    assert entry.explainer is ExpectedGradients and entry.reference_keyword == "references"
    assert entry.references_required and not entry.scalar_reference
    settings = entry.check_options({})
    assert settings.samples == tf_ig2.defaults.EXPECTED_GRADIENTS_SAMPLES == 200
    assert settings.seed == tf_ig2.defaults.EXPECTED_GRADIENTS_SEED == 0
    explainer = entry.build(small_cnn(), samples=3, seed=np.int64(2))
    assert explainer.samples == 3 and explainer.seed == 2 and isinstance(explainer.seed, int)
