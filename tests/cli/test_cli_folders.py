"""The command line's output folder: nothing of the user's lost, one run at a time, quick refusals."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tf_ig2 import folders
from tf_ig2.cli import files as cli_files
from tf_ig2.cli import report as cli_report
from tf_ig2.saved_model import explain as saved_model

from conftest import FOREIGN_NAMES, REPOSITORY, plant_foreign, run_cli, small_cnn, tree

STEPS = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("folders")
    small_cnn(seed=1).save(folder / "cnn.keras")
    rng = np.random.default_rng(2)
    np.save(folder / "inputs.npy", rng.random((3, 8, 8, 1)).astype(np.float32))
    np.save(folder / "many.npy", rng.random((12, 8, 8, 1)).astype(np.float32))
    np.save(folder / "references.npy", rng.random((2, 8, 8, 1)).astype(np.float32))
    return folder


def arguments(files, output, *extra, inputs="inputs.npy"):
    return ["explain", files / "cnn.keras", "--inputs", files / inputs, "--references", files / "references.npy",
            "--steps", STEPS, "--output", output, "--quiet", *extra]


run = run_cli


def fail(*args, **kwargs):
    raise OSError(28, "No space left on device")


def failing_publish(monkeypatch):
    """Fails the third rename of the publication, once files have been moved."""
    real, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(source, target)

    original = folders.publish

    def publish(*args, **kwargs):
        monkeypatch.setattr(os, "replace", replace)
        try:
            return original(*args, **kwargs)
        finally:
            monkeypatch.setattr(os, "replace", real)

    monkeypatch.setattr(folders, "publish", publish)


STAGES = {
    "loading the model": lambda monkeypatch: monkeypatch.setattr(saved_model, "load_model", fail),
    "reading the inputs": lambda monkeypatch: monkeypatch.setattr(cli_files, "read_inputs", fail),
    "explaining": lambda monkeypatch: monkeypatch.setattr(saved_model, "explain_model", fail),
    "drawing the pictures": lambda monkeypatch: monkeypatch.setattr(cli_report, "write_pictures", fail),
    "writing the report": lambda monkeypatch: monkeypatch.setattr(cli_report, "write_report", fail),
    "moving the files into place": failing_publish,
    "saving the manifest": lambda monkeypatch: monkeypatch.setattr(folders.Manifest, "save", fail),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_dir_is_left_as_it_was_when_a_run_fails_at_any_stage(files, tmp_path, capsys, monkeypatch, stage):
    output = tmp_path / "out"
    plant_foreign(output)
    assert run(arguments(files, output, "--overwrite", inputs="many.npy"), capsys)[0] == 0  # an earlier run
    before = tree(output)
    STAGES[stage](monkeypatch)
    status, _, err = run(arguments(files, output, "--overwrite"), capsys)
    errors = [line for line in err.splitlines() if not line.startswith("tf-ig2: warning:")]
    assert status == 2 and len(errors) == 1 and "No space left on device" in errors[0], err
    assert tree(output) == before, f"DIR changed by a failure while {stage}"


def test_a_new_dir_is_not_left_behind_by_a_failure(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_report, "write_report", fail)
    assert run(arguments(files, tmp_path / "new" / "out"), capsys)[0] == 2
    assert os.listdir(tmp_path) == ["new"] and os.listdir(tmp_path / "new") == []


def test_the_users_files_survive_streamed_runs_overwrites_resumes_and_failures(files, tmp_path, capsys,
                                                                                monkeypatch):
    from tf_ig2 import dataset

    output = tmp_path / "out"
    plant_foreign(output)
    before = tree(output)
    stream = ("--stream", "--shard-size", 4)
    status, _, err = run(arguments(files, output, *stream, "--overwrite", inputs="many.npy"), capsys)
    assert status == 0, err
    assert tree(output, FOREIGN_NAMES) == before
    status, _, err = run(arguments(files, output, *stream, "--overwrite", "--steps", 5, inputs="many.npy"), capsys)
    assert status == 0, err
    assert tree(output, FOREIGN_NAMES) == before and np.load(output / "attributions.npy").shape == (12, 8, 8, 1)
    # A run stopped after two shards, then continued.
    real = dataset.explain_dataset

    def stopping(explainer, values, *args, **kwargs):
        real(explainer, values[:8], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset, "explain_dataset", stopping)
    status, _, err = run(arguments(files, output, *stream, "--overwrite", inputs="many.npy"), capsys)
    assert status == 2 and "8 inputs explained so far are kept" in err, err
    assert tree(output, FOREIGN_NAMES) == before
    monkeypatch.setattr(dataset, "explain_dataset", real)
    status, _, err = run(arguments(files, output, *stream, inputs="many.npy"), capsys)
    assert status == 0 and "continuing" in err, err
    assert tree(output, FOREIGN_NAMES) == before
    assert not [name for name in os.listdir(output) if name.startswith(
        (folders.LOCK_NAME, folders.STAGING_PREFIX, folders.BACKUP_PREFIX))]


def test_a_shard_file_of_the_users_in_dir_shards_is_refused_before_any_work(files, tmp_path, capsys):
    output = tmp_path / "out"
    (output / "shards").mkdir(parents=True)
    np.save(output / "shards" / "attributions.00000.npy", np.arange(3))
    before = tree(output)
    status, _, err = run(arguments(files, output, "--stream", "--overwrite"), capsys)
    assert status == 2 and "'attributions.00000.npy'" in err and "did not write" in err
    assert tree(output) == before


# -- one run at a time, refusals before TensorFlow ------------------------------------------------------
#: Runs the command line, then prints whether TensorFlow was imported and the exit status.
CLI_SCRIPT = """
import sys
from tf_ig2 import cli
status = cli.main(sys.argv[1:])
print("tensorflow" in sys.modules, status)
"""


def command(*arguments, environment=None):
    env = dict(os.environ, PYTHONPATH=REPOSITORY, TF_CPP_MIN_LOG_LEVEL="2", **(environment or {}))
    completed = subprocess.run([sys.executable, "-c", CLI_SCRIPT, *map(str, arguments)], capture_output=True,
                               text=True, env=env, timeout=300)
    imported, status = completed.stdout.split()
    return imported == "True", int(status), completed.stderr.splitlines()


def test_refusals_come_before_tensorflow_is_imported(files, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("a file")
    cases = {
        "usage": (["explain", files / "cnn.keras", "--inputs", files / "inputs.npy", "--output", full,
                   "--segment-points", 2, "--method", "ig"], "not an option of --method ig"),
        "missing inputs": (arguments(files, tmp_path / "o1", inputs="missing.npy"), "`inputs` file not found"),
        "missing model": (["explain", tmp_path / "m.keras", "--inputs", files / "inputs.npy", "--references",
                           files / "references.npy", "--output", tmp_path / "o2"], "No model found"),
        "non-empty": (arguments(files, full), "is not empty; pass --overwrite"),
        "under a file": (arguments(files, tmp_path / "file" / "out"), "is a file, not a folder"),
        "demo": (["demo", "--output", full], "is not empty; pass --overwrite"),
        "missing named inputs": (["explain", files / "cnn.keras", "--inputs", f"img={files / 'inputs.npy'}",
                                  "--inputs", f"vec={tmp_path / 'vec.npy'}", "--method", "ig", "--output",
                                  tmp_path / "o3"], "`inputs` file not found. Received: --inputs 'vec="),
        "several inputs streamed": (["explain", files / "cnn.keras", "--inputs", f"img={files / 'inputs.npy'}",
                                     "--method", "ig", "--stream", "--output", tmp_path / "o4"],
                                    "argument --stream: streams models with one input"),
        "padding without input layer": (arguments(files, tmp_path / "o5", "--padding-id", 1),
                                        "argument --padding-id: only applies with --input-layer"),
        "token ids from images": (["explain", files / "cnn.keras", "--input-layer", "embedding", "--inputs", files,
                                   "--references", files / "references.npy", "--output", tmp_path / "o6"],
                                  "with --input-layer the inputs are token ids"),
    }
    for name, (line, expected) in cases.items():
        imported, status, lines = command(*line)
        assert (imported, status) == (False, 2), name
        assert len(lines) == 1 and lines[0].startswith("tf-ig2: error: ") and expected in lines[0], (name, lines)
    assert sorted(os.listdir(tmp_path)) == ["file", "full"] and os.listdir(full) == ["notes.txt"]


def test_a_second_run_on_a_locked_folder_is_refused_in_one_line(files, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    script = "import sys; from tf_ig2 import folders; lock = folders.FolderLock(sys.argv[1]).acquire(); " \
             "print('locked', flush=True); sys.stdin.read()"
    holder = subprocess.Popen([sys.executable, "-c", script, str(output), "tf-ig2-explain-elsewhere"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=REPOSITORY))
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ((), ("--stream",)):
            imported, status, lines = command(*arguments(files, output, "--overwrite", *extra))
            assert (imported, status) == (False, 2)
            assert len(lines) == 1 and f"is in use by another run (PID {holder.pid} on host " in lines[0], lines
            assert "tf-ig2-explain-elsewhere" in lines[0]
        imported, status, lines = command("demo", "--output", output, "--overwrite")
        assert (imported, status) == (False, 2) and f"PID {holder.pid}" in lines[0]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert os.listdir(output) == []
