"""``tf-ig2 explain --smooth``: the noise tunnel from the command line, equal to the Python API."""

import json
import os

import numpy as np
import pytest

import tf_ig2
from tf_ig2 import defaults

from conftest import run_cli, small_cnn

N, R, STEPS = 4, 2, 6


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smoothing")
    model = small_cnn(softmax=False, seed=5)
    paths = {"model": str(folder / "cnn.keras")}
    model.save(paths["model"])
    rng = np.random.default_rng(3)
    arrays = {"inputs": rng.random((N, 8, 8, 1)).astype(np.float32),
              "references": rng.random((R, 8, 8, 1)).astype(np.float32)}
    for name, values in arrays.items():
        paths[name] = str(folder / f"{name}.npy")
        np.save(paths[name], values)
    return {"paths": paths, "arrays": arrays, "model": model}


run = run_cli


def explain(files, output, *extra):
    paths = files["paths"]
    return ["explain", paths["model"], "--inputs", paths["inputs"], "--output", output, "--quiet", *extra]


@pytest.mark.filterwarnings("ignore::tf_ig2.CompletenessWarning")  # IG² with 6 steps on a small CNN
@pytest.mark.parametrize("method, kind, references", [("ig", "vargrad", "0.25"), ("ig2", "smoothgrad", "file")])
def test_smoothed_attributions_equal_the_python_api(files, tmp_path, capsys, method, kind, references):
    output = str(tmp_path / "out")
    given = files["paths"]["references"] if references == "file" else references
    extra = ["--method", method, "--steps", STEPS, "--references", given, "--batch-size", 3, "--smooth", kind,
             "--smooth-samples", 3, "--smooth-noise", 0.1, "--smooth-seed", 7, "--targets", "0,2"]
    if method == "ig2":
        extra += ["--value-range", 0, 1]
    status, _, err = run(explain(files, output, *extra), capsys)
    assert status == 0, err
    model = tf_ig2.load_model(files["paths"]["model"])
    explainer = (tf_ig2.IntegratedGradients(model, steps=STEPS, batch_size=3) if method == "ig" else
                 tf_ig2.IG2(model, steps=STEPS, batch_size=3, value_range=(0.0, 1.0)))
    baselines = float(references) if references != "file" else files["arrays"]["references"]
    expected = tf_ig2.smooth(explainer, kind=kind, samples=3, noise=0.1, seed=7).explain(
        files["arrays"]["inputs"], baselines, np.array([[0, 2]] * N))
    written = np.load(os.path.join(output, "attributions.npy"))
    assert written.shape == (N, 2, 8, 8, 1)
    np.testing.assert_allclose(written, expected.attributions, rtol=1e-6, atol=1e-7)
    with open(os.path.join(output, "summary.json")) as handle:
        summary = json.load(handle)
    assert summary["settings"]["smooth"] == {"kind": kind, "samples": 3, "noise": 0.1, "seed": 7}
    entries = [target for record in summary["inputs"] for target in record["targets"]]
    if kind == "vargrad":  # variances add up to no score gap
        assert all(entry["completeness_delta"] is None and entry["relative_delta"] is None for entry in entries)
    else:
        np.testing.assert_allclose([entry["completeness_delta"] for entry in entries], expected.delta.ravel(),
                                   rtol=1e-5, atol=1e-6)


def test_smoothing_defaults_are_recorded(files, tmp_path, capsys):
    output = str(tmp_path / "out")
    status, _, err = run(explain(files, output, "--method", "ig", "--steps", 2, "--smooth", "smoothgrad_sq",
                                 "--smooth-samples", 2), capsys)
    assert status == 0, err
    with open(os.path.join(output, "summary.json")) as handle:
        settings = json.load(handle)["settings"]
    assert settings["smooth"] == {"kind": "smoothgrad_sq", "samples": 2, "noise": defaults.SMOOTH_NOISE,
                                  "seed": defaults.SMOOTH_SEED}
    status, _, err = run(explain(files, str(tmp_path / "plain"), "--method", "ig", "--steps", 2), capsys)
    assert status == 0, err
    with open(os.path.join(tmp_path, "plain", "summary.json")) as handle:
        assert "smooth" not in json.load(handle)["settings"]


@pytest.mark.parametrize("extra, message", [
    (["--smooth-samples", "3"], "argument --smooth-samples: only applies with --smooth KIND"),
    (["--smooth-seed", "1"], "argument --smooth-seed: only applies with --smooth KIND"),
    (["--smooth", "vargrad", "--stream"], "argument --smooth: not with --stream"),
    (["--smooth", "vargrad", "--smooth-samples", "0"], "argument --smooth-samples: must be an integer >= 1"),
    (["--smooth", "vargrad", "--smooth-noise", "-1"], "argument --smooth-noise: must be a number >= 0"),
    (["--smooth", "blur"], "argument --smooth: invalid choice: 'blur'"),
])
def test_smoothing_flags_are_checked(files, tmp_path, capsys, extra, message):
    output = tmp_path / "out"
    status, _, err = run(explain(files, str(output), "--method", "ig", *extra), capsys)
    assert status == 2 and message in err, err
    assert not output.exists()
