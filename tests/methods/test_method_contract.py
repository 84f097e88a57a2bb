"""The contract every registered method keeps: one registry entry proves a method end to end.

Each method of ``tf_ig2.methods.METHODS`` goes through ``explain``, the training callback,
``explain_dataset``, the faithfulness metrics and the command line with tiny settings, and gives
the same attributions everywhere.
"""

import os

import numpy as np
import pytest

import tf_ig2
from tf_ig2 import metrics
from tf_ig2.cli import command as cli
from tf_ig2.methods import registry as methods

from conftest import small_cnn

TINY = {"ig2": {"steps": 3}, "ig": {"steps": 3}, "guided_ig": {"steps": 3}, "gradient": {"batch_size": 3},
        "gradient_input": {"batch_size": 3}, "blur_ig": {"steps": 3, "max_sigma": 2.0}, "eg": {"samples": 3}}


def flags(options):
    """``tf-ig2 explain`` flags giving ``options`` (``{"batch_size": 3}`` -> ``--batch-size 3``)."""
    return [text for name, value in options.items() for text in ("--" + name.replace("_", "-"), str(value))]


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    return {"model": small_cnn(seed=5), "inputs": rng.random((4, 8, 8, 1)).astype(np.float32),
            "references": rng.random((2, 8, 8, 1)).astype(np.float32)}


def test_every_method_has_a_complete_entry():
    assert set(TINY) == set(methods.METHODS)
    for name, method in methods.METHODS.items():
        assert method.name == name and method.explainer.method == name
        assert method.reference_keyword in ("references", "baselines")
        assert method.explainer.reference_name == method.reference_keyword
        assert set(TINY[name]) <= set(method.settings.names())
        assert "batch_size" in method.settings.names()
        with pytest.raises(TypeError, match=f"Unknown option.*method '{name}'"):
            method.check_options({"no_such_option": 1})


@pytest.mark.parametrize("name", sorted(TINY))
def test_explain_dataset_and_metrics(name, setup, tmp_path):
    model, inputs, references = setup["model"], setup["inputs"], setup["references"]
    method = methods.get_method(name)
    explainer = method.build(model, **TINY[name])
    explanation = explainer.explain(inputs, **{method.reference_keyword: references})
    assert explanation.method == name and explanation.attributions.shape == inputs.shape
    for field in method.extra_outputs:
        if field != "path":
            assert getattr(explanation, field) is not None
    if method.scalar_reference:
        assert explainer.explain(inputs, **{method.reference_keyword: 0.0}).attributions.shape == inputs.shape
    else:
        with pytest.raises(ValueError):
            explainer.explain(inputs, **{method.reference_keyword: 0.0})

    result = tf_ig2.explain_dataset(explainer, inputs, references, tmp_path / "run", batch_size=3, progress=False)
    assert result.method == name and result.count == len(inputs)
    stored = tf_ig2.load_results(tmp_path / "run")
    np.testing.assert_allclose(stored["attributions"], explanation.attributions, rtol=1e-4, atol=1e-6)
    assert ("representation_distance" in stored) == ("representation_distance" in method.extra_outputs)

    scores = metrics.diffid(model, inputs, explanation, steps=4)
    assert scores.shape == (len(inputs),) and np.all(np.isfinite(scores))


@pytest.mark.parametrize("name", sorted(TINY))
def test_callback(name, setup, tmp_path):
    inputs, references = setup["inputs"], setup["references"]
    callback = tf_ig2.callbacks.AttributionCallback(name, (inputs[:2], np.array([0, 1])), references=references,
                                                    output_dir=str(tmp_path), **TINY[name])
    clone = small_cnn(seed=5)
    clone.compile("adam", "sparse_categorical_crossentropy")
    clone.fit(inputs, np.array([0, 1, 2, 0]), epochs=1, verbose=0, callbacks=[callback])
    assert os.listdir(tmp_path / name)
    assert callback.explainer.method == name


@pytest.mark.parametrize("name", sorted(TINY))
def test_command_line(name, setup, tmp_path, capsys):
    model, inputs, references = setup["model"], setup["inputs"], setup["references"]
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "references.npy", references)
    status = cli.main(["explain", str(path), "--method", name, "--inputs", str(tmp_path / "inputs.npy"),
                       "--references", str(tmp_path / "references.npy"), *flags(TINY[name]), "--output",
                       str(tmp_path / "out"), "--quiet"])
    assert status == 0, capsys.readouterr().err
    written = np.load(tmp_path / "out" / "attributions.npy")
    method = methods.get_method(name)
    expected = method.build(model, **TINY[name]).explain(inputs, **{method.reference_keyword: references})
    np.testing.assert_allclose(written, expected.attributions, rtol=1e-4, atol=1e-6)
