"""Explain a model saved to disk with IG², from Python.

Trains a small CNN on scikit-learn's digits for a few epochs (offline, seconds on a CPU), saves
it as ``model.keras`` and exports it as a SavedModel whose signature returns two outputs, the
``logits`` and the 32 ``features`` of the penultimate layer. Held-out digits are then explained
against digits of other classes through both files with
:func:`tf_ig2.saved_model.explain_saved_model`: with ``representation_layer="features"`` the
SavedModel explains the same function in the same representation as the ``.keras`` file (whose
default representation is the input of its last layer, i.e. the same features), and the two
attributions agree up to float round-off carried along the path (a few thousandths of the
largest attribution). Pass ``--model PATH`` to explain your own
8x8x1 model instead.

Usage::

    PYTHONPATH=. python examples/explain_saved_model.py --output ig2_example
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_ig2 import visualize  # noqa: E402
from tf_ig2.cli import demo  # noqa: E402
from tf_ig2.references import other_class  # noqa: E402
from tf_ig2.saved_model import explain_saved_model, load_model  # noqa: E402


def export_logits_and_features(model: keras.Model, path: str) -> None:
    """Exports ``{"logits", "features"}``: the softmax model's logits and penultimate features.

    A SavedModel keeps no layers, so the outputs it should explain (logits rather than
    probabilities) and the representation GradPath may use must be outputs of its signature.
    """
    inputs = keras.Input(model.input_shape[1:])
    features = inputs
    for layer in model.layers[:-1]:
        features = layer(features)
    last = model.layers[-1]
    logits_layer = keras.layers.Dense(last.units, name="logits")
    logits = logits_layer(features)
    logits_layer.set_weights(last.get_weights())
    keras.Model(inputs, {"logits": logits, "features": features}).export(path, verbose=False)


def train_and_save(folder: str) -> dict:
    """A digits CNN saved as .keras and exported as a SavedModel; returns both paths."""
    x_train, y_train, x_held_out, y_held_out = demo.load_digits_data(seed=0)
    model = demo.build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=5, verbose=0)
    print(f"held-out accuracy: {model.evaluate(x_held_out, y_held_out, verbose=0)[1]:.3f}")
    paths = {"keras": os.path.join(folder, "model.keras"), "saved_model": os.path.join(folder, "saved_model")}
    model.save(paths["keras"])
    export_logits_and_features(model, paths["saved_model"])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="ig2_example", help="folder for the models and the grid")
    parser.add_argument("--model", help="an existing .keras, .h5 or SavedModel with (8, 8, 1) inputs")
    arguments = parser.parse_args()
    os.makedirs(arguments.output, exist_ok=True)

    paths = {"given": arguments.model} if arguments.model else train_and_save(arguments.output)
    x_train, y_train, x_held_out, y_held_out = demo.load_digits_data(seed=0)
    chosen = demo.pick_one_per_class(y_held_out, 10)
    images, labels = x_held_out[chosen], y_held_out[chosen]                    # (10, 8, 8, 1), (10,)
    references = other_class(x_train, y_train, labels, 4, seed=0)            # (10, 4, 8, 8, 1)

    attributions = {}
    for kind, path in paths.items():
        model = load_model(path)  # what explain_saved_model loads: a keras.Model or a SavedModelFunction
        print(f"\n{kind}: {path} ({type(model).__name__})")
        # A SavedModel's own outputs: its signature's "features" output as representation (the
        # scores are then the one other output, "logits"); a Keras file picks from its layers.
        options = {"representation_layer": "features"} if kind == "saved_model" else {}
        explanation = explain_saved_model(path, images, references, targets=labels, steps=64,
                                          value_range=(0.0, 1.0), **options)
        attributions[kind] = explanation.attributions
        print(f"representation: {explanation.representation}")
        print("label   f(x)   f(GradCF)   delta   distance start -> end (mean over references)")
        for index, label in enumerate(labels):
            start, end = explanation.representation_distance[index].mean(axis=0)
            print(f"{label:5d} {explanation.target_scores[index]:7.2f} {explanation.counterfactual_scores[index]:9.2f} "
                  f"{explanation.delta[index]:8.3f}   {start:6.2f} -> {end:5.2f}")
        overlays = visualize.upscale(visualize.overlay(images, explanation.attributions), 8)  # (10, 64, 64, 3)
        tiles = visualize.grid(overlays)                                                   # (H', W', 3)
        grid_path = os.path.join(arguments.output, f"grid_{kind}.png")
        tf.io.write_file(grid_path, tf.io.encode_png(tf.cast(tf.round(tiles * 255.0), tf.uint8)))
        print(f"overlays: {grid_path}")
    if len(attributions) == 2:
        difference = np.abs(attributions["keras"] - attributions["saved_model"]).max()
        print(f"\nlargest difference between the .keras and SavedModel attributions: {difference:.2e}")


if __name__ == "__main__":
    main()
