"""Cost of logging attributions from the callback versus calling explain() directly.

For each method, the callback's own explainer (compiled once) explains the same images either
directly (``explainer.explain``) or through ``callback.on_epoch_end`` (explain, overlays, grid,
PNG encoding, summary writes and a flush). Calls alternate, after one warm-up call each; the table
reports the medians and their ratio. The logging alone (``callback.log_explanation`` of a ready
explanation) is timed too, and ``1 + logging / direct`` is the ratio without the noise of the
explain calls, which dominates when other processes compete for the CPU.

Usage::

    PYTHONPATH=. python benchmarks/callback_overhead.py
    PYTHONPATH=. python benchmarks/callback_overhead.py --methods ig2 --images 8 --size 32 --channels 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from tf_ig2 import defaults  # noqa: E402
from tf_ig2.callbacks import AttributionCallback  # noqa: E402

STEPS = {"ig2": defaults.IG2_STEPS, "ig": defaults.IG_STEPS, "guided_ig": defaults.GUIDED_IG_STEPS}


def make_data(count: int, size: int, channels: int, seed: int = 0):
    """Digits (8x8x1, scaled to [0, 1]) when they fit the asked shape, else uniform noise images."""
    rng = np.random.default_rng(seed)
    if size == 8 and channels == 1:
        data = load_digits()
        images = (data.images / 16.0).astype(np.float32)[..., None]
        return images[:count], data.target[:count], images[data.target == 0][:2]
    images = rng.uniform(0.0, 1.0, size=(count + 2, size, size, channels)).astype(np.float32)
    return images[:count], rng.integers(0, 10, size=count), images[count:]


def make_model(size: int, channels: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((size, size, channels)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def measure(method: str, images, labels, references, model, repeats: int, log_dir: str):
    references = references if method == "ig2" else None
    options = {"value_range": (0.0, 1.0)} if method == "ig2" else {}
    callback = AttributionCallback(method, (images, labels), references=references, output_dir=log_dir,
                                   max_outputs=len(images), steps=STEPS[method], **options)
    callback.set_model(model)
    callback.on_train_begin()
    explainer = callback.explainer
    arguments = {"targets": callback.targets}
    if references is not None:
        arguments["references"] = callback.references

    def direct():
        explainer.explain(callback.images, **arguments)

    epoch = [0]
    explanation = callback.explain()

    def logged():
        callback.on_epoch_end(epoch[0])
        epoch[0] += 1

    def logging_only():
        callback.log_explanation(explanation, epoch[0])
        epoch[0] += 1

    direct(), logged(), logging_only()  # warm-up: tracing, first writes
    times = {run: [] for run in (direct, logged, logging_only)}
    for _ in range(repeats):
        for run, elapsed in times.items():
            start = time.perf_counter()
            run()
            elapsed.append(time.perf_counter() - start)
    callback.on_train_end()
    return [statistics.median(elapsed) for elapsed in times.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ig2", "ig", "guided_ig"], choices=sorted(STEPS))
    parser.add_argument("--images", type=int, default=defaults.CALLBACK_INPUTS)
    parser.add_argument("--size", type=int, default=8, help="image height and width (8: scikit-learn digits)")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--repeats", type=int, default=9)
    arguments = parser.parse_args()

    images, labels, references = make_data(arguments.images, arguments.size, arguments.channels)
    model = make_model(arguments.size, arguments.channels)
    shape = f"{arguments.images}x{arguments.size}x{arguments.size}x{arguments.channels}"
    print(f"images {shape}, median of {arguments.repeats} alternating calls after one warm-up each")
    print(f"{'method':<10} {'steps':>5} {'direct explain (s)':>18} {'callback epoch (s)':>18} {'ratio':>6} "
          f"{'logging only (s)':>16} {'1 + logging/direct':>18}")
    with tempfile.TemporaryDirectory() as log_dir:
        for method in arguments.methods:
            direct, logged, logging = measure(method, images, labels, references, model, arguments.repeats, log_dir)
            print(f"{method:<10} {STEPS[method]:>5} {direct:>18.4f} {logged:>18.4f} {logged / direct:>6.3f} "
                  f"{logging:>16.4f} {1.0 + logging / direct:>18.3f}")


if __name__ == "__main__":
    main()
