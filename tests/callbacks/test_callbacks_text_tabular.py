"""The TensorBoard callbacks on token ids and tabular rows: tiny models trained, event files read back."""

import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_breast_cancer
from tensorboard.plugin_util import markdown_to_safe_html

import tf_ig2
from tf_ig2 import visualize
from tf_ig2.callbacks.callback import AttributionCallback, IG2Callback, token_markdown

from conftest import read_run

EPOCHS = 2
LENGTH = 8  # padded sentence length T
VOCABULARY = ["<pad>", "where", "is", "the", "how", "many", "are", "there", "who", "wrote", "built",
              "river", "city", "book", "song", "bridge", "old", "big"]
NOUNS = ["river", "city", "book", "song", "bridge"]
ADJECTIVES = ["old", "big"]


def corpus(count, seed):
    """Three classes of short questions: location (where), number (how many), person (who)."""
    rng = np.random.default_rng(seed)
    index = {word: position for position, word in enumerate(VOCABULARY)}
    ids, labels = np.zeros((count, LENGTH), np.int32), np.zeros((count,), np.int64)
    for row in range(count):
        label = row % 3
        noun = [str(rng.choice(NOUNS))]
        adjective = [str(rng.choice(ADJECTIVES))] if rng.random() < 0.5 else []
        words = [["where", "is", "the"] + adjective + noun,
                 ["how", "many"] + adjective + noun + ["are", "there"],
                 ["who", str(rng.choice(["wrote", "built"])), "the"] + adjective + noun][label]
        ids[row, :len(words)] = [index[word] for word in words]
        labels[row] = label
    return ids, labels


def text_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((LENGTH,), dtype="int32"),
        keras.layers.Embedding(len(VOCABULARY), 8, name="embedding"),
        keras.layers.Conv1D(8, 2, activation="tanh", name="conv"),
        keras.layers.GlobalAveragePooling1D(name="pool"),
        keras.layers.Dense(16, activation="tanh", name="features"),
        keras.layers.Dense(3, activation="softmax", name="probabilities"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def breast_cancer():
    data = load_breast_cancer()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.target))
    train, held_out = order[:450], order[450:]
    mean, std = data.data[train].mean(axis=0), data.data[train].std(axis=0)
    rows = ((data.data - mean) / std).astype(np.float32)
    return rows[train], data.target[train], rows[held_out], data.target[held_out], list(data.feature_names)


def pngs(event):
    values = tf.make_ndarray(event.tensor_proto)
    width, height = int(values[0]), int(values[1])
    decoded = [tf.io.decode_png(value).numpy() for value in values[2:]]
    assert all(picture.shape == (height, width, 3) for picture in decoded)
    return decoded


def other_class_references(ids, labels, wanted, count, seed):
    """For each wanted label, ``count`` inputs of other classes: ``(N, R, ...)``."""
    rng = np.random.default_rng(seed)
    return np.stack([ids[rng.choice(np.flatnonzero(labels != label), count, replace=False)] for label in wanted])


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("text_logs"))
    ids, labels = corpus(300, seed=0)
    shown_ids, shown_labels = corpus(6, seed=1)
    references = other_class_references(ids, labels, shown_labels, 2, seed=2)
    callback = IG2Callback((shown_ids, shown_labels), references, output_dir=log_dir, max_outputs=3,
                           input_layer="embedding", vocabulary=VOCABULARY, steps=16)
    model = text_cnn()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(ids, labels, epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[callback])
    return dict(callback=callback, model=model, shown=shown_ids, references=references,
                warnings=[item for item in caught if issubclass(item.category, RuntimeWarning)])


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("tabular_logs"))
    x_train, y_train, x_held_out, y_held_out, names = breast_cancer()
    references = other_class_references(x_train, y_train, y_held_out[:4], 3, seed=3)
    value_range = (x_train.min(axis=0), x_train.max(axis=0))
    shown = np.clip(x_held_out[:4], *value_range)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((30,)),
        keras.layers.Dense(16, activation="tanh", name="features"),
        keras.layers.Dense(2, activation="softmax", name="probabilities"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    callback = IG2Callback((shown, y_held_out[:4]), references, output_dir=log_dir, feature_names=names, top=5,
                           value_range=value_range, steps=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x_train, y_train, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=[callback])
    return dict(callback=callback, model=model, names=names,
                warnings=[item for item in caught if issubclass(item.category, RuntimeWarning)])


# -- token ids --------------------------------------------------------------------------------------
def shown_tokens(ids):
    return [VOCABULARY[token] for token in ids if token != 0]


def test_text_tags_one_event_per_epoch(text_run):
    assert not text_run["warnings"], [str(item.message) for item in text_run["warnings"]]
    callback = text_run["callback"]
    assert callback.input_kind == "tokens"
    accumulator = read_run(callback.run_dir)
    tags = accumulator.Tags()["tensors"]
    for tag, plugin in [("ig2/tokens", "images"), ("ig2/grid", "images"), ("ig2/text", "text"),
                        ("ig2/completeness_delta", "scalars"), ("ig2/representation_distance", "scalars")]:
        assert tag in tags
        assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == plugin
        assert [event.step for event in accumulator.Tensors(tag)] == list(range(EPOCHS))
    assert "ig2/overlay" not in tags and "ig2/bars" not in tags
    # The path is clipped to the embedding table's range at the last logged epoch, not at the first.
    table = text_run["model"].get_layer("embedding").embeddings.numpy()
    counterfactuals = callback.explain().counterfactuals
    assert np.all(counterfactuals >= table.min(axis=0) - 1e-6) and np.all(counterfactuals <= table.max(axis=0) + 1e-6)
    # One explainer served every epoch although training moved the table: its three compiled
    # functions (the search, the forward pass picking classes, the embedding lookup) traced once each.
    assert callback.explainer.tracing_count == 3


def test_token_strips_are_the_visualized_attributions_without_padding(text_run):
    callback = text_run["callback"]
    strips = pngs(read_run(callback.run_dir).Tensors("ig2/tokens")[-1])
    assert len(strips) == 3
    attributions = callback.explain().attributions  # the weights of the last epoch
    widths = []
    for index, strip in enumerate(strips):
        ids = text_run["shown"][index]
        expected = visualize.token_strip(shown_tokens(ids), attributions[index][ids != 0]).numpy()
        widths.append(expected.shape[1])
        np.testing.assert_array_equal(strip[:, :expected.shape[1]], np.round(expected * 255.0))
        assert np.all(strip[:, expected.shape[1]:] == 255)  # white to the widest strip
    assert strips[0].shape[1] == max(widths)
    grid = pngs(read_run(callback.run_dir).Tensors("ig2/grid")[-1])[0]
    assert grid.shape == (3 * strips[0].shape[0] + 2 * 4, strips[0].shape[1], 3)  # one column, 4 px apart


def parse_sections(text):
    sections = re.split(r"\*\*Sentence \d+\*\*", text)[1:]
    parsed = []
    for section in sections:
        lines = [line for line in section.splitlines() if line.startswith("|")]
        tokens = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
        values = [float(cell.strip().strip("*")) for cell in lines[2].strip("|").split("|")[1:]]
        parsed.append((section.splitlines()[0], tokens, np.array(values)))
    return parsed


def test_text_summary_lists_tokens_and_their_values(text_run):
    callback = text_run["callback"]
    events = read_run(callback.run_dir).Tensors("ig2/text")
    text = tf.make_ndarray(events[-1].tensor_proto).item().decode("utf-8")
    explanation = callback.explain()
    sections = parse_sections(text)
    assert len(sections) == 3
    for index, (title, tokens, values) in enumerate(sections):
        ids = text_run["shown"][index]
        assert tokens == shown_tokens(ids) and "<pad>" not in tokens
        np.testing.assert_allclose(values, explanation.attributions[index][ids != 0], rtol=6e-3, atol=1e-7)
        assert f"class {int(explanation.targets[index])}" in title
        delta = float(re.search(r"completeness delta ([-+0-9.e]+)", title).group(1))
        assert delta == pytest.approx(float(explanation.delta[index]), rel=6e-3, abs=1e-7)
    html = markdown_to_safe_html(text)  # what TensorBoard's text tab shows
    assert html.count("<table>") == 3 and "<strong>" in html and "where" in html


def test_token_markdown_escapes_and_emphasises():
    markdown = token_markdown(["a|b", "<unk>", "*x*"], [1.0, -0.2, -0.6])
    html = markdown_to_safe_html(markdown)
    assert html.count("<th>") == 4 and html.count("<td>") == 4
    assert "a|b" in html and "&lt;unk&gt;" in html and "*x*" in html
    assert "<strong>+1</strong>" in html and "<strong>-0.6</strong>" in html
    assert "-0.2" in html and "<strong>-0.2</strong>" not in html
    assert token_markdown([], []) == "*(no tokens)*"
    with pytest.raises(ValueError, match="same length"):
        token_markdown(["a"], [1.0, 2.0])


def test_a_failure_while_logging_tokens_warns(text_run, tmp_path):
    class WrongShape:
        def __init__(self, model, **options):
            self.inner = tf_ig2.IG2(model, **options)

        def explain(self, inputs, references, targets=None):
            explanation = self.inner.explain(inputs, references, targets)
            explanation.attributions = np.repeat(explanation.attributions[..., None], 2, axis=-1)
            return explanation

    callback = AttributionCallback(lambda model, **options: WrongShape(model, **options), text_run["shown"][:2],
                                   references=text_run["references"][:2], output_dir=str(tmp_path), name="broken",
                                   input_layer="embedding", steps=4)
    callback.set_model(text_run["model"])
    callback.on_train_begin()
    with pytest.warns(RuntimeWarning, match="could not log broken attributions at epoch 0"):
        callback.on_epoch_end(0)
    callback.on_train_end()


def test_token_inputs_without_vocabulary_and_float_ids(text_run):
    ids = text_run["shown"][:2]
    by_default = IG2Callback(ids, text_run["references"][:2], input_layer="embedding", padding_id=None)
    tokens, positions = by_default.token_texts(0)
    assert tokens == [str(token) for token in ids[0]] and list(positions) == list(range(LENGTH))
    as_floats = IG2Callback(ids.astype(np.float32), text_run["references"][:2], input_layer="embedding")
    assert as_floats.input_kind == "tokens" and as_floats.references.dtype == np.float32
    assert as_floats.token_texts(1)[0] == [str(token) for token in ids[1] if token != 0]
    by_mapping = IG2Callback(ids, text_run["references"][0], input_layer="embedding",
                             vocabulary=dict(enumerate(VOCABULARY)))
    assert by_mapping.token_texts(0)[0] == shown_tokens(ids[0])
    assert by_mapping.references.shape == (2, LENGTH) and by_mapping.references.dtype == ids.dtype


# -- tabular rows -----------------------------------------------------------------------------------
def test_tabular_tags_one_event_per_epoch_and_chart_pixels(tabular_run):
    assert not tabular_run["warnings"], [str(item.message) for item in tabular_run["warnings"]]
    callback = tabular_run["callback"]
    assert callback.input_kind == "tabular"
    accumulator = read_run(callback.run_dir)
    tags = accumulator.Tags()["tensors"]
    for tag in ("ig2/bars", "ig2/grid", "ig2/completeness_delta", "ig2/target_score"):
        assert [event.step for event in accumulator.Tensors(tag)] == list(range(EPOCHS)), tag
    assert accumulator.SummaryMetadata("ig2/bars").plugin_data.plugin_name == "images"
    assert "ig2/text" not in tags and "ig2/overlay" not in tags
    charts = pngs(accumulator.Tensors("ig2/bars")[-1])
    assert len(charts) == 4 and charts[0].shape == (5 * 20, 480, 3)  # top=5 rows of 20 px
    attributions = callback.explain().attributions
    for chart, row in zip(charts, attributions):
        expected = visualize.feature_bars(tabular_run["names"], row, top=5).numpy()
        np.testing.assert_array_equal(chart, np.round(expected * 255.0))
    grid = pngs(accumulator.Tensors("ig2/grid")[-1])[0]
    assert grid.shape == (2 * 100 + 4, 2 * 480 + 4, 3)  # 4 charts: 2 columns, 2 rows, 4 px apart
    np.testing.assert_array_equal(grid[:100, 484:], charts[1])
    deltas = [float(tf.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors("ig2/completeness_delta")]
    assert np.all(np.isfinite(deltas))


def test_tabular_default_names():
    rows = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    callback = AttributionCallback("ig", rows, input_kind="tabular", steps=4)
    assert callback.feature_names == ["x0", "x1", "x2", "x3"] and callback.top is None
    assert AttributionCallback("ig", rows, top=2, steps=4).input_kind == "tabular"


# -- constructor errors -----------------------------------------------------------------------------
_IDS = corpus(4, seed=5)[0]
_ROWS = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
_IMAGES = np.random.default_rng(2).random((4, 8, 8, 1)).astype(np.float32)


@pytest.mark.parametrize("build, error, match", [
    (lambda: IG2Callback(_IDS, _IDS[:2]), ValueError, "input_layer.*required"),
    (lambda: AttributionCallback("ig", _IDS), ValueError, "input_layer.*required"),
    (lambda: IG2Callback(_IDS, _IDS[:2], input_layer="embedding", vocabulary="abc"), TypeError, "vocabulary"),
    (lambda: IG2Callback(_IDS, _IDS[:2], input_layer="embedding", vocabulary={"where": 1}), TypeError,
     "vocabulary.*maps tokens to ids"),
    (lambda: IG2Callback(_IDS, _IDS[:2], input_layer="embedding", vocabulary=VOCABULARY[:5]), ValueError,
     "vocabulary` has no token for id"),
    (lambda: IG2Callback(_IDS, _IDS[:2], input_layer="embedding", vocabulary={1: "where"}), ValueError,
     "vocabulary` has no token for id"),
    (lambda: IG2Callback(_IDS, _IDS[:2] + 0.5, input_layer="embedding"), ValueError, "references"),
    (lambda: IG2Callback(_IDS, _IDS[:2, :5], input_layer="embedding"), ValueError, "references"),
    (lambda: IG2Callback(_IDS, -_IDS[:2], input_layer="embedding"), ValueError, "references"),
    (lambda: IG2Callback(-_IDS, _IDS[:2], input_layer="embedding"), ValueError, "validation_data"),
    (lambda: IG2Callback(_IDS + 0.5, _IDS[:2], input_layer="embedding"), ValueError, "validation_data"),
    (lambda: IG2Callback(_IDS, _IDS[:2], input_layer="embedding", padding_id="0"), TypeError, "padding_id"),
    (lambda: IG2Callback(_IMAGES, _IMAGES[:1], input_kind="tokens", input_layer="embedding"), ValueError,
     "validation_data"),
    (lambda: AttributionCallback("ig", _ROWS), ValueError, "validation_data.*feature_names"),
    (lambda: AttributionCallback("ig", _ROWS, feature_names=["a", "b"]), ValueError, "feature_names"),
    (lambda: AttributionCallback("ig", _ROWS, feature_names=3), TypeError, "feature_names"),
    (lambda: AttributionCallback("ig", _ROWS, feature_names="abc"), TypeError, "feature_names"),
    (lambda: AttributionCallback("ig", _ROWS, top=0), ValueError, "top"),
    (lambda: AttributionCallback("ig", _ROWS, top=1.5), TypeError, "top"),
    (lambda: AttributionCallback("ig", _ROWS.astype(np.int32), feature_names=list("abc")), TypeError,
     "validation_data"),
    (lambda: IG2Callback(_ROWS * 9.0, _ROWS[:1], input_kind="tabular", value_range=(-5.0, 5.0)), ValueError,
     "validation_data"),
    (lambda: AttributionCallback("ig", _ROWS, input_kind="text"), ValueError, "input_kind"),
    (lambda: AttributionCallback("ig", _ROWS, input_kind=2), TypeError, "input_kind"),
    (lambda: AttributionCallback("ig", _ROWS, feature_names=list("abc"), vocabulary=["a"]), ValueError,
     "vocabulary"),
    (lambda: AttributionCallback("ig", _IMAGES, input_kind="images", top=3), ValueError, "top"),
    (lambda: AttributionCallback("ig", _ROWS, input_kind="tabular", vocabulary=["a"]), ValueError, "vocabulary"),
    (lambda: AttributionCallback("ig", (_ROWS, np.arange(3)), input_kind="tabular"), ValueError,
     "as many labels as rows"),
])
def test_constructor_validates_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_images_are_still_images():
    callback = AttributionCallback("ig", _IMAGES, steps=4)
    assert callback.input_kind == "images" and callback.feature_names is None and callback.vocabulary is None
    assert callback.images is callback.inputs


def test_encoded_png_decodes_to_the_same_pixels():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for shape in ((1, 1, 3), (7, 13, 3), (64, 64, 3)):
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        decoded = tf.io.decode_png(tf_ig2.visualize.encode_png(image)).numpy()
        np.testing.assert_array_equal(decoded, image)
