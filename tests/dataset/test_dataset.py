"""explain_dataset: streamed results equal one-shot explanations; resuming, settings, distribution."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tf_ig2
from tf_ig2.dataset import ArrayFiles, explain_dataset, load_results, open_inputs

from conftest import REPOSITORY, small_cnn

N, R, STEPS = 21, 2, 6
#: Streamed batches differ in composition from one-shot calls: float32 rounding only.
RTOL, ATOL = 1e-4, 1e-5
ROOT = REPOSITORY


@pytest.fixture(scope="module")
def setup():
    model = small_cnn()
    rng = np.random.default_rng(3)
    inputs = rng.uniform(0.0, 1.0, (N, 8, 8, 1)).astype(np.float32)
    references = rng.uniform(0.0, 1.0, (R, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 3, N).astype(np.int64)
    explainer = tf_ig2.IG2(model, steps=STEPS, value_range=(0.0, 1.0))
    expected = explainer.explain(inputs, references)
    return dict(model=model, inputs=inputs, references=references, labels=labels, explainer=explainer,
                expected=expected)


def assert_matches(results, explanation, count=N):
    np.testing.assert_allclose(results["attributions"], explanation.attributions[:count], rtol=RTOL, atol=ATOL)
    for name in ("target_scores", "counterfactual_scores", "delta"):
        np.testing.assert_allclose(results[name], getattr(explanation, name)[:count], rtol=RTOL, atol=ATOL)
    if explanation.targets is not None:
        np.testing.assert_array_equal(results["targets"], explanation.targets[:count])
    if explanation.representation_distance is not None:
        np.testing.assert_allclose(results["representation_distance"], explanation.representation_distance[:count],
                                   rtol=RTOL, atol=ATOL)


def file_stats(folder, shard):
    names = [name for name in os.listdir(folder) if name.endswith(f".{shard:05d}.npy")]
    assert names
    return {name: (os.stat(os.path.join(folder, name)).st_ino, os.stat(os.path.join(folder, name)).st_mtime_ns)
            for name in names}


def test_numpy_input_matches_one_shot_explain(setup, tmp_path):
    result = explain_dataset(setup["explainer"], setup["inputs"], setup["references"], tmp_path,
                             batch_size=5, shard_size=8, progress=False)
    assert (result.count, result.resumed, result.shards, result.complete) == (N, 0, 3, True)
    assert result.arrays == ("attributions", "target_scores", "counterfactual_scores", "delta", "targets",
                             "representation_distance")
    results = load_results(tmp_path)
    assert sorted(results) == sorted(result.arrays)
    assert isinstance(results["attributions"], np.memmap) and results["attributions"].dtype == np.float32
    assert results["attributions"].shape == (N, 8, 8, 1)
    assert_matches(results, setup["expected"])
    index = json.loads((tmp_path / "index.json").read_text())
    assert [shard["count"] for shard in index["shards"]] == [8, 8, 5] and index["complete"]
    in_memory = load_results(tmp_path, mmap_mode=None)
    assert not isinstance(in_memory["attributions"], np.memmap)
    np.testing.assert_array_equal(in_memory["attributions"], results["attributions"])


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("with_labels", [False, True])
def test_tf_data_batched_or_not_with_or_without_labels(setup, tmp_path, batched, with_labels):
    inputs, labels = setup["inputs"], setup["labels"]
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels) if with_labels else inputs)
    if batched:
        dataset = dataset.batch(4)
    targets = "labels" if with_labels else None
    result = explain_dataset(setup["explainer"], dataset, setup["references"], tmp_path, targets=targets,
                             batch_size=6, shard_size=10, progress=False)
    results = result.load()
    assert result.count == N and result.shards == 3
    assert ("labels" in results) == with_labels
    if with_labels:
        np.testing.assert_array_equal(results["labels"], labels)
        expected = setup["explainer"].explain(inputs, setup["references"], labels)
    else:
        expected = setup["expected"]
    assert_matches(results, expected)


def test_one_hot_labels_and_iterable_of_pairs(setup, tmp_path):
    inputs, labels = setup["inputs"], setup["labels"]
    one_hot = np.eye(3, dtype=np.float32)[labels]
    items = [(inputs[low:low + 3], one_hot[low:low + 3]) for low in range(0, N, 3)]  # a list: re-iterable
    result = explain_dataset(setup["explainer"], items, setup["references"], tmp_path, targets="labels",
                             batch_size=4, shard_size=16, progress=False)
    results = result.load()
    np.testing.assert_array_equal(results["targets"], labels)
    np.testing.assert_array_equal(results["labels"], one_hot)
    assert_matches(results, setup["explainer"].explain(inputs, setup["references"], labels))


def test_resume_after_a_stop_keeps_finished_shards(setup, tmp_path, monkeypatch):
    inputs, explainer = setup["inputs"], setup["explainer"]

    def stops_after(count):
        for index in range(N):
            if index == count:
                raise RuntimeError("stopped")
            yield inputs[index]

    with pytest.raises(RuntimeError, match="stopped"):
        explain_dataset(explainer, stops_after(13), setup["references"], tmp_path, batch_size=3, shard_size=4,
                        progress=False)
    index = json.loads((tmp_path / "index.json").read_text())
    assert [shard["count"] for shard in index["shards"]] == [4, 4, 4] and not index["complete"]
    before = {shard: file_stats(tmp_path, shard) for shard in range(3)}
    partial = load_results(tmp_path, mmap_mode=None)
    assert_matches(partial, setup["expected"], count=12)

    explained = []
    original = explainer.explain
    monkeypatch.setattr(explainer, "explain",
                        lambda batch, *args: explained.append(len(batch)) or original(batch, *args))
    result = explain_dataset(explainer, (row for row in inputs), setup["references"], tmp_path, batch_size=3,
                             progress=False)
    assert (result.resumed, result.explained, result.shards, result.complete) == (12, N - 12, 6, True)
    assert sum(explained) == N - 12
    assert {shard: file_stats(tmp_path, shard) for shard in range(3)} == before
    assert_matches(load_results(tmp_path), setup["expected"])

    # A finished run is not redone.
    explained.clear()
    again = explain_dataset(explainer, inputs, setup["references"], tmp_path, progress=False)
    assert (again.resumed, again.explained, again.complete) == (N, 0, True) and not explained


def test_truncated_index_redoes_only_unlisted_shards(setup, tmp_path):
    explainer, references = setup["explainer"], setup["references"]
    explain_dataset(explainer, setup["inputs"], references, tmp_path, batch_size=8, shard_size=8, progress=False)
    index = json.loads((tmp_path / "index.json").read_text())
    index["shards"], index["count"], index["complete"] = index["shards"][:1], 8, False
    (tmp_path / "index.json").write_text(json.dumps(index))
    kept, redone = file_stats(tmp_path, 0), file_stats(tmp_path, 1)
    # As a run stopped while writing shard 1 leaves it: its files listed as being written, one half-written.
    manifest = json.loads((tmp_path / ".tf_ig2.files.json").read_text())
    manifest["files"].update({name: {"pending": True} for name in manifest["files"] if ".00001." in name})
    (tmp_path / ".tf_ig2.files.json").write_text(json.dumps(manifest))
    (tmp_path / "attributions.00001.npy").write_bytes(b"half-written")
    result = explain_dataset(explainer, tf.data.Dataset.from_tensor_slices(setup["inputs"]), references, tmp_path,
                             batch_size=8, progress=False)
    assert (result.resumed, result.shards) == (8, 3)
    assert file_stats(tmp_path, 0) == kept
    assert file_stats(tmp_path, 1) != redone
    assert_matches(load_results(tmp_path), setup["expected"])


def test_other_settings_need_overwrite(setup, tmp_path):
    model, inputs, references = setup["model"], setup["inputs"], setup["references"]
    explain_dataset(setup["explainer"], inputs, references, tmp_path, shard_size=8, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"other settings \(options\.steps: 6 -> 7"):
        explain_dataset(tf_ig2.IG2(model, steps=7, value_range=(0.0, 1.0)), inputs, references, tmp_path,
                        progress=False)
    with pytest.raises(ValueError, match=r"references\.sha1"):
        explain_dataset(setup["explainer"], inputs, references[::-1], tmp_path, progress=False)
    with pytest.raises(ValueError, match="shard_size: 8 -> 4"):
        explain_dataset(setup["explainer"], inputs, references, tmp_path, shard_size=4, progress=False)
    with pytest.raises(ValueError, match="same inputs in the same order"):
        explain_dataset(setup["explainer"], inputs[::-1], references, tmp_path, progress=False)
    first = load_results(tmp_path, mmap_mode=None)["attributions"]
    result = explain_dataset(setup["explainer"], inputs, references[::-1], tmp_path, overwrite=True,
                             shard_size=16, progress=False)
    assert (result.resumed, result.shards) == (0, 2)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "attributions.00002.npy").exists()
    second = load_results(tmp_path, mmap_mode=None)["attributions"]
    np.testing.assert_allclose(second, first, rtol=RTOL, atol=ATOL)  # references are averaged: order-free


def test_per_input_references_memmap_and_callable(setup, tmp_path):
    inputs, explainer = setup["inputs"], setup["explainer"]
    rng = np.random.default_rng(5)
    per_input = rng.uniform(0.0, 1.0, (N, 3, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "references.npy", per_input)
    stored = np.load(tmp_path / "references.npy", mmap_mode="r")
    expected = explainer.explain(inputs, per_input)
    by_array = explain_dataset(explainer, inputs, stored, tmp_path / "array", batch_size=4, progress=False)
    assert_matches(by_array.load(), expected)

    lookup = {row.tobytes(): index for index, row in enumerate(inputs)}
    seen_targets = []

    def references_for(batch, targets):
        seen_targets.append(targets)
        return per_input[[lookup[row.tobytes()] for row in batch]]

    by_callable = explain_dataset(explainer, inputs, references_for, tmp_path / "callable", batch_size=4,
                                  progress=False)
    assert_matches(by_callable.load(), expected)
    np.testing.assert_array_equal(np.concatenate(seen_targets), expected.targets)


def test_integrated_gradients_scalar_baseline_and_counterfactuals(setup, tmp_path):
    explainer = tf_ig2.IntegratedGradients(setup["model"], steps=8)
    expected = explainer.explain(setup["inputs"], 0.0, targets=1)
    result = explain_dataset(explainer, setup["inputs"], 0.0, tmp_path, targets=1, batch_size=8,
                             save_counterfactuals=True, progress=False)
    results = result.load()
    assert "representation_distance" not in results and result.method == "ig"
    np.testing.assert_array_equal(results["targets"], np.ones(N))
    np.testing.assert_array_equal(results["counterfactuals"], np.zeros((N, 1, 8, 8, 1), np.float32))
    assert_matches(results, expected)


def test_callable_targets_store_no_targets(setup, tmp_path):
    def second_logit(outputs):
        return outputs[:, 1]

    result = explain_dataset(setup["explainer"], setup["inputs"], setup["references"], tmp_path,
                             targets=second_logit, progress=False)
    results = result.load()
    assert "targets" not in results
    assert_matches(results, setup["explainer"].explain(setup["inputs"], setup["references"], second_logit))


def test_token_ids_through_an_input_layer(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 4, name="embedding"),
                              keras.layers.Flatten(), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    explainer = tf_ig2.IG2(model, steps=5, input_layer="embedding")
    tokens = np.random.default_rng(0).integers(1, 20, (11, 6)).astype(np.int32)
    tokens[:, -2:] = 0  # padding
    references = np.zeros((1, 6), np.int32)
    result = explain_dataset(explainer, tf.data.Dataset.from_tensor_slices(tokens), references, tmp_path,
                             batch_size=4, shard_size=4, progress=False)
    results = result.load()
    assert results["attributions"].shape == (11, 6)
    np.testing.assert_array_equal(results["attributions"][:, -2:], 0.0)
    assert_matches(results, explainer.explain(tokens, references))


def test_open_inputs_file_and_folder(setup, tmp_path):
    inputs = setup["inputs"]
    np.save(tmp_path / "all.npy", inputs)
    folder = tmp_path / "parts"
    folder.mkdir()
    np.save(folder / "a.npy", inputs[:5])     # a batch
    np.save(folder / "b.npy", inputs[5])      # one input
    np.save(folder / "c.npy", inputs[6:])
    memmap = open_inputs(tmp_path / "all.npy")
    assert isinstance(memmap, np.memmap) and memmap.shape == inputs.shape
    files = open_inputs(folder)
    assert isinstance(files, ArrayFiles) and len(files) == 3
    for name, source in (("file", memmap), ("folder", files)):
        result = explain_dataset(setup["explainer"], source, setup["references"], tmp_path / name, batch_size=7,
                                 progress=False)
        assert_matches(result.load(), setup["expected"])
    with pytest.raises(ValueError, match="folder of .npy files"):
        open_inputs(tmp_path / "missing.txt")
    loaded = []

    def load(path):
        loaded.append(path)
        return np.load(path).astype(np.float32)

    paths = [str(folder / name) for name in ("a.npy", "b.npy", "c.npy")]
    files = ArrayFiles(paths, load=load, num_inputs=N)
    assert files.num_inputs == N
    result = explain_dataset(setup["explainer"], files, setup["references"], tmp_path / "loaded", progress=False)
    assert_matches(result.load(), setup["expected"])
    assert loaded == paths
    with pytest.raises(TypeError, match="`load` must be a callable"):
        ArrayFiles(paths, load="numpy")


def test_merged_cache_is_built_once(setup, tmp_path):
    explain_dataset(setup["explainer"], setup["inputs"], setup["references"], tmp_path, shard_size=8, progress=False)
    first = load_results(tmp_path)
    merged = tmp_path / "attributions.merged.npy"
    stamp = merged.stat().st_mtime_ns
    second = load_results(tmp_path)
    assert merged.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first["attributions"], second["attributions"])


def test_progress_log_lines(setup, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="tf_ig2.dataset"):
        explain_dataset(setup["explainer"], setup["inputs"], setup["references"], tmp_path, batch_size=8,
                        shard_size=8, progress="log")
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"explained 8/{N} inputs, 1 shard(s) written" in message and "inputs/s" in message
               for message in messages)
    assert any(message.startswith(f"explained {N} inputs in") for message in messages)


def test_progress_bar_on_stderr(setup, tmp_path, capsys):
    explain_dataset(setup["explainer"], setup["inputs"], setup["references"], tmp_path, batch_size=8,
                    progress="bar")
    captured = capsys.readouterr()
    assert f"{N}/{N}" in captured.err and "inputs/s" in captured.err
    assert captured.out == ""


def test_silent_and_automatic_progress(setup, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="tf_ig2.dataset"):
        explain_dataset(setup["explainer"], setup["inputs"][:4], setup["references"], tmp_path / "a", progress=False)
        assert not caplog.records
        explain_dataset(setup["explainer"], setup["inputs"][:4], setup["references"], tmp_path / "b")
        assert caplog.records  # stderr is not a terminal under pytest: log lines


def test_bad_arguments(setup, tmp_path):
    explainer, inputs, references = setup["explainer"], setup["inputs"], setup["references"]
    cases = [
        (TypeError, "`explainer` must be a tf_ig2 explainer", dict(explainer=setup["model"])),
        (ValueError, r"`batch_size` must be an integer >= 1. Received: batch_size=0", dict(batch_size=0)),
        (TypeError, "`shard_size` must be an integer", dict(shard_size=2.5)),
        (ValueError, "`progress` must be True, False, 'bar' or 'log'", dict(progress="loud")),
        (TypeError, "`overwrite` must be a bool", dict(overwrite="yes")),
        (TypeError, "`strategy` must be a tf.distribute.Strategy", dict(strategy="mirrored")),
        (TypeError, "`dataset` must be a tf.data.Dataset", dict(dataset={"x": inputs})),
        (TypeError, "must hold floating-point values", dict(dataset=(inputs * 255).astype(np.uint8))),
        (ValueError, r"rank 3 \(one input\) or 4 \(a batch\)",
         dict(dataset=tf.data.Dataset.from_tensor_slices(inputs[:, :, :, 0]))),
        (ValueError, "does not fit the model", dict(dataset=np.zeros((2, 7, 7, 1), np.float32))),
        (ValueError, "`references` must match the shape of one input", dict(references=references[:, :4])),
        (ValueError, r"per input must have shape \(N, R, 8, 8, 1\)", dict(references=np.zeros((N, 0, 8, 8, 1)))),
        (ValueError, "needs a dataset yielding \\(x, y\\)", dict(targets="labels")),
        (ValueError, "must be 'labels'", dict(targets="predicted")),
        (TypeError, r"\(N,\) ints, \(N, T\) ints", dict(targets=np.zeros((N, 2, 2), np.int64))),
        (ValueError, "at least one input", dict(dataset=tf.data.Dataset.from_tensor_slices(inputs[:0]))),
        (ValueError, "holds 3 class indices", dict(targets=np.zeros(3, np.int64))),
        (ValueError, "must lie inside `value_range`", dict(dataset=inputs + 2.0)),
    ]
    for number, (error, message, changes) in enumerate(cases):
        arguments = dict(explainer=explainer, dataset=inputs, references=references,
                         output_dir=tmp_path / f"case{number}", progress=False)
        arguments.update(changes)
        with pytest.raises(error, match=message):
            explain_dataset(**arguments)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="`output_dir` must be a folder"):
        explain_dataset(explainer, inputs, references, tmp_path / "file", progress=False)
    with pytest.raises(ValueError, match="holds no index.json"):
        load_results(tmp_path)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "index.json").write_text("{}")
    with pytest.raises(ValueError, match="did not write"):
        explain_dataset(explainer, inputs, references, tmp_path / "foreign", progress=False)
    generator = (row for row in inputs[:3])
    explain_dataset(explainer, generator, references, tmp_path / "once", progress=False)


def test_missing_shard_file_is_reported_with_the_folder(setup, tmp_path):
    folder = tmp_path / "results"
    explain_dataset(setup["explainer"], setup["inputs"][:4], setup["references"], folder, shard_size=2,
                    progress=False)
    os.remove(folder / "delta.00001.npy")
    with pytest.raises(ValueError, match="missing finished shard files") as raised:
        load_results(folder)
    message = str(raised.value)
    assert f"Received: output_dir={str(folder)!r}" in message, message
    assert "{output_dir" not in message


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    sys.path.insert(0, os.path.join({root!r}, "tests"))
    from conftest import small_cnn
    import tf_ig2
    from tf_ig2.dataset import explain_dataset, load_results

    rng = np.random.default_rng(3)
    inputs = rng.uniform(0.0, 1.0, (13, 8, 8, 1)).astype(np.float32)
    references = rng.uniform(0.0, 1.0, (3, 8, 8, 1)).astype(np.float32)
    explainer = tf_ig2.IG2(small_cnn(), steps=6, value_range=(0.0, 1.0), batch_size=7)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    folder = sys.argv[1]
    single = explain_dataset(explainer, inputs, references, os.path.join(folder, "single"), batch_size=4,
                             shard_size=8, progress=False)
    mirrored = explain_dataset(explainer, tf.data.Dataset.from_tensor_slices(inputs), references,
                               os.path.join(folder, "mirrored"), batch_size=4, shard_size=8, progress=False,
                               strategy=strategy)
    again = explain_dataset(explainer, inputs, references, os.path.join(folder, "again"), batch_size=4,
                            shard_size=8, progress=False, strategy=strategy)
    from tf_ig2.dataset.distribute import _DISTRIBUTED
    steps = [wrapper.step.experimental_get_tracing_count() for wrapper in _DISTRIBUTED[explainer].values()]
    one, two = single.load(mmap_mode=None), mirrored.load(mmap_mode=None)
    three = again.load(mmap_mode=None)
    print("RESULT " + json.dumps({{
        "replicas": strategy.num_replicas_in_sync,
        "counts": [single.count, mirrored.count],
        "names": [sorted(one), sorted(two)],
        "difference": {{name: float(np.max(np.abs(one[name].astype(np.float64) - two[name]))) for name in one}},
        "scale": float(np.max(np.abs(one["attributions"]))),
        "patched": "_run_pairs" in vars(explainer),
        "steps_traced": steps,
        "again": max(float(np.max(np.abs(three[name].astype(np.float64) - two[name]))) for name in two),
    }}))
""")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_equals_one_device(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT.format(root=ROOT))
    environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                       TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                               env=environment, timeout=300)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    report = json.loads(lines[-1][len("RESULT "):])
    assert report["replicas"] == 2 and report["counts"] == [13, 13] and not report["patched"]
    assert report["names"][0] == report["names"][1]
    assert report["steps_traced"] == [1] and report["again"] == 0.0  # a second call does not trace again
    assert report["difference"]["targets"] == 0.0
    assert report["scale"] > 1e-3
    for name, difference in report["difference"].items():
        assert difference <= ATOL, (name, difference)


# -- the folder: only its own files removed, one run at a time ----------------------------------------
def test_foreign_files_survive_runs_resumes_overwrites_and_failures(setup, tmp_path, monkeypatch):
    from conftest import FOREIGN_NAMES, plant_foreign, tree

    explainer, inputs, references = setup["explainer"], setup["inputs"], setup["references"]
    plant_foreign(tmp_path)
    before = tree(tmp_path)
    def stopping():
        for low in range(0, 12, 4):
            yield inputs[low:low + 4]
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        explain_dataset(explainer, stopping(), references, tmp_path, shard_size=4, batch_size=4, progress=False)
    assert tree(tmp_path, FOREIGN_NAMES) == before
    result = explain_dataset(explainer, inputs, references, tmp_path, shard_size=4, progress=False)  # resumes
    assert result.resumed == 12 and tree(tmp_path, FOREIGN_NAMES) == before
    assert_matches(load_results(tmp_path), setup["expected"])
    result = explain_dataset(explainer, inputs, references[::-1], tmp_path, shard_size=4, overwrite=True,
                             progress=False)
    assert result.resumed == 0 and tree(tmp_path, FOREIGN_NAMES) == before
    from tf_ig2.dataset import plan

    def fail(*args, **kwargs):
        raise ValueError("disk trouble")

    monkeypatch.setattr(plan.Plan, "explain", fail)
    with pytest.raises(ValueError, match="disk trouble"):
        explain_dataset(explainer, inputs, references, tmp_path, shard_size=4, overwrite=True, progress=False)
    assert tree(tmp_path, FOREIGN_NAMES) == before
    assert not (tmp_path / ".tf_ig2.lock").exists()


def test_the_users_lookalike_files_are_kept_and_never_written_over(setup, tmp_path):
    explainer, inputs, references = setup["explainer"], setup["inputs"], setup["references"]
    np.save(tmp_path / "images.00000.npy", np.arange(10))
    explain_dataset(explainer, inputs[:2], references, tmp_path, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "images.00000.npy"), np.arange(10))
    mine = tmp_path / "mine"
    mine.mkdir()
    np.save(mine / "attributions.00000.npy", np.arange(3))
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"did not write .*'attributions.00000.npy'.*move them away"):
            explain_dataset(explainer, inputs[:2], references, mine, progress=False, overwrite=overwrite)
    assert sorted(os.listdir(mine)) == ["attributions.00000.npy"]
    np.testing.assert_array_equal(np.load(mine / "attributions.00000.npy"), np.arange(3))
    # A results file the user replaced is no longer the run's: it is refused, not removed.
    np.save(tmp_path / "delta.00000.npy", np.arange(4))
    with pytest.raises(ValueError, match="'delta.00000.npy'"):
        explain_dataset(explainer, inputs[:2], references, tmp_path, progress=False, overwrite=True)
    np.testing.assert_array_equal(np.load(tmp_path / "delta.00000.npy"), np.arange(4))


def test_a_folder_written_before_manifests_is_continued(setup, tmp_path):
    explainer, inputs, references = setup["explainer"], setup["inputs"], setup["references"]
    def stopping():
        yield inputs[:8]
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        explain_dataset(explainer, stopping(), references, tmp_path, shard_size=4, batch_size=8, progress=False)
    os.remove(tmp_path / ".tf_ig2.files.json")
    result = explain_dataset(explainer, inputs, references, tmp_path, shard_size=4, progress=False)
    assert result.resumed == 8
    assert_matches(load_results(tmp_path), setup["expected"])


@pytest.mark.parametrize("stage", ["shard", "index"])
def test_a_stop_while_writing_leaves_a_folder_that_resumes(setup, tmp_path, monkeypatch, stage):
    # A kill after a temporary file was written and before its rename leaves `<name>.tmp` behind.
    from tf_ig2.dataset import results

    inputs, explainer = setup["inputs"], setup["explainer"]
    calls = []
    writer = results._write_array if stage == "shard" else results.folders.write_json

    def killed(path, value, *args, **kwargs):
        if stage == "index" and not os.fspath(path).endswith("index.json"):
            return writer(path, value, *args, **kwargs)
        calls.append(path)
        if len(calls) == 3:  # a later file of the run, once the first shard is whole
            with open(os.fspath(path) + ".tmp", "wb") as handle:
                handle.write(b"half written")
            raise KeyboardInterrupt("killed")
        return writer(path, value, *args, **kwargs)

    target = (results, "_write_array") if stage == "shard" else (results.folders, "write_json")
    monkeypatch.setattr(*target, killed)
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(explainer, inputs, setup["references"], tmp_path, batch_size=3, shard_size=4, progress=False)
    monkeypatch.undo()
    assert any(name.endswith(".tmp") for name in os.listdir(tmp_path)), (calls, os.listdir(tmp_path))
    result = explain_dataset(explainer, inputs, setup["references"], tmp_path, batch_size=3, shard_size=4,
                             progress=False)
    assert result.complete
    assert_matches(load_results(tmp_path), setup["expected"])


@pytest.mark.parametrize("targets", [np.tile([[2, 0]], (N, 1)), "top-2"])
def test_several_targets_per_input_are_stored_as_explain_returns_them(setup, tmp_path, targets):
    explainer = setup["explainer"]
    expected = explainer.explain(setup["inputs"], setup["references"], targets)
    explain_dataset(explainer, setup["inputs"], setup["references"], tmp_path, targets=targets, batch_size=4,
                    shard_size=6, progress=False)
    stored = load_results(tmp_path, mmap_mode=None)
    assert stored["attributions"].shape == (N, 2, 8, 8, 1) and stored["targets"].shape == (N, 2)
    np.testing.assert_array_equal(stored["targets"], expected.targets)
    np.testing.assert_allclose(stored["attributions"], expected.attributions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stored["delta"], expected.delta, rtol=1e-4, atol=1e-6)


def test_target_strings_other_than_labels_or_top_k_are_refused(setup, tmp_path):
    with pytest.raises(ValueError, match=r"'labels' or 'top-K'.*Received: targets='top-0'"):
        explain_dataset(setup["explainer"], setup["inputs"], setup["references"], tmp_path, targets="top-0",
                        progress=False)


def test_a_folder_recorded_before_an_option_existed_resumes(setup, tmp_path):
    references = setup["references"]
    # Folders written before step_schedule existed hold runs of the published (constant) path.
    explainer = tf_ig2.IG2(setup["explainer"].model, steps=STEPS, value_range=(0.0, 1.0), step_schedule="constant")
    explain_dataset(explainer, setup["inputs"], references, tmp_path, batch_size=8, shard_size=8, progress=False)
    index = json.loads((tmp_path / "index.json").read_text())
    older = tf_ig2.methods.get_method("ig2").settings.older_record_values()
    assert older == {"step_schedule": "constant", "shrink_factor": tf_ig2.defaults.IG2_SHRINK_FACTOR}
    for name in older:  # as a folder written before the option existed records its settings
        del index["settings"]["options"][name]
    index["shards"], index["count"], index["complete"] = index["shards"][:1], 8, False
    (tmp_path / "index.json").write_text(json.dumps(index))
    result = explain_dataset(explainer, setup["inputs"], references, tmp_path, progress=False)
    assert (result.resumed, result.complete) == (8, True)

    shrinking = tf_ig2.IG2(explainer.model, steps=STEPS, value_range=(0.0, 1.0), step_schedule="shrink")
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="step_schedule: 'constant' -> 'shrink'"):
        explain_dataset(shrinking, setup["inputs"], references, tmp_path, progress=False)
