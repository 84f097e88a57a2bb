"""The examples run end to end as a user runs them, and write what they promise."""

import os
import subprocess
import sys

import pytest

from conftest import REPOSITORY

ROOT = REPOSITORY


def run_example(name, *arguments, cwd):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *map(str, arguments)],
                            cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def read_png(path):
    import tensorflow as tf

    return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


@pytest.mark.slow
def test_quickstart(tmp_path):
    output = run_example("quickstart.py", "--output", tmp_path / "picture.png", "--inputs", 3, cwd=tmp_path)
    assert "test accuracy" in output and output.count("completeness error") == 3
    picture = read_png(tmp_path / "picture.png")
    assert picture.shape == (3 * 128, 3 * 128, 3) and picture.std() > 10


@pytest.mark.slow
def test_text_classification(tmp_path):
    output = run_example("text_classification.py", "--output", tmp_path / "text", "--epochs", 3, "--steps", 64,
                         cwd=tmp_path)
    written = sorted(os.listdir(tmp_path / "text"))
    assert any(name.endswith(".png") for name in written) and any(name.endswith(".html") for name in written)
    assert "delta" in output.lower()


@pytest.mark.slow
def test_tabular_breast_cancer(tmp_path):
    output = run_example("tabular_breast_cancer.py", "--output", tmp_path / "tabular", "--rows", 2, "--steps", 64,
                         cwd=tmp_path)
    pngs = [name for name in os.listdir(tmp_path / "tabular") if name.endswith(".png")]
    assert pngs and read_png(tmp_path / "tabular" / pngs[0]).shape[2] == 3
    assert "mean" in output.lower() or "worst" in output.lower()


@pytest.mark.slow
def test_train_with_callback(tmp_path):
    output = run_example("train_with_callback.py", "--logdir", tmp_path / "logs", "--epochs", 2, "--steps", 16,
                         cwd=tmp_path)
    assert "tensorboard --logdir" in output
    events = [name for _, _, names in os.walk(tmp_path / "logs") for name in names if "tfevents" in name]
    assert events


@pytest.mark.slow
def test_real_models(tmp_path):
    output = run_example("real_models.py", "--epochs", 2, "--steps", 16, "--inputs", 2, cwd=tmp_path)
    assert "representation: input of layer 'is_high'" in output
    assert output.count("logit of that class") == 2 and output.count(", to the row sums") == 2
