"""IG² on the kinds of models people train: a nested transfer-learning base with a sigmoid head,
and a model with two inputs.

1. A convolutional base with BatchNorm (in the shape of a ``keras.applications`` base, which works
   the same) nested inside a new model that ends in ``Dense(1, activation="sigmoid")``: is the
   digit 5 or more?
   IG² explains the head's logit ``z`` (class 1) or ``-z`` (class 0), never the probability.
2. A model reading the image *and* a vector of its row sums: attributions come back as a list
   with one array per input, and the completeness gap covers both.

Data: scikit-learn's digits (bundled), upsampled to 32x32x3. Run:
``python examples/real_models.py`` (under a minute on two CPU cores).
"""

import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import tf_ig2  # noqa: E402


def digits(size=32):
    data = load_digits()
    images = tf.image.resize(data.images[..., None] / 16.0, (size, size)).numpy()
    return np.repeat(images, 3, axis=-1).astype(np.float32), data.target


def transfer_model(size):
    base = keras.Sequential([keras.Input((size, size, 3))] + [
        layer for filters in (16, 32) for layer in (keras.layers.Conv2D(filters, 3, strides=2, use_bias=False),
                                                    keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU())
    ] + [keras.layers.GlobalAveragePooling2D()], name="base")
    inputs = keras.Input((size, size, 3))
    features = base(keras.layers.Rescaling(2.0, offset=-1.0)(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="is_high")(features))


def two_input_model(size):
    image, rows = keras.Input((size, size, 3), name="image"), keras.Input((size,), name="row_sums")
    seen = keras.layers.Flatten()(keras.layers.MaxPooling2D(4)(keras.layers.Conv2D(16, 3, activation="relu")(image)))
    joined = keras.layers.Concatenate()([seen, keras.layers.Dense(16, activation="relu")(rows)])
    return keras.Model([image, rows], keras.layers.Dense(10, activation="softmax")(joined))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64, help="IG² path steps")
    parser.add_argument("--inputs", type=int, default=3, help="held-out digits explained")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    images, labels = digits()
    train, held_out = slice(0, 1400), slice(1400, 1400 + args.inputs)
    others = images[:200]

    print("1. A nested convolutional base with BatchNorm and a sigmoid head")
    model = transfer_model(images.shape[1])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(images[train], (labels[train] >= 5).astype(np.float32), epochs=args.epochs, batch_size=64, verbose=0)
    high = (model.predict(images[1400:], verbose=0)[:, 0] > 0.5) == (labels[1400:] >= 5)
    print(f"   held-out accuracy {high.mean():.2f}")
    explainer = tf_ig2.IG2(model, steps=args.steps, value_range=(0.0, 1.0), integration="rescaled")
    print(f"   representation: {explainer.representation}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tf_ig2.CompletenessWarning)
        explanation = explainer.explain(images[held_out], others[labels[:200] < 5][:2])
    for index in range(args.inputs):
        predicted = "5 or more" if explanation.targets[index] == 1 else "under 5"
        print(f"   digit {labels[held_out][index]}: predicted {predicted}, logit of that class "
              f"{explanation.target_scores[index]:+.3f}, relative completeness error "
              f"{explanation.relative_delta[index]:.3f}")

    print("2. A model with two inputs: the image and its row sums")
    several = two_input_model(images.shape[1])
    row_sums = images[..., 0].sum(axis=2) / images.shape[1]
    several.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    several.fit([images[train], row_sums[train]], labels[train], epochs=args.epochs, batch_size=64, verbose=0)
    accuracy = (several.predict([images[1400:], row_sums[1400:]], verbose=0).argmax(axis=1) == labels[1400:]).mean()
    print(f"   held-out accuracy {accuracy:.2f}")
    explanation = tf_ig2.IG2(several, steps=args.steps, value_range=[(0.0, 1.0), (0.0, 1.0)]).explain(
        [images[held_out], row_sums[held_out]], [others[:2], row_sums[:2]])
    image_part, rows_part = (attributions.reshape(args.inputs, -1).sum(axis=1)
                             for attributions in explanation.attributions)
    for index in range(args.inputs):
        print(f"   digit {labels[held_out][index]}: class {explanation.targets[index]}, attribution to the image "
              f"{image_part[index]:+.3f}, to the row sums {rows_part[index]:+.3f}, "
              f"delta {explanation.delta[index]:+.3f}")


if __name__ == "__main__":
    main()
