"""The ``tf-ig2 demo`` command: training with the IG² callback, saving, explaining, writing."""

import glob
import json
import os
import re
import shlex

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tf_ig2.cli import command as cli
from tf_ig2.cli import demo
from tf_ig2.references import other_class
from tf_ig2.saved_model import explain as saved_model
from tf_ig2.visualize.panel_layout import LINE

from conftest import visible


def event_tags(folder):
    tags = set()
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    output = tmp_path / "demo"
    status = cli.main(["demo", "--output", str(output), "--quiet"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.splitlines()[0] == f"Report:       {output / 'explanation' / 'index.html'}"
    assert f"tensorboard --logdir {output / 'logs'}" in captured.out
    assert str(output / "model.keras") in captured.out
    assert visible(output) == ["explanation", "inputs.npy", "logs", "model.keras", "references.npy", "targets.npy"]
    assert sorted(os.listdir(tmp_path)) == ["demo"], "a temporary folder was left behind"

    # TensorBoard: the IG² run holds overlays, grids and diagnostics; Keras' runs hold the losses.
    tags = event_tags(output / "logs" / "ig2")
    assert {"ig2/overlay", "ig2/grid", "ig2/completeness_delta", "ig2/representation_distance"} <= tags
    assert glob.glob(str(output / "logs" / "train" / "events.out.tfevents.*"))

    explanation = output / "explanation"
    summary = json.loads((explanation / "summary.json").read_text())
    records = summary["inputs"]
    assert len(records) == 10
    assert sorted(record["target"] for record in records) == list(range(10))
    assert summary["settings"]["held_out_accuracy"] > 0.8
    attributions = np.load(explanation / "attributions.npy")
    assert attributions.shape == (10, 8, 8, 1)
    assert np.load(explanation / "counterfactuals.npy").shape == (10, 4, 8, 8, 1)
    # Completeness of IG²: the attributions sum to f(x) - f(GradCF) up to a small delta.
    gaps = np.array([record["score"] - record["gradcf_score"] for record in records])
    deltas = np.array([record["completeness_delta"] for record in records])
    np.testing.assert_allclose(attributions.reshape(10, -1).sum(axis=1) - gaps, deltas, atol=1e-3)
    # The reported relative delta is |delta| / |gap| (how large it is depends on the trained model).
    relative = np.array([record["relative_delta"] for record in records], np.float64)
    np.testing.assert_allclose(relative, np.abs(deltas) / np.abs(gaps), rtol=1e-3)
    # GradPath moves towards the references' representation.
    for record in records:
        for distance in record["representation_distance"]:
            assert distance["end"] < distance["start"]
    for index in range(10):
        assert cv2.imread(str(explanation / f"overlay_{index:03d}.png")).shape[0] == LINE + 64  # index above
        assert cv2.imread(str(explanation / f"panel_{index:03d}.png")).shape[0] == 2 * 6 + 3 * 15 + 64
        assert cv2.imread(str(explanation / f"path_{index:03d}.png")).shape[0] == 2 * 6 + 3 * 15 + 2 * 64 + 6
    overlay = cv2.imread(str(explanation / "overlay_000.png"))
    assert cv2.imread(str(explanation / "grid.png")).shape == (3 * (LINE + 64) + 2 * 4, 4 * overlay.shape[1] + 3 * 4, 3)
    # The report links its pictures relatively and holds no absolute path.
    page = (explanation / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', page)
    assert sorted(sources) == sorted([f"panel_{index:03d}.png" for index in range(10)]
                                     + [f"path_{index:03d}.png" for index in range(10)])
    assert str(tmp_path) not in page and page.count("<section") == 10

    # The printed command explains the saved digits again, as the report shows them.
    command = [line for line in captured.out.splitlines() if line.startswith("Explain again")][0].split(": ", 1)[1]
    words = shlex.split(command)
    assert words[:2] == ["tf-ig2", "explain"]
    status = cli.main(words[1:] + ["--quiet"])
    assert status == 0, capsys.readouterr().err
    rerun = output / "explanation_rerun"
    np.testing.assert_allclose(np.load(rerun / "attributions.npy"), attributions, rtol=1e-5, atol=1e-6)
    again = json.loads((rerun / "summary.json").read_text())["inputs"]
    assert [record["target"] for record in again] == [record["target"] for record in records]

    # The saved model loads and classifies as the summary says.
    model = saved_model.load_model(output / "model.keras")
    assert model.output_shape == (None, 10)


def test_demo_prints_the_report_path_first(tmp_path, capsys, monkeypatch):
    paths = {name: str(tmp_path / name) for name in ("model.keras", "explanation", "logs")}

    def finished(output, overwrite=False):
        return {"output": output, "model": paths["model.keras"], "explanation": paths["explanation"],
                "report": os.path.join(paths["explanation"], "index.html"), "logs": paths["logs"],
                "tensorboard": f"tensorboard --logdir {paths['logs']}", "accuracy": 0.9, "summary": {},
                "command": "tf-ig2 explain ..."}

    monkeypatch.setattr(demo, "run_demo", finished)
    status = cli.main(["demo", "--output", str(tmp_path), "--quiet"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0] == f"Report:       {os.path.join(paths['explanation'], 'index.html')}"
    assert len(lines) == 6 and lines[1].startswith("Held-out accuracy")
    assert lines[-1] == "Explain again from the command line: tf-ig2 explain ..."


def test_demo_refuses_a_non_empty_folder_before_training(tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the demo started working before checking its output folder")

    monkeypatch.setattr(demo, "load_digits_data", fail)
    (tmp_path / "mine.txt").write_text("keep")
    status = cli.main(["demo", "--output", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith("tf-ig2: error: ")
    assert "--overwrite" in captured.err
    assert sorted(os.listdir(tmp_path)) == ["mine.txt"]


def test_references_are_digits_of_other_classes():
    images = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1)
    labels = np.array([0, 1, 2] * 4)
    chosen = demo.pick_one_per_class(labels, 5)
    assert list(labels[chosen]) == [0, 1, 2, 0, 1]
    references = other_class(images, labels, labels[chosen], 3, seed=0)
    assert references.shape == (5, 3, 1, 1, 1)
    for target, rows in zip(labels[chosen], references):
        assert np.all(labels[rows.reshape(-1).astype(int)] != target)
