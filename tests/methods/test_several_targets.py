"""Several targets from one call: equal to one call per target, shapes, top-k, refusals."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2 import diagnostics
from tf_ig2.methods.integration_rules import RULES

from conftest import small_cnn

#: Several targets run the same float32 operations as one target per call, only in another order
#: of independent backward passes, so the results agree to a few float32 ulps of the attributions'
#: scale (observed: bit-for-bit on CPU).
RTOL, ATOL = 1e-5, 1e-6

TARGETS = np.array([[0, 2], [1, 0], [2, 1]])


@pytest.fixture(scope="module")
def model():
    return small_cnn()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((3, 8, 8, 1)).astype(np.float32), rng.random((2, 8, 8, 1)).astype(np.float32)


def explainers(model):
    """One explainer per method and IG² rule, few steps."""
    found = {f"ig2-{rule}": tf_ig2.IG2(model, steps=6, integration=rule, segment_points=2) for rule in RULES}
    found["ig2-momentum"] = tf_ig2.IG2(model, steps=6, momentum=0.5)
    found["ig"] = tf_ig2.IntegratedGradients(model, steps=5)
    found["guided_ig"] = tf_ig2.GuidedIG(model, steps=5)
    return found


def explain(explainer, inputs, references, **keywords):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (diagnostics.CompletenessWarning, diagnostics.DegenerateWarning))
        return explainer.explain(inputs, references, **keywords)


def assert_matches_one_per_call(several, singles, names=None):
    """``several`` (T targets) against one explanation per target, field by field."""
    for column, single in enumerate(singles):
        if names is None:
            np.testing.assert_allclose(several.attributions[:, column], single.attributions, rtol=RTOL, atol=ATOL)
        else:
            for name in names:
                np.testing.assert_allclose(several.attributions[name][:, column], single.attributions[name],
                                           rtol=RTOL, atol=ATOL)
        for field in ("target_scores", "counterfactual_scores", "delta"):
            np.testing.assert_allclose(getattr(several, field)[:, column], getattr(single, field),
                                       rtol=RTOL, atol=ATOL)
        for mine, theirs in zip(tf.nest.flatten(several.counterfactuals), tf.nest.flatten(single.counterfactuals)):
            np.testing.assert_array_equal(mine, theirs)  # the path does not depend on the target


@pytest.mark.parametrize("name", ["ig2-left", "ig2-trapezoid", "ig2-midpoint", "ig2-rescaled", "ig2-momentum",
                                  "ig", "guided_ig"])
def test_equals_one_call_per_target(model, data, name):
    explainer = explainers(model)[name]
    inputs, references = data
    several = explain(explainer, inputs, references, targets=TARGETS)
    assert several.attributions.shape == (3, 2, 8, 8, 1)
    for field in ("target_scores", "counterfactual_scores", "delta", "relative_delta", "negligible_gap"):
        assert getattr(several, field).shape == (3, 2), field
    np.testing.assert_array_equal(several.targets, TARGETS)
    assert several.counterfactuals.shape == (3, 2, 8, 8, 1)  # (N, R, *S), shared by the targets
    singles = [explain(explainer, inputs, references, targets=TARGETS[:, column]) for column in range(2)]
    assert_matches_one_per_call(several, singles)
    if name.startswith("ig2"):
        assert several.representation_distance.shape == (3, 2, 2)


def test_rescaled_adds_up_per_target(model, data):
    explanation = explain(tf_ig2.IG2(model, steps=6, integration="rescaled"), *data, targets=TARGETS)
    gap = explanation.target_scores.astype(np.float64) - explanation.counterfactual_scores
    summed = explanation.attributions.reshape(3, 2, -1).sum(axis=-1, dtype=np.float64)
    # each target's segments add up to that target's score change: float32 sums of ~64 terms
    np.testing.assert_allclose(summed, gap, atol=1e-4 * max(1.0, np.abs(gap).max()))


def test_top_k_explains_highest_logits_in_order(model, data):
    inputs, references = data
    kernel, bias = (w.numpy() for w in model.get_layer("logits").weights)
    features = keras.Model(model.inputs[0], model.get_layer("features").output)(inputs).numpy()
    scores = features @ kernel + bias
    expected = np.argsort(-scores, axis=1)[:, :2]
    explainer = tf_ig2.IG2(model, steps=4)
    by_keyword = explain(explainer, inputs, references, top_k=2)
    np.testing.assert_array_equal(by_keyword.targets, expected)
    assert np.all(np.diff(by_keyword.target_scores, axis=1) <= 0)  # highest first
    by_string = explain(explainer, inputs, references, targets="top-2")
    np.testing.assert_array_equal(by_string.attributions, by_keyword.attributions)
    one = explain(explainer, inputs, references, top_k=1)
    assert one.attributions.shape == (3, 1, 8, 8, 1)  # top_k always has the target axis
    predicted = explain(explainer, inputs, references)
    np.testing.assert_allclose(one.attributions[:, 0], predicted.attributions, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["ig2-left", "ig", "guided_ig"])
def test_callable_returning_several_scores(model, data, name):
    explainer = explainers(model)[name]
    inputs, references = data

    def two(outputs):
        return tf.stack([outputs[:, 2], outputs[:, 0] - outputs[:, 1]], axis=1)

    def first(outputs):
        return outputs[:, 2]

    def second(outputs):
        return outputs[:, 0] - outputs[:, 1]

    several = explain(explainer, inputs, references, targets=two)
    assert several.targets is None and several.attributions.shape == (3, 2, 8, 8, 1)
    singles = [explain(explainer, inputs, references, targets=function) for function in (first, second)]
    assert_matches_one_per_call(several, singles)
    for targets in (TARGETS, TARGETS[:, 0]):
        explain(explainer, inputs, references, targets=targets)
    count = explainer.tracing_count
    for targets in (two, TARGETS, TARGETS[:, 0], two):
        explain(explainer, inputs, references, targets=targets)
    assert explainer.tracing_count == count  # one function per width, traced once


def test_one_target_keeps_its_shapes(model, data):
    explainer = tf_ig2.IG2(model, steps=4)
    for targets in (None, 1, [0, 1, 2], np.array([2, 2, 0]), lambda outputs: outputs[:, :1]):
        explanation = explain(explainer, *data, targets=targets)
        assert explanation.attributions.shape == (3, 8, 8, 1)
        assert explanation.delta.shape == explanation.target_scores.shape == (3,)


def two_input_model():
    keras.utils.set_random_seed(1)
    image = keras.Input((4, 4, 1), name="image")
    extra = keras.Input((3,), name="extra")
    hidden = keras.layers.Concatenate()([keras.layers.Flatten()(image), extra])
    hidden = keras.layers.Dense(8, activation="tanh", name="features")(hidden)
    return keras.Model({"image": image, "extra": extra}, keras.layers.Dense(3, name="logits")(hidden))


@pytest.mark.parametrize("method", ["ig2-trapezoid", "ig2-midpoint", "ig", "guided_ig"])
def test_several_inputs(method):
    model = two_input_model()
    rng = np.random.default_rng(1)
    inputs = {"image": rng.random((2, 4, 4, 1)).astype(np.float32), "extra": rng.random((2, 3)).astype(np.float32)}
    references = {"image": rng.random((2, 4, 4, 1)).astype(np.float32), "extra": rng.random((2, 3)).astype(np.float32)}
    explainer = explainers(model)[method]
    targets = np.array([[2, 0, 1], [1, 2, 0]])
    several = explain(explainer, inputs, references, targets=targets)
    assert several.attributions["image"].shape == (2, 3, 4, 4, 1)
    assert several.attributions["extra"].shape == (2, 3, 3)
    singles = [explain(explainer, inputs, references, targets=targets[:, column]) for column in range(3)]
    assert_matches_one_per_call(several, singles, names=["image", "extra"])


@pytest.mark.parametrize("method", ["ig2", "ig", "guided_ig"])
def test_token_ids_through_an_embedding(method):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(12, 4, name="embedding"),
                              keras.layers.Flatten(), keras.layers.Dense(6, activation="tanh", name="features"),
                              keras.layers.Dense(3, name="logits")])
    ids = np.array([[3, 4, 5, 0, 0], [7, 1, 2, 9, 0]], np.int32)
    references = np.zeros((1, 5), np.int32)
    kind = {"ig2": lambda: tf_ig2.IG2(model, steps=5, input_layer="embedding"),
            "ig": lambda: tf_ig2.IntegratedGradients(model, steps=5, input_layer="embedding"),
            "guided_ig": lambda: tf_ig2.GuidedIG(model, steps=5, input_layer="embedding")}[method]
    explainer = kind()
    several = explain(explainer, ids, references, targets="top-3")
    assert several.attributions.shape == (2, 3, 5)  # per token
    np.testing.assert_array_equal(several.attributions[:, :, 3:][0], 0.0)  # padding never moves
    singles = [explain(explainer, ids, references, targets=several.targets[:, column]) for column in range(3)]
    assert_matches_one_per_call(several, singles)


def test_ig2_function_and_batch_size(model, data):
    inputs, references = data
    whole = explain(tf_ig2.IG2(model, steps=4), inputs, references, targets=TARGETS)
    chunked = explain(tf_ig2.IG2(model, steps=4, batch_size=4), inputs, references, targets=TARGETS)
    np.testing.assert_allclose(chunked.attributions, whole.attributions, rtol=RTOL, atol=ATOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        functional = tf_ig2.ig2(model, inputs, references, top_k=2, steps=4)
    assert functional.attributions.shape == (3, 2, 8, 8, 1)


def test_path_is_shared(model, data):
    explanation = explain(tf_ig2.IG2(model, steps=4), *data, targets=TARGETS, return_path=True)
    assert explanation.path.shape == (3, 2, 5, 8, 8, 1)


@pytest.mark.parametrize("targets, top_k, error, words", [
    ("top-4", None, ValueError, "at most the number of classes"),
    (None, 4, ValueError, "at most the number of classes"),
    (None, 0, ValueError, "positive int"),
    (None, 2.0, TypeError, "positive int"),
    ("top-0", None, ValueError, "K >= 1"),
    ("best-2", None, TypeError, "'top-K'"),
    (lambda outputs: outputs, None, ValueError, "(the model output itself)"),
    ("top-2", 2, ValueError, "not both"),
    (1, 2, ValueError, "targets=None"),
    (np.zeros((2, 2), np.int64), None, ValueError, "N = 3"),
    (np.zeros((3, 0), np.int64), None, ValueError, "T >= 1"),
    (np.array([[0.0, 1.0]] * 3), None, TypeError, "(N, T) ints"),
    (np.array([[0, 3]] * 3), None, ValueError, "class indices in [0, 2]"),
    (np.zeros((3, 2, 1), np.int64), None, ValueError, "(3, T)"),
    (lambda outputs: tf.stack([outputs] * 2, axis=1), None, ValueError, "(N, T) scores"),
])
def test_bad_forms_are_refused(model, data, targets, top_k, error, words):
    explainer = tf_ig2.IG2(model, steps=2)
    with pytest.raises(error) as raised:
        explainer.explain(*data, targets=targets, top_k=top_k)
    assert words in str(raised.value)


def test_diagnostics_with_target_axis(model, data):
    explanation = explain(tf_ig2.IG2(model, steps=4), *data, targets=TARGETS)
    value = diagnostics.median_relative_delta(explanation)
    assert np.isfinite(value)
    assert value == pytest.approx(float(np.nanmedian(explanation.relative_delta)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warned = diagnostics.warn_if_incomplete(explanation, "advice", "GradCF", threshold=0.0)
    assert warned and "over 3 input(s)" in str(caught[0].message)
    flat = dict(explanation.__dict__)
    flat["counterfactual_scores"] = explanation.target_scores.copy()
    flat["counterfactual_scores"][0, 1] += 1.0  # one (input, target) pair keeps a gap
    degenerate = tf_ig2.Explanation(**flat)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert diagnostics.warn_if_degenerate(degenerate, "GradCF")
    assert "5 of 6 (input, target) pair(s)" in str(caught[0].message)
    results = {"target_scores": np.ones((3, 2, 2)), "counterfactual_scores": np.ones((3, 2, 2)),
               "attributions": np.ones((3, 2, 2, 4))}
    results["attributions"][1, 0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="explained input 1 towards reference 0"):
        diagnostics.check_finite(results, end_name="GradCF", input_names=["x"])
    assert "<table>" in explanation._repr_html_()


def test_select_target_gives_each_targets_single_explanation(model, data):
    inputs, references = data
    explainer = tf_ig2.IG2(model, steps=6)
    several = explainer.explain(inputs, references, np.tile([[2, 0]], (len(inputs), 1)))
    assert several.target_count == 2
    for column, target in enumerate((2, 0)):
        chosen = several.select_target(column)
        alone = explainer.explain(inputs, references, target)
        assert chosen.target_count is None and chosen.attributions.shape == inputs.shape
        np.testing.assert_array_equal(chosen.targets, alone.targets)
        np.testing.assert_allclose(chosen.attributions, alone.attributions, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(chosen.delta, alone.delta, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"`index` must be an int in \[-2, 2\). Received: index=2"):
        several.select_target(2)
    with pytest.raises(ValueError, match="needs an explanation of several targets"):
        several.select_target(0).select_target(0)


def test_pictures_and_reports_take_one_target_and_say_so(model, data):
    # (The command line's output folder writes several targets: tests/cli/test_cli_several_targets.py.)
    from tf_ig2.visualize import explanation_panels

    inputs, references = data
    several = tf_ig2.IG2(model, steps=6).explain(inputs, references, top_k=2)
    for call in (lambda: explanation_panels(several, inputs),):
        with pytest.raises(ValueError, match=r"takes one target per input; this explanation has 2. Pass "
                                             r"explanation.select_target\(j\)"):
            call()
    assert explanation_panels(several.select_target(1), inputs).shape[0] == len(inputs)
