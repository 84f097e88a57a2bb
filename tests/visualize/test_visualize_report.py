"""The GradPath film strip picture, the HTML report page and channel handling for display."""

import html.parser

import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2 import visualize
from tf_ig2.explanation import Explanation
from tf_ig2.visualize import panel_layout as layout


class Page(html.parser.HTMLParser):
    """The tags, attributes and text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend((tag, key, value) for key, value in attrs)

    def handle_data(self, data):
        self.text.append(data)


def parse(page):
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def real_path():
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([
        tf.keras.Input((6, 6, 1)),
        tf.keras.layers.Conv2D(4, 3, activation="tanh"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(8, activation="tanh", name="features"),
        tf.keras.layers.Dense(3),
    ])
    rng = np.random.default_rng(1)
    images = rng.random((2, 6, 6, 1)).astype(np.float32)
    references = rng.random((2, 6, 6, 1)).astype(np.float32)
    explanation = tf_ig2.IG2(model, steps=12, value_range=(0.0, 1.0), integration="rescaled").explain(
        images, references, [0, 2], return_path=True)
    return images, explanation


def first_column(strip, row, side, title_lines=1):
    """The first picture of ``row`` (0 the frames, 1 their changes) of a strip of ``side``-pixel pictures."""
    top = layout.MARGIN + layout.LINE * title_lines + layout.LINE
    if row == 1:
        top += side + layout.GAP + layout.LINE
    return strip[top:top + side, layout.MARGIN:layout.MARGIN + side]


def locate(picture, block):
    """(row, column, largest absolute difference) of the best match of ``block`` in ``picture``."""
    import cv2

    scores = cv2.matchTemplate(picture.astype(np.float32), block.astype(np.float32), cv2.TM_SQDIFF)
    row, column = np.unravel_index(np.argmin(scores), scores.shape)
    found = picture[row:row + block.shape[0], column:column + block.shape[1]].astype(int)
    return int(row), int(column), int(np.abs(found - block.astype(int)).max())


def test_path_strip_starts_at_the_input_and_ends_at_gradcf(real_path):
    images, explanation = real_path
    strip = visualize.path_strip(explanation, 1, 1, value_range=(0.0, 1.0), min_size=60)  # 6x6 enlarged 10x
    assert strip.dtype == np.uint8 and strip.ndim == 3 and strip.shape[2] == 3
    side = 60

    def shown(values):
        return np.repeat(np.round(np.kron(values[..., 0], np.ones((10, 10))) * 255.0)[..., None], 3, axis=-1)

    first = first_column(strip, 0, side)
    np.testing.assert_array_equal(first, shown(images[1]))
    # The last frame is GradCF of that reference: found in the top row, right of every other frame.
    row, column, difference = locate(strip, shown(explanation.counterfactuals[1, 1]))
    assert difference == 0 and row == layout.MARGIN + 2 * layout.LINE
    assert column > 4 * side
    # Below the frames: the change from the input, white (zero) for the first frame.
    np.testing.assert_array_equal(first_column(strip, 1, side), np.full((side, side, 3), 255))
    height = 2 * layout.MARGIN + 3 * layout.LINE + 2 * side + layout.GAP
    assert strip.shape[0] == height
    titled = visualize.path_strip(explanation, 0, 0, title="line one\nline two", min_size=60)
    assert titled.shape[0] == height + layout.LINE


def test_path_strip_refuses_explanations_without_a_path_and_bad_arguments(real_path):
    images, explanation = real_path
    without = Explanation(attributions=explanation.attributions, counterfactuals=explanation.counterfactuals,
                          target_scores=explanation.target_scores,
                          counterfactual_scores=explanation.counterfactual_scores, delta=explanation.delta,
                          method="ig2")
    with pytest.raises(ValueError, match="return_path=True"):
        visualize.path_strip(without)
    with pytest.raises(ValueError, match="`reference` must be an int"):
        visualize.path_strip(explanation, 0, 2)
    with pytest.raises(ValueError, match="min_size"):
        visualize.path_strip(explanation, min_size=0)
    vectors = Explanation(attributions=np.zeros((1, 3)), counterfactuals=np.zeros((1, 1, 3)),
                          target_scores=np.zeros(1), counterfactual_scores=np.zeros(1), delta=np.zeros(1),
                          method="ig2", path=np.zeros((1, 1, 5, 3)))
    with pytest.raises(ValueError, match="must hold images"):
        visualize.path_strip(vectors)


def test_display_channels():
    rgba = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4)
    np.testing.assert_array_equal(visualize.display_channels(rgba), rgba[..., :3])
    two = np.stack([np.zeros((3, 3)), np.full((3, 3), 2.0)], axis=-1)
    np.testing.assert_array_equal(visualize.display_channels(two), np.ones((3, 3, 1)))
    grey = np.zeros((3, 3, 1))
    assert visualize.display_channels(grey) is grey
    with pytest.raises(ValueError, match="H, W, C"):
        visualize.display_channels(np.zeros((3, 3)))


SUMMARY = {"tf_ig2_version": "0.1.0", "method": "ig2", "representation": "input of layer 'x<y>'",
           "inputs_shape": [2, 8, 8, 1], "counterfactuals_shape": [2, 1, 8, 8, 1],
           "settings": {"model": "m&m.keras", "steps": 8, "value_range": [0.0, 1.0]}}
RECORDS = [{"index": 0, "name": "<script>alert(1)</script>.png", "target": 3, "score": 2.5, "gradcf_score": -1.0,
            "completeness_delta": 0.01, "relative_delta": 0.0029,
            "representation_distance": [{"reference": 0, "start": 4.0, "end": 0.5}]},
           {"index": 1, "name": None, "target": None, "score": 1.0, "gradcf_score": 0.0,
            "completeness_delta": -0.1, "relative_delta": 0.1}]


def test_report_html_escapes_text_and_links_pictures_relatively():
    page = visualize.report_html(SUMMARY, RECORDS, pictures={0: [("panel 0.png", 'a "panel"')]},
                                 notes=["only <2> shown"])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "x&lt;y&gt;" in page and "m&amp;m.keras" in page and "only &lt;2&gt; shown" in page
    parsed = parse(page)
    assert "script" not in parsed.tags and parsed.tags.count("section") == 2
    sources = [value for tag, key, value in parsed.attributes if key == "src"]
    assert sources == ["panel%200.png"]
    assert ("img", "alt", 'a "panel"') in parsed.attributes
    text = "".join(parsed.text)
    assert "#0 <script>alert(1)</script>.png" in text and "only <2> shown" in text
    assert "r0: 4 \u2192 0.5" in text and "f(GradCF)" in text
    assert "representation distance" not in text.split("#1")[1]  # the second record has none


@pytest.mark.parametrize("source", ["/tmp/panel.png", "C:\\panel.png", "file:///tmp/x.png", "http://x/y.png",
                                    "../panel.png", "a/../../b.png", "", "\\\\server\\x.png"])
def test_report_html_refuses_absolute_or_outside_links(source):
    with pytest.raises(ValueError, match="relative"):
        visualize.report_html(SUMMARY, RECORDS[:1], pictures={0: [(source, "")]})


def test_inline_pictures_are_allowed():
    picture = np.zeros((2, 3, 3), np.uint8)
    source = visualize.html_image(picture).split('src="')[1].split('"')[0]
    page = visualize.report_html(SUMMARY, RECORDS[:1], pictures={0: [(source, "inline")]})
    assert source in page
