"""tf_ig2.plot of an explanation of several targets per input: a row per (input, target), titled by class."""

import matplotlib  # the test extra installs it
import numpy as np
import pytest

import tf_ig2
from tf_ig2.explanation import Explanation

from conftest import small_cnn

NAMES = [f"digit {k}" for k in range(10)]


def several(attributions, counterfactuals, targets, method="ig2"):
    """An explanation of T targets per input: attributions (N, T, *S), scores and targets (N, T)."""
    count, width = np.shape(targets)
    scores = np.linspace(2.0, 3.0, count * width).reshape(count, width).astype(np.float32)
    ends = np.linspace(-1.0, 0.0, count * width).reshape(count, width).astype(np.float32)
    delta = (0.01 * np.arange(1, count * width + 1)).reshape(count, width).astype(np.float32)
    return Explanation(attributions=np.asarray(attributions, np.float32),
                       counterfactuals=np.asarray(counterfactuals, np.float32), target_scores=scores,
                       counterfactual_scores=ends, delta=delta, method=method,
                       targets=np.asarray(targets, np.int64))


def row_titles(figure):
    return [subfigure._suptitle.get_text() for subfigure in figure.subfigs]


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    inputs = rng.random((3, 8, 8, 1)).astype(np.float32)
    attributions = rng.normal(size=(3, 2, 8, 8, 1)).astype(np.float32)
    counterfactuals = rng.random((3, 2, 8, 8, 1)).astype(np.float32)
    return inputs, several(attributions, counterfactuals, [[3, 5], [1, 0], [7, 2]])


def test_a_row_per_target_titled_by_class(images):
    inputs, explanation = images
    figure = tf_ig2.plot(explanation, inputs, class_names=NAMES, max_rows=2)
    figure.draw_without_rendering()
    assert isinstance(figure, matplotlib.figure.Figure)
    assert len(figure.subfigs) == 4  # 2 inputs x 2 targets
    titles = row_titles(figure)
    firsts = [title.split("\n")[0] for title in titles]
    assert firsts == ["#0 target 1/2: class 3 (digit 3)", "#0 target 2/2: class 5 (digit 5)",
                      "#1 target 1/2: class 1 (digit 1)", "#1 target 2/2: class 0 (digit 0)"]
    for row, (n, t) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        assert f"f(x) {float(explanation.target_scores[n, t]):.3g}" in titles[row]
        assert f"delta {float(explanation.delta[n, t]):+.2g}" in titles[row]
        subfigure = figure.subfigs[row]
        assert len(subfigure.axes) == 5  # four pictures and one colour bar, as for one target
        shown = [axis for axis in subfigure.axes if axis.get_title() == "attribution"][0].images[0]
        np.testing.assert_allclose(shown.get_array(), explanation.attributions[n, t].sum(axis=-1), rtol=1e-6)
        end = [axis for axis in subfigure.axes if axis.get_title().startswith("GradCF")][0]
        assert end.get_title() == "GradCF (mean of 2)"  # the counterfactuals are shared by the targets


def test_each_row_equals_the_one_target_figure_of_its_target(images):
    inputs, explanation = images
    figure = tf_ig2.plot(explanation, inputs, max_rows=3)
    assert len(figure.subfigs) == 6
    for t in range(2):
        alone = tf_ig2.plot(explanation.select_target(t), inputs, max_rows=3)
        for n in range(3):
            row, single = figure.subfigs[2 * n + t], alone.subfigs[n]
            assert row._suptitle.get_text().split("\n")[1] == single._suptitle.get_text().split("\n")[1]
            for mine, theirs in zip(row.axes, single.axes):
                assert mine.get_title() == theirs.get_title()
                for image, other in zip(mine.images, theirs.images):
                    np.testing.assert_array_equal(image.get_array(), other.get_array())


def test_one_target_is_unchanged(images):
    inputs, explanation = images
    figure = tf_ig2.plot(explanation.select_target(1), inputs, class_names=NAMES)
    assert len(figure.subfigs) == 3
    assert row_titles(figure)[0].startswith("#0 class 5 (digit 5)\nf(x) ")


def test_tabular_and_token_rows_per_target():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(2, 4)).astype(np.float32)
    tabular = several(rng.normal(size=(2, 3, 4)), np.zeros((2, 1, 4)), [[0, 1, 2], [2, 1, 0]])
    figure = tf_ig2.plot(tabular, rows, class_names=["cat", "dog", "bird"], feature_names=["a", "b", "c", "d"])
    titles = row_titles(figure)
    assert len(titles) == 6 and titles[2].startswith("#0 target 3/3: class 2 (bird)")
    assert titles[3].startswith("#1 target 1/3: class 2 (bird)")
    bars = [patch.get_width() for patch in figure.subfigs[4].axes[0].patches]
    values = tabular.attributions[1, 1]
    np.testing.assert_allclose(bars, values[np.argsort(-np.abs(values), kind="stable")], rtol=1e-6)

    ids = np.array([[1, 2, 3, 0], [3, 1, 0, 0]])
    tokens = several(rng.normal(size=(2, 2, 4)), np.zeros((2, 1, 4, 2)), [[1, 0], [0, 1]])
    figure = tf_ig2.plot(tokens, ids, vocabulary=["<pad>", "good", "bad", "film"], class_names=["neg", "pos"])
    titles = row_titles(figure)
    assert len(titles) == 4 and titles[0].startswith("#0 target 1/2: class 1 (pos)")
    assert titles[3].startswith("#1 target 2/2: class 1 (pos)")
    assert [text.get_text() for text in figure.subfigs[3].axes[0].texts] == ["film", "good"]


@pytest.mark.filterwarnings("ignore::tf_ig2.CompletenessWarning")
def test_a_real_top_k_explanation_and_plot_path_still_takes_one_target():
    rng = np.random.default_rng(2)
    inputs = rng.random((2, 8, 8, 1)).astype(np.float32)
    model = small_cnn()
    explanation = tf_ig2.IntegratedGradients(model, steps=4).explain(inputs, 0.0, top_k=3)
    figure = tf_ig2.plot(explanation, inputs, class_names=["a", "b", "c"])
    figure.draw_without_rendering()
    titles = row_titles(figure)
    assert len(titles) == 6 and [axis.get_title() for axis in figure.subfigs[0].axes if axis.images][1] == "baseline"
    for row, title in enumerate(titles):
        n, t = divmod(row, 3)
        target = int(explanation.targets[n, t])
        assert title.startswith(f"#{n} target {t + 1}/3: class {target} ({'abc'[target]})")
    path = tf_ig2.IG2(model, steps=4).explain(inputs, inputs[::-1], top_k=2, return_path=True)
    with pytest.raises(ValueError, match=r"tf_ig2.plot_path takes one target per input"):
        tf_ig2.plot_path(path, inputs)
    tf_ig2.plot_path(path.select_target(0), inputs)
