"""The ``tf-ig2`` command line: results equal to the Python API, outputs, errors and --overwrite."""

import json
import os
import re
import subprocess
import sys
import zipfile

import cv2
import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2.cli import command as cli
from tf_ig2.saved_model import explain as saved_model
from tf_ig2.visualize.panel_layout import LINE

from conftest import REPOSITORY, listing, run_cli, small_cnn, visible

STEPS = 8
TOLERANCE = dict(rtol=1e-5, atol=1e-6)
#: TensorFlow's own start-up lines, written by its C++ runtime whatever the log level.
TENSORFLOW_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} |To enable the following)")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A seeded CNN saved as .keras, .h5 and a SavedModel, a dense model, and input arrays."""
    folder = tmp_path_factory.mktemp("cli")
    model = small_cnn(seed=2)
    paths = {name: str(folder / name) for name in ("cnn.keras", "cnn.h5", "cnn_saved_model", "dense.keras")}
    model.save(paths["cnn.keras"])
    model.save(paths["cnn.h5"])
    small_cnn(softmax=False, seed=2).export(paths["cnn_saved_model"], verbose=False)
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh", name="hidden"),
                              keras.layers.Dense(3, name="scores")])
    dense.save(paths["dense.keras"])
    rng = np.random.default_rng(5)
    arrays = {
        "inputs.npy": rng.random((3, 8, 8, 1)).astype(np.float32),
        "references.npy": rng.random((2, 8, 8, 1)).astype(np.float32),
        "wrong.npy": rng.random((3, 9, 9, 1)).astype(np.float32),
        "vectors.npy": rng.random((4, 5)).astype(np.float32),
        "vector_references.npy": rng.random((2, 5)).astype(np.float32),
    }
    for name, values in arrays.items():
        paths[name] = str(folder / name)
        np.save(paths[name], values)
    paths["both.npz"] = str(folder / "both.npz")
    np.savez(paths["both.npz"], inputs=arrays["inputs.npy"], references=arrays["references.npy"])
    paths["notes.txt"] = str(folder / "notes.txt")
    with open(paths["notes.txt"], "w") as handle:
        handle.write("not a model")
    return {"paths": paths, "arrays": arrays, "model": model, "folder": folder}


def explain_arguments(files, model, output, *extra):
    paths = files["paths"]
    return ["explain", paths[model], "--inputs", paths["inputs.npy"], "--references", paths["references.npy"],
            "--steps", str(STEPS), "--output", str(output), *extra]


run = run_cli


def png_shape(path):
    """(height, width, channels) of a PNG file, read back independently of the writer."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} is not a readable image"
    return image.shape


def entries(folder):
    """Every file and folder below ``folder``, as relative paths."""
    found = set()
    for root, folders, names in os.walk(folder):
        found.update(os.path.relpath(os.path.join(root, name), folder) for name in folders + names)
    return found


@pytest.mark.parametrize("model", ["cnn.keras", "cnn.h5"])
def test_explain_matches_the_python_api(files, model, tmp_path, capsys):
    output = tmp_path / "out"
    status, out, err = run(explain_arguments(files, model, output, "--target", "1"), capsys)
    assert status == 0, err
    assert "Explained 3 input(s)" in out
    attributions = np.load(output / "attributions.npy")
    inputs, references = files["arrays"]["inputs.npy"], files["arrays"]["references.npy"]
    api = saved_model.explain_saved_model(files["paths"][model], inputs, references, targets=1, steps=STEPS)
    np.testing.assert_allclose(attributions, api.attributions, rtol=0, atol=1e-7)
    independent = tf_ig2.ig2(files["model"], inputs, references, targets=1, steps=STEPS)
    np.testing.assert_allclose(attributions, independent.attributions, **TOLERANCE)
    np.testing.assert_allclose(np.load(output / "counterfactuals.npy"), api.counterfactuals, rtol=0, atol=1e-7)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["tf_ig2_version"] == tf_ig2.__version__
    assert summary["settings"]["steps"] == STEPS and summary["settings"]["target"] == 1
    assert summary["settings"]["method"] == "ig2" and summary["settings"]["integration"] == "left"
    assert summary["representation"] == "input of layer 'logits'"
    assert len(summary["inputs"]) == 3
    for index, record in enumerate(summary["inputs"]):
        assert record["target"] == 1
        assert record["score"] == pytest.approx(float(api.target_scores[index]), rel=1e-5, abs=1e-6)
        assert record["gradcf_score"] == pytest.approx(float(api.counterfactual_scores[index]), rel=1e-5, abs=1e-6)
        assert record["completeness_delta"] == pytest.approx(float(api.delta[index]), rel=1e-4, abs=1e-6)
        assert record["relative_delta"] == pytest.approx(float(api.relative_delta[index]), rel=1e-4, abs=1e-6)
        distances = [[item["start"], item["end"]] for item in record["representation_distance"]]
        np.testing.assert_allclose(distances, api.representation_distance[index], rtol=1e-5, atol=1e-6)
    assert visible(output) == sorted(
        ["attributions.npy", "counterfactuals.npy", "summary.json", "index.html", "grid.png",
         "overlay_000.png", "overlay_001.png", "overlay_002.png", "panel_000.png", "panel_001.png", "panel_002.png"])
    assert f"Report: {output / 'index.html'}" in out
    assert not [name for name in os.listdir(tmp_path) if name != "out"], "a temporary folder was left behind"


def test_explain_saved_model_folder(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, out, err = run(explain_arguments(files, "cnn_saved_model", output, "--batch-size", "2"), capsys)
    assert status == 0, err
    attributions = np.load(output / "attributions.npy")
    counterfactuals = np.load(output / "counterfactuals.npy")
    assert attributions.shape == (3, 8, 8, 1) and attributions.dtype == np.float32
    assert counterfactuals.shape == (3, 2, 8, 8, 1)
    assert np.all(np.isfinite(attributions)) and np.any(attributions != 0)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["representation"].startswith("model output: SavedModel signature 'serving_default'")
    assert summary["settings"]["model_format"] == "saved_model"
    # Completeness: sum(A) = f(x) - f(GradCF) up to the reported delta.
    for index, record in enumerate(summary["inputs"]):
        gap = record["score"] - record["gradcf_score"]
        assert float(attributions[index].sum()) - gap == pytest.approx(record["completeness_delta"], abs=1e-4)


@pytest.mark.parametrize("suffix", ["h5", "keras"])
@pytest.mark.parametrize("stream", [False, True], ids=["in_memory", "stream"])
def test_tf_keras_model_only_tf_keras_reads(tmp_path, capsys, suffix, stream):
    import warnings

    import tf_keras

    tf_keras.utils.set_random_seed(1)
    model = tf_keras.Sequential([tf_keras.Input((6, 1)), tf_keras.layers.LocallyConnected1D(2, 3, activation="tanh"),
                                 tf_keras.layers.Flatten(), tf_keras.layers.Dense(3, name="scores")])
    path = tmp_path / f"local.{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(path))
    rng = np.random.default_rng(2)
    inputs, references = rng.random((4, 6, 1)).astype(np.float32), rng.random((2, 6, 1)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "references.npy", references)
    output = tmp_path / "out"
    status, out, err = run(["explain", path, "--inputs", tmp_path / "inputs.npy", "--references",
                            tmp_path / "references.npy", "--steps", STEPS, "--integration", "rescaled", "--quiet",
                            "--output", output, *(["--stream"] if stream else [])], capsys)
    assert status == 0 and err == "", err
    expected = tf_ig2.IG2(model, steps=STEPS, integration="rescaled").explain(inputs, references)
    np.testing.assert_allclose(np.load(output / "attributions.npy"), expected.attributions, **TOLERANCE)
    assert "Representation: input of layer 'scores'" in out


def test_npz_archive_and_vector_inputs_write_no_pngs(files, tmp_path, capsys):
    paths = files["paths"]
    output = tmp_path / "vectors"
    status, _, err = run(["explain", paths["dense.keras"], "--inputs", paths["vectors.npy"], "--references",
                          paths["vector_references.npy"], "--steps", STEPS, "--representation-layer", "hidden",
                          "--output", output], capsys)
    assert status == 0, err
    assert visible(output) == ["attributions.npy", "counterfactuals.npy", "index.html", "summary.json"]
    assert np.load(output / "attributions.npy").shape == (4, 5)
    output = tmp_path / "archive"
    status, _, err = run(["explain", paths["cnn.keras"], "--inputs", paths["both.npz"], "--references",
                          paths["both.npz"], "--steps", STEPS, "--output", output], capsys)
    assert status == 0, err
    assert np.load(output / "attributions.npy").shape == (3, 8, 8, 1)


def test_images_in_and_pngs_out(files, tmp_path, capsys):
    images, references = tmp_path / "images", tmp_path / "references"
    images.mkdir()
    references.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        assert cv2.imwrite(str(images / f"image_{index}.png"), rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    assert cv2.imwrite(str(references / "reference.jpg"), rng.integers(0, 256, (16, 16), dtype=np.uint8))
    output = tmp_path / "out"
    status, _, err = run(["explain", files["paths"]["cnn.keras"], "--inputs", images, "--references", references,
                          "--scale", "1/255", "--value-range", "0", "1", "--steps", STEPS, "--output", output],
                         capsys)
    assert status == 0, err
    summary = json.loads((output / "summary.json").read_text())
    assert [record["name"] for record in summary["inputs"]] == ["image_0.png", "image_1.png", "image_2.png"]
    assert summary["settings"]["image_size"] == [8, 8] and summary["settings"]["scale"] == pytest.approx(1 / 255)
    # 8x8 inputs are enlarged by ceil(64 / 8) = 8; the grid holds 2 x 2 cells for 3 overlays.
    # Each overlay has its index above it and its colour bar beside it.
    shapes = [png_shape(output / f"overlay_00{index}.png") for index in range(3)]
    height, width, _ = shapes[0]
    assert all(shape == (LINE + 64, width, 3) for shape in shapes) and width > 64
    assert png_shape(output / "grid.png") == (2 * height + 4, 2 * width + 4, 3)
    # The model's own input size is the default; a single image file works too.
    output = tmp_path / "small"
    status, _, err = run(["explain", files["paths"]["cnn.keras"], "--inputs", images / "image_1.png",
                          "--references", references, "--image-size", "8", "8", "--min-display-size", "1",
                          "--steps", STEPS, "--output", output], capsys)
    assert status == 0, err
    assert png_shape(output / "overlay_000.png")[0] == LINE + 8


def test_image_values_follow_resize_and_scale(tmp_path):
    from tf_ig2.cli import files as cli_files

    assert cv2.imwrite(str(tmp_path / "flat.png"), np.full((4, 6, 3), 200, np.uint8))
    values, names = cli_files.read_inputs(tmp_path / "flat.png", "inputs", image_size=(2, 3), channels=3, scale=0.5)
    assert names == ["flat.png"] and values.shape == (1, 2, 3, 3) and values.dtype == np.float32
    np.testing.assert_allclose(values, 100.0, atol=1e-3)
    assert cli_files.parse_scale("1/255") == pytest.approx(1 / 255)
    assert cli_files.parse_scale("0.00392156862745098") == pytest.approx(1 / 255)


def write_png(path, pixels):
    """Writes ``(H, W, C)`` uint8 pixels as a PNG file with TensorFlow's encoder."""
    import tensorflow as tf

    path.write_bytes(tf.io.encode_png(pixels).numpy())


def test_value_range_snapping_clips_round_off_only():
    from tf_ig2.cli import files as cli_files

    eps = float(np.finfo(np.float32).eps)
    assert cli_files.value_range_tolerance(0.0) == cli_files.value_range_tolerance(1.0) == 16 * eps
    assert cli_files.value_range_tolerance(-255.0) == 16 * eps * 255
    values = np.array([1 + 15 * eps, 1 + 17 * eps, -1.5e-6, -2.5e-6, 0.5, 1.01, 255 + 1e-4], np.float32)
    snapped = cli_files.snap_to_value_range(values, (0.0, 1.0))
    np.testing.assert_array_equal(snapped, np.array([1.0, 1 + 17 * eps, 0.0, -2.5e-6, 0.5, 1.01, 255 + 1e-4],
                                                    np.float32))
    assert snapped.dtype == np.float32 and values[0] == np.float32(1 + 15 * eps), "the input was changed"
    np.testing.assert_array_equal(cli_files.snap_to_value_range(values, (0.0, 255.0))[-1], 255.0)
    inside = np.array([0.0, 0.5, 1.0], np.float32)
    assert cli_files.snap_to_value_range(inside, (0.0, 1.0)) is inside
    assert cli_files.snap_to_value_range(values, None) is values


def test_white_pixels_scaled_by_1_255_fit_value_range_0_1(files, tmp_path, capsys):
    from tf_ig2.cli import files as cli_files

    # 12x10 grey PNGs, white but for a few black pixels: resized to the model's 8x8 (antialiased) and
    # multiplied by float32(1/255), their white areas come out a few float32 epsilons above 1.
    inputs, references = tmp_path / "inputs", tmp_path / "references"
    inputs.mkdir()
    references.mkdir()
    white = np.full((12, 10, 1), 255, np.uint8)
    for index, (row, column) in enumerate([(0, 0), (6, 4)]):
        image = white.copy()
        image[row, column] = 0
        write_png(inputs / f"image_{index}.png", image)
    image = white.copy()
    image[:4] = 0
    write_png(references / "reference.png", image)
    read = dict(image_size=(8, 8), channels=1, scale=1 / 255)
    raw, _ = cli_files.read_inputs(inputs, "inputs", **read)
    raw_references, _ = cli_files.read_inputs(references, "references", **read)
    assert raw.max() > 1.0 and raw_references.max() > 1.0, "the images do not show the round-off"
    snapped, _ = cli_files.read_inputs(inputs, "inputs", value_range=(0.0, 1.0), **read)
    assert snapped.max() == 1.0 and snapped.min() >= 0.0
    np.testing.assert_allclose(snapped, raw, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(cli_files.read_image(inputs / "image_1.png", value_range=(0.0, 1.0), **read),
                                  snapped[1])
    for extra in ([], ["--stream", "--quiet"]):
        output = tmp_path / ("streamed" if extra else "in_memory")
        status, _, err = run(["explain", files["paths"]["cnn.keras"], "--inputs", inputs, "--references", references,
                              "--scale", "1/255", "--value-range", "0", "1", "--steps", STEPS, "--output", output,
                              *extra], capsys)
        assert status == 0, err
        attributions = np.load(output / "attributions.npy")
        assert attributions.shape == (2, 8, 8, 1) and np.all(np.isfinite(attributions))
    np.testing.assert_allclose(np.load(tmp_path / "streamed" / "attributions.npy"),
                               np.load(tmp_path / "in_memory" / "attributions.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stream", [False, True])
def test_values_really_outside_the_value_range_are_still_refused(files, tmp_path, capsys, stream):
    eps = float(np.finfo(np.float32).eps)
    inputs = files["arrays"]["inputs.npy"].copy()
    inputs[0, 0, 0, 0], inputs[1, 2, 3, 0] = 1 + 10 * eps, -10 * eps
    np.save(tmp_path / "near.npy", inputs)
    inputs[0, 0, 0, 0] = 1.01
    np.save(tmp_path / "far.npy", inputs)
    extra = ["--stream", "--quiet"] if stream else []
    arguments = ["explain", files["paths"]["cnn.keras"], "--references", files["paths"]["references.npy"],
                 "--value-range", "0", "1", "--steps", STEPS, *extra]
    status, _, err = run([*arguments, "--inputs", tmp_path / "near.npy", "--output", tmp_path / "near"], capsys)
    assert status == 0, err
    status, out, err = run([*arguments, "--inputs", tmp_path / "far.npy", "--output", tmp_path / "far"], capsys)
    assert status == 2 and out == "" and err.count("\n") == 1, err
    assert "`inputs` must lie inside --value-range [0.0, 1.0]" in err and "to 1.0099999" in err, err
    assert "--scale" not in err  # just outside: no other units to suggest
    assert not (tmp_path / "far").exists()


def bad_cases(files, tmp_path):
    paths = files["paths"]
    unreadable = tmp_path / "broken.keras"
    unreadable.write_bytes(b"PK\x03\x04 truncated")
    not_saved_model = tmp_path / "empty_folder"
    not_saved_model.mkdir()
    base = ["--inputs", paths["inputs.npy"], "--references", paths["references.npy"], "--steps", STEPS]
    keras_model = paths["cnn.keras"]
    return {
        "missing model": ([tmp_path / "missing.keras", *base], "does not exist"),
        "unknown format": ([paths["notes.txt"], *base], "Unknown model format"),
        "folder without SavedModel": ([not_saved_model, *base], "not a SavedModel"),
        "unreadable model": ([unreadable, *base], "is not a readable .keras file"),
        "shapes that do not fit": ([keras_model, "--inputs", paths["wrong.npy"], "--references",
                                    paths["references.npy"]], r"expects inputs of shape \(N, 8, 8, 1\)"),
        "unknown layer": ([keras_model, *base, "--representation-layer", "nope"],
                          "Available layers: 'conv', 'flatten', 'features', 'logits'"),
        "missing inputs": ([keras_model, "--inputs", tmp_path / "none.npy", "--references",
                            paths["references.npy"]], "file not found"),
        "steps zero": ([keras_model, *base[:4], "--steps", "0"], "--steps: must be an integer >= 1"),
        "negative step size": ([keras_model, *base, "--step-size", "-1"], "--step-size"),
        "reversed value range": ([keras_model, *base, "--value-range", "1", "0"], "LO must be <= HI"),
        "inputs outside value range": ([keras_model, *base, "--value-range", "0", "0.5"], "inside --value-range"),
        "bad batch size": ([keras_model, *base, "--batch-size", "x"], "--batch-size"),
        "bad scale": ([keras_model, *base, "--scale", "0"], "--scale"),
        "negative target": ([keras_model, *base, "--target", "-1"], "--target"),
        "target out of range": ([keras_model, *base, "--target", "7"], r"class indices in \[0, 2\]"),
        "missing option": ([keras_model, "--inputs", paths["inputs.npy"]], "required"),
        "references that do not fit": ([keras_model, "--inputs", paths["inputs.npy"], "--references",
                                        paths["wrong.npy"]], "`references` must match the shape of one input"),
        "output is a file": ([keras_model, *base], "exists and is not a folder"),
    }


CASES = ["missing model", "unknown format", "folder without SavedModel", "unreadable model",
         "shapes that do not fit", "unknown layer", "missing inputs", "steps zero", "negative step size",
         "reversed value range", "inputs outside value range", "bad batch size", "bad scale", "negative target",
         "target out of range", "missing option", "references that do not fit", "output is a file"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, tmp_path, capsys, case):
    arguments, message = bad_cases(files, tmp_path)[case]
    output = tmp_path / "out"
    if case == "output is a file":
        output = tmp_path / "out.txt"
        output.write_text("mine")
    before = listing(tmp_path), entries(tmp_path)
    status, out, err = run(["explain", *arguments, "--output", output], capsys)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("tf-ig2: error: "), err
    assert re.search(message, err), err
    assert "Traceback" not in err and out == ""
    assert (listing(tmp_path), entries(tmp_path)) == before, "something was written or changed"
    assert not (tmp_path / "out").exists()


def test_non_empty_output_needs_overwrite_and_keeps_other_files(files, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    (output / "overlay_999.png").write_bytes(b"old overlay")
    before = listing(output)
    status, out, err = run(explain_arguments(files, "cnn.keras", output), capsys)
    assert status == 2 and err.count("\n") == 1 and "--overwrite" in err
    assert listing(output) == before
    status, _, err = run(explain_arguments(files, "cnn.keras", output, "--overwrite"), capsys)
    assert status == 0, err
    after = listing(output)
    assert after["notes.txt"] == b"mine" and after["overlay_999.png"] == b"old overlay"
    assert np.load(output / "attributions.npy").shape == (3, 8, 8, 1)
    assert {"summary.json", "index.html", "grid.png", "overlay_002.png", "panel_000.png",
            "counterfactuals.npy"} <= set(after)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    # Again with fewer inputs: the earlier run's own files for the third input go, the user's stay.
    np.save(tmp_path / "two.npy", files["arrays"]["inputs.npy"][:2])
    arguments = explain_arguments(files, "cnn.keras", output, "--overwrite")
    arguments[arguments.index("--inputs") + 1] = tmp_path / "two.npy"
    status, _, err = run(arguments, capsys)
    assert status == 0, err
    after = listing(output)
    assert "overlay_002.png" not in after and "overlay_001.png" in after and after["notes.txt"] == b"mine"
    assert np.load(output / "attributions.npy").shape == (2, 8, 8, 1)


def test_a_file_of_the_users_where_an_output_goes_is_never_written_over(files, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "attributions.npy").write_bytes(b"the user's")
    status, _, err = run(explain_arguments(files, "cnn.keras", output, "--overwrite"), capsys)
    assert status == 2 and err.count("\n") == 1 and "did not write" in err and "'attributions.npy'" in err
    assert listing(output) == {"attributions.npy": b"the user's"}
    (output / "attributions.npy").unlink()
    (output / "overlay_001.png").write_bytes(b"the user's picture")  # found only once the inputs are read
    status, _, err = run(explain_arguments(files, "cnn.keras", output, "--overwrite"), capsys)
    assert status == 2 and "'overlay_001.png'" in err
    assert listing(output) == {"overlay_001.png": b"the user's picture"}


def test_a_failure_late_in_the_run_leaves_the_output_untouched(files, tmp_path, capsys, monkeypatch):
    from tf_ig2.cli import report as cli_report

    output = tmp_path / "out"
    assert run(explain_arguments(files, "cnn.keras", output), capsys)[0] == 0
    before = listing(output)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_report, "write_report", disk_full)  # the last file written
    status, _, err = run(explain_arguments(files, "cnn.keras", output, "--overwrite"), capsys)
    errors = [line for line in err.splitlines() if not line.startswith("tf-ig2: warning:")]
    assert status == 2 and errors == ["tf-ig2: error: [Errno 28] No space left on device"], err
    assert listing(output) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_progress_bar_and_warnings_use_single_stderr_lines(files, tmp_path, capsys, monkeypatch):
    class Terminal:
        def __init__(self):
            self.text = ""

        def write(self, text):
            self.text += text

        def flush(self):
            pass

        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = cli.ProgressBar("Explaining", enabled=True, width=4)
    bar(1, 2)
    bar(2, 2)
    bar.close()
    assert terminal.text == "\rExplaining [==..] 1/2\rExplaining [====] 2/2\n"
    quiet = cli.ProgressBar("Explaining", enabled=False)
    quiet(1, 2)
    quiet.close()
    assert terminal.text.count("\n") == 1
    monkeypatch.undo()
    # A SavedModel ending in a softmax: the probabilities are explained and a one-line warning says so.
    exported = tmp_path / "softmax_saved_model"
    files["model"].export(str(exported), verbose=False)
    paths = files["paths"]
    status, _, err = run(["explain", exported, "--inputs", paths["inputs.npy"], "--references",
                          paths["references.npy"], "--steps", STEPS, "--output", tmp_path / "out"], capsys)
    assert status == 0
    notices = [line for line in err.splitlines() if "do not add up" not in line]  # the completeness notice
    assert len(notices) == 1 and notices[0].startswith("tf-ig2: warning: ") and "probabilities" in notices[0]


def test_help_documents_every_option(capsys):
    status, out, _ = run(["explain", "--help"], capsys)
    assert status == 0
    for option in ("--inputs", "--references", "--method", "--target", "--representation-layer", "--steps",
                   "--step-size", "--integration", "--segment-points", "--momentum", "--rule", "--fraction",
                   "--max-dist", "--value-range", "--batch-size", "--image-size", "--scale", "--output", "--overwrite",
                   "--signature", "--output-name", "--unsafe-deserialization", "--min-display-size", "--quiet",
                   "Exit status"):
        assert option in out
    status, out, _ = run(["demo", "--help"], capsys)
    assert status == 0 and "--output" in out and "--overwrite" in out


def python_module(*arguments):
    environment = dict(os.environ, PYTHONPATH=REPOSITORY + os.pathsep + os.environ.get("PYTHONPATH", ""),
                       TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run([sys.executable, "-m", "tf_ig2", *map(str, arguments)], capture_output=True,
                               text=True, env=environment, cwd=REPOSITORY, timeout=300)
    lines = [line for line in completed.stderr.splitlines() if not TENSORFLOW_NOISE.match(line)]
    return completed.returncode, completed.stdout, lines


def test_python_dash_m_reports_errors_in_one_line(tmp_path):
    status, out, lines = python_module("explain", tmp_path / "missing.keras", "--inputs", "x.npy", "--references",
                                       "r.npy", "--output", tmp_path / "out")
    assert status == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("tf-ig2: error: No model found"), lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("document", ["README.md", os.path.join("docs", "method.md")])
def test_citation_names_the_papers_authors(document):
    with open(os.path.join(REPOSITORY, document), encoding="utf-8") as handle:
        text = handle.read()
    assert "Yue Zhuo and Zhiqiang Ge, \"IG2: Integrated Gradient on Iterative Gradient Path" in text
    assert "Yuchen" not in text and "Zhaoxia" not in text


# -- TensorFlow's start-up lines -------------------------------------------------------------------
STARTUP_LINES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796005457.668451   11191 port.cc:153] oneDNN custom operations are on. You may see ...\n"
    b"I0000 00:00:1796005457.668795   11191 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
    b"I0000 00:00:1796005457.713125   11191 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    b"appropriate compiler flags.\n"
    b"E0000 00:00:1796005463.993707   11247 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
)


def test_startup_lines_are_removed_from_stderr_and_the_rest_kept(capfd):
    with cli._without_stderr_lines(cli.TENSORFLOW_STARTUP_LINE):
        os.write(2, STARTUP_LINES[:200])  # a line written in two parts
        os.write(2, STARTUP_LINES[200:] + b"a line of the user's own module\n")
        os.write(2, b"F0000 00:00:1796005463.993707   11247 cpu_feature_guard.cc:1] fatal lines are kept\n")
        os.write(2, b"no newline at the end")
    captured = capfd.readouterr()
    assert captured.err == ("a line of the user's own module\n"
                            "F0000 00:00:1796005463.993707   11247 cpu_feature_guard.cc:1] fatal lines are kept\n"
                            "no newline at the end")
    os.write(2, STARTUP_LINES)  # file descriptor 2 is restored
    assert capfd.readouterr().err == STARTUP_LINES.decode()


def test_quiet_startup_keeps_the_users_log_level(monkeypatch, capfd):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli.quiet_tensorflow_startup()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    cli.quiet_tensorflow_startup()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert not [line for line in capfd.readouterr().err.splitlines() if TENSORFLOW_NOISE.match(line)]


#: Runs tf_ig2.cli.main as if tf_ig2/__init__.py imported no TensorFlow (a lazy package), then prints
#: TF_CPP_MIN_LOG_LEVEL as the command left it.
LAZY_PACKAGE_SCRIPT = """
import os, sys, types
package = types.ModuleType("tf_ig2")
package.__path__ = [os.path.join({repository!r}, "tf_ig2")]
package.__version__ = "0"
sys.modules["tf_ig2"] = package
from tf_ig2 import cli
assert "tensorflow" not in sys.modules
status = cli.main(sys.argv[1:])
print(os.environ.get("TF_CPP_MIN_LOG_LEVEL"), status)
"""


def without_log_level(**extra):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PYTHONPATH"] = REPOSITORY + os.pathsep + os.environ.get("PYTHONPATH", "")
    environment.update(extra)
    return environment


@pytest.mark.slow
def test_command_keeps_tensorflow_startup_lines_off_stderr(tmp_path):
    with zipfile.ZipFile(tmp_path / "broken.keras", "w") as archive:  # refused once TensorFlow is loaded
        archive.writestr("notes.txt", "not a model")
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    arguments = ["explain", tmp_path / "broken.keras", "--inputs", "x.npy", "--references", "x.npy",
                 "--output", tmp_path / "out"]
    script = LAZY_PACKAGE_SCRIPT.format(repository=REPOSITORY)
    completed = subprocess.run([sys.executable, "-c", script, *map(str, arguments)], capture_output=True, text=True,
                               env=without_log_level(), cwd=tmp_path, timeout=300)
    assert completed.stdout.split() == ["2", "2"], (completed.stdout, completed.stderr)
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-ig2: error: Could not load the Keras model"), lines
    # A log level the user set is kept (and TensorFlow's lines are then TensorFlow's business).
    completed = subprocess.run([sys.executable, "-c", script, *map(str, arguments)], capture_output=True, text=True,
                               env=without_log_level(TF_CPP_MIN_LOG_LEVEL="0"), cwd=tmp_path, timeout=300)
    assert completed.stdout.split() == ["0", "2"], (completed.stdout, completed.stderr)
    assert completed.stderr.splitlines()[-1].startswith("tf-ig2: error: Could not load the Keras model")


@pytest.mark.slow
def test_python_dash_m_help_writes_no_tensorflow_lines(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "tf_ig2", "--help"], capture_output=True, text=True,
                               env=without_log_level(), cwd=tmp_path, timeout=300)
    assert completed.returncode == 0 and "explain" in completed.stdout
    noise = [line for line in completed.stderr.splitlines() if TENSORFLOW_NOISE.match(line)]
    assert noise == [] and completed.stderr == "", completed.stderr
    eager = subprocess.run([sys.executable, "-c", "import sys, tf_ig2; print('tensorflow' in sys.modules)"],
                           capture_output=True, text=True, env=without_log_level(TF_CPP_MIN_LOG_LEVEL="2"),
                           cwd=tmp_path, timeout=300)
    assert eager.stdout.strip() == "False"  # import tf_ig2 leaves TensorFlow unimported


def test_target_file_gives_each_input_its_class(files, tmp_path, capsys):
    targets = tmp_path / "targets.npy"
    np.save(targets, np.array([2, 0, 1]))
    output = tmp_path / "out"
    status, _, err = run(explain_arguments(files, "cnn.keras", output, "--target", targets), capsys)
    assert status == 0, err
    summary = json.loads((output / "summary.json").read_text())
    assert [record["target"] for record in summary["inputs"]] == [2, 0, 1]
    api = tf_ig2.IG2(files["model"], steps=STEPS).explain(files["arrays"]["inputs.npy"],
                                                          files["arrays"]["references.npy"], [2, 0, 1])
    np.testing.assert_allclose(np.load(output / "attributions.npy"), api.attributions, **TOLERANCE)
    np.save(targets, np.array([2, 0]))
    status, _, err = run(explain_arguments(files, "cnn.keras", tmp_path / "two", "--target", targets), capsys)
    assert status == 2 and "--target" in err and "must hold 3 class indices" in err and "shape (2,)" in err
    status, _, err = run(explain_arguments(files, "cnn.keras", tmp_path / "none", "--target", tmp_path / "no.npy"),
                         capsys)
    assert status == 2 and "`target` file not found" in err


def test_messages_name_the_command_lines_options(files, tmp_path, capsys):
    # A completeness warning names the command line's options and summary.json. Straight-line IG with
    # 2 points from sum 6.4 to 57.6 through relu(sum - 50): the trapezoid gives 25.6 for a gap of 7.6.
    kink = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(1, activation="relu", kernel_initializer="ones",
                                                bias_initializer=keras.initializers.Constant(-50.0)),
                             keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]))])
    path = tmp_path / "kink.keras"
    kink.save(path)
    np.save(tmp_path / "high.npy", np.full((1, 8, 8, 1), 0.9, np.float32))
    np.save(tmp_path / "low.npy", np.full((1, 8, 8, 1), 0.1, np.float32))
    status, _, err = run(["explain", path, "--method", "ig", "--inputs", tmp_path / "high.npy", "--references",
                          tmp_path / "low.npy", "--steps", "2", "--target", "0", "--output", tmp_path / "out"], capsys)
    assert status == 0, err
    warned = [line for line in err.splitlines() if "do not add up" in line]
    assert len(warned) == 1 and warned[0].startswith("tf-ig2: warning: "), err
    assert "more --steps" in warned[0] and "relative_delta in summary.json" in warned[0], warned[0]
    assert "explanation.relative_delta" not in warned[0]
    # Values outside --value-range suggest the --scale that brings them inside.
    digits = tmp_path / "digits.npy"
    np.save(digits, 16.0 * files["arrays"]["inputs.npy"] / files["arrays"]["inputs.npy"].max())
    status, _, err = run(["explain", files["paths"]["cnn.keras"], "--inputs", digits, "--references",
                          files["paths"]["references.npy"], "--value-range", "0", "1", "--steps", "2",
                          "--output", tmp_path / "range"], capsys)
    assert status == 2 and "pass --scale 1/16" in err and "--value-range" in err, err


def test_command_line_wording_translates_keywords():
    from tf_ig2 import diagnostics
    from tf_ig2.cli.explain import command_line_wording

    for rule, remedy in diagnostics.REMEDIES.items():
        worded = command_line_wording(f"The {rule!r} rule. Try {remedy}. See explanation.relative_delta.")
        assert "='" not in worded and "explanation.relative_delta" not in worded, worded
    assert command_line_wording("try a larger segment_points") == "try a larger --segment-points"
    assert command_line_wording("try more steps.") == "try more --steps."
    assert command_line_wording("values from 0.0 to 255.0").endswith("255.0")  # no range named: no hint


def test_unreadable_files_are_refused_saying_why(files, tmp_path, capsys):
    # A truncated .keras file is no zip archive: refused before TensorFlow is needed.
    data = open(files["paths"]["cnn.keras"], "rb").read()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(data[:len(data) // 2])
    status, _, err = run(explain_arguments(files, "cnn.keras", tmp_path / "a")[:1] + [truncated]
                         + explain_arguments(files, "cnn.keras", tmp_path / "a")[2:], capsys)
    assert status == 2 and "is not a readable .keras file" in err and "truncated" in err and "File not found" not in err
    # A pickled array names the argument and the file, and is never unpickled.
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, inputs=np.array([{"a": 1}], dtype=object))
    status, _, err = run(["explain", files["paths"]["cnn.keras"], "--inputs", pickled, "--references",
                          files["paths"]["references.npy"], "--output", tmp_path / "b"], capsys)
    assert status == 2 and "`inputs` from" in err and "objects.npz" in err and "pickled object array" in err


def test_a_lambda_of_a_function_from_the_saving_script_is_explained(tmp_path, capsys):
    def double(values):
        return 2.0 * values

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(double), keras.layers.Dense(3)])
    model.save(tmp_path / "lambda.keras")
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    status, _, err = run(["explain", tmp_path / "lambda.keras", "--inputs", tmp_path / "x.npy", "--references",
                          tmp_path / "x.npy", "--output", tmp_path / "out", "--unsafe-deserialization"], capsys)
    assert status == 2 and "'double'" in err and "defined in the script that saved the model" in err, err
    assert "--import builtins" not in err and "--import __main__" not in err


def test_input_names_that_would_share_a_file_are_refused():
    from tf_ig2.cli import output

    assert output.output_names(inputs=["image", "vector"])[:2] == ("attributions.image.npy", "attributions.vector.npy")
    with pytest.raises(ValueError, match=r"inputs 'a b' and 'a_b' would both be written to 'attributions.a_b.npy'"):
        output.output_names(inputs=["a b", "a_b"])


def test_messages_name_every_methods_flags():
    from tf_ig2.cli.wording import command_line_wording

    text = command_line_wording("try more steps, a smaller grad_step or a smaller max_sigma; Received: momentum=1.5, "
                                "batch_size=2, integration='midpoint'")
    assert text == ("try more --steps, a smaller --grad-step or a smaller --max-sigma; Received: --momentum 1.5, "
                    "--batch-size 2, --integration midpoint")
