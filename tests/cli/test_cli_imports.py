"""``tf-ig2 explain --import MODULE``: models with custom layers registered in the user's own module."""

import os
import re
import sys
import uuid

import keras
import numpy as np
import pytest

from tf_ig2.saved_model import explain as saved_model

from conftest import listing, run_cli

STEPS = 4

LAYERS_MODULE = '''\
import keras


@keras.saving.register_keras_serializable(package={package!r})
class Doubler(keras.layers.Layer):
    """Doubles its inputs: a custom layer Keras can only load once this module is imported."""

    def call(self, inputs):
        return 2.0 * inputs
'''


def unregister(name):
    """Forgets the module ``name`` and the class it registered with Keras."""
    keras.saving.get_custom_objects().pop(f"{name}>Doubler", None)
    sys.modules.pop(name, None)


@pytest.fixture
def custom(tmp_path, monkeypatch):
    """A module defining a registered custom layer in tmp_path, a model using it saved as .keras and
    .h5, inputs and references; the module is then forgotten, and tmp_path is the current folder
    (but not on sys.path)."""
    name = f"tf_ig2_test_layers_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(LAYERS_MODULE.format(package=name))
    monkeypatch.syspath_prepend(str(tmp_path))  # sys.path is restored at teardown
    module = __import__(name)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh", name="hidden"),
                              module.Doubler(name="doubler"), keras.layers.Dense(3, name="scores")])
    model.save(tmp_path / "custom.keras")
    model.save(tmp_path / "custom.h5")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "inputs.npy", rng.random((3, 4)).astype(np.float32))
    np.save(tmp_path / "references.npy", rng.random((2, 4)).astype(np.float32))
    unregister(name)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path
                                      if entry not in ("", os.curdir, str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    yield {"name": name, "folder": tmp_path, "model": model}
    unregister(name)


run = run_cli


def explain(model_file, output, *extra):
    return ["explain", model_file, "--inputs", "inputs.npy", "--references", "references.npy", "--steps", STEPS,
            "--output", output, *extra]


@pytest.mark.parametrize("stream", [False, True])
def test_custom_layer_needs_import_and_loads_with_it(custom, capsys, stream):
    name, folder = custom["name"], custom["folder"]
    extra = ["--stream", "--quiet"] if stream else []
    before = listing(folder)
    status, out, err = run(explain("custom.keras", "out", *extra), capsys)
    assert status == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith("tf-ig2: error: "), err
    assert "cannot locate the class 'Doubler'" in err and "--import MODULE" in err, err
    assert f"--import {name}" in err, err  # the module the file was saved from
    assert "Full object config" not in err and "Traceback" not in err
    assert listing(folder) == before and not (folder / "out").exists()

    status, out, err = run(explain("custom.keras", "out", "--import", name, *extra), capsys)
    assert status == 0, err
    attributions = np.load(folder / "out" / "attributions.npy")
    assert attributions.shape == (3, 4) and np.all(np.isfinite(attributions)) and np.any(attributions != 0)
    expected = saved_model.explain_saved_model(str(folder / "custom.keras"), np.load("inputs.npy"),
                                               np.load("references.npy"), steps=STEPS)
    np.testing.assert_allclose(attributions, expected.attributions, rtol=1e-4, atol=1e-6)


def test_legacy_h5_file_names_the_missing_class(custom, capsys):
    status, _, err = run(explain("custom.h5", "out"), capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert "cannot locate the class 'Doubler'" in err and "--import MODULE" in err, err
    status, _, err = run(explain("custom.h5", "out", "--import", custom["name"]), capsys)
    assert status == 0, err


def test_python_api_raises_missing_class_error(custom):
    with pytest.raises(saved_model.MissingClassError, match="cannot locate the class 'Doubler'") as raised:
        saved_model.load_model("custom.keras")
    assert isinstance(raised.value, ValueError)
    assert (raised.value.class_name, raised.value.module) == ("Doubler", custom["name"])
    assert "\n" not in str(raised.value) and "Full object config" not in str(raised.value)


@pytest.mark.parametrize("module, message", [
    ("no_such_module_for_tf_ig2", r"could not import the module 'no_such_module_for_tf_ig2': ModuleNotFoundError: "
                                  r"No module named 'no_such_module_for_tf_ig2' \(searched the current folder"),
    ("broken_layers", r"could not import the module 'broken_layers': RuntimeError: this module is broken"),
    ("custom_file.py", r"give the module's name without \.py: --import custom_file"),
    ("not-a-module", r"--import: must be a Python module name such as my_layers or package\.layers\. "
                     r"Received: 'not-a-module'"),
])
def test_failed_import_is_one_line_usage_error(custom, capsys, module, message):
    folder = custom["folder"]
    (folder / "broken_layers.py").write_text("raise RuntimeError('this module is broken')\n")
    (folder / "custom_file.py").write_text("VALUE = 1\n")
    before = listing(folder)
    try:
        status, out, err = run(explain("custom.keras", "out", "--import", module), capsys)
    finally:
        for name in ("broken_layers", "custom_file"):
            sys.modules.pop(name, None)
    assert status == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith("tf-ig2: error: "), err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert listing(folder) == before


def test_import_is_documented(capsys):
    status, out, _ = run(["explain", "--help"], capsys)
    assert status == 0 and "--import MODULE" in out and "register_keras_serializable" in out
