"""What an explanation says about itself: negligible score gaps, non-finite values, dead inputs, completeness."""

import warnings

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2 import diagnostics
from tf_ig2.cli import output as cli_output
from tf_ig2.explanation import Explanation, negligible_gap
from tf_ig2.methods import registry as methods
from tf_ig2.visualize import markup, report

STEPS = 8


def build(name, model, **options):
    """The registered method ``name``'s explainer, with ``STEPS`` path steps or Monte Carlo samples if it has them."""
    method = methods.get_method(name)
    few = {key: STEPS for key in ("steps", "samples") if key in method.settings.names()}
    return method.build(model, **few, **options)


#: Methods that claim no completeness: no score-gap or completeness warning.
NO_COMPLETENESS = ("gradient", "gradient_input")


#: Methods that explain images only: the models of four features below get a (2, 2, 1) image front.
IMAGES_ONLY = ("blur_ig",)


def model_for(name, model):
    """``model`` as method ``name`` takes it: behind a (2, 2, 1) image input for Blur IG."""
    if name not in IMAGES_ONLY:
        return model
    image = keras.Input((2, 2, 1), name=model.inputs[0].name)
    return keras.Model(image, model(keras.layers.Reshape((4,))(image)))


def arrays_for(name, *arrays):
    """Arrays of four features as method ``name`` takes them: (2, 2, 1) images for Blur IG."""
    if name not in IMAGES_ONLY:
        return arrays
    return tuple(np.reshape(array, np.shape(array)[:-1] + (2, 2, 1)) for array in arrays)


def explain(name, model, inputs, references, **options):
    """Explains with the registered method ``name``; returns the explanation and the warnings given."""
    model, (inputs, references) = model_for(name, model), arrays_for(name, inputs, references)
    explainer = build(name, model, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explanation = explainer.explain(inputs, references, 0)
    return explainer, explanation, caught


def of_kind(caught, kind):
    return [warning for warning in caught if issubclass(warning.category, kind)]


def constant_model():
    """Scores every input the same: an untrained network at its extreme."""
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="zeros")])


@pytest.fixture
def inputs():
    return np.random.default_rng(0).uniform(0.6, 1.0, (3, 4)).astype(np.float32)


def test_negligible_gap_follows_its_definition():
    # Relative: 1e-4 of the larger score; absolute: 1e-6.
    start = np.array([1.0, 1.0, 1e-12, 1e-5, -3.0, 100.0])
    end = np.array([1.0 + 5e-5, 1.001, 0.0, 0.0, -3.0, 100.02])
    np.testing.assert_array_equal(negligible_gap(start, end), [True, False, True, False, True, False])


@pytest.mark.parametrize("name", sorted(set(methods.METHODS) - set(NO_COMPLETENESS)))
def test_a_constant_model_warns_once_and_reports_nan(name, inputs):
    explainer, explanation, caught = explain(name, constant_model(), inputs, np.zeros((2, 4), np.float32))
    degenerate = of_kind(caught, tf_ig2.DegenerateWarning)
    assert len(degenerate) == 1 and len(caught) == 1, [str(warning.message) for warning in caught]
    message = str(degenerate[0].message)
    assert "3 of 3 input(s)" in message and methods.METHODS[name].end_name in message and "trained" in message
    assert degenerate[0].filename == __file__  # points at the caller's line
    assert np.all(np.isnan(explanation.relative_delta)) and np.all(explanation.negligible_gap)
    assert np.isnan(diagnostics.median_relative_delta(explanation))  # the callback's scalar
    assert markup.caption(explanation, 0)[1].endswith("no score change to attribute")
    with warnings.catch_warnings(record=True) as again:  # once per explainer
        warnings.simplefilter("always")
        explainer.explain(*arrays_for(name, inputs, np.zeros((2, 4), np.float32)), 0)
    assert not again


@pytest.mark.parametrize("name", NO_COMPLETENESS)
def test_methods_without_completeness_report_nan_and_only_name_dead_inputs(name, inputs):
    # A constant model has a zero gradient: no score-gap warning, which does not apply, but the
    # input no gradient reaches is named, once per explainer.
    explainer, explanation, caught = explain(name, constant_model(), inputs, np.zeros((2, 4), np.float32))
    assert [warning.category for warning in caught] == [tf_ig2.DegenerateWarning]
    assert "No gradient of the target score reaches model input(s)" in str(caught[0].message)
    assert caught[0].filename == __file__
    # The gradient's delta is NaN (no completeness); gradient x input's is the Taylor remainder (0 here).
    assert np.all(np.isnan(explanation.delta) if name == "gradient" else explanation.delta == 0.0)
    assert np.all(np.isnan(explanation.relative_delta)) and np.isnan(diagnostics.median_relative_delta(explanation))
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        explainer.explain(inputs, np.zeros((1, 4), np.float32), 0)
    assert not again


def test_the_report_and_summary_say_there_is_no_score_change():
    found = cli_output.records(2, targets=np.array([0, 1]), scores=np.array([1.0, 2.0], np.float32),
                               gradcf_scores=np.array([1.0, 1.0], np.float32), deltas=np.array([0.0, -0.5], np.float32),
                               distances=None)
    assert found[0]["relative_delta"] is None and found[1]["relative_delta"] == pytest.approx(0.5)
    page = report.report_html({"method": "ig"}, found)
    assert page.split("<h2>Inputs</h2>")[1].count("no score change to attribute") == 1


def test_relative_delta_is_the_ratio_where_the_gap_is_real():
    explanation = Explanation(attributions=np.ones((2, 3), np.float32), counterfactuals=None,
                              target_scores=np.array([4.0, 1.0], np.float32),
                              counterfactual_scores=np.array([0.0, 1.0], np.float32),
                              delta=np.array([-1.0, 3.0], np.float32), method="ig")
    np.testing.assert_allclose(explanation.relative_delta[0], 0.25)
    assert np.isnan(explanation.relative_delta[1])
    assert diagnostics.median_relative_delta(explanation) == pytest.approx(0.25)


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_non_finite_scores_name_the_input(name, inputs):
    # log(x - 0.5) is NaN for x < 0.5: the second input has a feature there.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: keras.ops.log(x - 0.5)),
                              keras.layers.Dense(2)])
    inputs[1, 2] = 0.2
    with pytest.raises(ValueError, match="score of explained input 1 is not finite"):
        explain(name, model, inputs, np.full((2, 4), 0.9, np.float32))


@pytest.mark.parametrize("name", ["ig", "guided_ig"])
def test_non_finite_scores_at_a_baseline_name_the_baseline(name, inputs):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: keras.ops.log(x)),
                              keras.layers.Dense(2)])
    baselines = np.full((2, 4), 0.5, np.float32)
    baselines[1, 0] = 0.0
    with pytest.raises(ValueError, match="at the baseline of explained input 0 with reference 1"):
        explain(name, model, inputs, baselines)


def test_non_finite_gradients_on_the_path_are_named(inputs):
    # sqrt(|x|) is finite everywhere but its gradient at 0, where the straight line starts.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: keras.ops.sqrt(keras.ops.abs(x))),
                              keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="gradient of the target score was not finite.*explained input 0 towards "
                                         "reference 0"):
        explain("ig", model, inputs, np.zeros((1, 4), np.float32))


def integer_cast_model():
    """A model that rounds its inputs to integers: no gradient reaches them."""
    features = keras.Input((4,), name="counts")
    rounded = keras.layers.Lambda(lambda x: keras.ops.cast(keras.ops.cast(10.0 * x, "int32"), "float32"))(features)
    return keras.Model(features, keras.layers.Dense(2, kernel_initializer="ones")(rounded))


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_inputs_no_gradient_reaches_are_named(name, inputs):
    _, explanation, caught = explain(name, integer_cast_model(), inputs, np.zeros((2, 4), np.float32))
    degenerate = [str(warning.message) for warning in of_kind(caught, tf_ig2.DegenerateWarning)]
    assert np.all(explanation.attributions == 0.0)
    # IG² does not move at all (its distance has no gradient either): no score change. The
    # straight-line methods move, and their gradient is zero: the input is named.
    expected = "hardly changes" if name == "ig2" else "No gradient of the target score reaches model input(s) " \
                                                      "['counts']"
    assert len(degenerate) == 1 and expected in degenerate[0], degenerate


def test_every_method_warns_of_incompleteness():
    # f = relu(x - 0.9) from 0 to 1: the trapezoid rule with 2 points gives 0.5 for a gap of 0.1.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                    bias_initializer=keras.initializers.Constant(-0.9),
                                                                    activation="relu")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explanation = tf_ig2.IntegratedGradients(model, steps=2).explain(np.ones((1, 1), np.float32), 0.0, 0)
    np.testing.assert_allclose(explanation.delta, [0.4], atol=1e-6)
    incomplete = of_kind(caught, tf_ig2.CompletenessWarning)
    assert len(incomplete) == 1 and "more steps" in str(incomplete[0].message)
    assert "f(baseline)" in str(incomplete[0].message)


@pytest.mark.parametrize("name", sorted(set(methods.METHODS) - set(IMAGES_ONLY)))  # Blur IG refuses token ids
@pytest.mark.parametrize("ids, message", [
    (np.array([[1, 2, -1]]), "token ids must be >= 0. Received: minimum -1"),
    (np.array([[1.0, 2.5, 3.0]], np.float32), "whole token ids"),
    (np.array([[1, 2, 10]]), "token ids must be below the vocabulary size of the embedding layer 'embedding' \\(10\\). "
                             "Received: maximum 10"),
])
def test_token_ids_out_of_range_are_refused(name, ids, message):
    tokens = keras.Input((3,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, name="embedding")(tokens)
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.Flatten()(embedded)))
    explainer = build(name, model, input_layer="embedding")
    good = np.array([[1, 2, 3]], ids.dtype)
    with pytest.raises(ValueError, match="`inputs`.* " + message):
        explainer.explain(ids, np.zeros((1, 3), ids.dtype), 0)
    with pytest.raises(ValueError, match=message):  # references too
        explainer.explain(good, ids[None], 0)


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_a_callable_target_of_the_wrong_shape_is_refused_clearly(name, inputs):
    model = model_for(name, keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))
    inputs, zeros = arrays_for(name, inputs, np.zeros((2, 4), np.float32))
    explainer = build(name, model)
    with pytest.raises(ValueError, match=r"one score per input, shape \(N,\). Received: scores of shape \(2, 3\)"):
        explainer.explain(inputs, zeros, lambda outputs: outputs)
    with pytest.raises(ValueError, match="callable `targets` failed on the model output: IndexError"):
        explainer.explain(inputs, zeros, lambda outputs: [][0])
    explanation = explainer.explain(inputs, zeros, lambda outputs: outputs[:, 1:2])
    assert explanation.attributions.shape == inputs.shape


@pytest.mark.parametrize("make", [lambda x: (row for row in x), lambda x: iter(x),
                                  lambda x: __import__("tensorflow").data.Dataset.from_tensor_slices(x).batch(2)])
def test_streams_of_inputs_point_to_explain_dataset(make, inputs):
    explainer = tf_ig2.IntegratedGradients(constant_model(), steps=STEPS)
    with pytest.raises(TypeError, match="`inputs` must be an array or tensor holding all its rows.*explain_dataset"):
        explainer.explain(make(inputs), 0.0)


@pytest.mark.parametrize("value_range", [("0", "1"), (False, True), (0.0, "1")])
def test_value_ranges_of_strings_or_booleans_are_refused_clearly(value_range):
    with pytest.raises(TypeError, match=r"`value_range` must be a pair \(low, high\) of numbers.*Received: "
                                        r"value_range\[[01]\]="):
        tf_ig2.IG2(constant_model(), value_range=value_range)


def test_several_inputs_with_different_reference_counts_are_refused():
    image, vector = keras.Input((4, 4, 1), name="image"), keras.Input((3,), name="vector")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), vector])
    model = keras.Model([image, vector], keras.layers.Dense(2)(joined))
    inputs = {"image": np.ones((2, 4, 4, 1), np.float32), "vector": np.ones((2, 3), np.float32)}
    references = {"image": np.zeros((2, 4, 4, 1), np.float32), "vector": np.zeros((3, 3), np.float32)}
    for name in sorted(methods.METHODS):
        with pytest.raises(ValueError, match=r"same number R of references.*'image': 2, 'vector': 3"):
            build(name, model).explain(inputs, references, 0)
