"""IG² on embeddings (token ids), multi-output and regression models."""

import keras
import numpy as np
import pytest

import tf_ig2


def text_model(seed=0, vocabulary=20, length=6, width=4):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((length,), dtype="int32")
    embedded = keras.layers.Embedding(vocabulary, width, name="embedding")(ids)
    head = keras.Sequential([
        keras.layers.Conv1D(5, 2, activation="tanh"),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="tanh", name="features"),
        keras.layers.Dense(3, name="logits"),
    ], name="head")
    model = keras.Model(ids, keras.layers.Activation("softmax")(head(embedded)))
    # The same network from the embedding output on: an independent route to the same scores.
    points = keras.Input((length, width))
    after_embedding = keras.Model(points, head(points))
    return model, after_embedding


TOKENS = np.array([[3, 5, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6], [8, 8, 2, 9, 0, 0]], np.int32)
REFERENCES = np.array([[9, 9, 0, 0, 0, 0], [10, 11, 12, 13, 0, 0], [4, 4, 4, 4, 4, 4]], np.int32)


def test_embedding_ig2_matches_explaining_the_embedded_model():
    model, after_embedding = text_model()
    table = model.get_layer("embedding").embeddings.numpy()
    value_range = (table.min(axis=0), table.max(axis=0))
    # Short paths (a fifth of the way to the nearest reference) never bounce, so that the two
    # routes agree to round-off on any CPU.
    distance = np.linalg.norm((table[TOKENS][:, None] - table[REFERENCES][None]).reshape(3, 3, -1), axis=-1).min()
    short = dict(steps=30, step_size=0.2 * float(distance) / 30)
    ours = tf_ig2.IG2(model, input_layer="embedding", representation_layer="features", padding_id=None,
                      **short).explain(TOKENS, REFERENCES, targets=[0, 1, 2])
    direct = tf_ig2.IG2(after_embedding, representation_layer=after_embedding.get_layer("head").get_layer("features"),
                        value_range=value_range, **short).explain(table[TOKENS], table[REFERENCES], targets=[0, 1, 2])
    np.testing.assert_allclose(ours.attributions, direct.attributions.sum(axis=-1), atol=1e-5)
    np.testing.assert_allclose(ours.counterfactuals, direct.counterfactuals, atol=1e-5)
    np.testing.assert_allclose(ours.delta, direct.delta, atol=1e-5)
    assert ours.attributions.shape == TOKENS.shape and ours.counterfactuals.shape == (3, 3, 6, 4)


def test_padding_gets_no_attribution_and_completeness_holds():
    model, _ = text_model()
    explanation = tf_ig2.IG2(model, input_layer="embedding", steps=200).explain(TOKENS, REFERENCES)
    assert np.all(explanation.attributions[TOKENS == 0] == 0.0)
    assert np.all(explanation.attributions[TOKENS != 0] != 0.0)
    table = model.get_layer("embedding").embeddings.numpy()
    padded = np.broadcast_to((TOKENS == 0)[:, None, :, None], explanation.counterfactuals.shape)
    np.testing.assert_array_equal(explanation.counterfactuals[padded],
                                  np.broadcast_to(table[TOKENS][:, None], padded.shape)[padded])
    # The per-token sum obeys the completeness identity up to the reported delta.
    gap = explanation.target_scores - explanation.counterfactual_scores
    np.testing.assert_allclose(explanation.attributions.sum(axis=1) - gap, explanation.delta, atol=1e-5)
    # The rescaled rule matches each segment's score change by construction, padding included.
    exact = tf_ig2.IG2(model, input_layer="embedding", steps=200, integration="rescaled").explain(TOKENS, REFERENCES)
    assert np.all(exact.attributions[TOKENS == 0] == 0.0)
    exact_gap = exact.target_scores - exact.counterfactual_scores
    assert np.all(np.abs(exact.delta) <= 1e-4 * np.abs(exact_gap) + 1e-5), (exact.delta, exact_gap)
    # The path stays within the embedding table's per-dimension range.
    assert np.all(explanation.counterfactuals >= table.min(axis=0) - 1e-6)
    assert np.all(explanation.counterfactuals <= table.max(axis=0) + 1e-6)


def test_embedding_bad_input():
    model, _ = text_model()
    explainer = tf_ig2.IG2(model, input_layer="embedding", steps=2)
    with pytest.raises(ValueError, match="references"):
        explainer.explain(TOKENS, np.zeros((2, 5), np.int32))
    with pytest.raises(TypeError, match="references.*dtype"):
        explainer.explain(TOKENS, REFERENCES.astype(np.int64))
    with pytest.raises(ValueError, match=r"inputs.*\(N, 6\)"):
        explainer.explain(np.zeros((2, 7), np.int32), np.zeros((1, 7), np.int32))
    with pytest.raises(ValueError, match="input_layer.*Available layers"):
        tf_ig2.IG2(model, input_layer="embed")
    with pytest.raises(TypeError, match="padding_id"):
        tf_ig2.IG2(model, input_layer="embedding", padding_id="0")


def two_headed(as_dict):
    keras.utils.set_random_seed(1)
    x = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="tanh", name="hidden")(x)
    kind = keras.layers.Dense(3, activation="softmax", name="kind")(hidden)
    size = keras.layers.Dense(1, name="size")(hidden)
    return keras.Model(x, {"kind": kind, "size": size} if as_dict else [kind, size])


@pytest.mark.parametrize("as_dict", [False, True])
def test_multi_output_models(as_dict):
    model = two_headed(as_dict)
    rng = np.random.default_rng(0)
    x, references = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    by_name = tf_ig2.IG2(model, output="size", steps=20).explain(x, references, targets=0)
    pick = (lambda outputs: outputs["size"][:, 0]) if as_dict else (lambda outputs: outputs[1][:, 0])
    by_callable = tf_ig2.IG2(model, steps=20, representation_layer="hidden").explain(x, references, targets=pick)
    np.testing.assert_allclose(by_name.attributions, by_callable.attributions, atol=1e-6)
    np.testing.assert_allclose(by_name.target_scores, np.asarray(model(x)["size" if as_dict else 1])[:, 0], atol=1e-5)
    if not as_dict:
        by_index = tf_ig2.IG2(model, output=1, steps=20).explain(x, references, targets=0)
        np.testing.assert_allclose(by_index.attributions, by_name.attributions, atol=1e-6)
    kind = tf_ig2.IG2(model, output="kind", steps=20).explain(x, references)
    assert kind.targets.shape == (4,)
    with pytest.raises(ValueError, match="several outputs: pass `output`"):
        tf_ig2.IG2(model, steps=20)
    with pytest.raises(ValueError, match="targets=None.*callable"):
        tf_ig2.IG2(model, steps=20, representation_layer="hidden").explain(x, references)
    with pytest.raises((ValueError, TypeError), match="output"):
        tf_ig2.IG2(model, output="colour", steps=2).explain(x, references, targets=0)


def test_regression_linear_model_closed_form():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    rng = np.random.default_rng(3)
    x, references = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    low, high = np.array([-3, -3, -0.5, -3], np.float32), np.array([3, 3, 3, 0.5], np.float32)
    x, references = np.clip(x, low, high), np.clip(references, low, high)
    explanation = tf_ig2.IG2(model, representation_layer="output", steps=40,
                             value_range=(low, high)).explain(x, references)
    weights = model.layers[-1].weights[0].numpy()[:, 0]
    np.testing.assert_allclose(explanation.attributions, weights * (x - explanation.counterfactuals.mean(1)), atol=1e-5)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-4)
    assert list(explanation.targets) == [0] * 5
    straight = tf_ig2.IntegratedGradients(model, steps=2).explain(x, references)
    np.testing.assert_allclose(straight.attributions, weights * (x - references.mean(0)), atol=1e-5)


def test_embedding_range_follows_the_live_table_without_retracing():
    model, _ = text_model()
    explainer = tf_ig2.IG2(model, input_layer="embedding", steps=10)
    explainer.explain(TOKENS, REFERENCES)
    count = explainer.tracing_count
    table = model.get_layer("embedding").embeddings
    table.assign(table * 3.0)  # as training would move it
    explanation = explainer.explain(TOKENS, REFERENCES)
    assert explainer.tracing_count == count
    values = table.numpy()
    assert explanation.counterfactuals.max() <= values.max() + 1e-6
    assert explanation.counterfactuals.min() >= values.min() - 1e-6
    # The paths now reach beyond the old (three times narrower) range.
    assert np.abs(explanation.counterfactuals).max() > np.abs(values / 3.0).max()
