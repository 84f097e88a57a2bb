"""tf_ig2.references: the pickers' draws, the ranked classes of a model with known logits, the baselines."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2 import references
from tf_ig2.references import blurred, constant, other_class, pool_mean, relevant_class

from conftest import REPOSITORY


def row_pool(count, shape=(2, 2, 1), dtype=np.float32):
    """``(count, *shape)`` items whose every value is their row number, so a pick tells its row."""
    return (np.arange(count)[(slice(None),) + (None,) * len(shape)] * np.ones(shape)).astype(dtype)


def rows_of(picked):
    """``(N, R)`` pool rows of items made by :func:`row_pool`."""
    flat = picked.reshape(picked.shape[:2] + (-1,))
    assert np.all(flat == flat[..., :1])
    return flat[..., 0].astype(int)


# -- other_class ---------------------------------------------------------------------------------------

def test_other_class_shape_classes_and_no_repeats():
    labels = np.arange(30) % 3
    targets = np.array([0, 1, 2, 0])
    picked = other_class(row_pool(30), labels, targets, 5, seed=0)
    assert picked.shape == (4, 5, 2, 2, 1) and picked.dtype == np.float32
    rows = rows_of(picked)
    for target, chosen in zip(targets, rows):
        assert np.all(labels[chosen] != target)
        assert len(set(chosen)) == 5


def test_other_class_takes_every_other_item_when_count_is_all_of_them():
    labels = np.array([0, 0, 1, 1, 2, 2])
    rows = rows_of(other_class(row_pool(6), labels, [0], 4, seed=7))
    assert sorted(rows[0]) == [2, 3, 4, 5]


def test_other_class_is_the_documented_draw_and_deterministic_per_seed():
    labels = np.arange(100) % 10
    targets = np.array([3, 3, 9])
    first = other_class(row_pool(100), labels, targets, 5, seed=11)
    rng = np.random.default_rng(11)
    expected = [rng.choice(np.flatnonzero(labels != target), size=5, replace=False) for target in targets]
    np.testing.assert_array_equal(rows_of(first), expected)
    np.testing.assert_array_equal(first, other_class(row_pool(100), labels, targets, 5, seed=11))
    np.testing.assert_array_equal(first, other_class(row_pool(100), labels, targets, 5,
                                                     seed=np.random.default_rng(11)))
    assert not np.array_equal(first, other_class(row_pool(100), labels, targets, 5, seed=12))


def test_other_class_reads_one_hot_labels_and_targets():
    labels = np.arange(20) % 4
    one_hot = np.eye(4, dtype=np.float32)
    expected = other_class(row_pool(20), labels, [1, 2], 3, seed=3)
    np.testing.assert_array_equal(other_class(row_pool(20), one_hot[labels], [1, 2], 3, seed=3), expected)
    np.testing.assert_array_equal(other_class(row_pool(20), one_hot[labels], one_hot[[1, 2]], 3, seed=3), expected)


def test_other_class_picks_the_same_rows_for_every_input_and_keeps_token_ids():
    labels = np.arange(12) % 3
    ids = (np.arange(12)[:, None] * 10 + np.arange(4)).astype(np.int32)  # row r: r*10 .. r*10+3
    pool = {"image": row_pool(12), "ids": ids}
    picked = other_class(pool, labels, [0, 2], 3, seed=5)
    assert sorted(picked) == ["ids", "image"]
    assert picked["ids"].dtype == np.int32 and picked["ids"].shape == (2, 3, 4)
    np.testing.assert_array_equal(picked["ids"][..., 0] // 10, rows_of(picked["image"]))
    np.testing.assert_array_equal(picked["ids"], ids[rows_of(picked["image"])])
    as_list = other_class([row_pool(12), ids], labels, [0, 2], 3, seed=5)
    assert isinstance(as_list, list)
    np.testing.assert_array_equal(as_list[1], picked["ids"])
    tokens = other_class(ids.astype(np.int64), labels, [1], 2, seed=0)
    assert tokens.dtype == np.int64 and np.all(labels[tokens[0, :, 0] // 10] != 1)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(count=0), ValueError, r"`count` must be an integer >= 1\. Received: count=0"),
    (dict(count=2.0), TypeError, r"`count` must be an integer >= 1\. Received: count=2\.0"),
    (dict(seed="a"), TypeError, r"`seed` must be a non-negative int or a numpy\.random\.Generator\. "
                                r"Received: seed='a' of type str"),
    (dict(seed=True), TypeError, r"`seed` must be .* Received: seed=True"),
    (dict(seed=-1), ValueError, r"`seed` must be .* Received: seed=-1"),
    (dict(pool_labels=np.arange(5)), ValueError, r"`pool_labels` must hold one label per pool row: 6 of them\. "
                                                 r"Received: 5"),
    (dict(pool_labels=np.zeros((6, 2, 2))), ValueError,
     r"`pool_labels` must be \(M,\) class indices or \(M, C\) one-hot rows, one per pool row\. Received: shape "
     r"\(6, 2, 2\)"),
    (dict(pool_labels=np.full(6, 0.5)), ValueError, r"`pool_labels` as \(M,\) class indices must hold whole"),
    (dict(pool_labels=-np.ones(6, int)), ValueError, r"`pool_labels` class indices must be >= 0\. Received: "
                                                     r"minimum -1"),
    (dict(pool_labels=np.array(list("abcdef"))), TypeError, r"`pool_labels` must hold class indices"),
    (dict(pool_labels=np.zeros((6, 1))), ValueError, r"one-hot rows \(M, C\) needs C >= 2"),
    (dict(targets=1), ValueError, r"`targets` must be \(M,\) class indices or \(M, C\) one-hot rows, one per "
                                  r"explained input\. Received: shape \(\)"),
    (dict(count=5), ValueError, r"`count`=5 references of other classes are needed per input, but input 0 is "
                                r"explained for class 1 and `pool` has only 4 item\(s\) of other classes"),
    (dict(pool={"a": row_pool(6), "b": row_pool(5)}), ValueError, r"`pool` must hold the same number of rows for "
                                                                  r"every input\. Received: \{\"pool\['a'\]\": 6"),
    (dict(pool={}), ValueError, r"`pool` as a dict must hold one array per model input\. Received: an empty dict"),
    (dict(pool=np.full((6, 2), np.nan)), ValueError, r"`pool` must hold finite values only"),
])
def test_other_class_errors(kwargs, error, message):
    arguments = dict(pool=row_pool(6), pool_labels=np.array([0, 0, 1, 1, 2, 2]), targets=[1, 0], count=2)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        other_class(**arguments)


# -- relevant_class -----------------------------------------------------------------------------------

#: Inputs of the identity model: its logits, so its ranking is (0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 2, 0).
LOGITS = np.array([[4, 3, 2, 1], [1, 2, 3, 4], [0, 5, 1, 3]], np.float32)


@pytest.fixture(scope="module")
def identity_model():
    """Dense(4, softmax) with an identity kernel and no bias: the logits are the inputs."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, use_bias=False, activation="softmax")])
    model.set_weights([np.eye(4, dtype=np.float32)])
    return model


def ranked_classes(model, labels, count, **options):
    pool = row_pool(len(labels), (4,))
    return labels[rows_of(relevant_class(model, pool, labels, LOGITS, count, **options))]


def test_relevant_class_takes_the_classes_ranked_next(identity_model):
    labels = np.arange(12) % 4
    np.testing.assert_array_equal(ranked_classes(identity_model, labels, 2), [[1, 2], [2, 1], [3, 2]])
    np.testing.assert_array_equal(ranked_classes(identity_model, labels, 3), [[1, 2, 3], [2, 1, 0], [3, 2, 0]])
    picked = relevant_class(identity_model, row_pool(12, (4,)), labels, LOGITS, 3, seed=4)
    assert picked.shape == (3, 3, 4) and picked.dtype == np.float32
    np.testing.assert_array_equal(picked, relevant_class(identity_model, row_pool(12, (4,)), labels, LOGITS, 3,
                                                         seed=4))


def test_relevant_class_skips_a_target_other_than_the_top_class(identity_model):
    labels = np.arange(12) % 4
    np.testing.assert_array_equal(ranked_classes(identity_model, labels, 2, targets=[2, 3, 0]),
                                  [[0, 1], [2, 1], [1, 3]])
    one_hot = np.eye(4, dtype=np.float32)
    np.testing.assert_array_equal(
        relevant_class(identity_model, row_pool(12, (4,)), one_hot[labels], LOGITS, 2, targets=one_hot[[2, 3, 0]]),
        relevant_class(identity_model, row_pool(12, (4,)), labels, LOGITS, 2, targets=[2, 3, 0]))


def test_relevant_class_passes_over_classes_missing_from_the_pool(identity_model):
    labels = np.array([0, 1, 3, 0, 1, 3])
    np.testing.assert_array_equal(ranked_classes(identity_model, labels, 2), [[1, 3], [1, 0], [3, 0]])
    with pytest.raises(ValueError, match=r"`count`=3 relevant classes are needed per input, but input 0 \(explained "
                                         r"for class 0\) has only 2 ranked class\(es\) other than it with items in "
                                         r"`pool`; classes \[2\] have none"):
        ranked_classes(identity_model, labels, 3)


def test_relevant_class_compiles_the_model_once(identity_model):
    for rows in (1, 2, 3, 2, 1, 3):
        relevant_class(identity_model, row_pool(8, (4,)), np.arange(8) % 4, LOGITS[:rows], 1)
    compiled = [entry for entry in references._COMPILED[0].values() if entry.model is identity_model]
    assert len(compiled) == 1 and compiled[0].tracing_count == 1


def test_relevant_class_draws_one_item_of_each_class_at_random(identity_model):
    labels = np.arange(400) % 4
    rows = [rows_of(relevant_class(identity_model, row_pool(400, (4,)), labels, LOGITS[:1], 1, seed=seed))[0, 0]
            for seed in range(4)]
    assert all(labels[row] == 1 for row in rows) and len(set(rows)) > 1


def test_relevant_class_with_several_inputs_picks_the_same_rows():
    first, second = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    layer = keras.layers.Dense(4, use_bias=False)
    model = keras.Model({"a": first, "b": second}, layer(keras.layers.Concatenate()([first, second])))
    layer.set_weights([np.eye(4, dtype=np.float32)])
    labels = np.arange(8) % 4
    pool = {"a": row_pool(8, (2,)), "b": row_pool(8, (2,)) + 100}
    picked = relevant_class(model, pool, labels, {"a": LOGITS[:, :2], "b": LOGITS[:, 2:]}, 2)
    np.testing.assert_array_equal(rows_of(picked["b"]), rows_of(picked["a"]) + 100)
    np.testing.assert_array_equal(labels[rows_of(picked["a"])], [[1, 2], [2, 1], [3, 2]])


def test_relevant_class_scores_token_ids_through_their_embedding():
    embedding = keras.layers.Embedding(4, 4, name="embedding")
    model = keras.Sequential([keras.Input((3,), dtype="int32"), embedding, keras.layers.GlobalAveragePooling1D()])
    embedding.set_weights([2 * np.eye(4, dtype=np.float32)])  # logits: twice how often each id occurs, over 3
    labels = np.arange(8) % 4
    pool = (np.arange(8)[:, None] * np.ones(3)).astype(np.int32) % 4
    inputs = np.array([[2, 2, 3], [1, 0, 0]], np.int32)  # rankings (2, 3, 0, 1) and (0, 1, 2, 3)
    picked = relevant_class(model, pool, labels, inputs, 2, input_layer="embedding")
    assert picked.dtype == np.int32 and picked.shape == (2, 2, 3)
    np.testing.assert_array_equal(picked[..., 0], [[3, 0], [1, 2]])


@pytest.mark.parametrize("kwargs, message", [
    (dict(targets=[0, 4, 1]), r"`targets` must be class indices in \[0, 3\] for a model with 4 outputs\. "
                              r"Received: maximum 4"),
    (dict(targets=[0, 1]), r"`targets` must hold one label per input: 3 of them\. Received: 2"),
    (dict(count=0), r"`count` must be an integer >= 1\. Received: count=0"),
    (dict(pool_labels=np.arange(3)), r"`pool_labels` must hold one label per pool row: 8 of them\. Received: 3"),
])
def test_relevant_class_errors(identity_model, kwargs, message):
    arguments = dict(pool=row_pool(8, (4,)), pool_labels=np.arange(8) % 4, inputs=LOGITS, count=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        relevant_class(identity_model, **arguments)


def test_relevant_class_needs_class_scores():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"`relevant_class` ranks the classes of a model output of shape \(N, C\), "
                                         r"C >= 2\. Received: an output \(3, 1\)"):
        relevant_class(model, row_pool(8, (4,)), np.arange(8) % 4, LOGITS, 1)


# -- baselines ----------------------------------------------------------------------------------------

def test_blurred_matches_the_closed_form_gaussian_and_keeps_constants():
    impulse = np.zeros((1, 9, 9, 1), np.float32)
    impulse[0, 4, 4, 0] = 1.0
    flat = np.full((1, 9, 9, 1), 0.25, np.float32)
    picked = blurred(np.concatenate([impulse, flat]), 1.0)
    assert picked.shape == (2, 1, 9, 9, 1) and picked.dtype == np.float32
    centre = 1.0 / sum(math.exp(-0.5 * offset ** 2) for offset in range(-3, 4))  # kernel radius ceil(3 sigma)
    assert picked[0, 0, 4, 4, 0] == pytest.approx(centre ** 2, rel=1e-5)
    assert picked[0, 0, 4, 5, 0] == pytest.approx(centre ** 2 * math.exp(-0.5), rel=1e-5)
    np.testing.assert_allclose(picked[1, 0], flat[0], rtol=1e-6)
    assert blurred({"x": np.ones((2, 5, 5), np.float32)}, 2.0)["x"].shape == (2, 1, 5, 5)


@pytest.mark.parametrize("inputs, sigma, error, message", [
    (np.zeros((2, 4, 4, 1), np.int32), 1.0, TypeError, r"`inputs` must hold floating-point values for a blur"),
    (np.zeros((2, 4), np.float32), 1.0, ValueError, r"`inputs` must be images of shape \(N, H, W\) or "
                                                    r"\(N, H, W, C\) to be blurred\. Received: shape \(2, 4\)"),
    (np.zeros((2, 4, 4, 1), np.float32), 0.0, ValueError, r"`sigma` must be a positive number\. Received: sigma=0\.0"),
])
def test_blurred_errors(inputs, sigma, error, message):
    with pytest.raises(error, match=message):
        blurred(inputs, sigma)


def test_constant_is_input_shaped_and_keeps_token_ids():
    picked = constant(np.ones((3, 2, 2), np.float32), 0.5)
    assert picked.shape == (3, 1, 2, 2) and picked.dtype == np.float32 and np.all(picked == 0.5)
    assert np.all(constant(np.ones((3, 4), np.float32)) == 0.0)
    mixed = constant({"image": np.ones((2, 3), np.float32), "ids": np.ones((2, 5), np.int64)}, 0)
    assert mixed["ids"].dtype == np.int64 and mixed["ids"].shape == (2, 1, 5) and mixed["image"].shape == (2, 1, 3)


@pytest.mark.parametrize("inputs, value, error, message", [
    (np.ones((2, 3), np.float32), "0", TypeError, r"`value` must be a number\. Received: value='0' of type str"),
    (np.ones((2, 3), np.float32), math.nan, ValueError, r"`value` must be a finite number\. Received: value=nan"),
    (np.ones((2, 3), np.int32), 0.5, ValueError, r"`value` must be a token id \(a whole number >= 0\) for the "
                                                 r"integer `inputs`\. Received: value=0\.5"),
    (np.ones((2, 3), np.int32), -1, ValueError, r"`value` must be a token id"),
])
def test_constant_errors(inputs, value, error, message):
    with pytest.raises(error, match=message):
        constant(inputs, value)


def test_pool_mean_is_the_shared_mean():
    pool = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    mean = pool_mean(pool)
    assert mean.shape == (1, 2, 2) and mean.dtype == np.float32
    np.testing.assert_array_equal(mean[0], [[4, 5], [6, 7]])
    assert pool_mean([pool, pool[:, 0]])[1].shape == (1, 2)
    with pytest.raises(TypeError, match=r"`pool\['ids'\]` must hold floating-point values for a mean"):
        pool_mean({"ids": np.ones((3, 2), np.int32), "x": pool})


def test_explain_takes_every_layout(identity_model):
    """Straight-line IG of the linear logits: attributions (x - x') e_c, averaged over the references."""
    explainer = tf_ig2.IntegratedGradients(identity_model, steps=8)
    pool, labels, targets = row_pool(8, (4,)), np.arange(8) % 4, np.array([0, 3, 1])
    for chosen in (other_class(pool, labels, targets, 2), relevant_class(identity_model, pool, labels, LOGITS, 2),
                   constant(LOGITS, 1.0), pool_mean(pool)):
        explanation = explainer.explain(LOGITS, chosen, targets)
        per_input = chosen if chosen.ndim == 3 else np.broadcast_to(chosen, (3,) + chosen.shape)
        expected = (LOGITS - per_input.mean(axis=1)) * np.eye(4, dtype=np.float32)[targets]
        np.testing.assert_allclose(explanation.attributions, expected, atol=1e-5)


def test_import_needs_no_tensorflow():
    script = ("import sys, numpy as np; import tf_ig2.references as r; "
              "r.other_class(np.zeros((4, 2), np.float32), [0, 1, 0, 1], [0], 2); r.constant(np.zeros((1, 2)));"
              "r.pool_mean(np.zeros((2, 2))); assert 'tensorflow' not in sys.modules; print('ok')")
    environment = dict(os.environ, PYTHONPATH=REPOSITORY + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                            timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
    assert tf_ig2.references is references and "references" in tf_ig2.__all__
