"""An end-to-end IG² demo on scikit-learn's digits, offline and CPU-friendly.

A small CNN is trained for a few epochs on the 8x8 digits (scaled to [0, 1]) while
:class:`tf_ig2.callbacks.IG2Callback` logs IG² attributions (Zhuo & Ge, TPAMI 2024, Eqs. 7-10)
of held-out digits to TensorBoard. The model is then saved as ``model.keras`` and held-out
digits (one per class) are explained through :func:`tf_ig2.explain_saved_model` against digits of
other classes, the references whose representation GradPath moves towards. Output layout::

    DIR/model.keras
    DIR/inputs.npy, references.npy, targets.npy
                     the held-out digits, their references and labels, for ``tf-ig2 explain``
    DIR/logs/        TensorBoard runs: train/, validation/ (loss, accuracy) and ig2/ (attributions)
    DIR/explanation/ index.html (the report: settings, then per digit its panel, film strip, scores and
                     deltas), panel_*.png, path_*.png, overlay_*.png, grid.png, summary.json,
                     attributions.npy, counterfactuals.npy
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from typing import Any, Dict, Tuple

import numpy as np

from tf_ig2 import defaults
from tf_ig2.cli import output as cli_output
from tf_ig2.cli import report as cli_report
from tf_ig2.references import other_class

logger = logging.getLogger(__name__)

#: Share of the digits held out from training.
HELD_OUT_FRACTION = 0.2
#: Digits' pixel values run from 0 to 16 in scikit-learn's copy.
DIGITS_MAXIMUM = 16.0
#: Training batch size.
BATCH_SIZE = 64

MODEL_FILE = "model.keras"
#: What the demo explained, saved beside the model for ``tf-ig2 explain``: the held-out digits
#: ``(N, 8, 8, 1)``, their references ``(N, R, 8, 8, 1)`` and their labels ``(N,)``.
INPUTS_FILE, REFERENCES_FILE, TARGETS_FILE = "inputs.npy", "references.npy", "targets.npy"
#: The files the demo writes at the top of its folder.
OWN_FILES = (MODEL_FILE, INPUTS_FILE, REFERENCES_FILE, TARGETS_FILE)
#: Where the printed ``tf-ig2 explain`` command writes its copy of the explanation.
RERUN_FOLDER = "explanation_rerun"
LOGS_FOLDER = "logs"
EXPLANATION_FOLDER = "explanation"


def check_output_folder(output_dir: str, overwrite: bool) -> str:
    """Checks, writing nothing, that the demo may write to ``output_dir``; returns it.

    Raises:
        ValueError: As :func:`tf_ig2.cli.output.check_output` (``model.keras`` must be missing
            or the demo's own).
    """
    return cli_output.check_output(output_dir, overwrite, OWN_FILES)


def _report_settings(destination: str, *, references: int, steps: int, accuracy: float, epochs: int,
                     seed: int) -> Dict[str, Any]:
    """The settings the demo's ``summary.json`` and report show."""
    return {
        "model": os.path.join(destination, MODEL_FILE),
        "model_format": "keras",
        "inputs": "scikit-learn digits, held out, one per class",
        "references": f"{references} training digits of other classes per input",
        "target": "true label",
        "representation_layer": None,
        "steps": steps,
        "step_size": defaults.AUTO,
        "value_range": [0.0, 1.0],
        "batch_size": None,
        "held_out_accuracy": accuracy,
        "epochs": epochs,
        "seed": seed,
    }


def explain_command(folder: str, steps: int) -> str:
    """The ``tf-ig2 explain`` command that explains the demo's saved digits again, as its report shows them.

    Args:
        folder: The demo's folder (absolute).
        steps: The GradPath steps the demo used.

    Returns:
        One shell line writing to ``folder/explanation_rerun``.
    """
    def path(name: str) -> str:
        return shlex.quote(os.path.join(folder, name))

    return (f"tf-ig2 explain {path(MODEL_FILE)} --inputs {path(INPUTS_FILE)} --references {path(REFERENCES_FILE)} "
            f"--target {path(TARGETS_FILE)} --steps {steps} --value-range 0 1 --path-strip "
            f"--output {path(RERUN_FOLDER)}")


def load_digits_data(seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits, shuffled and split into training and held-out parts.

    Returns:
        ``(x_train, y_train, x_held_out, y_held_out)``: images ``(n, 8, 8, 1)`` float32 in
        [0, 1] and labels ``(n,)`` int64.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    images = (digits.images / DIGITS_MAXIMUM).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order], labels[order]
    split = int(round(len(images) * (1.0 - HELD_OUT_FRACTION)))
    return images[:split], labels[:split], images[split:], labels[split:]


def build_model(input_shape: Tuple[int, ...] = (8, 8, 1), classes: int = 10) -> Any:
    """A small CNN ending in a softmax (the explainers explain its logits).

    Smooth (GELU) activations keep the discretisation error of the path integral, and so the
    completeness gap ``delta``, small at a few dozen steps.
    """
    import keras

    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(16, 3, padding="same", activation="gelu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(32, 3, padding="same", activation="gelu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="gelu", name="features"),
        keras.layers.Dense(classes, activation="softmax", name="predictions"),
    ], name="digits_cnn")


def pick_one_per_class(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` items: the first of each class in turn, then the next of each, ...

    Returns:
        ``(min(count, len(labels)),)`` int64 indices.
    """
    queues = {label: list(np.flatnonzero(labels == label)) for label in np.unique(labels)}
    chosen = []
    while len(chosen) < min(count, len(labels)):
        for label in sorted(queues):
            if queues[label] and len(chosen) < count:
                chosen.append(queues[label].pop(0))
    return np.asarray(chosen, np.int64)


def run_demo(output_dir: str = defaults.DEMO_OUTPUT_DIR, *, overwrite: bool = False,
             epochs: int = defaults.DEMO_EPOCHS, steps: int = defaults.DEMO_STEPS,
             explained: int = defaults.DEMO_EXPLAINED, references: int = defaults.DEMO_REFERENCES,
             seed: int = 0) -> Dict[str, Any]:
    """Trains, saves and explains the demo CNN; writes everything under ``output_dir``.

    Everything is written to a staging folder inside ``output_dir`` and moved into place at the
    end; a non-empty ``output_dir`` is refused unless ``overwrite``, which replaces the files an
    earlier demo wrote there (``model.keras``, ``explanation/``, ``logs/``) and keeps every other
    file, inside those folders too (:mod:`tf_ig2.folders`). Seeds Keras, NumPy and TensorFlow's
    global random generators with ``seed``.

    Args:
        output_dir: The folder to write to.
        overwrite: Allow a non-empty ``output_dir``.
        epochs: Training epochs.
        steps: IG² steps, for the callback and the final explanation.
        explained: Held-out digits explained (one per class in turn).
        references: References (training digits of other classes) per explained digit.
        seed: Random seed.

    Returns:
        A dict with ``output``, ``model``, ``explanation``, ``report`` (its ``index.html``),
        ``logs`` (absolute paths), ``tensorboard`` (the command to view the logs), ``accuracy``
        (held-out) and ``summary`` (the explanation's summary as written to ``summary.json``).

    Raises:
        ValueError: If ``output_dir`` is a file, a non-empty folder without ``overwrite``, or
            holds files the demo did not write where it writes its own.
        tf_ig2.folders.FolderInUseError: If another run holds ``output_dir``.
    """
    from tf_ig2 import validation

    for name, value in (("epochs", epochs), ("steps", steps), ("explained", explained),
                        ("references", references)):
        validation.positive_int(name, value)
    destination = os.path.abspath(check_output_folder(output_dir, overwrite))

    import keras

    from tf_ig2.callbacks.callback import IG2Callback
    from tf_ig2.saved_model.explain import build_explainer, explain_saved_model

    keras.utils.set_random_seed(seed)
    x_train, y_train, x_held_out, y_held_out = load_digits_data(seed)
    chosen = pick_one_per_class(y_held_out, explained)
    images, labels = x_held_out[chosen], y_held_out[chosen]
    reference_images = other_class(x_train, y_train, labels, references, seed=seed)
    ig2_options = dict(steps=steps, value_range=(0.0, 1.0))

    with cli_output.staged_output(destination, overwrite=overwrite, names=OWN_FILES) as staging:
        logs = os.path.join(staging, LOGS_FOLDER)
        model = build_model(x_train.shape[1:], int(y_train.max()) + 1)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        callbacks = [
            IG2Callback((images, labels), reference_images, output_dir=logs, freq=1, max_outputs=len(images),
                        **ig2_options),
            keras.callbacks.TensorBoard(logs, write_graph=False, profile_batch=0),
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs_: logger.info(
                "epoch %d/%d: loss %.3f, accuracy %.3f, held-out accuracy %.3f", epoch + 1, epochs,
                logs_["loss"], logs_["accuracy"], logs_["val_accuracy"])),
        ]
        logger.info("Training a small CNN on %d digits for %d epochs (IG² of %d held-out digits logged each "
                    "epoch)", len(x_train), epochs, len(images))
        model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, validation_data=(x_held_out, y_held_out),
                  callbacks=callbacks, verbose=0)
        accuracy = float(model.evaluate(x_held_out, y_held_out, verbose=0)[1])
        model_path = os.path.join(staging, MODEL_FILE)
        model.save(model_path)
        for name, values in ((INPUTS_FILE, images), (REFERENCES_FILE, reference_images), (TARGETS_FILE, labels)):
            np.save(os.path.join(staging, name), values)
        logger.info("Explaining %d held-out digits through the saved model, %d references each", len(images),
                    references)
        explanation = explain_saved_model(model_path, images, reference_images, labels, **ig2_options)
        folder = os.path.join(staging, EXPLANATION_FOLDER)
        os.makedirs(folder)
        settings = _report_settings(destination, references=references, steps=steps, accuracy=accuracy,
                                    epochs=epochs, seed=seed)
        names = [f"digit {int(label)} (held-out row {int(index)})" for index, label in zip(chosen, labels)]
        strip_explainer, _ = build_explainer(model, ig2_options)  # the saved model's weights
        report = cli_report.ReportOptions(
            value_range=(0.0, 1.0), path_strips=cli_report.path_strip_maker(
                strip_explainer, reference_images, value_range=(0.0, 1.0), min_size=defaults.CLI_MIN_DISPLAY_SIZE))
        cli_output.write_explanation(folder, explanation, images, names=names, settings=settings, report=report)
    with open(os.path.join(destination, EXPLANATION_FOLDER, cli_output.SUMMARY_FILE), encoding="utf-8") as handle:
        summary = json.load(handle)
    logs_path = os.path.join(destination, LOGS_FOLDER)
    return {
        "output": destination,
        "model": os.path.join(destination, MODEL_FILE),
        "explanation": os.path.join(destination, EXPLANATION_FOLDER),
        "report": os.path.join(destination, EXPLANATION_FOLDER, cli_report.REPORT_FILE),
        "logs": logs_path,
        "tensorboard": f"tensorboard --logdir {logs_path}",
        "command": explain_command(destination, steps),
        "accuracy": accuracy,
        "summary": summary,
    }
