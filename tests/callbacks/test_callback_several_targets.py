"""Several classes per input in the callbacks: one explain call per logged epoch, one picture per target."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2.callbacks import AttributionCallback, IG2Callback
from tf_ig2.callbacks.displays import describe
from tf_ig2.callbacks.targets import choose
from tf_ig2.callbacks.tf_explain import TfExplainIG2

from conftest import digits, read_run, relu_digits_cnn

EPOCHS = 2
SHOWN = 4
IMAGE_TAGS = ("panels", "overlay", "grid")
SCALAR_TAGS = ("completeness_delta", "relative_completeness_delta", "target_score")


digits_cnn = relu_digits_cnn


def pictures(event):
    """The decoded PNGs of one image event."""
    return [tf.io.decode_png(value).numpy() for value in tf.make_ndarray(event.tensor_proto)[2:]]


#: Column 0 differs between the inputs, column 1 is class 1 for all.
PER_INPUT = np.array([[0, 1], [2, 1], [4, 1], [5, 1]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two epochs with three callbacks: the same two classes for every input (IG²), each input's two
    highest-scoring classes (IG) and a class per input and column (IG)."""
    log_dir = str(tmp_path_factory.mktemp("logs"))
    images, labels = digits()
    references = images[labels == 0][:2]
    shown = (images[:10], labels[:10])
    callbacks = {
        "ig2": IG2Callback(shown, references, class_index=[[3, 5]], output_dir=log_dir, max_outputs=SHOWN, steps=8,
                           value_range=(0.0, 1.0), path_strip=True),
        "ig_top": AttributionCallback("ig", shown, class_index="top-2", output_dir=log_dir, max_outputs=SHOWN,
                                      name="ig_top", steps=8),
        "ig_rows": AttributionCallback("ig", images[:SHOWN], references=0.0, class_index=PER_INPUT,
                                       output_dir=log_dir, name="ig_rows", steps=8),
    }
    model = digits_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(images[:300], labels[:300], epochs=EPOCHS, batch_size=64, verbose=0,
                  callbacks=list(callbacks.values()))
    return dict(callbacks, model=model, images=images, labels=labels, references=references,
                warnings=[str(item.message) for item in caught if issubclass(item.category, RuntimeWarning)])


@pytest.mark.parametrize("run, suffixes", [("ig2", ("class_3", "class_5")), ("ig_top", ("top_1", "top_2")),
                                           ("ig_rows", ("target_0", "class_1"))])
def test_one_picture_per_input_and_target_tagged_by_class(trained, run, suffixes):
    assert not trained["warnings"], trained["warnings"]
    callback = trained[run]
    assert callback.target_tags == suffixes
    accumulator = read_run(callback.run_dir)
    tags = set(accumulator.Tags()["tensors"])
    shared = {f"{run}/path", f"{run}/representation_distance"} if run == "ig2" else set()
    expected = {f"{run}/{kind}/{suffix}" for kind in IMAGE_TAGS + SCALAR_TAGS for suffix in suffixes}
    assert tags == expected | shared
    for suffix in suffixes:
        for kind in IMAGE_TAGS:
            tag = f"{run}/{kind}/{suffix}"
            assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "images"
            events = accumulator.Tensors(tag)
            assert [event.step for event in events] == list(range(EPOCHS))
            assert all(len(pictures(event)) == (1 if kind == "grid" else SHOWN) for event in events)
        description = accumulator.SummaryMetadata(f"{run}/panels/{suffix}").summary_description
        assert description.startswith(describe(f"{run}/panels")) and "Explained class:" in description
    if run == "ig2":
        assert "class 5 of every input" in accumulator.SummaryMetadata("ig2/panels/class_5").summary_description
        assert len(accumulator.Tensors("ig2/path")) == EPOCHS


def test_the_logged_pictures_are_one_explain_call_with_every_target(trained):
    callback, model = trained["ig2"], trained["model"]
    inputs = callback.inputs
    explanation = callback.explain()  # the model is as it was at the last epoch
    assert explanation.target_count == 2 and explanation.targets.tolist() == [[3, 5]] * SHOWN
    direct = tf_ig2.IG2(model, steps=8, value_range=(0.0, 1.0)).explain(inputs, trained["references"],
                                                                        targets=np.array([[3, 5]] * SHOWN))
    np.testing.assert_allclose(explanation.attributions, direct.attributions, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(explanation.delta, direct.delta, rtol=1e-4, atol=1e-5)
    accumulator = read_run(callback.run_dir)
    images, scalars = callback.summaries(explanation)
    for index, suffix in enumerate(("class_3", "class_5")):
        one = explanation.select_target(index)
        logged = pictures(accumulator.Tensors(f"ig2/panels/{suffix}")[-1])
        np.testing.assert_array_equal(np.stack(logged), images[f"ig2/panels/{suffix}"])
        np.testing.assert_array_equal(images[f"ig2/panels/{suffix}"], callback.display.images(one)["ig2/panels"])
        score = float(tf.make_ndarray(accumulator.Tensors(f"ig2/target_score/{suffix}")[-1].tensor_proto))
        assert score == pytest.approx(float(np.mean(one.target_scores)), rel=1e-5)
        assert scalars[f"ig2/target_score/{suffix}"] == pytest.approx(score, rel=1e-5)
    path = callback.explain_path()  # shared by the targets: explained for the first one
    assert path.targets.tolist() == [3]


def test_top_k_is_ranked_anew_and_equals_explain_with_top_k(trained):
    callback, model = trained["ig_top"], trained["model"]
    assert callback.targets is None and callback.top_k == 2
    explanation = callback.explain()
    ranked = np.argsort(-model.predict(callback.inputs, verbose=0), axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(explanation.targets, ranked)
    np.testing.assert_array_equal(callback.model_targets(), ranked)
    direct = tf_ig2.IntegratedGradients(model, steps=8).explain(callback.inputs, targets="top-2")
    np.testing.assert_allclose(explanation.attributions, direct.attributions, rtol=1e-4, atol=1e-5)
    logged = pictures(read_run(callback.run_dir).Tensors("ig_top/overlay/top_2")[-1])
    np.testing.assert_array_equal(np.stack(logged), callback.summaries(explanation)[0]["ig_top/overlay/top_2"])


def test_a_class_per_input_and_column(trained):
    explanation = trained["ig_rows"].explain()
    np.testing.assert_array_equal(explanation.targets, PER_INPUT)
    assert np.shape(explanation.attributions) == (SHOWN, 2, 8, 8, 1)


def test_one_target_keeps_its_tags(trained, tmp_path):
    images, labels = trained["images"][:3], trained["labels"][:3]
    for class_index in (3, [3, 3, 3], np.array([3, 4, 5]), None):
        callback = AttributionCallback("ig", (images, labels), class_index=class_index, steps=4,
                                       output_dir=str(tmp_path))
        assert callback.target_tags is None and callback.targets.shape == (3,)
    single = AttributionCallback("ig", (images, labels), class_index=[[3]], steps=4, output_dir=str(tmp_path))
    assert single.target_tags == ("class_3",) and single.targets.tolist() == [[3]] * 3
    single.set_model(trained["model"])
    images_logged, scalars = single.summaries(single.explain())
    assert set(images_logged) == {f"ig/{kind}/class_3" for kind in IMAGE_TAGS}
    assert set(scalars) == {f"ig/{kind}/class_3" for kind in SCALAR_TAGS}


def test_class_index_forms():
    labels = np.array([1, 2, 3])
    assert choose(None, labels, 3).indices is labels
    assert choose(4, None, 3).indices.tolist() == [4, 4, 4]
    assert choose([7, 8, 9], None, 3).indices.tolist() == [7, 8, 9] and not choose([7, 8, 9], None, 3).several
    assert choose((7, 8, 9), None, 3).count is None
    shared = choose([[7, 8]], None, 3)
    assert shared.indices.tolist() == [[7, 8]] * 3 and shared.count == 2 and shared.tag_suffixes() == ("class_7",
                                                                                                         "class_8")
    rows = choose(np.array([[0, 1], [2, 1], [2, 0]]), labels, 3)
    assert rows.tag_suffixes() == ("target_0", "target_1") and rows.fixed
    top = choose("top-3", labels, 3)
    assert top.indices is None and top.top_k == 3 and top.explain_targets() == "top-3" and not top.fixed
    assert top.tag_suffixes() == ("top_1", "top_2", "top_3")
    assert choose([[7, 8]], None, 1).indices.tolist() == [[7, 8]]  # one input: (1, T) either way


@pytest.mark.parametrize("class_index, error, match", [
    ([3, 5], ValueError, r"flat sequence holds one class per input: 3 of them.*class_index=\[\[c_1"),
    ([3, 5, 7, 9], ValueError, "flat sequence holds one class per input"),
    (np.zeros((2, 2), np.int64), ValueError, r"\(3, T\) \(one row per input\) or \(1, T\)"),
    (np.zeros((3, 0), np.int64), ValueError, "T >= 1"),
    ([[3, 3]], ValueError, "at most once per input"),
    ([[3, -1]], ValueError, ">= 0"),
    ([-1, 0, 1], ValueError, ">= 0"),
    ([[1.0, 2.0]], TypeError, "of ints"),
    ([1.5, 2.0, 3.0], TypeError, "class_index"),
    ([[1, 2], [3]], TypeError, "class_index"),
    (np.zeros((3, 2, 1), np.int64), ValueError, "class_index"),
    ("top-0", ValueError, "K >= 1"),
    ("top3", TypeError, "'top-K'"),
    ("3", TypeError, "'top-K'"),
    (True, TypeError, "class_index"),
])
def test_class_index_errors_name_it(class_index, error, match):
    images = digits()[0][:3]
    with pytest.raises(error, match=match) as raised:
        AttributionCallback("ig", images, class_index=class_index)
    assert "class_index" in str(raised.value)


@pytest.mark.parametrize("class_index, match", [("top-11", "top-11"), ([[3, 10]], r"\[0, 9\]"), (12, r"\[0, 9\]")])
def test_classes_the_model_lacks_raise_when_training_begins(tmp_path, class_index, match):
    images, labels = digits()
    callback = AttributionCallback("ig", images[:3], class_index=class_index, output_dir=str(tmp_path), steps=4)
    with pytest.raises(ValueError, match=match):
        digits_cnn().fit(images[:32], labels[:32], epochs=1, verbose=0, callbacks=[callback])


def test_token_texts_per_target(tmp_path):
    from test_callbacks_text_tabular import LENGTH, VOCABULARY, corpus, text_cnn

    ids, labels = corpus(12, seed=0)
    model = text_cnn()
    callback = IG2Callback((ids[:3], labels[:3]), ids[3:5], class_index="top-2", input_layer="embedding",
                           vocabulary=VOCABULARY, steps=4, output_dir=str(tmp_path))
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0)
    callback.on_train_end()
    accumulator = read_run(callback.run_dir)
    tags = set(accumulator.Tags()["tensors"])
    assert {"ig2/text/top_1", "ig2/text/top_2", "ig2/tokens/top_1", "ig2/tokens/top_2"} <= tags
    explanation = callback.explain()
    texts = callback.text_summaries(explanation)
    for index, suffix in enumerate(("top_1", "top_2")):
        logged = tf.make_ndarray(accumulator.Tensors(f"ig2/text/{suffix}")[0].tensor_proto).item().decode()
        assert logged == texts[f"ig2/text/{suffix}"]
        first = int(explanation.targets[0, index])
        assert logged.startswith(f"**Sentence 0**: class {first}, ")
    assert np.shape(explanation.attributions) == (3, 2, LENGTH)


def test_tf_explain_takes_one_class_per_image():
    images, labels = digits()
    model = digits_cnn()
    for class_index in ([[0, 1]], "top-2"):
        with pytest.raises(ValueError, match="`class_index` must name one class per input here"):
            TfExplainIG2().explain((images[:3], labels[:3]), model, class_index, images[:2], steps=4)
