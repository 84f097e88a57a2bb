"""The TensorBoard callbacks: a small CNN trained on scikit-learn's digits, event files read back."""

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import tf_ig2
from tf_ig2 import defaults, visualize
from tf_ig2.callbacks import AttributionCallback, IG2Callback
from tf_ig2.visualize import maps
from tf_ig2.visualize.panel_layout import LINE

from conftest import REPOSITORY, read_run

EPOCHS = 3
SHOWN = 6  # validation images logged per epoch (max_outputs)
IMAGE_TAGS = ("panels", "overlay", "grid")


def digits():
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[..., None]
    return images, data.target.astype(np.int64)


def digits_cnn(seed=0):
    """Conv -> batch norm -> dense(16) -> softmax: batch norm shows any training-mode call."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="relu", name="features"),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class TracingRecorder(keras.callbacks.Callback):
    """Records another callback's explainer and its tracing count after every epoch."""

    def __init__(self, watched):
        super().__init__()
        self.watched, self.counts, self.explainers = watched, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.explainers.append(self.watched.explainer)
        self.counts.append(self.watched.explainer.tracing_count)


def png_sizes(event):
    """(width, height) strings then PNGs: returns [(height, width), ...] of the decoded PNGs."""
    values = tf.make_ndarray(event.tensor_proto)
    width, height = int(values[0]), int(values[1])
    shapes = [tuple(tf.io.decode_png(value).shape[:2]) for value in values[2:]]
    assert all(shape == (height, width) for shape in shapes)
    return shapes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run with an IG² callback (every epoch), an IG callback (every 2nd epoch)
    and Keras' own TensorBoard callback in the same log folder."""
    log_dir = str(tmp_path_factory.mktemp("logs"))
    images, labels = digits()
    references = images[labels == 0][:2]
    model = digits_cnn()
    ig2_callback = IG2Callback((images[:10], labels[:10]), references, output_dir=log_dir, max_outputs=SHOWN,
                               steps=16, value_range=(0.0, 1.0))
    ig_callback = AttributionCallback("ig", images[:SHOWN], references=0.0, output_dir=log_dir, freq=2, steps=8)
    recorder = TracingRecorder(ig2_callback)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(images[:600], labels[:600], epochs=EPOCHS, batch_size=64, verbose=0,
                            callbacks=[ig2_callback, ig_callback, recorder, keras.callbacks.TensorBoard(log_dir)])
    return dict(log_dir=log_dir, model=model, ig2=ig2_callback, ig=ig_callback, recorder=recorder,
                history=history, warnings=[item for item in caught if issubclass(item.category, RuntimeWarning)],
                images=images, labels=labels, references=references)


def test_training_logs_without_warnings_beside_keras_runs(trained):
    assert not trained["warnings"], [str(item.message) for item in trained["warnings"]]
    assert len(trained["history"].history["loss"]) == EPOCHS
    runs = sorted(os.listdir(trained["log_dir"]))
    assert {"ig2", "ig", "train"} <= set(runs)


@pytest.mark.parametrize("run, freq", [("ig2", 1), ("ig", 2)])
def test_image_events_one_per_logged_epoch(trained, run, freq):
    accumulator = read_run(os.path.join(trained["log_dir"], run))
    expected_steps = [epoch for epoch in range(EPOCHS) if epoch % freq == 0]
    for kind in IMAGE_TAGS:
        tag = f"{run}/{kind}"
        assert tag in accumulator.Tags()["tensors"]
        assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "images"
        assert [event.step for event in accumulator.Tensors(tag)] == expected_steps


def test_image_sizes(trained):
    accumulator = read_run(os.path.join(trained["log_dir"], "ig2"))
    factor = -(-defaults.CALLBACK_MIN_DISPLAY_SIZE // 8)  # 8x8 digits enlarged to >= the display size
    side = 8 * factor
    for overlays, grid in zip(accumulator.Tensors("ig2/overlay"), accumulator.Tensors("ig2/grid")):
        sizes = png_sizes(overlays)  # the picture, its index above and its colour bar (with its labels) beside it
        assert len(sizes) == SHOWN and all(height == LINE + side and width > side for height, width in sizes)
        # 6 images: 3 columns, 2 rows, each cell as wide as the widest (colour bar labels differ in width)
        height, width = sizes[0][0], max(width for _, width in sizes)
        assert png_sizes(grid) == [(2 * height + 4, 3 * width + 2 * 4)]


def test_overlay_pixels_are_the_visualized_attributions(trained):
    callback = trained["ig2"]
    accumulator = read_run(callback.run_dir)
    last = accumulator.Tensors("ig2/overlay")[-1]
    first_png = tf.io.decode_png(tf.make_ndarray(last.tensor_proto)[2]).numpy()
    images, _ = callback.summaries(callback.explain())  # the model is as it was at the last epoch
    np.testing.assert_array_equal(first_png, images["ig2/overlay"][0])
    expected = visualize.upscale(visualize.overlay(callback.images[:1], callback.explain().attributions[:1]),
                                 callback.display_factor()).numpy()[0]
    side = expected.shape[0]
    np.testing.assert_allclose(first_png[LINE:LINE + side, :side], np.round(expected * 255.0), atol=1.0)
    # Beside it, the magnitude's colour bar runs from the colour map's top to its bottom colour.
    bar = first_png[LINE + 1:LINE + side - 1, side + 3 + 5]
    levels = np.linspace(1.0, 0.0, side)[[1, -2]]
    expected_bar = maps._colorize(levels, maps.colormap_table(defaults.HEATMAP_COLORMAP))
    np.testing.assert_allclose(bar[[0, -1]], np.round(expected_bar * 255.0), atol=1.0)


@pytest.mark.parametrize("run, freq", [("ig2", 1), ("ig", 2)])
def test_panels_one_per_explained_input_and_logged_epoch(trained, run, freq):
    from tf_ig2.visualize import panel_layout as panel_module

    callback = trained[run]
    accumulator = read_run(callback.run_dir)
    tag = f"{run}/panels"
    assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "images"
    events = accumulator.Tensors(tag)
    assert [event.step for event in events] == [epoch for epoch in range(EPOCHS) if epoch % freq == 0]
    side = 8 * -(-defaults.CALLBACK_MIN_DISPLAY_SIZE // 8)
    height = 2 * panel_module.MARGIN + 3 * panel_module.LINE + side  # two title lines, the labels, the pictures
    for event in events:
        sizes = png_sizes(event)
        assert len(sizes) == len(callback.inputs) and {size[0] for size in sizes} == {height}
    last = [tf.io.decode_png(value).numpy() for value in tf.make_ndarray(events[-1].tensor_proto)[2:]]
    explanation = callback.explain()  # the model is as it was at the last epoch
    expected = visualize.explanation_panels(explanation, callback.inputs, min_size=callback.min_display_size,
                                            value_range=callback.explainer_options.get("value_range"))
    np.testing.assert_array_equal(np.stack(last), expected)
    if run == "ig2":  # value_range (0, 1): the input column is the digit itself, enlarged
        top, left = panel_module.MARGIN + 3 * panel_module.LINE, panel_module.MARGIN
        enlarged = np.kron(callback.inputs[0, ..., 0], np.ones((side // 8, side // 8)))
        np.testing.assert_array_equal(last[0][top:top + side, left:left + side, 0], np.round(enlarged * 255.0))


def test_scalars_are_finite_and_representation_distance_is_ig2_only(trained):
    ig2_run = read_run(os.path.join(trained["log_dir"], "ig2"))
    ig_run = read_run(os.path.join(trained["log_dir"], "ig"))
    ig2_tags = ("completeness_delta", "relative_completeness_delta", "target_score", "representation_distance")
    for accumulator, run, tags in [(ig2_run, "ig2", ig2_tags),
                                   (ig_run, "ig", ("completeness_delta", "target_score"))]:
        for tag in tags:
            values = [float(tf.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(f"{run}/{tag}")]
            assert values and np.all(np.isfinite(values)), (run, tag, values)
    assert "ig/representation_distance" not in ig_run.Tags()["tensors"]
    deltas = [float(tf.make_ndarray(event.tensor_proto)) for event in ig2_run.Tensors("ig2/completeness_delta")]
    assert min(deltas) >= 0.0
    scores = [float(tf.make_ndarray(event.tensor_proto)) for event in ig2_run.Tensors("ig2/target_score")]
    assert len(set(scores)) == EPOCHS  # the reused explainer reads the weights of every epoch


def test_explainer_is_built_once_and_never_retraced(trained):
    counts, explainers = trained["recorder"].counts, trained["recorder"].explainers
    assert all(explainer is explainers[0] for explainer in explainers)
    assert len(counts) == EPOCHS and counts[0] > 0
    assert counts == [counts[0]] * EPOCHS
    assert isinstance(trained["ig2"].explainer, tf_ig2.IG2)


def test_targets_are_labels_then_class_index_then_predictions(trained):
    images, labels, model = trained["images"], trained["labels"], trained["model"]
    np.testing.assert_array_equal(trained["ig2"].targets, labels[:SHOWN])
    one_hot = np.eye(10, dtype=np.float32)[labels[:4]]
    from_one_hot = AttributionCallback("ig", (images[:4], one_hot), steps=4)
    np.testing.assert_array_equal(from_one_hot.targets, labels[:4])
    chosen = AttributionCallback("ig", (images[:4], labels[:4]), class_index=7, steps=4)
    np.testing.assert_array_equal(chosen.targets, [7, 7, 7, 7])
    predicted = AttributionCallback("ig", images[:4], steps=4)
    assert predicted.targets is None
    predicted.set_model(model)
    explanation = predicted.explain()
    np.testing.assert_array_equal(explanation.targets, np.argmax(model.predict(images[:4], verbose=0), axis=1))


def test_logging_leaves_weights_optimizer_and_metrics_untouched(trained, tmp_path):
    model = trained["model"]
    callback = IG2Callback((trained["images"][:4], trained["labels"][:4]), trained["references"],
                           output_dir=str(tmp_path), steps=8)
    callback.set_model(model)
    variables = (list(model.weights) + list(model.optimizer.variables)
                 + [variable for metric in model.metrics for variable in metric.variables])
    before = [np.array(variable.numpy(), copy=True) for variable in variables]
    callback.on_train_begin()
    callback.on_epoch_end(0)
    callback.on_train_end()
    for variable, value in zip(variables, before):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    assert "ig2/overlay" in read_run(callback.run_dir).Tags()["tensors"]


def test_path_strip_logs_the_film_strip_of_the_first_input_and_reference(trained, tmp_path):
    from tf_ig2.visualize import panel_layout as layout

    images, labels = trained["images"], trained["labels"]
    assert "ig2/path" not in read_run(os.path.join(trained["log_dir"], "ig2")).Tags()["tensors"]  # off by default
    callback = IG2Callback((images[:3], labels[:3]), trained["references"], output_dir=str(tmp_path), steps=8,
                           value_range=(0.0, 1.0), path_strip=True)
    callback.set_model(trained["model"])
    callback.on_train_begin()
    callback.on_epoch_end(0)
    callback.on_train_end()
    accumulator = read_run(callback.run_dir)
    assert accumulator.SummaryMetadata("ig2/path").plugin_data.plugin_name == "images"
    events = accumulator.Tensors("ig2/path")
    assert [event.step for event in events] == [0] and len(png_sizes(events[0])) == 1
    strip = tf.io.decode_png(tf.make_ndarray(events[0].tensor_proto)[2]).numpy()
    path = callback.explain_path()  # the first input against the first reference, its whole path kept
    assert np.shape(path.path) == (1, 1, 9, 8, 8, 1) and path.targets.tolist() == [labels[0]]
    np.testing.assert_allclose(path.path[0, 0, -1], path.counterfactuals[0, 0], atol=1e-6)
    np.testing.assert_array_equal(strip, callback.display.path_images(path)["ig2/path"][0])
    side = 8 * -(-defaults.CALLBACK_MIN_DISPLAY_SIZE // 8)
    top = layout.MARGIN + 2 * layout.LINE  # one title line, the labels
    enlarged = np.kron(images[0, ..., 0], np.ones((side // 8, side // 8)))
    np.testing.assert_array_equal(strip[top:top + side, layout.MARGIN:layout.MARGIN + side, 0],
                                  np.round(enlarged * 255.0))


def test_path_strip_needs_ig2_images_and_a_bool(trained):
    images, references = trained["images"][:2], trained["references"]
    with pytest.raises(ValueError, match="`path_strip` needs a method that returns its path \\('ig2'\\)"):
        AttributionCallback("ig", images, references=0.0, path_strip=True)
    with pytest.raises(TypeError, match="`path_strip` must be a bool"):
        IG2Callback(images, references, path_strip="yes")
    rows = np.random.default_rng(0).random((4, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="`path_strip` draws the GradPath of images"):
        IG2Callback(rows, rows[:2], input_kind="tabular", path_strip=True)


def test_factory_and_class_methods(trained, tmp_path):
    images = trained["images"][:3]

    def factory(model, **options):
        return tf_ig2.IntegratedGradients(model, steps=4, **options)

    by_factory = AttributionCallback(factory, images, output_dir=str(tmp_path), name="custom", rule="midpoint")
    by_class = AttributionCallback(tf_ig2.IntegratedGradients, images, output_dir=str(tmp_path), steps=4)
    assert by_class.name == "ig"
    for callback in (by_factory, by_class):
        callback.set_model(trained["model"])
        callback.on_train_begin()
        callback.on_epoch_end(0)
        callback.on_train_end()
    assert "custom/grid" in read_run(os.path.join(str(tmp_path), "custom")).Tags()["tensors"]
    assert by_factory.explainer.rule == "midpoint"


class ReplaceRunFolderWithFile(keras.callbacks.Callback):
    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = run_dir

    def on_train_begin(self, logs=None):
        shutil.rmtree(self.run_dir)
        with open(self.run_dir, "w") as handle:
            handle.write("not a folder")


def test_unwritable_folder_after_start_warns_and_training_completes(tmp_path):
    images, labels = digits()
    model = digits_cnn()
    callback = AttributionCallback("ig", (images[:4], labels[:4]), output_dir=str(tmp_path), steps=4)
    with pytest.warns(RuntimeWarning) as record:
        history = model.fit(images[:128], labels[:128], epochs=2, batch_size=64, verbose=0,
                            callbacks=[callback, ReplaceRunFolderWithFile(callback.run_dir)])
    assert len(history.history["loss"]) == 2
    messages = [str(item.message) for item in record]
    assert any("could not log ig attributions at epoch 0" in message and "disappeared" in message
               for message in messages), messages
    assert any("could not log ig attributions at epoch 1" in message for message in messages), messages
    with open(callback.run_dir) as handle:  # the user's file was not touched
        assert handle.read() == "not a folder"


class RemoveRunFolderAfterFirstEpoch(keras.callbacks.Callback):
    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = run_dir

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            shutil.rmtree(self.run_dir)


def test_removed_folder_warns_once_then_logging_resumes(tmp_path):
    images, labels = digits()
    model = digits_cnn()
    callback = AttributionCallback("ig", images[:4], output_dir=str(tmp_path), steps=4)
    with pytest.warns(RuntimeWarning) as record:
        model.fit(images[:64], labels[:64], epochs=3, verbose=0,
                  callbacks=[callback, RemoveRunFolderAfterFirstEpoch(callback.run_dir)])
    messages = [str(item.message) for item in record if "AttributionCallback" in str(item.message)]
    assert len(messages) == 1 and "epoch 1" in messages[0] and "disappeared" in messages[0], messages
    accumulator = read_run(callback.run_dir)
    assert [event.step for event in accumulator.Tensors("ig/overlay")] == [2]


def test_unwritable_folder_at_start_warns_and_training_completes(tmp_path):
    images, labels = digits()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log folder should be")
    model = digits_cnn()
    callback = AttributionCallback("ig", images[:4], output_dir=str(blocker), steps=4)
    with pytest.warns(RuntimeWarning) as record:
        history = model.fit(images[:64], labels[:64], epochs=1, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 1
    messages = [str(item.message) for item in record]
    assert any("could not open its log" in message for message in messages), messages
    assert any("could not log ig attributions at epoch 0" in message for message in messages), messages


def test_failed_logging_keeps_the_traceback_at_debug_level(tmp_path, caplog):
    images, labels = digits()
    model = digits_cnn()
    callback = AttributionCallback("ig", images[:4], output_dir=str(tmp_path), steps=4)

    def summary_writer_breaks(epoch):
        raise RuntimeError("disk on fire")

    callback._write = summary_writer_breaks
    with caplog.at_level(logging.DEBUG, logger="tf_ig2.callbacks"), pytest.warns(RuntimeWarning) as record:
        history = model.fit(images[:64], labels[:64], epochs=1, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 1
    warned = [str(item.message) for item in record if "AttributionCallback" in str(item.message)]
    assert len(warned) == 1 and "\n" not in warned[0] and "RuntimeError: disk on fire" in warned[0], warned
    debug = [entry for entry in caplog.records if entry.name == "tf_ig2.callbacks" and entry.levelno == logging.DEBUG]
    assert len(debug) == 1 and debug[0].exc_info is not None, caplog.records
    assert debug[0].getMessage() == warned[0]
    assert "Traceback (most recent call last)" in caplog.text
    assert "summary_writer_breaks" in caplog.text and "RuntimeError: disk on fire" in caplog.text


def test_configuration_errors_of_the_model_raise_when_training_begins():
    images, labels = digits()
    model = digits_cnn()
    callback = IG2Callback(images[:2], images[:1], representation_layer="no_such_layer", steps=4)
    with pytest.raises(ValueError, match="representation_layer"):
        model.fit(images[:64], labels[:64], epochs=1, verbose=0, callbacks=[callback])


_IMAGES = digits()[0][:5]


@pytest.mark.parametrize("build, error, match", [
    (lambda: AttributionCallback("lrp", _IMAGES), ValueError, "method"),
    (lambda: AttributionCallback(42, _IMAGES), TypeError, "method"),
    (lambda: AttributionCallback(lambda model: None, _IMAGES), ValueError, "name"),
    (lambda: AttributionCallback("ig", _IMAGES, name="a/b"), ValueError, "name"),
    (lambda: AttributionCallback("ig", _IMAGES, stepz=3), TypeError, "stepz"),
    (lambda: AttributionCallback("ig", _IMAGES, steps=0), ValueError, "steps"),
    (lambda: AttributionCallback("ig", _IMAGES, rule="simpson"), ValueError, "rule"),
    (lambda: AttributionCallback("ig", _IMAGES, freq=0), ValueError, "freq"),
    (lambda: AttributionCallback("ig", _IMAGES, freq=1.5), TypeError, "freq"),
    (lambda: AttributionCallback("ig", _IMAGES, max_outputs=0), ValueError, "max_outputs"),
    (lambda: AttributionCallback("ig", _IMAGES, output_dir=3), TypeError, "output_dir"),
    (lambda: AttributionCallback("ig", _IMAGES, alpha=2.0), ValueError, "alpha"),
    (lambda: AttributionCallback("ig", _IMAGES, colormap="gray"), ValueError, "colormap"),
    (lambda: AttributionCallback("ig", _IMAGES, percentile=0), ValueError, "percentile"),
    (lambda: AttributionCallback("ig", _IMAGES, min_display_size=0), ValueError, "min_display_size"),
    (lambda: AttributionCallback("ig", _IMAGES[:, :, :, 0].reshape(5, -1)), ValueError, "validation_data"),
    (lambda: AttributionCallback("ig", np.zeros((5, 8, 8, 4), np.float32)), ValueError, "validation_data"),
    (lambda: AttributionCallback("ig", (_IMAGES, np.arange(4))), ValueError, "labels"),
    (lambda: AttributionCallback("ig", (_IMAGES, 1, 2)), ValueError, "validation_data"),
    (lambda: AttributionCallback("ig", _IMAGES, class_index=-1), ValueError, "class_index"),
    (lambda: AttributionCallback("ig", _IMAGES, class_index="1"), TypeError, "class_index"),
    (lambda: AttributionCallback("ig", _IMAGES, class_index=[1, 2]), ValueError, "class_index"),
    (lambda: AttributionCallback("ig", _IMAGES, references=np.zeros((2, 7, 8, 1))), ValueError, "references"),
    (lambda: IG2Callback(_IMAGES, None), ValueError, "references"),
    (lambda: IG2Callback(_IMAGES, _IMAGES[:1], step_size=-1.0), ValueError, "step_size"),
    (lambda: IG2Callback(_IMAGES, _IMAGES[:1] + 2.0, value_range=(0.0, 1.0)), ValueError, "references"),
    (lambda: IG2Callback(_IMAGES * 3.0, _IMAGES[:1], value_range=(0.0, 1.0)), ValueError, "validation_data"),
    (lambda: AttributionCallback("guided_ig", _IMAGES, fraction=0.0), ValueError, "fraction"),
])
def test_constructor_validates_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_per_input_references_follow_the_logged_images():
    references = np.stack([np.full((2, 8, 8, 1), index / 10.0, np.float32) for index in range(5)])  # (5, 2, ...)
    callback = IG2Callback(_IMAGES, references, max_outputs=3)
    np.testing.assert_array_equal(callback.references, references[:3])
    shared = IG2Callback(_IMAGES, references[0], max_outputs=3)
    np.testing.assert_array_equal(shared.references, references[0])


def _free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_tensorboard_server_lists_the_image_tags(trained):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", trained["log_dir"], "--port", str(port),
         "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    listed = {}
    try:
        deadline = time.monotonic() + 90.0
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/images/tags", timeout=5) as reply:
                    listed = json.loads(reply.read().decode("utf-8"))
            except OSError:
                listed = {}
            if "ig2/overlay" in listed.get("ig2", {}) and "ig/grid" in listed.get("ig", {}):
                break
            time.sleep(1.0)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
    assert set(listed.get("ig2", {})) >= {"ig2/overlay", "ig2/grid"}, listed
    assert set(listed.get("ig", {})) >= {"ig/overlay", "ig/grid"}, listed


def test_every_tag_says_what_it_shows(trained):
    run = read_run(os.path.join(trained["log_dir"], "ig2"))
    tags = run.Tags()["tensors"]
    assert {"ig2/panels", "ig2/overlay", "ig2/grid", "ig2/relative_completeness_delta"} <= set(tags)
    for tag in tags:
        description = run.SummaryMetadata(tag).summary_description
        assert len(description) > 30, (tag, description)
    assert "red raises the explained score" in run.SummaryMetadata("ig2/panels").summary_description


class RaiseAtEpochEnd(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("another callback failed")


def test_a_writer_left_open_by_a_failed_fit_is_closed_when_the_next_fit_begins(tmp_path):
    images, labels = digits()
    model = digits_cnn()
    callback = AttributionCallback("ig", images[:4], output_dir=str(tmp_path), steps=4)
    with pytest.raises(RuntimeError, match="another callback failed"):
        model.fit(images[:64], labels[:64], epochs=2, verbose=0, callbacks=[callback, RaiseAtEpochEnd()])
    left_open = callback._writer
    assert left_open is not None and os.path.exists(os.path.join(callback.run_dir, ".tf_ig2.lock"))
    first = left_open.events_file
    model.fit(images[:64], labels[:64], epochs=1, verbose=0, callbacks=[callback])
    files = sorted(name for name in os.listdir(callback.run_dir) if name.startswith("events.out.tfevents."))
    assert len(files) == 2, "the second fit appended to the first fit's events file"
    size = os.path.getsize(first)
    assert [event.step for event in read_run(callback.run_dir).Tensors("ig/overlay")] == [0, 0]
    model.fit(images[:64], labels[:64], epochs=1, verbose=0, callbacks=[callback])
    assert os.path.getsize(first) == size and callback._writer is None
    assert not os.path.exists(os.path.join(callback.run_dir, ".tf_ig2.lock"))
    assert left_open._finalizer.alive is False  # closed, not left for the interpreter's exit


def test_a_run_folder_another_process_logs_to_is_refused(tmp_path):
    from tf_ig2 import folders

    images, labels = digits()
    run_dir = tmp_path / "ig"
    run_dir.mkdir()
    script = "import sys; from tf_ig2 import folders; lock = folders.FolderLock(sys.argv[1]).acquire(); " \
             "print('locked', flush=True); sys.stdin.read()"
    root = REPOSITORY
    holder = subprocess.Popen([sys.executable, "-c", script, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=root))
    try:
        assert holder.stdout.readline().strip() == "locked"
        callback = AttributionCallback("ig", images[:4], output_dir=str(tmp_path), steps=4)
        with pytest.raises(folders.FolderInUseError, match=f"PID {holder.pid} on host"):
            digits_cnn().fit(images[:32], labels[:32], epochs=1, verbose=0, callbacks=[callback])
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert os.listdir(run_dir) == []
