"""Quickstart: train a small CNN on scikit-learn's digits, explain a few test digits with IG².

Run: python examples/quickstart.py [--output quickstart.png]

It prints, for each explained digit, the predicted class, the logit, the logit at its GradCF
counterfactual and the completeness error, and saves a picture: input, GradCF and attribution.
"""

import argparse
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import tf_ig2  # noqa: E402


def train_digits_cnn(seed: int = 0):
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1) in [0, 1]
    labels = digits.target
    keras.utils.set_random_seed(seed)
    order = np.random.permutation(len(images))
    train, test = order[:1400], order[1400:]
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images[train], labels[train], epochs=8, batch_size=64, verbose=0)
    accuracy = model.evaluate(images[test], labels[test], verbose=0)[1]
    return model, images[train], labels[train], images[test], labels[test], accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="quickstart.png", help="where to save the picture")
    parser.add_argument("--inputs", type=int, default=4, help="how many test digits to explain")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model, train_x, train_y, test_x, test_y, accuracy = train_digits_cnn()
    print(f"test accuracy: {accuracy:.3f}")
    inputs = test_x[:args.inputs]
    predicted = np.argmax(model.predict(inputs, verbose=0), axis=1)
    # References as in the paper: for each explained digit, a few training digits of other classes.
    references = tf_ig2.references.other_class(train_x, train_y, predicted, 8, seed=0)  # (N, R, 8, 8, 1)

    explainer = tf_ig2.IG2(model, steps=201, value_range=(0.0, 1.0))
    explanation = explainer.explain(inputs, references)  # targets=None: the predicted class

    for n in range(len(inputs)):
        print(f"digit {n}: label {test_y[n]}, predicted {explanation.targets[n]}, "
              f"logit {explanation.target_scores[n]:.2f} -> GradCF {explanation.counterfactual_scores[n]:.2f}, "
              f"completeness error {explanation.delta[n]:+.4f}")

    # One row per digit: the input, its first GradCF, and the attribution (red positive, blue negative).
    gray = lambda images: np.repeat(images, 3, axis=-1)  # noqa: E731
    signed = tf_ig2.visualize.diverging_map(explanation.attributions).numpy()
    tiles = np.stack([gray(inputs), gray(explanation.counterfactuals[:, 0]), signed], axis=1).reshape(-1, 8, 8, 3)
    picture = tf_ig2.visualize.grid(tf_ig2.visualize.upscale(tiles, 16), columns=3)
    tf.io.write_file(args.output, tf.io.encode_png(tf.cast(tf.round(picture * 255), tf.uint8)))
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
