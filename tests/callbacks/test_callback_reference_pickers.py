"""references="other_class" / "relevant_class" in the callbacks: seeded picks equal to tf_ig2.references'."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_ig2 import defaults
from tf_ig2 import references as pickers
from tf_ig2.callbacks import AttributionCallback, IG2Callback

from conftest import digits, read_run, relu_digits_cnn

EPOCHS = 2
SHOWN = 4


digits_cnn = relu_digits_cnn


def classes_of(references, pool, pool_labels):
    """The pool label of every reference ``(n, R, *S)``, found by equality (``(n, R)``)."""
    flat = pool.reshape(len(pool), -1)
    found = [[set(pool_labels[np.flatnonzero(np.all(flat == item.reshape(-1), axis=1))].tolist()) for item in row]
             for row in references]
    assert all(len(labels) == 1 for row in found for labels in row), found  # every reference is a pool item
    return np.array([[labels.pop() for labels in row] for row in found])


@pytest.fixture(scope="module")
def data():
    images, labels = digits()
    return dict(images=images, labels=labels, shown=(images[:20], labels[:20]),
                pool=(images[1000:1300], labels[1000:1300]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """Two epochs with relevant_class references (picked every epoch) and other_class ones (picked once)."""
    log_dir = str(tmp_path_factory.mktemp("logs"))
    images, labels = data["images"], data["labels"]
    relevant = IG2Callback(data["shown"], "relevant_class", reference_pool=data["pool"], output_dir=log_dir,
                           max_outputs=SHOWN, references_per_input=3, steps=8, value_range=(0.0, 1.0))
    assert relevant.references is None  # the ranking needs the model of the logged epoch
    other = AttributionCallback("ig", data["shown"], references="other_class", class_index=[[3, 5]],
                                output_dir=log_dir, max_outputs=SHOWN, steps=8)
    picked_before = other.references.copy()
    recorder = PickRecorder(relevant)
    model = digits_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(images[:300], labels[:300], epochs=EPOCHS, batch_size=64, verbose=0,
                  callbacks=[relevant, other, recorder])
    return dict(relevant=relevant, other=other, model=model, recorder=recorder, picked_before=picked_before,
                warnings=[str(item.message) for item in caught if issubclass(item.category, RuntimeWarning)])


class PickRecorder(keras.callbacks.Callback):
    """Records a callback's references after each of its logged epochs, with the ranking of that epoch."""

    def __init__(self, watched):
        super().__init__()
        self.watched, self.references, self.expected = watched, [], []

    def on_epoch_end(self, epoch, logs=None):
        watched = self.watched
        self.references.append(watched.references.copy())
        self.expected.append(pickers.relevant_class(self.model, watched.picker.pool, watched.picker.labels,
                                                    watched.inputs, 3, seed=defaults.REFERENCES_SEED,
                                                    targets=watched.targets))


def test_relevant_class_is_picked_every_logged_epoch_like_the_picker(trained, data):
    assert not trained["warnings"], trained["warnings"]
    recorder = trained["recorder"]
    assert len(recorder.references) == EPOCHS
    for picked, expected in zip(recorder.references, recorder.expected):
        np.testing.assert_array_equal(picked, expected)
    callback, model = trained["relevant"], trained["model"]
    pool, pool_labels = data["pool"]
    classes = classes_of(callback.references, pool, pool_labels)
    logits_order = np.argsort(-model.predict(callback.inputs, verbose=0), axis=1, kind="stable")
    for row, explained, order in zip(classes, callback.targets, logits_order):
        assert explained not in row
        assert row.tolist() == [label for label in order if label != explained][:3]  # ranked next, in order


def test_logged_pictures_use_the_picked_references(trained):
    callback = trained["relevant"]
    explanation = callback.explain()  # the last epoch's weights: the same pick
    np.testing.assert_array_equal(callback.references, trained["recorder"].references[-1])
    assert np.shape(explanation.counterfactuals) == (SHOWN, 3, 8, 8, 1)
    logged = tf.make_ndarray(read_run(callback.run_dir).Tensors("ig2/panels")[-1].tensor_proto)[2:]
    expected = callback.summaries(explanation)[0]["ig2/panels"]
    np.testing.assert_array_equal(np.stack([tf.io.decode_png(value).numpy() for value in logged]), expected)


def test_other_class_is_picked_once_none_of_the_explained_classes(trained, data):
    callback = trained["other"]
    np.testing.assert_array_equal(callback.references, trained["picked_before"])
    images, labels = data["shown"]
    assert callback.references.shape == (SHOWN, defaults.REFERENCES_PER_INPUT, 8, 8, 1)
    classes = classes_of(callback.references, images, labels)
    assert not np.isin(classes, [3, 5]).any()
    # Two targets: the inputs one after the other from one generator, the explained classes' labels merged.
    generator = np.random.default_rng(defaults.REFERENCES_SEED)
    expected = [pickers.other_class(images, np.where(np.isin(labels, [5]), 3, labels), [3], 4, seed=generator)[0]
                for _ in range(SHOWN)]
    np.testing.assert_array_equal(callback.references, np.stack(expected))
    assert {"ig/panels/class_3", "ig/panels/class_5"} <= set(read_run(callback.run_dir).Tags()["tensors"])


def test_other_class_with_one_target_is_the_pickers_call(data):
    images, labels = data["shown"]
    callback = IG2Callback(data["shown"], "other_class", max_outputs=SHOWN)
    expected = pickers.other_class(images, labels, labels[:SHOWN], defaults.REFERENCES_PER_INPUT,
                                   seed=defaults.REFERENCES_SEED)
    np.testing.assert_array_equal(callback.references, expected)
    pool, pool_labels = data["pool"]
    seeded = IG2Callback(data["shown"], "other_class", reference_pool=(pool, np.eye(10)[pool_labels]),
                         class_index=7, references_per_input=2, references_seed=11, max_outputs=SHOWN)
    np.testing.assert_array_equal(seeded.references, pickers.other_class(pool, pool_labels, [7] * SHOWN, 2, seed=11))
    assert not np.isin(classes_of(seeded.references, pool, pool_labels), 7).any()


def test_pickers_for_classes_the_model_chooses(data, tmp_path):
    """Unlabelled inputs, a labelled pool: other_class follows the predicted class, relevant_class top-K."""
    images = data["images"][:SHOWN]
    pool, pool_labels = data["pool"]
    model = digits_cnn()
    predicted = AttributionCallback("ig", images, references="other_class", reference_pool=data["pool"], steps=4,
                                    output_dir=str(tmp_path))
    assert predicted.references is None
    predicted.set_model(model)
    explanation = predicted.explain()
    expected = pickers.other_class(pool, pool_labels, explanation.targets, defaults.REFERENCES_PER_INPUT,
                                   seed=defaults.REFERENCES_SEED)
    np.testing.assert_array_equal(predicted.references, expected)
    np.testing.assert_array_equal(explanation.targets, np.argmax(model.predict(images, verbose=0), axis=1))
    top = IG2Callback(images, "relevant_class", reference_pool=data["pool"], class_index="top-2",
                      references_per_input=2, steps=4, output_dir=str(tmp_path))
    top.set_model(model)
    explanation = top.explain()
    ranked = np.argsort(-model.predict(images, verbose=0), axis=1, kind="stable")
    np.testing.assert_array_equal(explanation.targets, ranked[:, :2])
    np.testing.assert_array_equal(classes_of(top.references, pool, pool_labels), ranked[:, 2:4])


def test_a_failed_pick_while_logging_warns_and_training_goes_on(data, tmp_path):
    images, labels = data["images"], data["labels"]
    pool = (images[1000:1100], labels[1000:1100] + 10)  # classes the 10-class model never ranks
    callback = IG2Callback((images[:3], labels[:3]), "relevant_class", reference_pool=pool, steps=4,
                           output_dir=str(tmp_path))
    with pytest.warns(RuntimeWarning, match="could not log ig2 attributions at epoch 0.*relevant classes"):
        history = digits_cnn().fit(images[:64], labels[:64], epochs=1, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 1


_DIGITS = digits()
_X, _Y = _DIGITS[0][:20], _DIGITS[1][:20]


@pytest.mark.parametrize("build, error, match", [
    (lambda: IG2Callback(_X, "other_class"), ValueError, "labelled `validation_data=\\(x, y\\)` or `reference_pool"),
    (lambda: IG2Callback(_X, "relevant_class"), ValueError, "reference_pool=None"),
    (lambda: IG2Callback((_X, _Y), "others"), ValueError, r"one of \['other_class', 'relevant_class'\]"),
    (lambda: IG2Callback(_X, "other_class", reference_pool=(_X, _Y[:5])), ValueError, "`reference_pool` must hold "
                                                                                        "as many labels"),
    (lambda: IG2Callback(_X, "other_class", reference_pool=(_X, None)), ValueError, "y_pool=None"),
    (lambda: IG2Callback(_X, "other_class", reference_pool=[_X, _Y]), TypeError, "reference_pool"),
    (lambda: IG2Callback(_X, "other_class", reference_pool=(_X[:, :4], _Y)), ValueError, "reference_pool"),
    (lambda: IG2Callback(_X, "other_class", reference_pool=(_X * 3.0, _Y), value_range=(0.0, 1.0)), ValueError,
     "`reference_pool` must lie inside `value_range`"),
    (lambda: IG2Callback((_X, _Y), _X[:2], reference_pool=(_X, _Y)), ValueError,
     "`reference_pool` only go with a reference picker"),
    (lambda: IG2Callback((_X, _Y), _X[:2], references_per_input=2), ValueError, "`references_per_input` only go with"),
    (lambda: IG2Callback((_X, _Y), "other_class", references_per_input=0), ValueError, "references_per_input"),
    (lambda: IG2Callback((_X, _Y), "other_class", references_seed=-1), ValueError, "references_seed"),
    (lambda: IG2Callback((_X, _Y), "other_class", references_seed="0"), TypeError, "references_seed"),
    (lambda: IG2Callback((_X, _Y), "other_class", references_per_input=20), ValueError,
     "`references_per_input`.*input 0, explained for class\\(es\\) \\[0\\]"),
    (lambda: IG2Callback(_X, "other_class", reference_pool=(_X[:6], _Y[:6]), references_per_input=6), ValueError,
     "holds only 5 item\\(s\\) outside the 1 class"),
    (lambda: IG2Callback((_X, _Y), "relevant_class", references_per_input=10), ValueError,
     "has items of only 9 other class"),
    (lambda: IG2Callback((_X, _Y), "relevant_class", class_index="top-3", references_per_input=8), ValueError,
     "holds items of only 7 class\\(es\\) outside the 3 class"),
])
def test_constructor_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()
