"""The model view: logits from softmax and sigmoid heads (nested too), several inputs, token ids,
tf_keras models, threads, and a model that is never changed."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2.engine import layer_hooks
from tf_ig2.engine.model_view import ModelView

from conftest import small_cnn

EXPLAINERS = {
    "ig2": lambda model, **kw: tf_ig2.IG2(model, steps=6, **kw),
    "ig": lambda model, **kw: tf_ig2.IntegratedGradients(model, steps=6, **kw),
    "guided_ig": lambda model, **kw: tf_ig2.GuidedIG(model, steps=6, **kw),
}


def explain(name, model, inputs, references, targets=None, **options):
    explainer = EXPLAINERS[name](model, **options)
    return explainer.explain(inputs, references, targets)


def head_model(units, activation, *, separate_layer=False, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="tanh", name="hidden")(inputs)
    if separate_layer:
        logits = keras.layers.Dense(units, name="head")(hidden)
        outputs = keras.layers.Activation(activation, name="squash")(logits)
    else:
        outputs = keras.layers.Dense(units, activation=activation, name="head")(hidden)
    return keras.Model(inputs, outputs)


def logits_of(model, inputs):
    """The head's pre-activation, computed by hand from the weights."""
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)(inputs).numpy()
    kernel, bias = (weight.numpy() for weight in model.get_layer("head").weights)
    return hidden @ kernel + bias


def snapshot(model):
    return ([weight.numpy().copy() for weight in model.weights],
            [(layer.name, getattr(getattr(layer, "activation", None), "__name__", None)) for layer in model.layers])


def assert_unchanged(model, before, inputs, predictions):
    weights, activations = snapshot(model)
    for old, new in zip(before[0], weights):
        np.testing.assert_array_equal(old, new)
    assert activations == before[1]
    assert not any(layer_hooks.is_hooked(layer) for layer in tf_ig2.engine.model_graph.all_layers(model))
    np.testing.assert_allclose(model.predict(inputs, verbose=0), predictions, rtol=1e-6, atol=1e-7)


# -- sigmoid heads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("separate_layer", [False, True])
@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_binary_sigmoid_head_is_scored_as_two_logits(method, separate_layer, rng):
    model = head_model(1, "sigmoid", separate_layer=separate_layer)
    inputs = rng.normal(size=(6, 5)).astype(np.float32)
    z = logits_of(model, inputs)[:, 0]
    before, predictions = snapshot(model), model.predict(inputs, verbose=0)
    references = np.zeros((1, 5), np.float32)
    predicted = explain(method, model, inputs, references)
    np.testing.assert_array_equal(predicted.targets, (z > 0).astype(np.int64))
    np.testing.assert_allclose(predicted.target_scores, np.abs(z), rtol=1e-5, atol=1e-5)
    negative = explain(method, model, inputs, references, targets=0)
    positive = explain(method, model, inputs, references, targets=1)
    np.testing.assert_allclose(negative.target_scores, -z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(positive.target_scores, z, rtol=1e-5, atol=1e-5)
    if method != "ig2":  # the same straight path: the negative class's attributions are the opposite
        np.testing.assert_allclose(negative.attributions, -positive.attributions, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"targets.*\[0, 1\]"):
        explain(method, model, inputs, references, targets=2)
    assert_unchanged(model, before, inputs, predictions)


def test_multi_label_sigmoid_head_scores_the_label_logit(rng):
    model = head_model(3, "sigmoid")
    inputs = rng.normal(size=(4, 5)).astype(np.float32)
    explanation = tf_ig2.IntegratedGradients(model, steps=32).explain(inputs, 0.0, targets=2)
    np.testing.assert_allclose(explanation.target_scores, logits_of(model, inputs)[:, 2], rtol=1e-5, atol=1e-5)
    assert explanation.targets.tolist() == [2] * 4


# -- nested models ---------------------------------------------------------------------------------

def nested_application(classes=4, seed=0):
    """A whole 'application' (conv base + pooled features + softmax head) nested after preprocessing."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 3))
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(
        keras.layers.Conv2D(5, 3, activation="relu", name="conv")(image))
    predictions = keras.layers.Dense(classes, activation="softmax", name="predictions")(features)
    application = keras.Model(image, predictions, name="application")
    outer_input = keras.Input((8, 8, 3))
    outputs = application(keras.layers.Rescaling(1 / 255.0, name="rescale")(outer_input))
    return keras.Model(outer_input, outputs), application


def test_nested_application_is_scored_as_logits_with_its_penultimate_representation(rng):
    model, application = nested_application()
    explainer = tf_ig2.IG2(model, steps=4)
    assert explainer.representation == "input of layer 'predictions'"
    images = rng.uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    pooled = keras.Model(application.inputs, application.get_layer("avg_pool").output)(images / 255.0).numpy()
    kernel, bias = (weight.numpy() for weight in application.get_layer("predictions").weights)
    logits = pooled @ kernel + bias
    explanation = explainer.explain(images, rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32))
    np.testing.assert_allclose(explanation.target_scores, logits.max(axis=1), rtol=1e-5, atol=1e-5)
    assert application.get_layer("predictions").activation.__name__ == "softmax"


def test_unstrippable_softmax_warning_names_what_it_found(rng):
    class Probabilities(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3, name="scores")

        def call(self, inputs):
            return tf.nn.softmax(self.dense(inputs))

    model = Probabilities()
    model(np.zeros((1, 4), np.float32))
    with pytest.warns(UserWarning, match="comes from layer 'scores' \\(Dense, activation 'linear'\\)"):
        tf_ig2.IntegratedGradients(model, steps=4).explain(rng.random((2, 4)).astype(np.float32))


# -- several inputs --------------------------------------------------------------------------------

def two_input_models(seed=0):
    """The same function as a two-input model and as a one-input model on the concatenation."""
    keras.utils.set_random_seed(seed)
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")
    head = keras.layers.Dense(3, activation="softmax", name="head")
    first, second = keras.Input((2, 2), name="image"), keras.Input((3,), name="vector")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(first), second])
    several = keras.Model([first, second], head(hidden(joined)))
    flat = keras.Input((7,))
    single = keras.Model(flat, head(hidden(flat)))
    return several, single


def split(values):
    return [values[..., :4].reshape(values.shape[:-1] + (2, 2)), values[..., 4:]]


@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_several_inputs_equal_the_concatenated_model(method, rng):
    several, single = two_input_models()
    inputs = rng.random((3, 7)).astype(np.float32)
    references = rng.random((2, 7)).astype(np.float32)
    options = {"value_range": [(0.0, 1.0), (-1.0, 2.0)]} if method == "ig2" else {}
    single_options = {"value_range": (np.array([0.0] * 4 + [-1.0] * 3, np.float32),
                                      np.array([1.0] * 4 + [2.0] * 3, np.float32))} if method == "ig2" else {}
    joint = explain(method, several, split(inputs), split(references), **options)
    alone = explain(method, single, inputs, references, **single_options)
    assert isinstance(joint.attributions, list) and joint.attributions[0].shape == (3, 2, 2)
    assert joint.attributions[1].dtype == np.float32
    np.testing.assert_allclose(np.concatenate([joint.attributions[0].reshape(3, 4), joint.attributions[1]], 1),
                               alone.attributions, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([joint.counterfactuals[0].reshape(3, 2, 4), joint.counterfactuals[1]], 2),
                               alone.counterfactuals, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(joint.delta, alone.delta, rtol=1e-4, atol=1e-5)


def test_dict_inputs_come_back_as_dicts_and_a_single_dict_input_works(rng):
    keras.utils.set_random_seed(0)
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    kernel = keras.layers.Dense(1, name="linear")
    model = keras.Model({"a": a, "b": b}, kernel(keras.layers.Concatenate()([a, b])))
    inputs = {"a": rng.random((4, 3)).astype(np.float32), "b": rng.random((4, 2)).astype(np.float32)}
    baselines = {"a": np.zeros((1, 3), np.float32), "b": np.ones((1, 2), np.float32)}
    explanation = tf_ig2.IntegratedGradients(model, steps=8).explain(inputs, baselines, targets=0)
    weights = kernel.kernel.numpy()[:, 0]
    np.testing.assert_allclose(explanation.attributions["a"], weights[:3] * inputs["a"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(explanation.attributions["b"], weights[3:] * (inputs["b"] - 1), rtol=1e-5, atol=1e-6)
    assert "attributions={'a'" in repr(explanation)
    with pytest.raises(ValueError, match=r"`inputs` must be a dict with keys \['a', 'b'\]"):
        tf_ig2.IntegratedGradients(model).explain({"a": inputs["a"]}, 0.0)
    with pytest.raises(TypeError, match="for a model with 2 inputs"):
        tf_ig2.IntegratedGradients(model).explain(inputs["a"], 0.0)

    only = keras.Input((3,), name="only")
    single = keras.Model({"only": only}, keras.layers.Dense(2)(only))
    result = tf_ig2.IG2(single, steps=4).explain({"only": inputs["a"]}, {"only": inputs["a"][:2]})
    assert result.attributions.shape == (4, 3)


def test_integer_input_without_input_layer_is_refused(rng):
    ids = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(20, 4, name="embedding")(ids)
    model = keras.Model(ids, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(embedded)))
    tokens = rng.integers(1, 20, (3, 5))
    for name in EXPLAINERS:
        with pytest.raises(ValueError, match="input_layer='embedding'"):
            explain(name, model, tokens.astype(np.float32), np.zeros((1, 5), np.float32))


@pytest.mark.parametrize("method", ["ig", "guided_ig"])
def test_input_layer_for_ig_and_guided_ig(method, rng):
    keras.utils.set_random_seed(0)
    ids = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(30, 4, name="embedding")(ids)
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Dense(4, activation="tanh")(embedded))
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(pooled))
    tokens = np.array([[3, 4, 5, 0, 0, 0], [7, 8, 9, 10, 11, 12]], np.int32)
    explanation = explain(method, model, tokens, np.zeros((1, 6), np.int32), input_layer="embedding")
    assert explanation.attributions.shape == tokens.shape
    assert np.all(explanation.attributions[tokens == 0] == 0.0)
    assert np.all(np.abs(explanation.attributions[tokens != 0]) > 0)


# -- error messages --------------------------------------------------------------------------------

def test_unknown_layer_lists_are_capped():
    layers = [keras.Input((4,))] + [keras.layers.Dense(4, name=f"dense_number_{i}") for i in range(80)]
    model = keras.Sequential(layers)
    with pytest.raises(ValueError) as error:
        tf_ig2.IG2(model, representation_layer="dense_number_7x")
    message = str(error.value)
    assert "... and 50 more" in message and "'dense_number_7'" in message and len(message) < 1200


def test_keras_2_model_from_tf_keras_is_accepted():
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Dense(6, activation="tanh", input_shape=(5,), name="hidden"),
                                 tf_keras.layers.Dense(3, activation="softmax", name="head")])
    inputs = np.random.default_rng(0).random((4, 5)).astype(np.float32)
    hidden = np.tanh(inputs @ model.layers[0].kernel.numpy() + model.layers[0].bias.numpy())
    logits = hidden @ model.layers[1].kernel.numpy() + model.layers[1].bias.numpy()
    predictions = model.predict(inputs, verbose=0)
    for name in EXPLAINERS:
        explanation = explain(name, model, inputs, np.zeros((1, 5), np.float32), targets=1)
        np.testing.assert_allclose(explanation.target_scores, logits[:, 1], rtol=1e-5, atol=1e-5)
        assert np.all(np.isfinite(explanation.attributions))
    assert tf_ig2.IG2(model).representation == "input of layer 'head'"
    assert model.layers[1].activation.__name__ == "softmax" and "call" not in model.layers[1].__dict__
    np.testing.assert_allclose(model.predict(inputs, verbose=0), predictions, rtol=1e-6)


def test_not_a_keras_model_is_refused():
    with pytest.raises(TypeError, match="must be a Keras model.*Received: builtins.str"):
        tf_ig2.IG2("model.keras")


# -- threads ---------------------------------------------------------------------------------------

def test_threads_give_serial_results_and_leave_the_model_alone(rng):
    model = small_cnn(classes=3, softmax=True, seed=3)
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    references = rng.random((2, 8, 8, 1)).astype(np.float32)
    before, predictions = snapshot(model), model.predict(inputs, verbose=0)
    serial = {name: explain(name, model, inputs, references).attributions for name in EXPLAINERS}
    results, errors, stop = {}, [], threading.Event()

    def worker(index):
        try:
            for name in sorted(EXPLAINERS):
                results[(index, name)] = explain(name, model, inputs, references).attributions
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def predictor():
        while not stop.is_set():
            seen = model.predict(inputs, verbose=0)
            if not np.allclose(seen, predictions, rtol=1e-5, atol=1e-6):
                errors.append(AssertionError(f"model.predict changed during explanations: {seen[0]}"))
            direct = model(inputs, training=False).numpy()
            if not np.allclose(direct.sum(axis=1), 1.0, atol=1e-5):
                errors.append(AssertionError("model(x) returned logits during explanations"))

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
    watcher = threading.Thread(target=predictor)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert not errors, errors[:3]
    for (_index, name), attributions in results.items():
        np.testing.assert_allclose(attributions, serial[name], rtol=1e-5, atol=1e-6)
    assert len(results) == 4 * len(EXPLAINERS)
    assert_unchanged(model, before, inputs, predictions)


def test_hooks_are_invisible_to_other_threads():
    model = small_cnn()
    layer = model.get_layer("logits")
    view = ModelView(model)
    inside, outside = threading.Event(), threading.Event()
    seen = {}

    def other():
        inside.wait()
        seen["other"] = model(np.zeros((1, 8, 8, 1), np.float32)).numpy()
        outside.set()

    thread = threading.Thread(target=other)
    thread.start()
    with layer_hooks.active(view._hooks(None, representation=True)):
        assert layer_hooks.is_hooked(layer)
        mine = model(np.zeros((1, 8, 8, 1), np.float32)).numpy()
        inside.set()
        outside.wait()
    thread.join()
    assert not layer_hooks.is_hooked(layer) and "call" not in layer.__dict__
    assert abs(seen["other"].sum() - 1.0) < 1e-5  # probabilities for the other thread
    assert abs(mine.sum() - 1.0) > 1e-3  # logits in the hooked thread


def test_callback_serves_a_tf_keras_fit(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1)),
                                 tf_keras.layers.Flatten(), tf_keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    images = np.random.default_rng(0).random((6, 8, 8, 1)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    callback = tf_ig2.callbacks.IG2Callback((images[:2], labels[:2]), references=images[2:3], steps=3,
                                            output_dir=str(tmp_path))
    model.fit(images, labels, epochs=2, verbose=0, callbacks=[callback])
    events = list((tmp_path / "ig2").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
