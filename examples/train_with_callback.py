"""Train a small CNN on scikit-learn's digits and watch IG² and IG attributions in TensorBoard.

The IG² callback (Zhuo & Ge, TPAMI 2024) and a straight-line IG callback log overlays, a grid and
diagnostics every epoch into ``--logdir``, next to the training curves of Keras' own TensorBoard
callback. Runs in well under a minute on a laptop CPU::

    PYTHONPATH=. python examples/train_with_callback.py
    tensorboard --logdir <the printed folder>

``--save-image PATH`` also writes a PNG of the last epoch: the inputs, then IG² and IG overlays.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from tf_ig2 import visualize  # noqa: E402
from tf_ig2.callbacks import AttributionCallback, IG2Callback  # noqa: E402


def build_model() -> keras.Model:
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu", name="features"),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ])


def save_comparison(path: str, callbacks, images: np.ndarray) -> None:
    """Writes one PNG: a row of inputs, then one row of overlays per callback (last weights)."""
    import cv2

    factor = callbacks[0].display_factor()
    inputs = visualize.upscale(visualize.rescale_images(images), factor).numpy()
    rows = [np.clip(np.round(inputs * 255.0), 0, 255).astype(np.uint8)]
    for callback in callbacks:
        pictures, _ = callback.summaries(callback.explain())
        rows.append(pictures[f"{callback.name}/overlay"])
    tiles = visualize.grid(np.concatenate(rows), columns=len(images)).numpy().astype(np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(tiles, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Could not write {path!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=os.path.join(tempfile.gettempdir(), "tf_ig2_example", "logs"),
                        help="TensorBoard log folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=64, help="IG² and IG steps")
    parser.add_argument("--save-image", default=None, help="also write a PNG of the last epoch's overlays")
    arguments = parser.parse_args()

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[..., None]
    x_train, x_val, y_train, y_val = train_test_split(images, data.target, test_size=0.2, random_state=0)
    keras.utils.set_random_seed(0)
    references = x_train[np.random.default_rng(0).choice(len(x_train), 4, replace=False)]
    shown = (x_val[:8], y_val[:8])

    model = build_model()
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [
        IG2Callback(shown, references, output_dir=arguments.logdir, steps=arguments.steps, value_range=(0.0, 1.0),
                    max_outputs=8, max_references=None),
        AttributionCallback("ig", shown, references=0.0, output_dir=arguments.logdir, steps=arguments.steps,
                            max_outputs=8),
    ]
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=arguments.epochs, batch_size=64, verbose=2,
              callbacks=callbacks + [keras.callbacks.TensorBoard(arguments.logdir)])

    if arguments.save_image:
        save_comparison(arguments.save_image, callbacks, shown[0])
        print(f"Wrote {arguments.save_image}")
    print(f"Attributions logged under {arguments.logdir}. Look at them with:")
    print(f"    tensorboard --logdir {arguments.logdir}")


if __name__ == "__main__":
    main()
