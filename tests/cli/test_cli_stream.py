"""``tf-ig2 explain --stream``: results equal the in-memory command, stopping and continuing, errors."""

import json
import os
import re

import cv2
import numpy as np
import pytest

from tf_ig2 import defaults
from tf_ig2.cli import files as cli_files
from tf_ig2.cli import stream as cli_stream
from tf_ig2.dataset import load_results
from tf_ig2.methods.ig2 import IG2

from conftest import listing, run_cli, small_cnn, visible

N, R, STEPS, SHARD = 40, 2, 8, 8
#: Streamed batches hold other inputs than the one-shot call: float32 rounding only.
RTOL, ATOL = 1e-4, 1e-5


def without_completeness_notice(err):
    """stderr without the one-line completeness notice that small, few-step test runs may print."""
    return "".join(line for line in err.splitlines(keepends=True) if "do not add up" not in line)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A seeded CNN as .keras and as a SavedModel, arrays, and folders of PNG inputs and references."""
    folder = tmp_path_factory.mktemp("stream")
    paths = {"cnn.keras": str(folder / "cnn.keras"), "cnn_saved_model": str(folder / "cnn_saved_model")}
    small_cnn(seed=2).save(paths["cnn.keras"])
    small_cnn(softmax=False, seed=2).export(paths["cnn_saved_model"], verbose=False)
    rng = np.random.default_rng(7)
    arrays = {
        "inputs.npy": rng.random((N, 8, 8, 1)).astype(np.float32),
        "references.npy": rng.random((R, 8, 8, 1)).astype(np.float32),
        "dark_references.npy": (0.5 * rng.random((R, 8, 8, 1))).astype(np.float32),
        "inputs_float64.npy": rng.random((N, 8, 8, 1)),
        "per_input_references.npy": rng.random((N, R, 8, 8, 1)).astype(np.float32),
        "short_references.npy": rng.random((N - 1, R, 8, 8, 1)).astype(np.float32),
        "wrong.npy": rng.random((N, 9, 9, 1)).astype(np.float32),
    }
    for name, values in arrays.items():
        paths[name] = str(folder / name)
        np.save(paths[name], values)
    paths["both.npz"] = str(folder / "both.npz")
    np.savez(paths["both.npz"], inputs=arrays["inputs.npy"], references=arrays["references.npy"])
    for name, count in (("images", N), ("reference_images", R)):
        paths[name] = str(folder / name)
        os.mkdir(paths[name])
        for index in range(count):  # 10x12 colour images: decoded to grey and resized to the model's 8x8
            image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
            assert cv2.imwrite(os.path.join(paths[name], f"image_{index:02d}.png"), image)
    return paths


run = run_cli


def array_arguments(files, output, model="cnn.keras", *extra):
    return ["explain", files[model], "--inputs", files["inputs.npy"], "--references", files["references.npy"],
            "--steps", STEPS, "--output", output, *extra]


def image_arguments(files, output, *extra):
    return ["explain", files["cnn.keras"], "--inputs", files["images"], "--references", files["reference_images"],
            "--scale", "1/255", "--value-range", "0", "1", "--steps", STEPS, "--output", output, *extra]


def shard_stats(folder):
    """(inode, modification time) of every finished shard file."""
    shards = os.path.join(folder, cli_stream.STREAM_FOLDER)
    return {name: (os.stat(os.path.join(shards, name)).st_ino, os.stat(os.path.join(shards, name)).st_mtime_ns)
            for name in os.listdir(shards) if name.endswith(".npy")}


def assert_same_results(streamed, in_memory, names=None):
    """The streamed output folder holds the in-memory command's attributions and per-input records."""
    attributions = np.load(os.path.join(streamed, "attributions.npy"), mmap_mode="r")
    expected = np.load(os.path.join(in_memory, "attributions.npy"))
    assert attributions.dtype == np.float32 and attributions.shape == expected.shape
    np.testing.assert_allclose(attributions, expected, rtol=RTOL, atol=ATOL)
    summary = json.loads(open(os.path.join(streamed, "summary.json")).read())
    reference = json.loads(open(os.path.join(in_memory, "summary.json")).read())
    assert summary["representation"] == reference["representation"]
    assert summary["inputs_shape"] == list(expected.shape) and summary["stream"] is True
    assert len(summary["inputs"]) == len(expected)
    for record, wanted in zip(summary["inputs"], reference["inputs"]):
        assert record["name"] == wanted["name"] and record["target"] == wanted["target"]
        for key in ("score", "gradcf_score", "completeness_delta", "relative_delta"):
            assert record[key] == pytest.approx(wanted[key], rel=RTOL, abs=ATOL)
        np.testing.assert_allclose([[item["start"], item["end"]] for item in record["representation_distance"]],
                                   [[item["start"], item["end"]] for item in wanted["representation_distance"]],
                                   rtol=RTOL, atol=ATOL)
    deltas = np.abs([record["completeness_delta"] for record in reference["inputs"]])
    assert summary["completeness_delta"]["mean_abs"] == pytest.approx(deltas.mean(), rel=RTOL, abs=ATOL)
    assert summary["completeness_delta"]["max_abs"] == pytest.approx(deltas.max(), rel=RTOL, abs=ATOL)
    if names is not None:
        assert [record["name"] for record in summary["inputs"]] == names
    return summary


def test_open_stream_reads_exactly_what_read_inputs_reads(files):
    cases = [(files["inputs.npy"], {}), (files["inputs.npy"], {"scale": 0.5}), (files["inputs_float64.npy"], {}),
             (files["images"], {"image_size": (8, 8), "channels": 1, "scale": 1 / 255}),
             (files["images"], {"channels": 3})]
    for path, options in cases:
        opened = cli_stream.open_stream(path, "inputs", **options)
        expected, names = cli_files.read_inputs(path, "inputs", **options)
        values = opened.values if isinstance(opened.values, np.ndarray) else np.concatenate(list(opened.values))
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values, expected)
        assert (opened.count, opened.sample_shape, opened.names) == (len(expected), expected.shape[1:], names)
    assert isinstance(cli_stream.open_stream(files["inputs.npy"]).values, np.memmap)
    references = cli_stream.read_stream_references(files["per_input_references.npy"])
    assert isinstance(references, np.memmap) and references.shape == (N, R, 8, 8, 1)
    scaled = cli_stream.read_stream_references(files["per_input_references.npy"], scale=2.0)
    assert not isinstance(scaled, np.memmap)
    np.testing.assert_array_equal(scaled, cli_files.read_inputs(files["per_input_references.npy"], "references",
                                                         scale=2.0)[0])


def test_streamed_arrays_clip_round_off_outside_the_value_range(files, tmp_path, capsys):
    eps = float(np.finfo(np.float32).eps)
    inputs = np.load(files["inputs.npy"])
    inputs[0, 0, 0, 0], inputs[N - 1, 2, 3, 0] = 1 + 10 * eps, -10 * eps
    references = np.load(files["per_input_references.npy"])
    references[N - 1, 1, 0, 0, 0] = 1 + 10 * eps
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "references.npy", references)
    stored = (tmp_path / "references.npy").read_bytes()
    # Inputs: converted a slice at a time; in-range memory maps stay as they are.
    opened = cli_stream.open_stream(tmp_path / "inputs.npy", "inputs", value_range=(0.0, 1.0))
    values = np.concatenate(list(opened.values))
    assert values[0, 0, 0, 0] == 1.0 and values[N - 1, 2, 3, 0] == 0.0
    np.testing.assert_array_equal(values, np.clip(inputs, 0.0, 1.0))
    # Per-input references stay memory-mapped: copy-on-write, the file is not changed.
    clipped = cli_stream.read_stream_references(tmp_path / "references.npy", value_range=(0.0, 1.0))
    assert isinstance(clipped, np.memmap) and clipped.mode == "c"
    np.testing.assert_array_equal(clipped, np.clip(references, 0.0, 1.0))
    assert (tmp_path / "references.npy").read_bytes() == stored
    untouched = cli_stream.read_stream_references(files["per_input_references.npy"], value_range=(0.0, 1.0))
    assert isinstance(untouched, np.memmap) and untouched.mode == "r"
    # The command explains them as the in-memory command does.
    arguments = ["explain", files["cnn.keras"], "--inputs", tmp_path / "inputs.npy", "--references",
                 tmp_path / "references.npy", "--value-range", "0", "1", "--steps", STEPS, "--quiet"]
    status, _, err = run([*arguments, "--output", tmp_path / "in_memory"], capsys)
    assert status == 0, err
    status, _, err = run([*arguments, "--output", tmp_path / "streamed", "--stream", "--shard-size", SHARD], capsys)
    assert status == 0, err
    assert_same_results(tmp_path / "streamed", tmp_path / "in_memory")
    assert (tmp_path / "references.npy").read_bytes() == stored


@pytest.mark.parametrize("model, extra", [
    ("cnn.keras", ()),
    ("cnn_saved_model", ("--batch-size", "6")),
    # float64 inputs are converted a slice at a time; float32 references per input stay memory-mapped.
    ("cnn.keras", ("--inputs", "inputs_float64.npy", "--references", "per_input_references.npy")),
])
def test_npy_stream_matches_the_in_memory_command(files, tmp_path, capsys, model, extra):
    extra = [files.get(argument, argument) for argument in extra]
    in_memory, streamed = tmp_path / "in_memory", tmp_path / "streamed"
    status, _, err = run(array_arguments(files, in_memory, model, *extra), capsys)
    assert status == 0, err
    status, out, err = run(array_arguments(files, streamed, model, *extra, "--stream", "--shard-size", SHARD),
                           capsys)
    assert status == 0, err
    assert f"Explained {N} input(s)" in out
    assert f"tf-ig2: explained {N}/{N} inputs" in err  # the dataset module's progress, on stderr
    summary = assert_same_results(streamed, in_memory)
    # No overlays and no counterfactuals in stream mode, but panels and the report; the shards stay.
    panels = [f"panel_{index:03d}.png" for index in range(N)]
    assert visible(streamed) == sorted(["attributions.npy", "index.html", "shards", "summary.json", *panels])
    assert summary["files"]["panels"] == panels and summary["files"]["report"] == "index.html"
    assert [record["panel"] for record in summary["inputs"]] == panels
    assert summary["counts"] == {"inputs": N, "shards": N // SHARD, "shard_size": SHARD, "explained_earlier": 0,
                                 "explained_now": N}
    assert summary["settings"]["stream"] is True and summary["settings"]["shard_size"] == SHARD
    np.testing.assert_array_equal(load_results(streamed / "shards")["attributions"],
                                  np.load(streamed / "attributions.npy"))
    if model == "cnn_saved_model":
        assert summary["representation"].startswith("model output: SavedModel signature 'serving_default'")


def test_image_folder_stops_and_continues(files, tmp_path, capsys, monkeypatch):
    in_memory, streamed = tmp_path / "in_memory", tmp_path / "streamed"
    # The published path: the one runs recorded before step_schedule existed had (checked below).
    status, _, err = run(image_arguments(files, in_memory, "--step-schedule", "constant"), capsys)
    assert status == 0, err
    # Ctrl-C while reading the 36th image: the first batch of 32 inputs (4 shards) is kept.
    read_image, calls = cli_files.read_image, []

    def interrupted_read(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 37:  # one read to learn the image size, then images 0, 1, ...
            raise KeyboardInterrupt
        return read_image(*args, **kwargs)

    monkeypatch.setattr(cli_files, "read_image", interrupted_read)
    arguments = image_arguments(files, streamed, "--stream", "--shard-size", SHARD, "--quiet", "--step-schedule",
                                "constant")
    status, out, err = run(arguments, capsys)
    err = without_completeness_notice(err)
    assert status == 130 and out == ""
    assert err.count("\n") == 1 and err.startswith("tf-ig2: interrupted; the 32 inputs explained so far are kept")
    assert visible(streamed) == ["shards"]
    index = json.loads((streamed / "shards" / "index.json").read_text())
    assert index["count"] == 32 and not index["complete"]
    finished = shard_stats(streamed)
    monkeypatch.undo()
    record_path = streamed / "shards" / "run.json"
    record = json.loads(record_path.read_text())
    for name in ("step_schedule", "shrink_factor"):  # as a run recorded before these options existed
        record["settings"].pop(name)
    record_path.write_text(json.dumps(record))
    # The same command continues without --overwrite, says so, and leaves the finished shards alone.
    status, out, err = run(arguments, capsys)
    assert status == 0, err
    assert f"continuing the unfinished streamed run in {streamed}: 32 of {N} inputs were explained earlier" in err
    assert "(32 of them by an earlier run)" in out
    after = shard_stats(streamed)
    assert {name: after[name] for name in finished} == finished
    summary = assert_same_results(streamed, in_memory, names=[f"image_{index:02d}.png" for index in range(N)])
    assert summary["counts"]["explained_earlier"] == 32 and summary["counts"]["explained_now"] == N - 32
    assert summary["settings"]["image_size"] == [8, 8] and summary["settings"]["scale"] == pytest.approx(1 / 255)
    # A finished run is not explained again without --overwrite, and nothing is touched.
    before = listing(streamed)
    status, out, err = run(arguments, capsys)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "finished streamed run" in err and "--overwrite" in err
    assert listing(streamed) == before


def test_errors_keep_shards_other_settings_need_overwrite(files, tmp_path, capsys, monkeypatch):
    streamed = tmp_path / "streamed"
    explain, calls = IG2.explain, []

    def failing_explain(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("the disk went away")
        return explain(self, *args, **kwargs)

    monkeypatch.setattr(IG2, "explain", failing_explain)
    arguments = array_arguments(files, streamed, "cnn.keras", "--stream", "--shard-size", SHARD, "--quiet")
    status, out, err = run(arguments, capsys)
    err = without_completeness_notice(err)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("tf-ig2: error: the disk went away (the 32 inputs explained so far are kept in ")
    assert json.loads((streamed / "shards" / "index.json").read_text())["count"] == 32
    monkeypatch.undo()
    # Other settings are refused while finished shards exist; nothing changes.
    before = listing(streamed)
    status, _, err = run(arguments[:-1] + ["--steps", STEPS + 1, "--quiet"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert f"unfinished streamed run of other settings (steps: {STEPS} -> {STEPS + 1})" in err and "--overwrite" in err
    assert listing(streamed) == before
    # --overwrite starts over with the new settings; above the listing limit the summary has no records.
    monkeypatch.setattr(defaults, "CLI_SUMMARY_MAX_INPUTS", N - 1)
    status, _, err = run(arguments[:-1] + ["--steps", STEPS + 1, "--quiet", "--overwrite"], capsys)
    assert status == 0, err
    assert "continuing" not in err
    summary = json.loads((streamed / "summary.json").read_text())
    assert summary["inputs"] is None and summary["settings"]["steps"] == STEPS + 1
    assert summary["counts"]["explained_earlier"] == 0 and summary["counts"]["inputs"] == N
    deltas = np.load(streamed / "shards" / "delta.00000.npy")
    assert summary["completeness_delta"]["max_abs"] >= float(np.abs(deltas).max()) > 0


def error_cases(files, tmp_path):
    base = ["--references", files["references.npy"], "--steps", STEPS, "--stream"]
    model, inputs = files["cnn.keras"], files["inputs.npy"]
    return {
        "shard size without stream": ([model, "--inputs", inputs, "--references", files["references.npy"],
                                       "--shard-size", "4"], "--shard-size: only applies with --stream"),
        "shard size zero": ([model, "--inputs", inputs, *base, "--shard-size", "0"], "--shard-size"),
        "npz archive": ([model, "--inputs", files["both.npz"], *base], "cannot be streamed"),
        "missing inputs": ([model, "--inputs", tmp_path / "none.npy", *base], "file not found"),
        "shapes that do not fit": ([model, "--inputs", files["wrong.npy"], *base],
                                   r"expects inputs of shape \(N, 8, 8, 1\)"),
        "per-input references of other N": ([model, "--inputs", inputs, *base[2:], "--references",
                                             files["short_references.npy"]], f"must have N={N} rows"),
        "unknown layer": ([model, "--inputs", inputs, *base, "--representation-layer", "nope"],
                          "Available layers"),
        # Found while explaining the first batch: what the run created is removed again.
        "inputs outside value range": ([model, "--inputs", inputs, *base[2:], "--references",
                                        files["dark_references.npy"], "--value-range", "0", "0.5"],
                                       "`inputs` must lie inside --value-range"),
        "target out of range": ([model, "--inputs", inputs, *base, "--target", "7"], r"class indices in \[0, 2\]"),
        "output not empty": ([model, "--inputs", inputs, *base], "--overwrite"),
    }


@pytest.mark.parametrize("case", ["shard size without stream", "shard size zero", "npz archive", "missing inputs",
                                  "shapes that do not fit", "per-input references of other N", "unknown layer",
                                  "inputs outside value range", "target out of range", "output not empty"])
def test_errors_are_one_line_exit_2_and_write_nothing(files, tmp_path, capsys, case):
    arguments, message = error_cases(files, tmp_path)[case]
    output = tmp_path / "out"
    if case == "output not empty":
        output.mkdir()
        (output / "notes.txt").write_text("mine")
    before = listing(tmp_path), sorted(os.listdir(tmp_path))
    status, out, err = run(["explain", *arguments, "--output", output, "--quiet"], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tf-ig2: error: "), err
    assert re.search(message, err), err
    assert (listing(tmp_path), sorted(os.listdir(tmp_path))) == before, "something was written or changed"


def test_help_documents_the_stream_options(capsys):
    status, out, _ = run(["explain", "--help"], capsys)
    assert status == 0
    assert "--stream" in out and "--shard-size" in out and "DIR/shards/" in out
