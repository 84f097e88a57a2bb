"""The callbacks' ``smooth``: attributions smoothed by the noise tunnel, logged and read back."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2 import defaults
from tf_ig2.callbacks import AttributionCallback, IG2Callback

from conftest import digits, read_run

SHOWN, STEPS = 3, 6
VARGRAD = {"kind": "vargrad", "samples": 3, "noise": 0.1, "seed": 2}


def digits_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="tanh", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, name="logits"),
    ])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def pictures(event):
    return np.stack([tf.io.decode_png(value).numpy() for value in tf.make_ndarray(event.tensor_proto)[2:]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch with a VarGrad-over-IG callback and a SmoothGrad-over-IG² callback."""
    log_dir = str(tmp_path_factory.mktemp("logs"))
    images, labels = digits()
    shown = (images[:SHOWN], labels[:SHOWN])
    callbacks = {
        "vargrad": AttributionCallback("ig", shown, references=0.0, output_dir=log_dir, name="ig_vargrad",
                                       steps=STEPS, smooth=VARGRAD),
        "smoothgrad": IG2Callback(shown, images[labels == 0][:2], output_dir=log_dir, steps=STEPS,
                                  value_range=(0.0, 1.0), smooth={"samples": 2, "noise": 0.05}),
    }
    model = digits_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(images[:200], labels[:200], epochs=1, batch_size=64, verbose=0, callbacks=list(callbacks.values()))
    return dict(callbacks, model=model, images=images, labels=labels,
                warnings=[str(item.message) for item in caught if issubclass(item.category, RuntimeWarning)])


def test_logged_panels_are_the_smoothed_explanation(trained):
    """The logged panels are those of tf_ig2.smooth over the same method at the model's final weights."""
    assert not trained["warnings"], trained["warnings"]
    callback, model = trained["vargrad"], trained["model"]
    images, labels = trained["images"][:SHOWN], trained["labels"][:SHOWN]
    explainer = tf_ig2.IntegratedGradients(model, steps=STEPS)
    smoothed = tf_ig2.smooth(explainer, **VARGRAD).explain(images, baselines=0.0, targets=labels)
    expected, scalars = callback.summaries(smoothed)
    accumulator = read_run(callback.run_dir)
    for tag in ("ig_vargrad/panels", "ig_vargrad/overlay", "ig_vargrad/grid"):
        np.testing.assert_array_equal(pictures(accumulator.Tensors(tag)[-1]), expected[tag])
    plain, _ = callback.summaries(explainer.explain(images, 0.0, labels))
    assert not np.array_equal(plain["ig_vargrad/panels"], expected["ig_vargrad/panels"])
    logged = accumulator.Tags()["tensors"]
    assert "ig_vargrad/target_score" in logged
    assert not [tag for tag in logged if "completeness" in tag]  # variances add up to no score gap
    assert float(tf.make_ndarray(accumulator.Tensors("ig_vargrad/target_score")[-1].tensor_proto)) == pytest.approx(
        scalars["ig_vargrad/target_score"], rel=1e-6)
    assert callback.smooth.as_dict() == VARGRAD


def test_smoothgrad_logs_its_completeness(trained):
    callback = trained["smoothgrad"]
    assert callback.smooth.kind == defaults.SMOOTH_KIND and callback.smooth.samples == 2
    logged = read_run(callback.run_dir).Tags()["tensors"]
    assert {"ig2/completeness_delta", "ig2/relative_completeness_delta", "ig2/representation_distance",
            "ig2/panels"} <= set(logged)
    traced = callback.explainer.tracing_count
    explanation = callback.explain()  # the noisy copies go through the compiled function traced in training
    assert callback.explainer.tracing_count == traced
    assert np.all(np.isfinite(explanation.delta)) and explanation.method == "ig2"


def test_callback_smooth_is_checked_in_the_constructor():
    images, labels = digits()
    shown = (images[:2], labels[:2])
    string = AttributionCallback("ig", shown, references=0.0, smooth="smoothgrad_sq")
    assert string.smooth.as_dict() == {"kind": "smoothgrad_sq", "samples": defaults.CALLBACK_SMOOTH_SAMPLES,
                                       "noise": defaults.SMOOTH_NOISE, "seed": defaults.SMOOTH_SEED}
    assert AttributionCallback("ig", shown, references=0.0).smooth is None
    with pytest.raises(ValueError, match="Received: samples=0"):
        AttributionCallback("ig", shown, references=0.0, smooth={"samples": 0})
    with pytest.raises(ValueError, match="Received: kind='blur'"):
        AttributionCallback("ig", shown, references=0.0, smooth="blur")
    with pytest.raises(TypeError, match=r"unknown key\(s\) \['sigma'\]"):
        AttributionCallback("ig", shown, references=0.0, smooth={"sigma": 0.1})
    with pytest.raises(TypeError, match="Received: smooth=3"):
        AttributionCallback("ig", shown, references=0.0, smooth=3)
    ids = np.ones((2, 5), np.int32)
    with pytest.raises(ValueError, match="`smooth` adds Gaussian noise to float inputs"):
        AttributionCallback("ig", (ids, np.array([0, 1])), references=np.zeros((1, 5), np.int32),
                            input_layer="embedding", smooth="vargrad")
