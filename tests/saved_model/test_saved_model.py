"""Saved-model explainer: loading .keras, .h5 and SavedModel folders, and explaining them.

References are computed independently with ``tf_ig2.ig2`` on the in-memory model; the two must
agree to float32 round-off, since loading changes no weight.
"""

import os
import warnings
import zipfile

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2.saved_model import explain as saved_model

from conftest import small_cnn

STEPS = 8
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One seeded CNN (softmax and logits variants) saved in every supported format."""
    folder = tmp_path_factory.mktemp("models")
    model = small_cnn(seed=1)
    logits_model = small_cnn(softmax=False, seed=1)
    paths = {
        "keras": str(folder / "cnn.keras"),
        "h5": str(folder / "cnn.h5"),
        "saved_model": str(folder / "cnn_saved_model"),
        "two_outputs": str(folder / "two_outputs"),
    }
    model.save(paths["keras"])
    model.save(paths["h5"])
    logits_model.export(paths["saved_model"], verbose=False)
    two = keras.Model(logits_model.inputs, {"features": logits_model.get_layer("features").output,
                                            "logits": logits_model.get_layer("logits").output})
    two.export(paths["two_outputs"], verbose=False)
    rng = np.random.default_rng(3)
    data = {
        "inputs": rng.random((4, 8, 8, 1)).astype(np.float32),
        "references": rng.random((3, 8, 8, 1)).astype(np.float32),
    }
    return {"model": model, "logits_model": logits_model, "paths": paths, "folder": folder, **data}


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_keras_files_match_the_in_memory_model(saved, kind):
    loaded = saved_model.load_model(saved["paths"][kind])
    assert isinstance(loaded, keras.Model)
    np.testing.assert_allclose(loaded.predict(saved["inputs"], verbose=0),
                               saved["model"].predict(saved["inputs"], verbose=0), **TOLERANCE)
    explanation = saved_model.explain_saved_model(saved["paths"][kind], saved["inputs"], saved["references"],
                                                  steps=STEPS)
    expected = tf_ig2.ig2(saved["model"], saved["inputs"], saved["references"], steps=STEPS)
    np.testing.assert_allclose(explanation.attributions, expected.attributions, **TOLERANCE)
    np.testing.assert_allclose(explanation.counterfactuals, expected.counterfactuals, **TOLERANCE)
    np.testing.assert_array_equal(explanation.targets, expected.targets)
    assert explanation.representation == expected.representation == "input of layer 'logits'"


def test_saved_model_uses_the_model_output_as_representation(saved):
    explanation = saved_model.explain_saved_model(saved["paths"]["saved_model"], saved["inputs"],
                                                  saved["references"], targets=1, steps=STEPS)
    expected = tf_ig2.ig2(saved["logits_model"], saved["inputs"], saved["references"], targets=1, steps=STEPS,
                          representation_layer="output")
    np.testing.assert_allclose(explanation.attributions, expected.attributions, **TOLERANCE)
    np.testing.assert_allclose(explanation.representation_distance, expected.representation_distance, **TOLERANCE)
    assert explanation.representation.startswith("model output: SavedModel signature 'serving_default'")
    assert explanation.attributions.shape == saved["inputs"].shape
    assert explanation.counterfactuals.shape == (4, 3, 8, 8, 1)


def test_saved_model_named_features_output(saved):
    path = saved["paths"]["two_outputs"]
    explanation = saved_model.explain_saved_model(path, saved["inputs"], saved["references"], steps=STEPS,
                                                  representation_layer="features")
    expected = tf_ig2.ig2(saved["logits_model"], saved["inputs"], saved["references"], steps=STEPS,
                          representation_layer="features")
    np.testing.assert_allclose(explanation.attributions, expected.attributions, **TOLERANCE)
    np.testing.assert_allclose(explanation.representation_distance, expected.representation_distance, **TOLERANCE)
    assert explanation.representation == "SavedModel signature 'serving_default' output 'features'"
    with pytest.raises(ValueError, match="several outputs.*'logits'"):
        saved_model.explain_saved_model(path, saved["inputs"], saved["references"], steps=STEPS)
    with pytest.raises(ValueError, match="names no output.*Available.*'features'"):
        saved_model.explain_saved_model(path, saved["inputs"], saved["references"], steps=STEPS,
                                        representation_layer="conv", output_name="logits")


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
@pytest.mark.parametrize("method", ["ig", "guided_ig"])
def test_other_methods_through_the_registry_equal_their_explainers(saved, kind, method):
    explainers = {"ig": tf_ig2.IntegratedGradients, "guided_ig": tf_ig2.GuidedIG}
    options = {"ig": dict(steps=STEPS, rule="midpoint"), "guided_ig": dict(steps=STEPS, fraction=0.5)}[method]
    model = saved["model"] if kind == "keras" else saved["logits_model"]
    expected = explainers[method](model, **options).explain(saved["inputs"], 0.0, targets=2)
    explanation = saved_model.explain_saved_model(saved["paths"][kind], saved["inputs"], 0.0, targets=2,
                                                  method=method, **options)
    assert explanation.method == method and explanation.representation is None
    assert explanation.representation_distance is None
    np.testing.assert_allclose(explanation.attributions, expected.attributions, **TOLERANCE)
    np.testing.assert_allclose(explanation.counterfactuals, np.zeros((4, 1, 8, 8, 1), np.float32))
    # Per-input baselines in groups of batch_size pairs: the same numbers.
    baselines = saved["references"][None].repeat(4, axis=0)
    grouped = saved_model.explain_model(saved_model.load_model(saved["paths"][kind]), saved["inputs"], baselines,
                                        method=method, batch_size=3, **options)
    ungrouped = explainers[method](model, **options).explain(saved["inputs"], baselines)
    np.testing.assert_allclose(grouped.attributions, ungrouped.attributions, **TOLERANCE)


@pytest.mark.parametrize("targets", ["top-2", np.array([[2, 0], [1, 2], [0, 1], [2, 1]])], ids=["top-2", "(N, T)"])
def test_several_targets_per_input_in_groups_equal_the_explainer(saved, targets):
    model = saved_model.load_model(saved["paths"]["keras"])
    explanation = saved_model.explain_model(model, saved["inputs"], saved["references"], targets, steps=STEPS,
                                            batch_size=2)
    expected = tf_ig2.IG2(model, steps=STEPS, batch_size=2).explain(saved["inputs"], saved["references"], targets)
    assert explanation.target_count == 2 and explanation.attributions.shape == (4, 2, 8, 8, 1)
    np.testing.assert_array_equal(explanation.targets, expected.targets)
    np.testing.assert_allclose(explanation.attributions, expected.attributions, rtol=0, atol=1e-7)
    np.testing.assert_allclose(explanation.delta, expected.delta, rtol=0, atol=1e-7)


def test_batched_explanation_is_identical_and_reports_progress(saved):
    model = saved_model.load_model(saved["paths"]["keras"])
    calls = []
    explanation = saved_model.explain_model(model, saved["inputs"], saved["references"], steps=STEPS,
                                            batch_size=2, progress=lambda done, total: calls.append((done, total)))
    expected = tf_ig2.IG2(model, steps=STEPS, batch_size=2).explain(saved["inputs"], saved["references"])
    np.testing.assert_allclose(explanation.attributions, expected.attributions, rtol=0, atol=1e-7)
    np.testing.assert_allclose(explanation.delta, expected.delta, rtol=0, atol=1e-7)
    # R=3 references and 2 pairs per batch: groups of lcm(3, 2) / 3 = 2 inputs.
    assert calls == [(2, 4), (4, 4)]


@pytest.mark.parametrize("make, message", [
    (lambda folder: folder / "missing.keras", "does not exist"),
    (lambda folder: folder, "not a SavedModel"),
    (lambda folder: folder / "notes.txt", "Unknown model format"),
    (lambda folder: folder / "broken.keras", "not a readable .keras file: a .keras model is a zip archive"),
    (lambda folder: folder / "other.keras", "Could not load the Keras model"),
    (lambda folder: folder / "broken.h5", "Could not load the Keras model"),
    (lambda folder: folder / "corrupt", "Could not load the SavedModel"),
])
def test_bad_model_paths(tmp_path, make, message):
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "saved_model.pb").write_bytes(b"\x00garbage")
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:  # a zip archive, but no Keras model
        archive.writestr("notes.txt", "not a model")
    (tmp_path / "broken.h5").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=message):
        saved_model.load_model(make(tmp_path))


def test_shapes_are_checked_before_any_work(saved, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the explainer was built before the shape check")

    from tf_ig2.methods import ig2 as gradpath

    monkeypatch.setattr(gradpath, "IG2", fail)
    wrong = np.zeros((2, 9, 8, 1), np.float32)
    for kind in ("keras", "saved_model"):
        with pytest.raises(ValueError, match=r"expects inputs of shape \(N, 8, 8, 1\).*\(2, 9, 8, 1\)"):
            saved_model.explain_saved_model(saved["paths"][kind], wrong, wrong[:1], steps=STEPS)


def test_argument_errors(saved):
    path = saved["paths"]["keras"]
    with pytest.raises(ValueError, match="Available layers: 'conv', 'flatten', 'features', 'logits'"):
        saved_model.explain_saved_model(path, saved["inputs"], saved["references"], representation_layer="nope")
    with pytest.raises(TypeError, match=r"Unknown option\(s\) \['step'\] for method 'ig2'"):
        saved_model.explain_saved_model(path, saved["inputs"], saved["references"], step=3)
    with pytest.raises(TypeError, match=r"Unknown option\(s\) \['representation_layer'\] for method 'ig'"):
        saved_model.explain_saved_model(path, saved["inputs"], 0.0, method="ig", representation_layer="features")
    with pytest.raises(ValueError, match="`method` must be one of"):
        saved_model.explain_saved_model(path, saved["inputs"], saved["references"], method="smoothgrad")
    with pytest.raises(TypeError, match="`return_path` is for methods that return their path"):
        saved_model.explain_saved_model(path, saved["inputs"], 0.0, method="guided_ig", return_path=True)
    with pytest.raises(TypeError, match="`path` must be a path"):
        saved_model.load_model(3)
    with pytest.raises(ValueError, match="`signature` names no signature.*'serving_default'"):
        saved_model.load_model(saved["paths"]["saved_model"], signature="nope")


def test_safe_mode_refuses_lambda_layers_unless_turned_off(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda tensor: tensor * 2.0),
                              keras.layers.Dense(2)])
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        saved_model.load_model(path)
    loaded = saved_model.load_model(path, safe_mode=False)
    values = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(loaded.predict(values, verbose=0), model.predict(values, verbose=0), **TOLERANCE)


def test_model_format(saved, tmp_path):
    assert saved_model.model_format(saved["paths"]["keras"]) == "keras"
    assert saved_model.model_format(saved["paths"]["h5"]) == "h5"
    assert saved_model.model_format(saved["paths"]["saved_model"]) == "saved_model"
    assert saved_model.model_format(os.path.join(saved["paths"]["saved_model"], "saved_model.pb")) == "saved_model"


def test_token_models_pass_their_options_through(tmp_path):
    keras.utils.set_random_seed(0)
    ids = keras.Input((5,), dtype="int32")
    hidden = keras.layers.Embedding(12, 3, name="embedding")(ids)
    hidden = keras.layers.Dense(4, activation="tanh", name="features")(keras.layers.Flatten()(hidden))
    model = keras.Model(ids, keras.layers.Dense(2, name="logits")(hidden))
    path = str(tmp_path / "tokens.keras")
    model.save(path)
    tokens = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [9, 9, 1, 0, 0]], np.int32)
    references = np.array([[10, 11, 0, 0, 0], [2, 2, 2, 2, 2]], np.int32)
    explanation = saved_model.explain_saved_model(path, tokens, references, steps=STEPS, input_layer="embedding",
                                                  padding_id=0, batch_size=2)
    expected = tf_ig2.IG2(model, steps=STEPS, input_layer="embedding", padding_id=0,
                          batch_size=2).explain(tokens, references)
    np.testing.assert_allclose(explanation.attributions, expected.attributions, **TOLERANCE)
    assert explanation.attributions.shape == tokens.shape
    assert np.all(explanation.attributions[tokens == 0] == 0.0)


def test_plain_tensorflow_saved_model(tmp_path):
    import tensorflow as tf

    class Scores(tf.Module):
        def __init__(self, batch):
            super().__init__()
            self.weights = tf.Variable(np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3))
            self.serve = tf.function(self.scores, input_signature=[tf.TensorSpec([batch, 4], tf.float32)])

        def scores(self, values):
            return {"scores": tf.matmul(tf.tanh(values), self.weights)}

    inputs = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    references = np.zeros((2, 4), np.float32)
    for batch in (None, 1):
        module = Scores(batch)
        tf.saved_model.save(module, str(tmp_path / f"module_{batch}"), signatures={"serving_default": module.serve})
    explanation = saved_model.explain_saved_model(tmp_path / "module_None", inputs, references, steps=64)
    # The reported delta is the attributions' sum minus the score gap, to float32 accumulation.
    gap = explanation.target_scores - explanation.counterfactual_scores
    np.testing.assert_allclose(explanation.attributions.sum(axis=1) - gap, explanation.delta, atol=1e-5)
    assert explanation.representation == "model output: SavedModel signature 'serving_default' output 'scores'"
    # Completeness of the trapezoid rule on this smooth model: along a straight step of length h in
    # direction u (|u| = 1), g(t) = sum_i W_ic tanh(x_i + t u_i) has |g'''| <= 2 max|W| sum_i |u_i|^3
    # <= 2 (|tanh'''| <= 2, |W| <= 1), so each step errs by at most h^3 / 6; "auto" steps are
    # h = 2 |x - x_r| / k long. The bound holds whatever way round-off bends the path.
    steps = 64
    trapezoid = saved_model.explain_saved_model(tmp_path / "module_None", inputs, references, steps=steps,
                                                integration="trapezoid")
    lengths = 2.0 * np.linalg.norm(inputs[:, None] - references[None], axis=-1) / steps  # (N, R)
    bound = (steps * lengths ** 3 / 6.0).mean(axis=1)
    assert np.all(np.abs(trapezoid.delta) <= bound + 1e-5), (trapezoid.delta, bound)
    with pytest.raises(ValueError, match="only accepts batches of exactly 1 rows.*batch_size=1"):
        saved_model.explain_saved_model(tmp_path / "module_1", inputs, references, steps=4)
    fixed = saved_model.explain_saved_model(tmp_path / "module_1", inputs, references, steps=64, batch_size=1)
    np.testing.assert_allclose(fixed.target_scores, explanation.target_scores, **TOLERANCE)
    # Pair by pair instead of all at once: the same path up to round-off while it stays far from the
    # reference (0.2 of the way at most: a short fixed step), where the normalised direction is smooth;
    # near the reference the path bounces and round-off decides where it goes.
    short = dict(steps=16, step_size=0.2 * float(np.linalg.norm(inputs - references[0], axis=-1).min()) / 16)
    whole = saved_model.explain_saved_model(tmp_path / "module_None", inputs, references, **short)
    pairs = saved_model.explain_saved_model(tmp_path / "module_1", inputs, references, batch_size=1, **short)
    np.testing.assert_allclose(pairs.attributions, whole.attributions, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pairs.counterfactual_scores, whole.counterfactual_scores, rtol=1e-4, atol=1e-6)


def test_saved_model_weights_are_visible_to_dataset_fingerprints(tmp_path):
    from tf_ig2.dataset import plan

    from conftest import small_cnn

    fingerprints = []
    for seed in (0, 1, 0):
        folder = tmp_path / f"model_{len(fingerprints)}"
        small_cnn(softmax=False, seed=seed).export(str(folder), verbose=False)
        loaded = tf_ig2.load_model(str(folder))
        assert len(loaded.signature_variables) == 6
        fingerprints.append(plan.model_fingerprint(loaded)["weights_sha1"])
    assert fingerprints[0] != fingerprints[1] and fingerprints[0] == fingerprints[2]


def tf_keras_models():
    """tf_keras (Keras 2) Sequentials: one Keras 3 reads too, one with a layer Keras 3 no longer has."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    dense = tf_keras.Sequential([tf_keras.Input((6,)), tf_keras.layers.Dense(5, activation="tanh", name="hidden"),
                                 tf_keras.layers.Dense(3, name="scores")])
    local = tf_keras.Sequential([tf_keras.Input((6, 1)), tf_keras.layers.LocallyConnected1D(2, 3, activation="tanh"),
                                 tf_keras.layers.Flatten(), tf_keras.layers.Dense(3, name="scores")])
    return {"dense": dense, "local": local}


@pytest.fixture(scope="module")
def tf_keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf_keras")
    models, paths = tf_keras_models(), {}
    for name, model in models.items():
        for suffix in ("h5", "keras"):
            paths[f"{name}.{suffix}"] = str(folder / f"{name}.{suffix}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf_keras calls .h5 legacy
                model.save(paths[f"{name}.{suffix}"])
    return {"models": models, "paths": paths, "folder": folder}


@pytest.mark.parametrize("suffix", ["h5", "keras"])
@pytest.mark.parametrize("name", ["dense", "local"])
def test_tf_keras_files_load_and_explain(tf_keras_files, name, suffix):
    from tf_ig2.engine.model_view import keras_module

    path, model = tf_keras_files["paths"][f"{name}.{suffix}"], tf_keras_files["models"][name]
    loaded = saved_model.load_model(path)
    if name == "local":  # Keras 3 has no LocallyConnected1D: tf_keras reads the file
        assert keras_module(loaded).__name__ == "tf_keras"
    rng = np.random.default_rng(0)
    shape = tuple(model.input_shape[1:])
    inputs, references = rng.random((3, *shape)).astype(np.float32), rng.random((2, *shape)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), **TOLERANCE)
    explanation = saved_model.explain_saved_model(path, inputs, references, steps=STEPS, targets=1)
    expected = tf_ig2.IG2(model, steps=STEPS).explain(inputs, references, 1)
    np.testing.assert_allclose(explanation.attributions, expected.attributions, **TOLERANCE)
    assert explanation.representation == expected.representation == "input of layer 'scores'"
    baseline = saved_model.explain_saved_model(path, inputs, 0.0, method="ig", steps=STEPS, targets=1)
    np.testing.assert_allclose(baseline.attributions, tf_ig2.IntegratedGradients(model, steps=STEPS).explain(
        inputs, 0.0, 1).attributions, **TOLERANCE)


@pytest.mark.parametrize("suffix", ["h5", "keras"])
def test_tf_keras_fallback_keeps_safe_mode(tmp_path, suffix):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((6, 1)), tf_keras.layers.Lambda(lambda tensor: tensor * 2.0),
                                 tf_keras.layers.LocallyConnected1D(2, 3), tf_keras.layers.Flatten(),
                                 tf_keras.layers.Dense(2)])
    path = str(tmp_path / f"lambda.{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    with pytest.raises(ValueError, match=r"read with tf_keras, since Keras 3 cannot read it.*safe_mode"):
        saved_model.load_model(path)
    loaded = saved_model.load_model(path, safe_mode=False)
    values = np.ones((1, 6, 1), np.float32)
    np.testing.assert_allclose(np.asarray(loaded(values)), np.asarray(model(values)), **TOLERANCE)


def test_not_a_keras_model_is_refused(tmp_path, monkeypatch):
    import keras as keras3

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("anything", "anything")
    monkeypatch.setattr(keras3.saving, "load_model", lambda *args, **kwargs: object())
    with pytest.raises(ValueError, match="holds no Keras model. Received: object"):
        saved_model.load_model(path)
