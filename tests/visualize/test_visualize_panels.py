"""Panels (uint8 pictures for TensorBoard, the command line and HTML), the tiler, the PNG encoder, the HTML summary."""

import base64
import html.parser
import re

import numpy as np
import pytest
import tensorflow as tf

from tf_ig2 import visualize
from tf_ig2.explanation import Explanation
from tf_ig2.visualize import panel_layout as panel_module


def digit_and_attribution(seed=0, size=8):
    rng = np.random.default_rng(seed)
    return (rng.random((size, size, 1)).astype(np.float32), rng.normal(size=(size, size, 1)).astype(np.float32),
            rng.random((size, size, 1)).astype(np.float32))


def test_panel_of_a_small_image_is_enlarged_to_96_pixels():
    image, attribution, counterfactual = digit_and_attribution()
    picture = visualize.panel(image, attribution, counterfactual)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    side = 96  # 8x8 enlarged 12 times
    top, left = panel_module.MARGIN + panel_module.LINE, panel_module.MARGIN
    assert picture.shape[0] == top + side + panel_module.MARGIN
    low, high = min(image.min(), counterfactual.min()), max(image.max(), counterfactual.max())
    expected = np.round(np.repeat(np.repeat((image - low) / (high - low), 12, 0), 12, 1) * 255.0)
    np.testing.assert_array_equal(picture[top:top + side, left:left + side], np.repeat(expected, 3, axis=-1))
    # The GradCF column follows one gap later, on the same scale.
    start = left + side + panel_module.GAP
    expected_end = np.round(np.repeat(np.repeat((counterfactual - low) / (high - low), 12, 0), 12, 1) * 255.0)
    np.testing.assert_array_equal(picture[top:top + side, start:start + side, 0], expected_end[..., 0])


def test_panel_columns_and_sizes_follow_the_options():
    image, attribution, counterfactual = digit_and_attribution()
    full = visualize.panel(image, attribution, counterfactual)
    without_end = visualize.panel(image, attribution)
    without_magnitude = visualize.panel(image, attribution, counterfactual, magnitude=False)
    assert without_end.shape[0] == full.shape[0] and without_end.shape[1] < full.shape[1]
    assert without_magnitude.shape[1] < full.shape[1]
    titled = visualize.panel(image, attribution, counterfactual, title="first line\nsecond line")
    assert titled.shape[0] == full.shape[0] + 2 * panel_module.LINE and titled.shape[1] == full.shape[1]
    large = visualize.panel(np.zeros((120, 100, 3)), np.zeros((120, 100, 3)), min_size=96)
    assert large.shape[0] == panel_module.MARGIN * 2 + panel_module.LINE + 120  # not enlarged
    custom = visualize.panel(image, attribution, min_size=8)
    assert custom.shape[0] == panel_module.MARGIN * 2 + panel_module.LINE + 8


def test_signed_map_and_its_colour_bar_are_symmetric():
    image = np.zeros((4, 4, 1), np.float32)
    attribution = np.zeros((4, 4, 1), np.float32)
    attribution[0, 0], attribution[3, 3] = 2.0, -2.0
    picture = visualize.panel(image, attribution, magnitude=False, min_size=40)  # 4x4 enlarged 10 times
    top, left = panel_module.MARGIN + panel_module.LINE, panel_module.MARGIN + 40 + panel_module.GAP
    signed = picture[top:top + 40, left:left + 40]
    np.testing.assert_array_equal(signed[5, 5], [255, 0, 0])     # +2, the scale: red
    np.testing.assert_array_equal(signed[35, 35], [0, 0, 255])   # -2: blue
    np.testing.assert_array_equal(signed[15, 15], [255, 255, 255])
    start = left + 40 + panel_module.GAP // 2
    bar = picture[top:top + 40, start + 2:start + panel_module.BAR_WIDTH - 2].astype(int)
    assert bar[1, 0, 0] == 255 and bar[1, 0, 2] < 40         # top: red
    assert bar[-2, 0, 2] == 255 and bar[-2, 0, 0] < 40       # bottom: blue
    np.testing.assert_array_equal(bar[1], bar[-2][:, ::-1])   # mirror images of each other
    assert np.all(bar[20] >= 240)                             # the middle: white


def test_panels_share_one_size_and_titles():
    images = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    attributions = np.random.default_rng(1).normal(size=(3, 8, 8)).astype(np.float32)
    counterfactuals = np.zeros((3, 2, 8, 8), np.float32)
    drawn = visualize.panels(images, attributions, counterfactuals, titles=["a", "a much longer title " * 3, "c"])
    assert drawn.shape[0] == 3 and drawn.dtype == np.uint8
    assert drawn.shape[2] >= panel_module._text_width("a much longer title " * 3)
    with pytest.raises(ValueError, match="titles"):
        visualize.panels(images, attributions, titles=["a"])
    with pytest.raises(ValueError, match="counterfactuals"):
        visualize.panels(images, attributions, np.zeros((3, 7, 7)))


@pytest.mark.parametrize("call, error, match", [
    (lambda: visualize.panel(np.zeros((8, 8, 2)), np.zeros((8, 8))), ValueError, "image"),
    (lambda: visualize.panel(np.zeros((8, 8)), np.zeros((4, 4))), ValueError, "attribution"),
    (lambda: visualize.panel(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 7))), ValueError, "counterfactual"),
    (lambda: visualize.panel(np.zeros((8, 8)), np.full((8, 8), np.nan)), ValueError, "attribution"),
    (lambda: visualize.panel(np.zeros((8, 8)), np.zeros((8, 8)), percentile=101), ValueError, "percentile"),
    (lambda: visualize.panel(np.zeros((8, 8)), np.zeros((8, 8)), colormap="gray"), ValueError, "colormap"),
    (lambda: visualize.panel(np.zeros((8, 8)), np.zeros((8, 8)), min_size=0), ValueError, "min_size"),
])
def test_panel_rejects_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def small_explanation(method="ig2", count=3):
    rng = np.random.default_rng(0)
    return Explanation(attributions=rng.normal(size=(count, 8, 8, 1)).astype(np.float32),
                       counterfactuals=rng.random((count, 2, 8, 8, 1)).astype(np.float32),
                       target_scores=np.array([2.0, 1.0, 0.5][:count], np.float32),
                       counterfactual_scores=np.array([-1.0, 0.0, 0.25][:count], np.float32),
                       delta=np.array([0.03, -0.01, 0.0][:count], np.float32), method=method,
                       targets=np.array([1, 2, 0][:count], np.int64))


def test_explanation_panels_are_titled_with_scores():
    explanation = small_explanation()
    inputs = np.random.default_rng(2).random((3, 8, 8, 1)).astype(np.float32)
    drawn = visualize.explanation_panels(explanation, inputs, class_names=["zero", "one", "two"], max_items=2)
    assert drawn.shape[0] == 2
    plain = visualize.panel(inputs[0], explanation.attributions[0], explanation.counterfactuals[0].mean(axis=0))
    assert drawn.shape[1] == plain.shape[0] + 2 * panel_module.LINE  # two title lines
    assert visualize.caption(explanation, 0, ["zero", "one"]) == [
        "#0 class 1 (one)", "f(x) 2  f(GradCF) -1  delta +0.03 (1%)"]
    assert visualize.caption(small_explanation("ig"), 1)[1].startswith("f(x) 1  f(baseline) 0")
    with pytest.raises(ValueError, match="inputs"):
        visualize.explanation_panels(explanation, inputs[:2])


# -- the tiler and the PNG encoder ----------------------------------------------------------------
def test_one_tiler_fills_gaps_and_empty_cells_with_the_background():
    pictures = np.stack([np.full((2, 3, 3), value, np.uint8) for value in (10, 20, 30)])
    sheet = visualize.tile(pictures, 2, gap=1, background=200)
    assert sheet.shape == (2 * 2 + 1, 2 * 3 + 1, 3)
    assert np.all(sheet[:2, :3] == 10) and np.all(sheet[:2, 4:] == 20) and np.all(sheet[3:, :3] == 30)
    assert np.all(sheet[2] == 200) and np.all(sheet[:, 3] == 200) and np.all(sheet[3:, 4:] == 200)  # gaps, empty
    assert visualize.tile(pictures).shape == (4, 6, 3)  # ceil(sqrt(3)) = 2 columns, no gap
    with pytest.raises(ValueError, match="pictures"):
        visualize.tile(pictures[0])
    with pytest.raises(ValueError, match="gap"):
        visualize.tile(pictures, gap=-1)


def test_png_encoder_round_trips_and_checks_its_input():
    image = np.random.default_rng(0).integers(0, 256, size=(5, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tf.io.decode_png(visualize.encode_png(image)).numpy(), image)
    with pytest.raises(ValueError, match="image"):
        visualize.encode_png(image.astype(np.float32))


def test_html_image_embeds_the_png():
    picture = visualize.panel(*digit_and_attribution())
    tag = visualize.html_image(picture, alt='digit "7" <b>')
    data = re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1)
    np.testing.assert_array_equal(tf.io.decode_png(base64.b64decode(data)).numpy(), picture)
    assert 'alt="digit &quot;7&quot; &lt;b&gt;"' in tag


# -- Explanation._repr_html_ ------------------------------------------------------------------------
class Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.stack = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in ("br", "img"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, (tag, self.stack)

    def handle_data(self, data):
        self.text.append(data)


def parse(markup):
    collector = Collector()
    collector.feed(markup)
    collector.close()
    assert not collector.stack, collector.stack
    return collector


def test_repr_html_is_a_compact_escaped_summary():
    explanation = small_explanation()
    parsed = parse(explanation._repr_html_())
    text = " ".join(parsed.text)
    assert "script" not in parsed.tags and parsed.tags.count("table") == 2
    for expected in ("ig2", "float32 (3, 8, 8, 1)", "float32 (3, 2, 8, 8, 1)", "counterfactuals (GradCF)",
                     "f(GradCF)", "relative delta", "0.03", "0.01", "-1"):
        assert expected in text, expected
    hostile = Explanation(**{**explanation.__dict__, "method": "<script>alert(1)</script>",
                             "representation": "layer 'a&b'"})
    markup = hostile._repr_html_()
    parsed = parse(markup)
    assert "script" not in parsed.tags and "&lt;script&gt;" in markup and "a&amp;b" in markup
    assert "<script>alert(1)</script>" in " ".join(parsed.text)  # shown as text, not run


def test_repr_html_of_many_inputs_lists_the_first_ones():
    count = 25
    explanation = Explanation(attributions=np.zeros((count, 3)), counterfactuals=np.zeros((count, 1, 3)),
                              target_scores=np.ones(count, np.float32),
                              counterfactual_scores=np.zeros(count, np.float32),
                              delta=np.zeros(count, np.float32), method="ig", targets=None)
    parsed = parse(explanation._repr_html_())
    assert parsed.tags.count("tr") == 5 + 1 + 10  # five facts, the header, ten inputs
    assert "... and 15 more inputs" in " ".join(parsed.text)
