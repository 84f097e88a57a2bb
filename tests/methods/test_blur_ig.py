"""Blur IG: agreement with PAIR saliency's BlurIG, the blur itself, completeness, targets, inputs, refusals."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from saliency.core.base import INPUT_OUTPUT_GRADIENTS
from saliency.core.blur_ig import BlurIG as ReferenceBlurIG
from saliency.core.blur_ig import gaussian_blur as reference_blur

import tf_ig2
from tf_ig2 import defaults
from tf_ig2.engine.model_view import ModelView, target_scores
from tf_ig2.methods import registry as methods
from tf_ig2.methods.blur_ig import BlurIG, blur_sigmas, gaussian_blur

from conftest import small_cnn

#: Few blur levels do not add up; the warning is tested where it is meant.
pytestmark = pytest.mark.filterwarnings("ignore::tf_ig2.CompletenessWarning")

#: The path and sums are float64 on both sides; only the model's float32 gradients differ in the
#: order of their operations.
RTOL, ATOL = 1e-5, 1e-6


def smooth_cnn(input_shape=(10, 12, 3), classes=3, seed=3):
    """Conv(tanh) -> Conv(softplus) -> flatten -> dense(tanh) -> dense(softmax): smooth everywhere."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(4, 3, activation="tanh", padding="same"),
        keras.layers.Conv2D(4, 3, activation="softplus", strides=2),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(classes, activation="softmax"),
    ])


def reference_blur_ig(model, inputs, targets, **settings):
    """PAIR saliency's ``BlurIG().GetMask`` per input, on the gradient of the pre-softmax target logit."""
    view = ModelView(model, need_representation=False)

    def call_model_function(batch, call_model_args=None, expected_keys=None):
        points = tf.constant(np.asarray(batch, np.float32))
        target = tf.fill([len(batch)], call_model_args["target"])
        with tf.GradientTape() as tape:
            tape.watch(points)
            scores = target_scores(view(points, representation=False)[1], target)
        return {INPUT_OUTPUT_GRADIENTS: tape.gradient(scores, points).numpy()}

    # float64 images, so that the reference's blur and forward difference are float64 as ours are
    return np.stack([ReferenceBlurIG().GetMask(image.astype(np.float64), call_model_function, {"target": int(target)},
                                               **settings) for image, target in zip(inputs, targets)])


@pytest.mark.parametrize("settings", [
    dict(max_sigma=defaults.BLUR_IG_MAX_SIGMA, steps=defaults.BLUR_IG_STEPS, grad_step=defaults.BLUR_IG_GRAD_STEP,
         sqrt=defaults.BLUR_IG_SQRT),
    dict(max_sigma=4.0, steps=24, grad_step=0.01, sqrt=False),
    dict(max_sigma=9.0, steps=17, grad_step=0.05, sqrt=True),
    dict(max_sigma=2.5, steps=7, grad_step=0.2, sqrt=False),
], ids=["defaults", "small", "sqrt", "coarse"])
def test_matches_saliency_blur_ig(rng, settings):
    model = smooth_cnn()
    inputs = rng.uniform(0.0, 1.0, (2, 10, 12, 3)).astype(np.float32)
    targets = np.array([2, 0])
    explanation = BlurIG(model, **settings, batch_size=1).explain(inputs, targets=targets)
    expected = reference_blur_ig(model, inputs, targets, **settings)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(explanation.attributions, expected, rtol=RTOL, atol=ATOL * scale)
    last = blur_sigmas(settings["max_sigma"], settings["steps"], settings["grad_step"], settings["sqrt"])[0][-1]
    blurred = np.stack([reference_blur(image.astype(np.float64), last) for image in inputs])
    np.testing.assert_allclose(explanation.counterfactuals[:, 0], blurred, rtol=1e-6, atol=1e-6)


def test_float32_images_in_the_reference_differ_by_its_own_round_off(rng):
    # Given float32 images, the reference blurs and differences them in float32: dividing by
    # grad_step = 0.01 leaves it about 1e-5 of the attributions' scale from the float64 path.
    model = smooth_cnn()
    inputs = rng.uniform(0.0, 1.0, (1, 10, 12, 3)).astype(np.float32)
    explanation = BlurIG(model, max_sigma=4.0, steps=24).explain(inputs, targets=np.array([1]))
    view = ModelView(model, need_representation=False)

    def call_model_function(batch, call_model_args=None, expected_keys=None):
        points = tf.constant(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(points)
            scores = target_scores(view(points, representation=False)[1], tf.fill([len(batch)], 1))
        return {INPUT_OUTPUT_GRADIENTS: tape.gradient(scores, points).numpy()}

    expected = ReferenceBlurIG().GetMask(inputs[0], call_model_function, max_sigma=4.0, steps=24)
    assert expected.dtype == np.float32
    np.testing.assert_allclose(explanation.attributions[0], expected, atol=1e-4 * np.abs(expected).max())


def test_defaults_are_saliencys():
    import inspect

    reference = inspect.signature(ReferenceBlurIG.GetMask).parameters
    ours = methods.BlurIGSettings()
    for name in ("max_sigma", "steps", "grad_step", "sqrt"):
        assert getattr(ours, name) == reference[name].default, name


@pytest.mark.parametrize("sigma", [0.0, 0.01, 0.124, 0.126, 0.7, 1.9, 6.0, 50.0])
def test_blur_is_scipys_gaussian_filter_with_zeros_outside(rng, sigma):
    images = rng.normal(size=(2, 7, 11, 2))
    ours = gaussian_blur(tf.constant(images), tf.constant(sigma, tf.float64)).numpy()
    expected = np.stack([reference_blur(image, sigma) for image in images])
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_completeness_against_the_blurred_input(rng):
    model = smooth_cnn()
    inputs = rng.uniform(0.0, 1.0, (3, 10, 12, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fine enough: no completeness warning
        explanation = BlurIG(model, max_sigma=5.0, steps=400, grad_step=0.005).explain(inputs)
    assert explanation.method == "blur_ig" and explanation.counterfactuals.shape == (3, 1, 10, 12, 3)
    view = ModelView(model, need_representation=False)
    blurred = tf.constant(explanation.counterfactuals[:, 0])
    scores = target_scores(view(blurred, representation=False)[1], tf.constant(explanation.targets, tf.int32))
    np.testing.assert_allclose(explanation.counterfactual_scores, scores.numpy(), rtol=1e-5, atol=1e-6)
    gap = explanation.target_scores - explanation.counterfactual_scores
    sums = explanation.attributions.reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(explanation.delta, sums - gap, rtol=1e-4, atol=1e-6)
    assert np.all(np.abs(explanation.delta) < 0.02 * np.abs(gap))


def test_coarse_paths_warn_of_incompleteness(rng):
    model = smooth_cnn()
    inputs = rng.uniform(0.0, 1.0, (2, 10, 12, 3)).astype(np.float32)
    advice = r"f\(blurred input\).*try more steps.*adds nothing.*a smaller grad_step"
    with pytest.warns(tf_ig2.CompletenessWarning, match=advice):
        BlurIG(model, max_sigma=20.0, steps=2, grad_step=0.5).explain(inputs)


def test_several_targets_equal_one_call_per_target(rng):
    model = smooth_cnn()
    inputs = rng.uniform(0.0, 1.0, (3, 10, 12, 3)).astype(np.float32)
    targets = np.array([[0, 2], [1, 0], [2, 1]])
    explainer = BlurIG(model, max_sigma=3.0, steps=6, batch_size=2)
    several = explainer.explain(inputs, targets=targets)
    assert several.attributions.shape == (3, 2, 10, 12, 3) and several.delta.shape == (3, 2)
    for column in range(2):
        single = explainer.explain(inputs, targets=targets[:, column])
        np.testing.assert_allclose(several.attributions[:, column], single.attributions, rtol=RTOL, atol=ATOL)
        for field in ("target_scores", "counterfactual_scores", "delta"):
            np.testing.assert_allclose(getattr(several, field)[:, column], getattr(single, field), rtol=RTOL,
                                       atol=ATOL)
    assert explainer.explain(inputs, top_k=2).attributions.shape == (3, 2, 10, 12, 3)


def test_baselines_are_checked_and_not_used(rng):
    model = small_cnn()
    inputs = rng.random((2, 8, 8, 1)).astype(np.float32)
    explainer = BlurIG(model, max_sigma=2.0, steps=4)
    plain = explainer.explain(inputs)
    for baselines in (0.0, rng.random((3, 8, 8, 1)).astype(np.float32)):
        np.testing.assert_array_equal(explainer.explain(inputs, baselines).attributions, plain.attributions)
    with pytest.raises(ValueError, match="`baselines` must match the shape of one input"):
        explainer.explain(inputs, np.zeros((3, 8, 8), np.float32))


def test_several_inputs_blur_the_images_and_hold_the_rest(rng):
    image, vector = keras.Input((6, 6, 2), name="image"), keras.Input((3,), name="vector")
    features = keras.layers.Flatten()(keras.layers.Conv2D(3, 3, activation="tanh")(image))
    joined = keras.layers.Concatenate()([features, keras.layers.Dense(4, activation="tanh")(vector)])
    keras.utils.set_random_seed(1)
    model = keras.Model({"image": image, "vector": vector}, keras.layers.Dense(2)(joined))
    inputs = {"image": rng.random((2, 6, 6, 2)).astype(np.float32), "vector": rng.random((2, 3)).astype(np.float32)}
    settings = dict(max_sigma=3.0, steps=10, grad_step=0.01)
    explanation = BlurIG(model, **settings).explain(inputs, targets=np.array([0, 1]))
    assert np.all(explanation.attributions["vector"] == 0.0)
    np.testing.assert_array_equal(explanation.counterfactuals["vector"][:, 0], inputs["vector"])

    # The image's attributions are those of a one-input model with the vector fixed.
    def with_vector(row):
        fixed = keras.layers.Lambda(lambda x, row=row: {"image": x, "vector": tf.tile(row[None], [tf.shape(x)[0], 1])})
        inner = keras.Input((6, 6, 2))
        return keras.Model(inner, model(fixed(inner)))

    for row in range(2):
        alone = BlurIG(with_vector(tf.constant(inputs["vector"][row])), **settings).explain(
            inputs["image"][row:row + 1], targets=np.array([row]))
        np.testing.assert_allclose(explanation.attributions["image"][row:row + 1], alone.attributions, rtol=RTOL,
                                   atol=ATOL)


@pytest.mark.parametrize("make, message", [
    (lambda rng: rng.random((2, 8, 8)).astype(np.float32), r"needs float inputs of shape \(N, H, W, C\).*"
                                                           r"images\[\.\.\., None\].*Received: inputs of shape "
                                                           r"\(2, 8, 8\)"),
    (lambda rng: rng.random((2, 64)).astype(np.float32), r"Received: inputs of shape \(2, 64\)"),
    (lambda rng: (255 * rng.random((2, 8, 8, 1))).astype(np.uint8), r"uint8.*no `input_layer`.*astype\('float32'\)"),
])
def test_inputs_that_are_not_float_images_are_refused(rng, make, message):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=message):
        BlurIG(model, steps=2).explain(make(rng))


def test_token_ids_are_refused_naming_input_layer():
    tokens = keras.Input((3,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, name="embedding")(tokens)
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.Flatten()(embedded)))
    with pytest.raises(ValueError, match=r"Token ids have no spatial scale to blur, and Blur IG takes no "
                                         r"`input_layer`.*'ig', 'gradient' or 'gradient_input'"):
        BlurIG(model, steps=2).explain(np.array([[1, 2, 3]]))
    with pytest.raises(TypeError, match=r"Unknown option\(s\) \['input_layer'\] for method 'blur_ig'"):
        methods.get_method("blur_ig").build(model, input_layer="embedding")


@pytest.mark.parametrize("options, error, message", [
    ({"max_sigma": 0.0}, ValueError, "`max_sigma` must be a finite number > 0"),
    ({"max_sigma": float("inf")}, ValueError, "`max_sigma` must be a finite number > 0"),
    ({"grad_step": -0.01}, ValueError, "`grad_step` must be a finite number > 0"),
    ({"grad_step": "0.01"}, TypeError, "`grad_step` must be a positive number"),
    ({"steps": 0}, ValueError, "`steps` must be"),
    ({"sqrt": "yes"}, TypeError, "`sqrt` must be True or False"),
    ({"batch_size": 0}, ValueError, "`batch_size` must be"),
    ({"padding_id": 0}, TypeError, r"Unknown option\(s\) \['padding_id'\]"),
])
def test_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        methods.get_method("blur_ig").check_options(options)
