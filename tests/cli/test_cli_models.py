"""``tf-ig2 explain`` on text models (--input-layer, --padding-id) and models with several inputs (NAME=PATH)."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2.saved_model import explain as saved_model

from conftest import REPOSITORY, run_cli

STEPS = 4
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def text_model():
    """Token ids (6,) -> Embedding "embedding" -> mean over tokens -> Dense(3)."""
    keras.utils.set_random_seed(3)
    ids = keras.Input((6,), dtype="int32", name="ids")
    hidden = keras.layers.Embedding(12, 4, name="embedding")(ids)
    hidden = keras.layers.GlobalAveragePooling1D(name="pool")(hidden)
    hidden = keras.layers.Dense(5, activation="tanh", name="features")(hidden)
    return keras.Model(ids, keras.layers.Dense(3, name="logits")(hidden))


def two_input_model():
    """An image-like input "img" (4, 4, 1) and a vector "vec" (3,), keyed by name."""
    keras.utils.set_random_seed(4)
    img = keras.Input((4, 4, 1), name="img")
    vec = keras.Input((3,), name="vec")
    hidden = keras.layers.Concatenate(name="joined")([keras.layers.Flatten(name="flat")(img), vec])
    hidden = keras.layers.Dense(5, activation="tanh", name="features")(hidden)
    return keras.Model({"img": img, "vec": vec}, keras.layers.Dense(3, name="logits")(hidden))


def mixed_model():
    """Token ids "ids" (6,) through an Embedding "embedding", and a float vector "vec" (3,)."""
    keras.utils.set_random_seed(5)
    ids = keras.Input((6,), dtype="int32", name="ids")
    vec = keras.Input((3,), name="vec")
    tokens = keras.layers.GlobalAveragePooling1D(name="pool")(keras.layers.Embedding(12, 4, name="embedding")(ids))
    hidden = keras.layers.Dense(5, activation="tanh", name="features")(keras.layers.Concatenate()([tokens, vec]))
    return keras.Model({"ids": ids, "vec": vec}, keras.layers.Dense(3, name="logits")(hidden))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_models")
    paths = {}
    for name, build in (("text.keras", text_model), ("two.keras", two_input_model), ("mixed.keras", mixed_model)):
        paths[name] = str(folder / name)
        build().save(paths[name])
    rng = np.random.default_rng(7)
    ids = rng.integers(1, 12, (3, 6)).astype(np.int32)
    ids[0, 4:] = 0  # padding at the end
    ids[1, 5:] = 0
    token_references = rng.integers(1, 12, (2, 6)).astype(np.int32)
    token_references[:, 2] = 0  # padding where the inputs hold words, words where they hold padding
    arrays = {
        "ids.npy": ids,
        "token_references.npy": token_references,
        "fractional_ids.npy": ids.astype(np.float32) + np.float32(0.5),
        "unknown_ids.npy": ids + 12,  # beyond the vocabulary of 12
        "img.npy": rng.random((3, 4, 4, 1)).astype(np.float32),
        "img_references.npy": rng.random((2, 4, 4, 1)).astype(np.float32),
        "vec.npy": rng.random((3, 3)).astype(np.float32),
        "vec_references.npy": rng.random((2, 3)).astype(np.float32),
    }
    for name, values in arrays.items():
        paths[name] = str(folder / name)
        np.save(paths[name], values)
    return {"paths": paths, "arrays": arrays}


run = run_cli


def python_explanation(path, inputs, references, **options):
    """The Python API's explanation of a saved model (a 4-step path's completeness warning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return saved_model.explain_model(saved_model.load_model(path), inputs, references, steps=STEPS, **options)


def text_arguments(files, output, *extra):
    paths = files["paths"]
    return ["explain", paths["text.keras"], "--input-layer", "embedding", "--inputs", paths["ids.npy"],
            "--references", paths["token_references.npy"], "--steps", STEPS, "--quiet", "--output", output, *extra]


# -- text models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["ig2", "ig", "guided_ig"])
def test_a_text_model_explained_from_token_ids_equals_python(files, tmp_path, capsys, method):
    output = tmp_path / "out"
    status, _, err = run(text_arguments(files, output, "--method", method), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    expected = python_explanation(files["paths"]["text.keras"], arrays["ids.npy"], arrays["token_references.npy"],
                                  method=method, input_layer="embedding")
    attributions = np.load(output / "attributions.npy")
    assert attributions.shape == (3, 6)  # one attribution per token
    np.testing.assert_allclose(attributions, expected.attributions, **TOLERANCE)
    np.testing.assert_allclose(np.load(output / "counterfactuals.npy"), expected.counterfactuals, **TOLERANCE)
    assert np.abs(attributions).sum() > 0
    assert np.all(attributions[arrays["ids.npy"] == 0] == 0)  # padding never moves
    summary = json.loads((output / "summary.json").read_text())
    assert summary["settings"]["input_layer"] == "embedding" and summary["settings"]["padding_id"] == 0
    assert summary["inputs_shape"] == [3, 6] and summary["files"]["panels"] == []
    assert [record["target"] for record in summary["inputs"]] == expected.targets.tolist()
    assert not [name for name in os.listdir(output) if name.endswith(".png")]
    assert "completeness delta" in (output / "index.html").read_text()


def test_padding_id_none_moves_the_padding_as_python_does(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(text_arguments(files, output, "--method", "ig", "--padding-id", "none"), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    expected = python_explanation(files["paths"]["text.keras"], arrays["ids.npy"], arrays["token_references.npy"],
                                  method="ig", input_layer="embedding", padding_id=None)
    attributions = np.load(output / "attributions.npy")
    np.testing.assert_allclose(attributions, expected.attributions, **TOLERANCE)
    assert np.abs(attributions[arrays["ids.npy"] == 0]).max() > 0
    assert json.loads((output / "summary.json").read_text())["settings"]["padding_id"] is None


def test_streamed_token_ids_equal_python(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(text_arguments(files, output, "--stream", "--shard-size", 2), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    expected = python_explanation(files["paths"]["text.keras"], arrays["ids.npy"], arrays["token_references.npy"],
                                  input_layer="embedding")
    np.testing.assert_allclose(np.load(output / "attributions.npy"), expected.attributions, **TOLERANCE)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["stream"] and summary["counts"]["shards"] == 2 and summary["settings"]["input_layer"] == "embedding"
    assert (output / "index.html").is_file()


# -- several inputs ----------------------------------------------------------------------------------
def two_input_arguments(files, output, *extra, references=True):
    paths = files["paths"]
    named = ["--inputs", f"img={paths['img.npy']}", "--inputs", f"vec={paths['vec.npy']}"]
    if references:
        named += ["--references", f"img={paths['img_references.npy']}",
                  "--references", f"vec={paths['vec_references.npy']}"]
    return ["explain", paths["two.keras"], *named, "--steps", STEPS, "--quiet", "--output", output, *extra]


def test_a_model_with_two_named_inputs_equals_python(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(two_input_arguments(files, output, "--value-range", 0, 1, "--batch-size", 4), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    inputs = {"img": arrays["img.npy"], "vec": arrays["vec.npy"]}
    references = {"img": arrays["img_references.npy"], "vec": arrays["vec_references.npy"]}
    expected = python_explanation(files["paths"]["two.keras"], inputs, references, value_range=(0.0, 1.0),
                                  batch_size=4)
    with warnings.catch_warnings():  # the explainer itself, all inputs at once (explain_model goes 2 by 2)
        warnings.simplefilter("ignore")
        whole = tf_ig2.IG2(saved_model.load_model(files["paths"]["two.keras"]), steps=STEPS, batch_size=4,
                           value_range=(0.0, 1.0)).explain(inputs, references)
    for name in ("img", "vec"):
        np.testing.assert_allclose(expected.attributions[name], whole.attributions[name], **TOLERANCE)
        attributions = np.load(output / f"attributions.{name}.npy")
        assert attributions.shape == inputs[name].shape and np.abs(attributions).sum() > 0
        np.testing.assert_allclose(attributions, expected.attributions[name], **TOLERANCE)
        np.testing.assert_allclose(np.load(output / f"counterfactuals.{name}.npy"), expected.counterfactuals[name],
                                   **TOLERANCE)
    assert not (output / "attributions.npy").exists()
    summary = json.loads((output / "summary.json").read_text())
    assert summary["input_names"] == ["img", "vec"]
    assert summary["inputs_shape"] == {"img": [3, 4, 4, 1], "vec": [3, 3]}
    assert summary["files"]["attributions"] == {"img": "attributions.img.npy", "vec": "attributions.vec.npy"}
    assert summary["files"]["counterfactuals"]["vec"] == "counterfactuals.vec.npy"
    assert summary["settings"]["inputs"] == {"img": files["paths"]["img.npy"], "vec": files["paths"]["vec.npy"]}
    np.testing.assert_allclose([record["completeness_delta"] for record in summary["inputs"]], expected.delta,
                               **TOLERANCE)
    assert (output / "index.html").is_file()


def test_one_baseline_number_for_every_input_equals_python(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(two_input_arguments(files, output, "--method", "ig", "--references", "0.5",
                                             references=False), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    expected = python_explanation(files["paths"]["two.keras"], {"img": arrays["img.npy"], "vec": arrays["vec.npy"]},
                                  0.5, method="ig")
    for name in ("img", "vec"):
        np.testing.assert_allclose(np.load(output / f"attributions.{name}.npy"), expected.attributions[name],
                                   **TOLERANCE)


def test_token_ids_beside_a_float_input_value_range_for_the_float_input(files, tmp_path, capsys):
    paths, arrays = files["paths"], files["arrays"]
    output = tmp_path / "out"
    status, _, err = run(["explain", paths["mixed.keras"], "--input-layer", "embedding",
                          "--inputs", f"ids={paths['ids.npy']}", "--inputs", f"vec={paths['vec.npy']}",
                          "--references", f"ids={paths['token_references.npy']}",
                          "--references", f"vec={paths['vec_references.npy']}", "--value-range", 0, 1,
                          "--steps", STEPS, "--quiet", "--output", output], capsys)
    assert status == 0, err
    expected = python_explanation(paths["mixed.keras"], {"ids": arrays["ids.npy"], "vec": arrays["vec.npy"]},
                                  {"ids": arrays["token_references.npy"], "vec": arrays["vec_references.npy"]},
                                  input_layer="embedding", value_range={"vec": (0.0, 1.0)})
    ids = np.load(output / "attributions.ids.npy")
    assert ids.shape == (3, 6) and np.all(ids[arrays["ids.npy"] == 0] == 0)
    np.testing.assert_allclose(ids, expected.attributions["ids"], **TOLERANCE)
    np.testing.assert_allclose(np.load(output / "attributions.vec.npy"), expected.attributions["vec"], **TOLERANCE)


# -- refusals ----------------------------------------------------------------------------------------
def one_line_error(status, err, expected):
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("tf-ig2: error: "), err
    assert expected in lines[0], lines[0]


def test_refusals_after_loading_the_model_are_one_line_and_write_nothing(files, tmp_path, capsys):
    paths = files["paths"]
    output = tmp_path / "out"
    cases = {
        "unknown input name": (["explain", paths["two.keras"], "--inputs", f"img={paths['img.npy']}", "--inputs",
                                f"vex={paths['vec.npy']}", "--method", "ig"],
                               "the model has no input named 'vex'; its inputs are img, vec"),
        "missing input name": (["explain", paths["two.keras"], "--inputs", f"img={paths['img.npy']}", "--method",
                                "ig"], "give one --inputs NAME=PATH for each: missing vec"),
        "unnamed inputs": (["explain", paths["two.keras"], "--inputs", paths["img.npy"], "--method", "ig"],
                           "the model has 2 inputs (img, vec); give one --inputs NAME=PATH for each"),
        "names for one input": (["explain", paths["text.keras"], "--inputs", f"ids={paths['ids.npy']}",
                                 "--references", f"ids={paths['token_references.npy']}", "--input-layer",
                                 "embedding"], "the model has a single input (ids); give it as --inputs PATH"),
        "no such layer": (["explain", paths["text.keras"], "--input-layer", "embeding", "--inputs", paths["ids.npy"],
                           "--references", paths["token_references.npy"]],
                          "argument --input-layer: `input_layer` names no layer of the model. Received: 'embeding'"),
        "fractional ids": (["explain", paths["text.keras"], "--input-layer", "embedding", "--inputs",
                            paths["fractional_ids.npy"], "--references", paths["token_references.npy"]],
                           "must hold whole token ids (integers). Received: "),
        "ids beyond the vocabulary": (["explain", paths["text.keras"], "--input-layer", "embedding", "--inputs",
                                       paths["unknown_ids.npy"], "--references", paths["token_references.npy"]],
                                      "token ids must be below the vocabulary size of the embedding layer"),
        "reference counts differ": (two_input_arguments(files, output, references=False)[:-5] + [
            "--references", f"img={paths['img_references.npy']}", "--references", f"vec={paths['vec.npy']}"],
            "must hold the same number R of references for every input, (R, *S) or (N, R, *S). Received: img 2, "
            "vec 3"),
        "float ids": (["explain", paths["text.keras"], "--inputs", paths["ids.npy"], "--references",
                       paths["token_references.npy"]], "--input-layer embedding"),
    }
    for name, (arguments, expected) in cases.items():
        if "--output" not in arguments:
            arguments = [*arguments, "--steps", STEPS, "--quiet", "--output", output]
        status, _, err = run(arguments, capsys)
        one_line_error(status, err, expected)
        assert not output.exists(), name


#: Runs the command line, then prints whether TensorFlow was imported and the exit status.
CLI_SCRIPT = """
import sys
from tf_ig2 import cli
status = cli.main(sys.argv[1:])
print("tensorflow" in sys.modules, status)
"""


def test_refusals_of_names_and_token_options_come_before_tensorflow(files, tmp_path):
    paths = files["paths"]
    output = tmp_path / "out"
    text = ["explain", paths["text.keras"], "--input-layer", "embedding", "--inputs", paths["ids.npy"]]
    cases = {
        "missing named file": (two_input_arguments(files, output, references=False)[:4] + [
            "--inputs", f"vec={tmp_path / 'missing.npy'}", "--method", "ig"], "`inputs` file not found"),
        "empty path": (["explain", paths["two.keras"], "--inputs", "img=", "--method", "ig"],
                       "NAME=PATH needs a path after '='"),
        "named and unnamed": (["explain", paths["two.keras"], "--inputs", f"img={paths['img.npy']}", "--inputs",
                               paths["vec.npy"], "--method", "ig"], "not both"),
        "twice for one name": (["explain", paths["two.keras"], "--inputs", f"img={paths['img.npy']}", "--inputs",
                                f"img={paths['vec.npy']}", "--method", "ig"], "img is given more than once"),
        "references of other inputs": (two_input_arguments(files, output, references=False) + [
            "--references", f"img={paths['img_references.npy']}"], "missing vec"),
        "unnamed references": (two_input_arguments(files, output, references=False) + [
            "--references", paths["img_references.npy"]], "give one --references NAME=PATH per input"),
        "several inputs streamed": (two_input_arguments(files, output, "--stream"),
                                    "argument --stream: streams models with one input"),
        "padding without layer": (two_input_arguments(files, output, "--padding-id", 1),
                                  "argument --padding-id: only applies with --input-layer"),
        "padding id": (text + ["--padding-id", "pad"], "must be an integer token id or 'none'"),
        "number references": (text + ["--method", "ig", "--references", "0"],
                              "with --input-layer the references (baselines) are token ids"),
        "value range": (text + ["--references", paths["token_references.npy"], "--value-range", 0, 1],
                        "argument --value-range: applies to float inputs"),
        "image inputs": (["explain", paths["text.keras"], "--input-layer", "embedding", "--inputs",
                          str(tmp_path), "--method", "ig", "--references", paths["token_references.npy"]],
                         "expected a .npy or .npz array of integers"),
    }
    for name, (arguments, expected) in cases.items():
        if "--output" not in arguments:
            arguments = [*arguments, "--output", output]
        env = dict(os.environ, PYTHONPATH=REPOSITORY, TF_CPP_MIN_LOG_LEVEL="2")
        completed = subprocess.run([sys.executable, "-c", CLI_SCRIPT, *map(str, arguments)], capture_output=True,
                                   text=True, env=env, timeout=300)
        imported, status = completed.stdout.split()
        assert imported == "False", name
        one_line_error(int(status), completed.stderr, expected)
        assert not output.exists(), name
