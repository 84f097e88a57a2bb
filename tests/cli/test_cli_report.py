"""The command line's report: panels, GradPath film strips and index.html, in memory and streamed."""

import html.parser
import json
import os
import re
import urllib.parse

import cv2
import numpy as np
import pytest

from tf_ig2 import defaults, visualize
from tf_ig2.explanation import Explanation
from tf_ig2.visualize import markup
from tf_ig2.visualize import panel_layout as layout

from conftest import listing, run_cli, small_cnn

STEPS = 8
#: An image file name that HTML must escape.
ODD_NAME = 'a<b>&"c".png'


class Links(html.parser.HTMLParser):
    """Every ``src`` and ``href`` of a page, its text, and its sections."""

    def __init__(self):
        super().__init__()
        self.links, self.text, self.sections, self.tags = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sections += tag == "section"
        self.links.extend(value for key, value in attrs if key in ("src", "href"))

    def handle_data(self, data):
        self.text.append(data)


def read_report(folder):
    """The parsed index.html of ``folder``, after checking that it links only to files inside it."""
    page = (folder / "index.html").read_text(encoding="utf-8")
    parser = Links()
    parser.feed(page)
    parser.close()
    for link in parser.links:
        assert not link.startswith(("/", "\\")) and ":" not in link and ".." not in link, link
        assert (folder / urllib.parse.unquote(link)).is_file(), link
    parser.page = page
    return parser


def png(path):
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert picture is not None, f"{path} is not a readable image"
    return picture[..., ::-1]  # BGR -> RGB


def locate(picture, block):
    """(row, column, largest absolute difference) of the best match of ``block`` in ``picture``."""
    scores = cv2.matchTemplate(picture.astype(np.float32), block.astype(np.float32), cv2.TM_SQDIFF)
    row, column = np.unravel_index(np.argmin(scores), scores.shape)
    found = picture[row:row + block.shape[0], column:column + block.shape[1]].astype(int)
    return int(row), int(column), int(np.abs(found - block.astype(int)).max())


def shown(values, factor):
    """A grey ``(H, W, 1)`` image in [0, 1] as the pictures show it: enlarged, RGB uint8."""
    return np.repeat(np.round(np.kron(values[..., 0], np.ones((factor, factor))) * 255.0)[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    paths = {"cnn.keras": str(folder / "cnn.keras")}
    small_cnn(seed=4).save(paths["cnn.keras"])
    rng = np.random.default_rng(3)
    for name, count in (("images", 3), ("references", 2)):
        paths[name] = folder / name
        paths[name].mkdir()
        for index in range(count):
            image = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            assert cv2.imwrite(str(paths[name] / (ODD_NAME if index == 1 and name == "images" else f"{index}.png")),
                               image)
    arrays = {"inputs.npy": rng.random((7, 8, 8, 1)).astype(np.float32),
              "references.npy": rng.random((2, 8, 8, 1)).astype(np.float32),
              "vectors.npy": rng.random((3, 64)).astype(np.float32)}
    for name, values in arrays.items():
        paths[name] = str(folder / name)
        np.save(paths[name], values)
    return paths


run = run_cli


def test_in_memory_report_panels_and_path_strips(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, out, err = run(["explain", files["cnn.keras"], "--inputs", files["images"], "--references",
                            files["references"], "--scale", "1/255", "--value-range", "0", "1", "--steps", STEPS,
                            "--integration", "rescaled", "--path-strip", "--quiet", "--output", output], capsys)
    assert status == 0, err
    assert out.splitlines()[1] == f"Report: {output / 'index.html'}"
    summary = json.loads((output / "summary.json").read_text())
    names = [record["name"] for record in summary["inputs"]]
    assert sorted(names) == sorted(["0.png", "2.png", ODD_NAME])
    panels, strips = [f"panel_{index:03d}.png" for index in range(3)], [f"path_{index:03d}.png" for index in range(3)]
    assert summary["files"]["panels"] == panels and summary["files"]["path_strips"] == strips
    assert summary["files"]["report"] == "index.html"
    assert [(record["panel"], record["path_strip"]) for record in summary["inputs"]] == list(zip(panels, strips))

    # Panels, read back: 8x8 inputs enlarged 8 times (--min-display-size 64), two title lines; the input
    # column is the input itself (--value-range 0 1), the GradCF column the mean of the two GradCFs.
    inputs = np.load(output / "attributions.npy").shape
    assert inputs == (3, 8, 8, 1)
    counterfactuals = np.load(output / "counterfactuals.npy")
    images = np.stack([cv2.imread(os.path.join(files["images"], name), cv2.IMREAD_GRAYSCALE) for name in names])
    images = (images.astype(np.float32) * np.float32(1 / 255))[..., None]
    side, top = 64, layout.MARGIN + 3 * layout.LINE
    for index, name in enumerate(panels):
        picture = png(output / name)
        assert picture.shape[0] == top + side + layout.MARGIN and picture.shape[2] == 3
        np.testing.assert_array_equal(picture[top:top + side, layout.MARGIN:layout.MARGIN + side],
                                      shown(images[index], 8))
        start = layout.MARGIN + side + layout.GAP
        np.testing.assert_allclose(picture[top:top + side, start:start + side],
                                   shown(counterfactuals[index].mean(axis=0), 8), atol=1)

    # Film strips: the first frame is the input, the last GradCF of the first reference.
    for index, name in enumerate(strips):
        strip = png(output / name)
        row, column, difference = locate(strip, shown(images[index], 8))
        assert (row, column, difference) == (layout.MARGIN + 2 * layout.LINE, layout.MARGIN, 0)
        row, column, difference = locate(strip, shown(counterfactuals[index, 0], 8))
        assert row == layout.MARGIN + 2 * layout.LINE and column > 4 * side and difference <= 2

    # The report: every file it links is in the folder, nothing absolute, the odd name escaped.
    report = read_report(output)
    assert sorted(report.links) == sorted(panels + strips)
    assert report.sections == 3 and "script" not in report.tags
    assert str(tmp_path) not in report.page and str(files["images"].parent) not in report.page
    assert ODD_NAME not in report.page and "a&lt;b&gt;&amp;&quot;c&quot;.png" in report.page
    text = "".join(report.text)
    assert f"#{names.index(ODD_NAME)} {ODD_NAME}" in text
    for record in summary["inputs"]:
        assert f"{record['score']:.4g}" in text and f"{record['relative_delta']:.4g}" in text
        for distance in record["representation_distance"]:
            assert f"r{distance['reference']}: {distance['start']:.4g} \u2192 {distance['end']:.4g}" in text


def test_path_strip_is_for_ig2_image_inputs_only(files, tmp_path, capsys):
    before = listing(tmp_path)
    for method in ("ig", "guided_ig"):
        status, out, err = run(["explain", files["cnn.keras"], "--inputs", files["inputs.npy"], "--method", method,
                                "--path-strip", "--output", tmp_path / "out"], capsys)
        assert status == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"tf-ig2: error: argument --path-strip: draws the GradPath of --method ig2; "
                              f"--method {method}"), err
    assert listing(tmp_path) == before and not (tmp_path / "out").exists()


def test_vector_inputs_get_a_report_without_pictures(files, tmp_path, capsys):
    import keras

    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((64,)), keras.layers.Dense(6, activation="tanh", name="hidden"),
                              keras.layers.Dense(3, name="scores")])
    dense.save(tmp_path / "dense.keras")
    arguments = ["explain", tmp_path / "dense.keras", "--inputs", files["vectors.npy"], "--references",
                 files["vectors.npy"], "--steps", STEPS, "--quiet"]
    status, _, err = run([*arguments, "--path-strip", "--output", tmp_path / "refused"], capsys)
    assert status == 2 and err.count("\n") == 1 and "--path-strip draws image paths" in err, err
    assert not (tmp_path / "refused").exists()
    status, _, err = run([*arguments, "--output", tmp_path / "out"], capsys)
    assert status == 0, err
    report = read_report(tmp_path / "out")
    assert report.links == [] and report.sections == 3


def test_stream_report_is_capped(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(defaults, "CLI_REPORT_MAX_INPUTS", 3)
    output = tmp_path / "streamed"
    status, out, err = run(["explain", files["cnn.keras"], "--inputs", files["inputs.npy"], "--references",
                            files["references.npy"], "--steps", STEPS, "--value-range", "0", "1", "--path-strip",
                            "--stream", "--shard-size", 2, "--quiet", "--output", output], capsys)
    assert status == 0, err
    assert "and 6 PNG(s)" in out.splitlines()[0] and out.splitlines()[1] == f"Report: {output / 'index.html'}"
    panels, strips = [f"panel_{index:03d}.png" for index in range(3)], [f"path_{index:03d}.png" for index in range(3)]
    assert sorted(name for name in os.listdir(output) if name.endswith(".png")) == sorted(panels + strips)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["files"]["panels"] == panels and summary["files"]["path_strips"] == strips
    assert len(summary["inputs"]) == 7 and "panel" not in summary["inputs"][3]
    report = read_report(output)
    assert report.sections == 3 and sorted(report.links) == sorted(panels + strips)
    text = " ".join("".join(report.text).split())
    assert "Only the first 3 of 7 inputs are shown" in text and "keeps no counterfactuals" in text
    # A streamed panel has no counterfactual column: the package's panel of input | attribution | magnitude.
    inputs, attributions = np.load(files["inputs.npy"]), np.load(output / "attributions.npy")
    records = summary["inputs"][:3]
    shown_explanation = Explanation(
        attributions=attributions[:3], counterfactuals=None, method="ig2",
        target_scores=np.float32([record["score"] for record in records]),
        counterfactual_scores=np.float32([record["gradcf_score"] for record in records]),
        delta=np.float32([record["completeness_delta"] for record in records]),
        targets=np.array([record["target"] for record in records]))
    expected = visualize.panel(inputs[2], attributions[2], title="\n".join(markup.caption(shown_explanation, 2)),
                               value_range=(0.0, 1.0), min_size=64)
    np.testing.assert_array_equal(png(output / panels[2]), expected)
    strip = png(output / strips[0])
    assert locate(strip, shown(inputs[0], 8))[1:] == (layout.MARGIN, 0)


def test_report_notes_the_cap_on_path_strips_in_memory(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(defaults, "CLI_REPORT_MAX_INPUTS", 2)
    output = tmp_path / "out"
    status, _, err = run(["explain", files["cnn.keras"], "--inputs", files["inputs.npy"], "--references",
                          files["references.npy"], "--steps", STEPS, "--path-strip", "--quiet", "--output", output],
                         capsys)
    assert status == 0, err
    summary = json.loads((output / "summary.json").read_text())
    assert len(summary["files"]["panels"]) == 7 and summary["files"]["path_strips"] == ["path_000.png",
                                                                                        "path_001.png"]
    report = read_report(output)
    assert report.sections == 7 and len(report.links) == 9
    assert re.search(r"film strips are drawn for the first 2 inputs", " ".join("".join(report.text).split()))
