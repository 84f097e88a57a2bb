"""tf_ig2.plot and tf_ig2.plot_path: matplotlib figures of explanations (images, tabular rows, tokens)."""

import sys

import keras
import matplotlib  # the test extra installs it; users get it with the plot extra
import numpy as np
import pytest

import tf_ig2
from tf_ig2 import defaults
from tf_ig2.explanation import Explanation
from tf_ig2.visualize import plots


def explanation_of(attributions, counterfactuals, method="ig2", targets=(3, 1, 0), path=None):
    count = len(attributions)
    scores = np.linspace(2.0, 3.0, count).astype(np.float32)
    ends = np.linspace(-1.0, 0.0, count).astype(np.float32)
    delta = np.full((count,), 0.01, np.float32)
    return Explanation(attributions=np.asarray(attributions, np.float32),
                       counterfactuals=np.asarray(counterfactuals, np.float32), target_scores=scores,
                       counterfactual_scores=ends, delta=delta, method=method,
                       targets=None if targets is None else np.asarray(targets[:count], np.int64), path=path)


def row_titles(figure):
    return [subfigure._suptitle.get_text() for subfigure in figure.subfigs]


def drawn(figure):
    figure.draw_without_rendering()
    return figure


@pytest.fixture
def digits_like():
    rng = np.random.default_rng(0)
    images = rng.random((3, 8, 8, 1)).astype(np.float32)
    attributions = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    attributions[0, 0, 0, 0] = 40.0  # one extreme pixel: the colour limits come from the percentile
    counterfactuals = rng.random((3, 2, 8, 8, 1)).astype(np.float32)
    return images, explanation_of(attributions, counterfactuals)


def test_image_figure_rows_columns_titles_and_colour_bar(digits_like):
    images, explanation = digits_like
    figure = drawn(tf_ig2.plot(explanation, images, class_names=[f"digit {k}" for k in range(10)], max_rows=2))
    assert isinstance(figure, matplotlib.figure.Figure)
    assert len(figure.subfigs) == 2  # max_rows
    titles = row_titles(figure)
    assert titles[0].startswith("#0 class 3 (digit 3)") and "f(x) 2" in titles[0] and "f(GradCF) -1" in titles[0]
    assert "delta +0.01" in titles[0] and "%" in titles[0]
    for subfigure in figure.subfigs:
        image_axes = [axis for axis in subfigure.axes if axis.images]
        assert [axis.get_title() for axis in image_axes] == ["input", "GradCF (mean of 2)", "attribution",
                                                             "|attribution| on grey"]
        assert len(subfigure.axes) == 5  # four pictures and one colour bar
    signed = [axis for axis in figure.subfigs[0].axes if axis.get_title() == "attribution"][0].images[0]
    low, high = signed.get_clim()
    assert low == -high and high > 0
    summed = explanation.attributions[0].sum(axis=-1)
    assert high == pytest.approx(np.percentile(np.abs(summed), defaults.HEATMAP_PERCENTILE), rel=1e-6)
    assert high < np.abs(summed).max()  # the extreme pixel saturates instead of washing the map out
    np.testing.assert_allclose(signed.get_array(), summed, rtol=1e-6)
    assert signed.get_cmap().name == "bwr"


def test_input_and_gradcf_share_one_scale(digits_like):
    images, explanation = digits_like
    figure = tf_ig2.plot(explanation, images, max_rows=1)
    input_axis, end_axis = [axis for axis in figure.subfigs[0].axes if axis.images][:2]
    end = explanation.counterfactuals[0].mean(axis=0)
    low, high = min(images[0].min(), end.min()), max(images[0].max(), end.max())
    np.testing.assert_allclose(input_axis.images[0].get_array()[..., 0], (images[0, ..., 0] - low) / (high - low),
                               atol=1e-6)
    np.testing.assert_allclose(end_axis.images[0].get_array()[..., 0], (end[..., 0] - low) / (high - low), atol=1e-6)


def test_small_images_are_shown_at_least_96_pixels(digits_like):
    images, explanation = digits_like
    figure = drawn(tf_ig2.plot(explanation, images))
    renderer = figure.canvas.get_renderer() if hasattr(figure.canvas, "get_renderer") else None
    for subfigure in figure.subfigs:
        for axis in subfigure.axes:
            if axis.images:
                box = axis.get_window_extent(renderer)
                assert min(box.width, box.height) >= defaults.PANEL_MIN_SIZE, box


def test_baselines_are_named_for_ig(digits_like):
    images, explanation = digits_like
    ig = explanation_of(explanation.attributions, explanation.counterfactuals[:, :1], method="ig")
    figure = tf_ig2.plot(ig, images, max_rows=1)
    assert [axis.get_title() for axis in figure.subfigs[0].axes if axis.images][1] == "baseline"
    assert "f(baseline)" in row_titles(figure)[0]


def test_tabular_bars_sorted_by_magnitude_with_names():
    rows = np.zeros((2, 4), np.float32)
    attributions = np.array([[0.1, -0.9, 0.5, 0.0], [1.0, 0.2, -0.3, 0.05]], np.float32)
    explanation = explanation_of(attributions, np.zeros((2, 1, 4)), targets=(0, 1))
    figure = drawn(tf_ig2.plot(explanation, rows, feature_names=["age", "dose", "bmi", "sex"], top=3))
    assert len(figure.subfigs) == 2 and row_titles(figure)[1].startswith("#1 class 1")
    axis = figure.subfigs[0].axes[0]
    assert [label.get_text() for label in axis.get_yticklabels()] == ["dose", "bmi", "age"]
    widths = [patch.get_width() for patch in axis.patches]
    np.testing.assert_allclose(widths, [-0.9, 0.5, 0.1], rtol=1e-6)
    assert axis.get_xlabel() == "attribution"


def test_tokens_are_coloured_with_the_vocabulary():
    ids = np.array([[1, 2, 3, 0], [3, 3, 1, 2]], np.int32)
    attributions = np.array([[1.0, -0.5, 0.0, 0.0], [0.2, 0.2, -0.4, 0.1]], np.float32)
    explanation = explanation_of(attributions, np.zeros((2, 1, 4)), targets=(2, 0))
    vocabulary = ["<pad>", "the", "<cat>", "sat"]
    figure = drawn(tf_ig2.plot(explanation, ids, vocabulary=vocabulary, class_names=["a", "b", "c"]))
    assert row_titles(figure)[0].startswith("#0 class 2 (c)")
    axis = [axis for axis in figure.subfigs[0].axes if axis.texts][0]
    assert [text.get_text() for text in axis.texts] == ["the", "<cat>", "sat"]  # padding left out
    colours = [text.get_bbox_patch().get_facecolor()[:3] for text in axis.texts]
    np.testing.assert_allclose(colours[0], [1.0, 0.0, 0.0], atol=1e-6)  # largest positive: red
    np.testing.assert_allclose(colours[1], [0.5, 0.5, 1.0], atol=1e-6)  # half as negative: light blue
    assert len(figure.subfigs[0].axes) == 2  # the tokens and their colour bar
    bar = [axis for axis in figure.subfigs[0].axes if not axis.texts][0]
    low, high = bar.get_ylim()
    assert low == pytest.approx(-high) and high == pytest.approx(1.0)


def test_without_matplotlib_a_clear_import_error(monkeypatch, digits_like):
    images, explanation = digits_like
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "tf-ig2\[plot\]"'):
        tf_ig2.plot(explanation, images)
    with pytest.raises(ImportError, match="tf-ig2\\[plot\\]"):
        tf_ig2.plot_path(explanation, images)


@pytest.mark.parametrize("call, error, match", [
    (lambda e, x: tf_ig2.plot(e, x[:2]), ValueError, "inputs"),
    (lambda e, x: tf_ig2.plot(e, x, max_rows=0), ValueError, "max_rows"),
    (lambda e, x: tf_ig2.plot(e, x, input_kind="audio"), ValueError, "input_kind"),
    (lambda e, x: tf_ig2.plot(e, x, percentile=0), ValueError, "percentile"),
    (lambda e, x: tf_ig2.plot(e, [x, x]), TypeError, "several inputs"),
    (lambda e, x: tf_ig2.plot_path(e, x), ValueError, "return_path=True"),
])
def test_bad_arguments_raise(digits_like, call, error, match):
    images, explanation = digits_like
    with pytest.raises(error, match=match):
        call(explanation, images)


# -- the GradPath film strip, on a real IG² path -------------------------------------------------------
@pytest.fixture(scope="module")
def real_path():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="tanh", name="features"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    rng = np.random.default_rng(1)
    images = rng.random((2, 6, 6, 1)).astype(np.float32)
    references = rng.random((2, 6, 6, 1)).astype(np.float32)
    explanation = tf_ig2.IG2(model, steps=12, value_range=(0.0, 1.0)).explain(
        images, references, [0, 2], return_path=True)
    return model, images, explanation


def test_path_frames_start_at_the_input_and_end_at_gradcf(real_path):
    _, images, explanation = real_path
    steps, frames = plots.path_frames(explanation, index=1, reference=1)
    assert steps.tolist() == [0, 3, 6, 9, 12]
    np.testing.assert_allclose(frames[0], images[1], atol=1e-6)
    np.testing.assert_allclose(frames[-1], explanation.counterfactuals[1, 1], atol=1e-6)


def test_film_strip_titles_and_frames(real_path):
    model, images, explanation = real_path
    figure = drawn(tf_ig2.plot_path(explanation, images, index=1, reference=1))
    frames = [axis for axis in figure.axes if axis.images and axis.get_title()]
    assert len(frames) == 5
    titles = [axis.get_title() for axis in frames]
    assert titles[0] == f"step 0 (0%)\nf = {float(explanation.target_scores[1]):.3g}"
    assert titles[2] == "step 6 (50%)"  # no model: no score for intermediate frames
    assert titles[-1] == "step 12 (100%)"  # two references: f(GradCF) of this one is not stored
    shown_first, shown_last = frames[0].images[0].get_array(), frames[-1].images[0].get_array()
    strip = np.asarray(explanation.path)[1, 1, [0, 3, 6, 9, 12]]
    low, high = strip.min(), strip.max()
    np.testing.assert_allclose(shown_first[..., 0], (images[1, ..., 0] - low) / (high - low), atol=1e-6)
    np.testing.assert_allclose(shown_last[..., 0], (explanation.counterfactuals[1, 1, ..., 0] - low) / (high - low),
                               atol=1e-6)
    changes = [axis for axis in figure.axes if axis.images and not axis.get_title()]
    assert len(changes) == 5 and np.all(changes[0].images[0].get_array() == 0)
    low, high = changes[0].images[0].get_clim()
    assert low == -high


def test_film_strip_scores_every_frame_with_the_model(real_path):
    model, images, explanation = real_path
    figure = tf_ig2.plot_path(explanation, images, index=0, reference=0, model=model)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert all("\nf = " in title for title in titles)
    assert titles[0].endswith(f"f = {float(explanation.target_scores[0]):.3g}")
    # The last frame is GradCF, scored as the explainers score: the logit, the final softmax removed.
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in model.layers[1:])
    hidden = np.tanh(explanation.counterfactuals[0, 0].reshape(1, -1) @ w1 + b1)
    logit = float((hidden @ w2 + b2)[0, int(explanation.targets[0])])
    assert titles[-1].endswith(f"f = {logit:.3g}")


def test_film_strip_checks_its_arguments(real_path):
    _, images, explanation = real_path
    with pytest.raises(ValueError, match="reference"):
        tf_ig2.plot_path(explanation, images, reference=2)
    with pytest.raises(ValueError, match="fractions"):
        tf_ig2.plot_path(explanation, images, fractions=[0.0, 1.5])
