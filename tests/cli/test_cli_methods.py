"""``tf-ig2 explain --method``: each registered method with its own options, equal to the Python API."""

import dataclasses
import json
import os
import re

import keras
import numpy as np
import pytest

import tf_ig2
from tf_ig2.cli import command as cli
from tf_ig2.methods import registry as methods
from tf_ig2.methods import settings as msettings

from conftest import listing, run_cli, small_cnn

N, R, STEPS = 5, 2, 8
EXACT = dict(rtol=0, atol=1e-7)
#: Streamed batches are other groups of inputs than the one-shot call: float32 rounding only.
STREAMED = dict(rtol=1e-4, atol=1e-5)


def relu_cnn(seed=4):
    """A small ReLU CNN with logits: IG² with few steps does not add up on it."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(6, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="relu", name="features"),
        keras.layers.Dense(3, name="logits"),
    ])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("methods")
    model, relu = small_cnn(seed=2), relu_cnn()
    paths = {"cnn.keras": str(folder / "cnn.keras"), "relu.keras": str(folder / "relu.keras")}
    model.save(paths["cnn.keras"])
    relu.save(paths["relu.keras"])
    rng = np.random.default_rng(11)
    arrays = {"inputs.npy": rng.random((N, 8, 8, 1)).astype(np.float32),
              "references.npy": rng.random((R, 8, 8, 1)).astype(np.float32)}
    for name, values in arrays.items():
        paths[name] = str(folder / name)
        np.save(paths[name], values)
    return {"paths": paths, "arrays": arrays, "model": model, "relu": relu}


run = run_cli


def explain(files, output, *extra, model="cnn.keras", references="references.npy"):
    paths = files["paths"]
    references = paths.get(references, references)
    return ["explain", paths[model], "--inputs", paths["inputs.npy"], "--references", references,
            "--output", output, "--quiet", *extra]


CASES = {
    "ig, baseline 0": (["--method", "ig", "--steps", STEPS, "--rule", "midpoint"], "0",
                       lambda model: tf_ig2.IntegratedGradients(model, steps=STEPS, rule="midpoint"), 0.0),
    "ig, references file": (["--method", "ig", "--steps", STEPS, "--batch-size", "3"], "references.npy",
                            lambda model: tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=3), None),
    "guided_ig": (["--method", "guided_ig", "--steps", STEPS, "--fraction", "0.5", "--max-dist", "0.1"], "0.25",
                  lambda model: tf_ig2.GuidedIG(model, steps=STEPS, fraction=0.5, max_dist=0.1), 0.25),
    "gradient": (["--method", "gradient", "--batch-size", "2"], "references.npy",
                 lambda model: tf_ig2.Gradient(model, batch_size=2), None),
    "gradient_input, baseline 0.5": (["--method", "gradient_input"], "0.5",
                                     lambda model: tf_ig2.GradientInput(model), 0.5),
    "blur_ig": (["--method", "blur_ig", "--steps", STEPS, "--max-sigma", "3", "--grad-step", "0.02"], "references.npy",
                lambda model: tf_ig2.BlurIG(model, steps=STEPS, max_sigma=3.0, grad_step=0.02), None),
    "ig2, rescaled": (["--steps", STEPS, "--integration", "rescaled"], "references.npy",
                      lambda model: tf_ig2.IG2(model, steps=STEPS, integration="rescaled"), None),
    "ig2, midpoint": (["--method", "ig2", "--steps", STEPS, "--integration", "midpoint", "--segment-points", "2",
                       "--value-range", "0", "1"], "references.npy",
                      lambda model: tf_ig2.IG2(model, steps=STEPS, integration="midpoint", segment_points=2,
                                               value_range=(0.0, 1.0)), None),
}


def strict_json(text):
    """JSON as strict parsers read it: NaN and Infinity are not JSON."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("stream", [False, True], ids=["in_memory", "stream"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_method_writes_what_its_explainer_returns(files, tmp_path, capsys, case, stream):
    extra, references, build, scalar = CASES[case]
    output = tmp_path / "out"
    status, out, err = run(explain(files, output, *extra, "--target", "1", *(["--stream"] if stream else []),
                                   references=references), capsys)
    assert status == 0, err
    explainer = build(files["model"])
    baselines = files["arrays"]["references.npy"] if scalar is None else scalar
    expected = explainer.explain(files["arrays"]["inputs.npy"], baselines, 1)
    np.testing.assert_allclose(np.load(output / "attributions.npy"), expected.attributions,
                               **(STREAMED if stream else EXACT))
    if not stream:
        np.testing.assert_allclose(np.load(output / "counterfactuals.npy"), expected.counterfactuals, **EXACT)
    summary = strict_json((output / "summary.json").read_text())
    method = explainer.method
    assert summary["method"] == method and summary["settings"]["method"] == method
    # The settings hold the method's options, defaults filled in, and no other method's.
    taken = [name for name in cli.method_flags() if name in methods.get_method(method).settings.names()]
    for name in cli.method_flags():
        assert (name in summary["settings"]) == (name in taken), name
    resolved = explainer.settings.as_dict()
    for name in taken:
        value = resolved[name]
        assert summary["settings"][name] == (list(value) if isinstance(value, tuple) else value), name
    for index, record in enumerate(summary["inputs"]):
        relative = float(expected.relative_delta[index])
        assert record["relative_delta"] == (None if np.isnan(relative) else pytest.approx(relative, rel=1e-3, abs=1e-5))
        delta = float(expected.delta[index])  # NaN where completeness does not apply: null in strict JSON
        assert record["completeness_delta"] == (None if np.isnan(delta) else pytest.approx(delta, rel=1e-3, abs=1e-5))
        assert ("representation_distance" in record) == (method == "ig2")
    if method == "ig2":
        assert "Representation: input of layer 'logits'" in out
    else:
        assert summary["representation"] is None and f"Method: {method}" in out


def test_ig_baselines_default_to_zero(files, tmp_path, capsys):
    arguments = explain(files, tmp_path / "out", "--method", "ig", "--steps", STEPS)
    del arguments[4:6]  # no --references
    status, _, err = run(arguments, capsys)
    assert status == 0, err
    expected = tf_ig2.IntegratedGradients(files["model"], steps=STEPS).explain(files["arrays"]["inputs.npy"])
    np.testing.assert_allclose(np.load(tmp_path / "out" / "attributions.npy"), expected.attributions, **EXACT)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["settings"]["references"] == 0.0


WRONG = {
    "integration for ig": (["--method", "ig", "--integration", "rescaled"],
                           r"argument --integration: not an option of --method ig, which takes --steps, --rule, "
                           r"--batch-size, --input-layer, --padding-id\. Received: --integration rescaled"),
    "rule for ig2": (["--rule", "midpoint"], "argument --rule: not an option of --method ig2"),
    "representation for guided_ig": (["--method", "guided_ig", "--representation-layer", "features"],
                                     "argument --representation-layer: not an option of --method guided_ig"),
    "value range for ig": (["--method", "ig", "--value-range", "0", "1"],
                           r"argument --value-range: not an option of --method ig.*Received: --value-range 0 1"),
    "fraction for ig": (["--method", "ig", "--fraction", "0.5"], "argument --fraction: not an option"),
    "segment points for guided_ig": (["--method", "guided_ig", "--segment-points", "3"],
                                     "argument --segment-points: not an option of --method guided_ig"),
    "fraction out of range": (["--method", "guided_ig", "--fraction", "0"], r"`fraction` must be in \(0, 1\]"),
    "trapezoid with one step": (["--method", "ig", "--steps", "1"], "`steps` must be >= 2 for the trapezoid rule"),
    "unknown method": (["--method", "smoothgrad"], "argument --method: invalid choice"),
    "unknown integration": (["--integration", "simpson"], "argument --integration: invalid choice"),
    "number for ig2": (["0"], r"argument --references: a number is a baseline for --method ig, guided_ig(, \w+)*; "
                              r"--method ig2 reads its references from a file"),
    "references missing for ig2": ([], "argument --references: required for --method ig2"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["in_memory", "stream"])
@pytest.mark.parametrize("case", list(WRONG))
def test_an_option_of_another_method_is_a_one_line_usage_error(files, tmp_path, capsys, case, stream):
    extra, message = WRONG[case]
    arguments = explain(files, tmp_path / "out", *(["--stream"] if stream else []))
    if case == "number for ig2":
        arguments[5], extra = extra[0], []
    elif case == "references missing for ig2":
        del arguments[4:6]
    before = listing(tmp_path)
    status, out, err = run([*arguments, *extra], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tf-ig2: error: "), err
    assert re.search(message, err), err
    assert listing(tmp_path) == before and not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("stream", [False, True], ids=["in_memory", "stream"])
def test_completeness_warning_is_one_line(files, tmp_path, capsys, stream):
    inputs, references = files["arrays"]["inputs.npy"], files["arrays"]["references.npy"]
    # The published path on a small ReLU network: its sums miss the score gap.
    with pytest.warns(tf_ig2.CompletenessWarning):
        expected = tf_ig2.IG2(files["relu"], steps=STEPS, step_schedule="constant").explain(inputs, references)
    assert np.median(expected.relative_delta) > tf_ig2.defaults.COMPLETENESS_WARNING_THRESHOLD
    # Several groups of pairs (and, streamed, several batches of inputs): still one warning.
    extra = ["--steps", STEPS, "--batch-size", "2", "--step-schedule", "constant",
             *(["--stream", "--shard-size", "2"] if stream else [])]
    status, out, err = run(explain(files, tmp_path / "out", *extra, model="relu.keras"), capsys)
    assert status == 0, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tf-ig2: warning: The attributions do not add up to the score gap"), err
    assert "--integration rescaled" in lines[0] and "--step-schedule shrink" in lines[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    relative = [record["relative_delta"] for record in summary["inputs"]]
    np.testing.assert_allclose(relative, expected.relative_delta, rtol=1e-3, atol=1e-5)
    # The remedy it names silences it.
    status, _, err = run(explain(files, tmp_path / "rescaled", *extra, "--integration", "rescaled",
                                 model="relu.keras"), capsys)
    assert status == 0 and err == "", err


def test_help_lists_each_methods_options(capsys):
    status, out, _ = run(["explain", "--help"], capsys)
    assert status == 0
    for option in ("--method", "--integration", "--segment-points", "--rule", "--fraction", "--max-dist"):
        assert option in out
    assert re.search(r"ig\s+--steps, --rule, --batch-size, --input-layer, --padding-id", out)
    assert re.search(r"guided_ig\s+--steps, --fraction, --max-dist, --batch-size", out)
    assert "ig2 201, ig 64, guided_ig 200" in out


def test_streamed_run_recorded_before_methods_existed_continues(files, tmp_path, capsys):
    output = tmp_path / "out"
    arguments = explain(files, output, "--steps", STEPS, "--stream", "--shard-size", "2")
    status, _, err = run(arguments, capsys)
    assert status == 0, err
    record_path = output / "shards" / "run.json"

    def unfinished_as_recorded_before():
        record = json.loads(record_path.read_text())
        assert record["settings"]["method"] == "ig2" and record["settings"]["integration"] == "left"
        for name in ("method", "integration", "segment_points"):  # what an earlier version recorded
            del record["settings"][name]
        record["finished"] = False
        record_path.write_text(json.dumps(record))

    unfinished_as_recorded_before()
    status, _, err = run(arguments, capsys)
    assert status == 0, err
    assert f"continuing the unfinished streamed run in {output}: {N} of {N} inputs" in err
    unfinished_as_recorded_before()
    status, _, err = run([*arguments, "--integration", "rescaled"], capsys)
    assert status == 2 and "other settings (integration: 'left' -> 'rescaled')" in err, err


class ScaledIG(tf_ig2.IntegratedGradients):
    """A method registered by this test alone: straight-line IG times a factor, one option more."""

    method = "scaled_ig"

    def __init__(self, model, steps=8, *, factor=1.0, **options):
        super().__init__(model, steps, **options)
        self.factor = factor

    def explain(self, inputs, baselines=0.0, targets=None):
        explanation = super().explain(inputs, baselines, targets)
        return dataclasses.replace(explanation, attributions=self.factor * explanation.attributions)


@dataclasses.dataclass(frozen=True, eq=False)
class ScaledIGSettings(methods.IGSettings):
    factor: float = msettings.option(1.0, "what the attributions are multiplied by", kind="number", metavar="X")


def test_a_registered_method_brings_its_options_to_the_command_line(files, tmp_path, monkeypatch, capsys):
    entry = methods.Method("scaled_ig", f"{__name__}:ScaledIG", "baselines", False, True, (), ScaledIGSettings)
    monkeypatch.setitem(methods.METHODS, "scaled_ig", entry)
    status = cli.main(["explain", "--help"])
    help_text = capsys.readouterr().out
    assert status == 0 and "--factor X" in help_text and "(scaled_ig) what the attributions are multiplied by" in \
        help_text.replace("\n", " ").replace("                        ", "")
    output = tmp_path / "out"
    status = cli.main(["explain", files["paths"]["cnn.keras"], "--method", "scaled_ig", "--factor", "2.5",
                       "--inputs", files["paths"]["inputs.npy"], "--references", "0", "--steps", "8",
                       "--target", "1", "--output", str(output), "--quiet"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((output / "summary.json").read_text())
    assert summary["settings"]["factor"] == 2.5 and summary["method"] == "scaled_ig"
    plain = tf_ig2.IntegratedGradients(files["model"], 8).explain(files["arrays"]["inputs.npy"], 0.0, 1)
    np.testing.assert_allclose(np.load(output / "attributions.npy"), 2.5 * plain.attributions, rtol=1e-5, atol=1e-7)
    status = cli.main(["explain", files["paths"]["cnn.keras"], "--method", "ig", "--factor", "2.5",
                       "--inputs", files["paths"]["inputs.npy"], "--output", str(tmp_path / "other")])
    assert status == 2 and "argument --factor: not an option of --method ig" in capsys.readouterr().err
