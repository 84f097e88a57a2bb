"""Explain a small MLP on scikit-learn's breast cancer data with IG², feature by feature; compare with IG.

The 30 features are standardised with the training rows' mean and standard deviation. IG²
(Zhuo & Ge, TPAMI 2024) explains each held-out row against training rows of the other class, its
path clipped per feature to the range the feature takes (``value_range`` as two ``(30,)`` arrays:
the training minimum and maximum, widened to hold the explained rows), so no point of the path is
a value the feature never had. Straight-line Integrated Gradients on the same references follows
for comparison. Run::

    PYTHONPATH=. python examples/tabular_breast_cancer.py [--output FOLDER] [--overwrite] [--logdir LOGS]

It prints the top features of each explained row (name, value, attribution) for both methods and
writes ``tabular_bars.png`` (IG² left, IG right, one row of charts per explained patient) to the
output folder. With ``--logdir``, an IG² callback also logs bar charts of four held-out rows to
TensorBoard every 5 epochs while the model trains.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import tf_ig2  # noqa: E402
from tf_ig2 import visualize  # noqa: E402

OUTPUT_FILE = "tabular_bars.png"


def build_model(features: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(32, activation="tanh", name="hidden"),
        keras.layers.Dense(16, activation="tanh", name="features"),
        keras.layers.Dense(2, activation="softmax", name="probabilities"),
    ])
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def titled(picture: np.ndarray, title: str, band: int = 24) -> np.ndarray:
    """``picture`` (uint8 RGB) under a white band holding ``title``."""
    import cv2

    header = np.full((band, picture.shape[1], 3), 255, np.uint8)
    cv2.putText(header, title, (4, band - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, picture])


def charts_picture(names, rows, ig2_attributions, ig_attributions, titles, top: int) -> np.ndarray:
    """One uint8 RGB picture: per explained row, its IG² chart and its IG chart side by side."""
    gap = 8
    lines = []
    for index, title in enumerate(titles):
        pair = [titled(np.round(visualize.feature_bars(names, values[index], top=top).numpy() * 255)
                       .astype(np.uint8), f"{method}: {title}")
                for method, values in (("IG2", ig2_attributions), ("IG", ig_attributions))]
        spacer = np.full((pair[0].shape[0], gap, 3), 217, np.uint8)
        lines.append(np.concatenate([pair[0], spacer, pair[1]], axis=1))
    spacer = np.full((gap, lines[0].shape[1], 3), 217, np.uint8)
    return np.concatenate([part for line in lines for part in (line, spacer)][:-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="tabular_breast_cancer_ig2",
                        help="folder for the PNG (default: %(default)s in the current directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace the PNG of an earlier run")
    parser.add_argument("--rows", type=int, default=3, help="held-out rows to explain")
    parser.add_argument("--references", type=int, default=16, help="training rows of the other class per row")
    parser.add_argument("--steps", type=int, default=201, help="IG² steps (IG uses 64)")
    parser.add_argument("--top", type=int, default=8, help="features shown per row")
    parser.add_argument("--logdir", default=None,
                        help="also log IG² bar charts to TensorBoard while training, in this folder")
    arguments = parser.parse_args()
    output_path = os.path.join(arguments.output, OUTPUT_FILE)
    if os.path.exists(output_path) and not arguments.overwrite:
        print(f"Not overwriting {output_path}; pass --overwrite or another --output.", file=sys.stderr)
        return 1

    data = load_breast_cancer()
    names = list(data.feature_names)
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.2, random_state=0,
                                                        stratify=data.target)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)
    # Held-out rows of both classes are explained; with --logdir, four more are logged while training.
    chosen = np.concatenate([np.flatnonzero(y_test == label)[:(arguments.rows + 1 - label) // 2] for label in (0, 1)])
    shown, shown_labels = x_test[-4:], y_test[-4:]
    # The feature ranges: training minimum and maximum, widened to hold the explained rows.
    explained = np.concatenate([x_test[chosen], shown])
    low = np.minimum(x_train.min(axis=0), explained.min(axis=0))
    high = np.maximum(x_train.max(axis=0), explained.max(axis=0))
    model = build_model(x_train.shape[1])
    callbacks = []
    if arguments.logdir:
        shown_references = tf_ig2.references.other_class(x_train, y_train, shown_labels, 8, seed=1)
        callbacks = [tf_ig2.callbacks.IG2Callback(
            (shown, shown_labels), shown_references, output_dir=arguments.logdir, freq=5, feature_names=names,
            top=arguments.top, value_range=(low, high), steps=64), keras.callbacks.TensorBoard(arguments.logdir)]
    model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0, callbacks=callbacks)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"held-out accuracy {accuracy:.3f} ({len(x_train)} training rows, classes: {', '.join(data.target_names)})")

    # Each row is explained for its predicted class, against training rows of the other class.
    inputs = x_test[chosen]
    predicted = np.argmax(model.predict(inputs, verbose=0), axis=1)
    references = tf_ig2.references.other_class(x_train, y_train, predicted, arguments.references,
                                               seed=0)  # (N, R, 30)

    ig2 = tf_ig2.IG2(model, steps=arguments.steps, value_range=(low, high)).explain(inputs, references, predicted)
    ig = tf_ig2.IntegratedGradients(model, steps=64).explain(inputs, references, predicted)

    titles = []
    for index in range(len(inputs)):
        label = data.target_names[predicted[index]]
        titles.append(f"test row {chosen[index]}, predicted {label} (true {data.target_names[y_test[chosen[index]]]})")
        print(f"\n{titles[-1]}: logit {ig2.target_scores[index]:.2f}")
        for method, explanation in (("IG²", ig2), ("IG ", ig)):
            values = explanation.attributions[index]
            order = np.argsort(-np.abs(values))[:5]
            gap = explanation.target_scores[index] - explanation.counterfactual_scores[index]
            print(f"  {method} mean baseline logit {explanation.counterfactual_scores[index]:.2f}, delta "
                  f"{explanation.delta[index]:+.4f} ({abs(explanation.delta[index]) / max(abs(gap), 1e-12):.1%} of "
                  "the score gap); top features:")
            for feature in order:
                raw = inputs[index, feature] * std[feature] + mean[feature]
                print(f"      {names[feature]:<24} value {raw:10.4g} ({inputs[index, feature]:+.2f} sd)  "
                      f"attribution {values[feature]:+.3f}")
        shared = len(set(np.argsort(-np.abs(ig2.attributions[index]))[:5])
                     & set(np.argsort(-np.abs(ig.attributions[index]))[:5]))
        print(f"  top-5 features shared by IG² and IG: {shared} of 5")
    print(f"\nmean |delta|: IG² {np.mean(np.abs(ig2.delta)):.4f}, IG {np.mean(np.abs(ig.delta)):.4f}; "
          f"IG² moved each path to within {np.mean(ig2.representation_distance[..., -1]):.3f} (from "
          f"{np.mean(ig2.representation_distance[..., 0]):.3f}) of its reference's representation")

    import cv2

    picture = charts_picture(names, inputs, ig2.attributions, ig.attributions, titles, arguments.top)
    os.makedirs(arguments.output, exist_ok=True)
    if not cv2.imwrite(output_path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"Could not write {output_path!r}")
    print(f"\nWrote {output_path}")
    if arguments.logdir:
        print(f"Bar charts logged while training; look at them with: tensorboard --logdir {arguments.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
