"""``tf-ig2 explain --reference-pool``: references drawn from a labelled pool, as tf_ig2.references draws them."""

import json
import re
import warnings

import numpy as np
import pytest

import tf_ig2
from tf_ig2 import defaults, references

from conftest import run_cli, small_cnn

N, M, STEPS, CLASSES = 4, 20, 6, 4
ROUND_OFF = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool")
    model = small_cnn(classes=CLASSES, softmax=False, seed=6)
    paths = {"model": str(folder / "cnn.keras")}
    model.save(paths["model"])
    rng = np.random.default_rng(9)
    labels = np.arange(M) % CLASSES
    pixels = rng.integers(0, 256, (M, 8, 8, 1)).astype(np.uint8)
    arrays = {"inputs": rng.random((N, 8, 8, 1)).astype(np.float32),
              "pool": rng.random((M, 8, 8, 1)).astype(np.float32),
              "pixels": pixels,  # the pool as 8-bit values, read with --scale 1/255
              "labels": labels,
              "onehot": np.eye(CLASSES, dtype=np.float32)[labels],
              "short_labels": labels[:-1],
              "small_pool": rng.random((M, 6, 6, 1)).astype(np.float32)}
    for name, values in arrays.items():
        paths[name] = str(folder / f"{name}.npy")
        np.save(paths[name], values)
    return {"paths": paths, "arrays": arrays, "model": model}


run = run_cli


def explain(files, output, *extra, pool="pool", labels="labels", method="ig"):
    paths = files["paths"]
    return ["explain", paths["model"], "--method", method, "--inputs", paths["inputs"], "--reference-pool",
            paths[pool], "--reference-labels", paths[labels], "--steps", STEPS, "--output", output, "--quiet",
            *extra]


def predicted(files):
    return np.argmax(np.asarray(files["model"](files["arrays"]["inputs"])), axis=1)


def read(output):
    """(summary, counterfactuals): for --method ig the counterfactuals are the references themselves."""
    return json.loads((output / "summary.json").read_text()), np.load(output / "counterfactuals.npy")


def test_other_class_equals_the_picker_with_the_same_seed(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, out, err = run(explain(files, output, "--references-per-input", "3", "--reference-seed", "5"), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    targets = predicted(files)
    drawn = references.other_class(arrays["pool"], arrays["labels"], targets, 3, seed=5)
    summary, counterfactuals = read(output)
    np.testing.assert_array_equal(counterfactuals, drawn)
    rows = np.array([record["reference_rows"] for record in summary["inputs"]])
    np.testing.assert_array_equal(arrays["pool"][rows], drawn)
    for index, record in enumerate(summary["inputs"]):
        assert record["target"] == targets[index]
        assert not np.any(arrays["labels"][record["reference_rows"]] == targets[index])
    # The explanation is the API's for those references.
    api = tf_ig2.IntegratedGradients(files["model"], steps=STEPS).explain(arrays["inputs"], drawn, targets)
    np.testing.assert_allclose(np.load(output / "attributions.npy"), api.attributions, **ROUND_OFF)
    assert summary["settings"]["references"] is None
    assert {key: summary["settings"][key] for key in ("reference_pool", "reference_labels", "pick",
                                                       "references_per_input", "reference_seed")} == {
        "reference_pool": files["paths"]["pool"], "reference_labels": files["paths"]["labels"],
        "pick": "other-class", "references_per_input": 3, "reference_seed": 5}


def test_defaults_come_from_tf_ig2_defaults_and_target_is_the_explained_class(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(explain(files, output, "--target", "2", "--reference-labels", files["paths"]["onehot"]),
                         capsys)
    assert status == 0, err
    arrays = files["arrays"]
    drawn = references.other_class(arrays["pool"], arrays["labels"], np.full(N, 2), defaults.REFERENCES_PER_INPUT,
                                   seed=defaults.REFERENCES_SEED)
    summary, counterfactuals = read(output)
    assert counterfactuals.shape == (N, defaults.REFERENCES_PER_INPUT, 8, 8, 1)
    np.testing.assert_array_equal(counterfactuals, drawn)
    assert summary["settings"]["references_per_input"] == defaults.REFERENCES_PER_INPUT
    assert summary["settings"]["reference_seed"] == defaults.REFERENCES_SEED
    assert all(2 not in arrays["labels"][record["reference_rows"]] for record in summary["inputs"])


def test_relevant_class_equals_the_picker(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(explain(files, output, "--pick", "relevant-class", "--references-per-input", "2",
                                 "--reference-seed", "3"), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    drawn = references.relevant_class(files["model"], arrays["pool"], arrays["labels"], arrays["inputs"], 2, seed=3)
    summary, counterfactuals = read(output)
    np.testing.assert_array_equal(counterfactuals, drawn)
    ranking = np.argsort(-np.asarray(files["model"](arrays["inputs"])), axis=1, kind="stable")
    for index, record in enumerate(summary["inputs"]):
        # One item of the classes ranked 2nd and 3rd, in that order.
        np.testing.assert_array_equal(arrays["labels"][record["reference_rows"]], ranking[index, 1:3])


def test_several_targets_leave_out_every_explained_class(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(explain(files, output, "--targets", "1,3", "--references-per-input", "4",
                                 "--reference-seed", "2"), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    summary, counterfactuals = read(output)
    # As documented: one generator for all inputs, each drawing from the rows outside its classes.
    rng = np.random.default_rng(2)
    labels = arrays["labels"]
    kept = np.flatnonzero(labels != 3)
    expected = np.stack([references.other_class(arrays["pool"][kept], labels[kept], [1], 4, seed=rng)[0]
                         for _ in range(N)])
    np.testing.assert_array_equal(counterfactuals, expected)
    for record in summary["inputs"]:
        assert set(labels[record["reference_rows"]]) <= {0, 2}
        assert [entry["target"] for entry in record["targets"]] == [1, 3]


def test_several_targets_fall_back_to_the_first_class_with_a_warning(files, tmp_path, capsys):
    output = tmp_path / "out"
    # 10 items lie outside classes 1 and 3, fewer than 12; 15 outside class 1.
    status, _, err = run(explain(files, output, "--targets", "1,3", "--references-per-input", "12"), capsys)
    assert status == 0, err
    assert re.search(r"tf-ig2: warning: --pick other-class: the pool holds fewer than 12 items outside all the "
                     r"explained classes of input\(s\) 0, 1, 2, 3; their references leave out the class of their "
                     r"first target only", err), err
    summary, _ = read(output)
    for record in summary["inputs"]:
        assert 1 not in files["arrays"]["labels"][record["reference_rows"]]


def test_pool_is_read_like_references(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, _, err = run(explain(files, output, "--scale", "1/255", "--target", "0", pool="pixels"), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    scaled = (arrays["pixels"].astype(np.float32) * np.float32(1 / 255)).astype(np.float32)
    drawn = references.other_class(scaled, arrays["labels"], np.zeros(N, np.int64), defaults.REFERENCES_PER_INPUT)
    np.testing.assert_array_equal(read(output)[1], drawn)


def test_ig2_draws_from_the_pool_too(files, tmp_path, capsys):
    output = tmp_path / "out"
    status, out, err = run(explain(files, output, "--references-per-input", "2", method="ig2"), capsys)
    assert status == 0, err
    arrays = files["arrays"]
    drawn = references.other_class(arrays["pool"], arrays["labels"], predicted(files), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tf_ig2.CompletenessWarning)
        api = tf_ig2.IG2(files["model"], steps=STEPS).explain(arrays["inputs"], drawn)
    np.testing.assert_allclose(np.load(output / "attributions.npy"), api.attributions, **ROUND_OFF)
    assert "Representation:" in out


@pytest.mark.parametrize("extra, kwargs, message", [
    (["--references", "REFS"], {}, "argument --references: not allowed with argument --reference-pool"),
    ([], {"labels": "short_labels"},
     r"--reference-labels must hold one label per pool row: 20 of them. Received: 19"),
    (["--references-per-input", "16"], {},
     r"--references-per-input 16 references of other classes are needed per input, but input 0 is explained for "
     r"class \d and --reference-pool has only 15 item\(s\) of other classes \(of 20\)"),
    (["--pick", "relevant-class", "--references-per-input", "4"], {},
     r"--references-per-input 4 relevant classes are needed per input"),
    ([], {"pool": "small_pool"}, r"--reference-pool must hold \(M, 8, 8, 1\) items shaped like one input. "
                                 r"Received: shape \(20, 6, 6, 1\)"),
    (["--stream"], {}, r"argument --reference-pool: draws \(N, R\) references per input, which a streamed run "),
    (["--pick", "nearest"], {}, "argument --pick: invalid choice: 'nearest'"),
    (["--references-per-input", "0"], {}, "argument --references-per-input: must be an integer >= 1"),
    (["--reference-seed", "-1"], {}, "argument --reference-seed: must be a non-negative integer"),
], ids=["with --references", "labels length", "too few of other classes", "too few classes", "pool shape",
        "stream", "unknown pick", "no references", "negative seed"])
def test_pool_errors_are_clean_usage_errors(files, tmp_path, capsys, extra, kwargs, message):
    extra = [files["paths"]["pool"] if item == "REFS" else item for item in extra]
    output = tmp_path / "out"
    status, out, err = run(explain(files, output, *extra, **kwargs), capsys)
    assert status == 2 and out == ""
    assert err.startswith("tf-ig2: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not output.exists()


@pytest.mark.parametrize("flag, value", [("--reference-labels", "LABELS"), ("--pick", "other-class"),
                                         ("--references-per-input", "2"), ("--reference-seed", "1")])
def test_pool_flags_need_a_pool(files, tmp_path, capsys, flag, value):
    paths = files["paths"]
    value = paths["labels"] if value == "LABELS" else value
    status, _, err = run(["explain", paths["model"], "--inputs", paths["inputs"], "--references", paths["pool"],
                          flag, value, "--output", tmp_path / "out", "--quiet"], capsys)
    assert status == 2
    assert f"tf-ig2: error: argument {flag}: only applies with --reference-pool" in err


def test_pool_needs_its_labels(files, tmp_path, capsys):
    paths = files["paths"]
    status, _, err = run(["explain", paths["model"], "--inputs", paths["inputs"], "--reference-pool", paths["pool"],
                          "--output", tmp_path / "out", "--quiet"], capsys)
    assert status == 2 and "argument --reference-labels: required with --reference-pool" in err
    status, _, err = run(["explain", paths["model"], "--inputs", paths["inputs"], "--reference-pool", paths["pool"],
                          "--reference-labels", str(tmp_path / "missing.npy"), "--output", tmp_path / "out"], capsys)
    assert status == 2 and "`reference-labels` file not found" in err
