"""``tf-ig2 explain --targets`` and ``--top-k``: several classes per input, equal to the Python API."""

import json
import re
import warnings

import numpy as np
import pytest

import tf_ig2

from conftest import run_cli, small_cnn

N, R, STEPS, CLASSES = 4, 2, 8, 4
#: The command line reads back what the API computed in float32: round-off only.
ROUND_OFF = dict(rtol=1e-5, atol=1e-6)
APPROX = dict(rel=1e-5, abs=1e-6)
#: Streamed batches are other groups of inputs than the one-shot call.
STREAMED = dict(rtol=1e-4, atol=1e-5)
STREAMED_APPROX = dict(rel=1e-4, abs=1e-5)
NAMES = ["zero", "one", "two", "three"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    model = small_cnn(classes=CLASSES, softmax=False, seed=3)
    paths = {"model": str(folder / "cnn.keras"), "names": str(folder / "names.txt")}
    model.save(paths["model"])
    (folder / "names.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    rng = np.random.default_rng(5)
    arrays = {"inputs": rng.random((N, 8, 8, 1)).astype(np.float32),
              "references": rng.random((R, 8, 8, 1)).astype(np.float32),
              "rows": np.array([[3, 1], [0, 2], [1, 3], [2, 0]], np.int64)}
    for name, values in arrays.items():
        paths[name] = str(folder / f"{name}.npy")
        np.save(paths[name], values)
    return {"paths": paths, "arrays": arrays, "model": model}


run = run_cli


def explain(files, output, *extra):
    paths = files["paths"]
    return ["explain", paths["model"], "--inputs", paths["inputs"], "--references", paths["references"],
            "--steps", STEPS, "--output", output, "--quiet", *extra]


def expected(files, targets):
    """The Python API's explanation of the inputs for ``targets`` ((N, T) ints or 'top-K')."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tf_ig2.CompletenessWarning)
        return tf_ig2.IG2(files["model"], steps=STEPS).explain(files["arrays"]["inputs"],
                                                               files["arrays"]["references"], targets)


def check_summary(summary, explanation, names=None):
    """summary.json lists per input each target's class, scores and deltas as ``explanation`` has them."""
    count = explanation.target_count
    assert summary["target_count"] == count
    assert summary["inputs_shape"] == [N, 8, 8, 1]
    assert summary["attributions_shape"] == [N, count, 8, 8, 1]
    for index, record in enumerate(summary["inputs"]):
        assert "target" not in record and len(record["targets"]) == count
        for column, entry in enumerate(record["targets"]):
            assert entry["target"] == int(explanation.targets[index, column])
            if names is not None:
                assert entry["class_name"] == names[entry["target"]]
            else:
                assert "class_name" not in entry
            assert entry["score"] == pytest.approx(float(explanation.target_scores[index, column]), **APPROX)
            assert entry["gradcf_score"] == pytest.approx(float(explanation.counterfactual_scores[index, column]),
                                                          **APPROX)
            assert entry["completeness_delta"] == pytest.approx(float(explanation.delta[index, column]), rel=1e-4,
                                                                abs=1e-6)
            relative = float(explanation.relative_delta[index, column])
            assert entry["relative_delta"] == (None if not np.isfinite(relative) else
                                               pytest.approx(relative, rel=1e-3, abs=1e-6))
        # The path is shared by the targets: one set of distances per input.
        assert len(record["representation_distance"]) == R


def test_targets_list_equals_the_api_with_a_panel_per_target(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, out, err = run(explain(files, output, "--targets", "3,1", "--class-names", files["paths"]["names"],
                                   "--path-strip"), capsys)
    assert status == 0, err
    assert f"Explained {N} input(s) for 2 target(s) each" in out
    api = expected(files, np.tile([3, 1], (N, 1)))
    attributions = np.load(output / "attributions.npy")
    assert attributions.shape == (N, 2, 8, 8, 1) and attributions.dtype == np.float32
    np.testing.assert_allclose(attributions, api.attributions, **ROUND_OFF)
    np.testing.assert_allclose(np.load(output / "counterfactuals.npy"), api.counterfactuals, **ROUND_OFF)
    summary = json.loads((output / "summary.json").read_text())
    check_summary(summary, api, NAMES)
    assert summary["settings"]["targets"] == [3, 1] and summary["settings"]["target"] is None
    assert summary["settings"]["class_names"] == files["paths"]["names"]
    # One overlay and one panel per (input, target), named by class; a film strip per input.
    panels = [f"panel_{index:03d}_class{target}.png" for index in range(N) for target in (3, 1)]
    overlays = [name.replace("panel", "overlay") for name in panels]
    assert summary["files"]["panels"] == panels and summary["files"]["overlays"] == overlays
    assert summary["files"]["path_strips"] == [f"path_{index:03d}.png" for index in range(N)]
    contents = {name: (output / name).read_bytes() for name in panels + overlays}
    assert len(set(contents.values())) == len(contents), "every (input, target) has a picture of its own"
    for index, record in enumerate(summary["inputs"]):
        assert [entry["panel"] for entry in record["targets"]] == panels[2 * index:2 * index + 2]
        assert [entry["overlay"] for entry in record["targets"]] == overlays[2 * index:2 * index + 2]
        assert record["path_strip"] == f"path_{index:03d}.png" and "panel" not in record
    assert not list(output.glob("panel_000.png")) and not list(output.glob("overlay_000.png"))
    # The report: per input one row per target and one block per target, labelled by class and name.
    page = (output / "index.html").read_text(encoding="utf-8")
    for index in range(N):
        section = page[page.index(f'<section id="input-{index}">'):]
        section = section[:section.index("</section>")]
        scores = section[:section.index("</table>")]
        assert scores.count("<tr>") == 1 + 2  # header and one row per target
        assert "shared by the targets" in section  # the representation distances, once
        assert "<td>3 (three)</td>" in section and "<td>1 (one)</td>" in section
        assert section.index("<h4>class 3 (three)</h4>") < section.index(f'src="panel_{index:03d}_class3.png"') \
            < section.index("<h4>class 1 (one)</h4>") < section.index(f'src="panel_{index:03d}_class1.png"')
        assert f'src="path_{index:03d}.png"' in section
    assert "targets per input" in page


def test_top_k_explains_the_highest_logits(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(explain(files, output, "--top-k", "2"), capsys)
    assert status == 0, err
    logits = np.asarray(files["model"](files["arrays"]["inputs"]))
    highest = np.argsort(-logits, axis=1, kind="stable")[:, :2]
    summary = json.loads((output / "summary.json").read_text())
    assert [[entry["target"] for entry in record["targets"]] for record in summary["inputs"]] == highest.tolist()
    api = expected(files, "top-2")
    np.testing.assert_array_equal(api.targets, highest)
    np.testing.assert_allclose(np.load(output / "attributions.npy"), api.attributions, **ROUND_OFF)
    check_summary(summary, api)
    assert summary["settings"]["top_k"] == 2 and "targets" not in summary["settings"]
    for index in range(N):
        for target in highest[index]:
            assert (output / f"panel_{index:03d}_class{target}.png").is_file()


def test_targets_file_gives_each_input_its_own_classes(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(explain(files, output, "--targets", files["paths"]["rows"]), capsys)
    assert status == 0, err
    api = expected(files, files["arrays"]["rows"])
    np.testing.assert_allclose(np.load(output / "attributions.npy"), api.attributions, **ROUND_OFF)
    check_summary(json.loads((output / "summary.json").read_text()), api)
    assert (output / "panel_000_class3.png").is_file() and (output / "panel_003_class0.png").is_file()


def test_one_target_keeps_its_outputs_and_equals_the_targets_column(files, tmp_path, capsys):
    one, several = tmp_path / "one", tmp_path / "several"
    assert run(explain(files, one, "--target", "1"), capsys)[0] == 0
    assert run(explain(files, several, "--targets", "1"), capsys)[0] == 0
    attributions = np.load(one / "attributions.npy")
    assert attributions.shape == (N, 8, 8, 1)
    # --targets 1 is the several-target layout with T = 1, the same numbers.
    np.testing.assert_allclose(np.load(several / "attributions.npy")[:, 0], attributions, **ROUND_OFF)
    summary = json.loads((one / "summary.json").read_text())
    assert "target_count" not in summary and "attributions_shape" not in summary
    assert "targets" not in summary["settings"] and "top_k" not in summary["settings"]
    assert list(summary["inputs"][0])[:7] == ["index", "name", "target", "score", "gradcf_score",
                                             "completeness_delta", "relative_delta"]
    assert summary["files"]["panels"][0] == "panel_000.png" and summary["inputs"][0]["overlay"] == "overlay_000.png"
    assert "targets per input" not in (one / "index.html").read_text(encoding="utf-8")
    assert json.loads((several / "summary.json").read_text())["target_count"] == 1
    assert (several / "panel_000_class1.png").is_file()


def test_stream_explains_several_targets(files, tmp_path, capsys):
    output, in_memory = tmp_path / "stream", tmp_path / "memory"
    status, out, err = run(explain(files, output, "--top-k", "2", "--stream", "--class-names",
                                   files["paths"]["names"]), capsys)
    assert status == 0, err
    assert f"Explained {N} input(s) for 2 target(s) each" in out
    assert run(explain(files, in_memory, "--top-k", "2"), capsys)[0] == 0
    np.testing.assert_allclose(np.load(output / "attributions.npy"), np.load(in_memory / "attributions.npy"),
                               **STREAMED)
    streamed = json.loads((output / "summary.json").read_text())
    memory = json.loads((in_memory / "summary.json").read_text())
    assert streamed["target_count"] == 2 and streamed["attributions_shape"] == [N, 2, 8, 8, 1]
    for got, want in zip(streamed["inputs"], memory["inputs"]):
        for entry, reference in zip(got["targets"], want["targets"]):
            assert entry["target"] == reference["target"]
            assert entry["class_name"] == NAMES[entry["target"]]
            assert entry["score"] == pytest.approx(reference["score"], **STREAMED_APPROX)
            assert entry["panel"] == reference["panel"] and (output / entry["panel"]).is_file()
    # A finished streamed run is not explained again for other targets without --overwrite.
    status, _, err = run(explain(files, output, "--top-k", "3", "--stream"), capsys)
    assert status == 2 and "finished streamed run" in err


@pytest.mark.parametrize("extra, message", [
    (["--target", "1", "--targets", "1,2"], "argument --targets: not allowed with argument --target"),
    (["--top-k", "2", "--targets", "1,2"], "argument --targets: not allowed with argument --top-k"),
    (["--target", "1", "--top-k", "2"], "argument --top-k: not allowed with argument --target"),
    (["--targets", "1,1"], r"argument --targets: must name each class once. Received: '1,1'"),
    (["--targets", "1,two"], "argument --targets: must be comma-separated class indices"),
    (["--targets", "1,-2"], "argument --targets: must be comma-separated class indices"),
    (["--top-k", "0"], "argument --top-k: must be an integer >= 1"),
    (["--targets", "missing.npy"], "`targets` file not found"),
    (["--class-names", "missing.txt"], "`class-names` file not found"),
], ids=["target+targets", "top-k+targets", "target+top-k", "repeated", "not a number", "negative", "k=0",
        "missing file", "missing names"])
def test_usage_errors_before_anything_runs(files, tmp_path, capsys, extra, message):
    output = tmp_path / "out"
    status, out, err = run(explain(files, output, *extra), capsys)
    assert status == 2 and out == ""
    assert err.startswith("tf-ig2: error: ") and err.count("\n") == 1
    assert message in err or re.search(message, err), err
    assert not output.exists()


@pytest.mark.parametrize("values, message", [
    (np.array([1, 2, 3, 0]), r"must hold \(4, T\) class indices \(integers >= 0\), one row of T >= 1 classes per "
                             r"input. Received: int64 array of shape \(4,\)"),
    (np.zeros((3, 2), np.int64), r"Received: int64 array of shape \(3, 2\)"),
    (np.array([[1, 2], [0, 0], [1, 3], [2, 0]]), r"must name distinct classes. Received: row 1 holding \[0, 0\]"),
    (np.full((4, 2), 0.5), "Received: float64 array"),
], ids=["one per input", "wrong count", "repeated class", "floats"])
def test_targets_file_is_checked(files, tmp_path, capsys, values, message):
    path = tmp_path / "targets.npy"
    np.save(path, values)
    status, _, err = run(explain(files, tmp_path / "out", "--targets", path), capsys)
    assert status == 2 and err.startswith("tf-ig2: error: argument --targets: ")
    assert re.search(message, err), err


def test_classes_out_of_range_are_usage_errors(files, tmp_path, capsys):
    status, _, err = run(explain(files, tmp_path / "a", "--top-k", "5"), capsys)
    assert status == 2 and "--top-k must be at most the number of classes C" in err and "--top-k 5" in err
    status, _, err = run(explain(files, tmp_path / "b", "--targets", "1,4"), capsys)
    assert status == 2 and "must be class indices in [0, 3] for a model with 4 outputs" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
