"""What logging IG² attributions from the callback costs on a realistic model, and whether it slows training.

A MobileNetV2 (``keras.applications``, ``weights=None``, 2.3 M parameters) is trained on scikit-learn's
digits, upsampled to 64x64x3, 1,000 images per epoch (seeded; the trained weights are cached under
``benchmarks/.cache/``). The script then measures:

1. the training epoch without logging (median of a few epochs after a warm-up epoch);
2. ``IG2Callback.on_epoch_end`` (explain, pictures, PNGs, summary writes) at the callback's defaults
   and at the former defaults (201 steps, 8 inputs, 4 references) and lighter settings; the first
   call (which traces the explainer) is reported apart from the median of the later calls;
3. whether epochs after logging are slower than before: epochs timed without the callback, then
   with it (the callback's own time left out), then without it again, with each epoch's process CPU
   time (all threads; wall time well above it means the process waited, e.g. for a busy machine),
   the process's threads and resident memory, how often Keras traced the training step and the
   explainer's tracing count.

TensorFlow runs on ``TF_IG2_BENCH_THREADS`` threads (default 1) for both intra- and inter-op
parallelism, so runs on a shared machine stay comparable.

Usage::

    PYTHONPATH=. python benchmarks/callback_cost.py           # about 15 minutes on one thread
    PYTHONPATH=. python benchmarks/callback_cost.py --quick   # about a minute: fewer settings and repeats
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

THREADS = int(os.environ.get("TF_IG2_BENCH_THREADS", "1"))
tf.config.threading.set_intra_op_parallelism_threads(THREADS)
tf.config.threading.set_inter_op_parallelism_threads(THREADS)

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from tf_ig2 import CompletenessWarning, defaults  # noqa: E402
from tf_ig2.callbacks import IG2Callback  # noqa: E402

SIZE = 64
EPOCH_IMAGES = 1000
BATCH_SIZE = 32
SEED = 0
TRACES: Optional["TraceCounter"] = None
CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")

#: (steps, inputs, references, freq); None: the callback's default.
SETTINGS: List[Tuple[Optional[int], Optional[int], Optional[int], int]] = [
    (None, None, None, 1),
    (201, 8, 4, 1),
    (64, 8, 4, 1),
    (64, 4, 2, 1),
    (32, 4, 2, 1),
    (32, 4, 1, 1),
    (16, 4, 2, 1),
    (64, 4, 2, 2),
]
QUICK_SETTINGS = [(None, None, None, 1), (201, 8, 4, 1), (32, 4, 2, 1)]


def digits64(seed: int = SEED) -> Tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits, bilinearly upsampled to 64x64, grey repeated to RGB, in [0, 1], shuffled."""
    import cv2

    data = load_digits()
    images = np.stack([cv2.resize((image / 16.0).astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
                       for image in data.images])
    images = np.clip(np.repeat(images[..., None], 3, axis=-1), 0.0, 1.0)
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order], data.target[order].astype(np.int64)


def mobilenet() -> keras.Model:
    keras.utils.set_random_seed(SEED)
    model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), weights=None, classes=10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def trained_model(images: np.ndarray, labels: np.ndarray, epochs: int) -> keras.Model:
    """The model after ``epochs`` epochs of 1,000 images, from the cache when it is there."""
    os.makedirs(CACHE, exist_ok=True)
    ignore = os.path.join(CACHE, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w") as handle:
            handle.write("*\n")
    path = os.path.join(CACHE, f"mobilenetv2_digits{SIZE}_seed{SEED}_epochs{epochs}.weights.h5")
    model = mobilenet()
    if os.path.exists(path):
        model.load_weights(path)
    else:
        model.fit(images[:EPOCH_IMAGES], labels[:EPOCH_IMAGES], epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
        model.save_weights(path)
    return model


class TraceCounter:
    """Counts how often Keras traces the model's training step: a retrace shows up here."""

    def __init__(self, model: keras.Model):
        self.count = 0
        original = model.train_step

        def train_step(data):
            self.count += 1  # runs only while tf.function traces the step
            return original(data)

        model.train_step = train_step
        model.train_function = None  # rebuilt around the counting step


def process_state() -> Dict[str, float]:
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1
    rss = 0.0
    try:
        with open("/proc/self/statm") as handle:
            rss = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"threads": threads, "rss_mib": rss}


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch's training steps; put it first so that later callbacks are not counted."""

    def __init__(self, watched: Optional[IG2Callback] = None):
        super().__init__()
        self.watched = watched
        self.rows: List[Dict[str, float]] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._cpu = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        row = {"epoch_s": elapsed, "cpu_s": time.process_time() - self._cpu, **process_state()}
        row["train_traces"] = TRACES.count if TRACES is not None else -1
        if self.watched is not None and self.watched.explainer is not None:
            row["explainer_traces"] = self.watched.explainer.tracing_count
        self.rows.append(row)


class CallbackTimer(keras.callbacks.Callback):
    """Times another callback's on_epoch_end."""

    def __init__(self, watched: keras.callbacks.Callback):
        super().__init__()
        self.watched, self.seconds = watched, []

    def set_model(self, model):
        super().set_model(model)
        self.watched.set_model(model)

    def on_train_begin(self, logs=None):
        self.watched.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        self.watched.on_epoch_end(epoch, logs)
        self.seconds.append(time.perf_counter() - start)

    def on_train_end(self, logs=None):
        self.watched.on_train_end(logs)


def other_class_references(images: np.ndarray, labels: np.ndarray, wanted: np.ndarray, count: int) -> np.ndarray:
    """``(N, R, 64, 64, 3)``: for each wanted label, ``count`` images of other classes."""
    rng = np.random.default_rng(SEED + 1)
    return np.stack([images[rng.choice(np.flatnonzero(labels != label), count, replace=False)] for label in wanted])


def make_callback(validation: Tuple[np.ndarray, np.ndarray], pool: Tuple[np.ndarray, np.ndarray], log_dir: str,
                  steps: Optional[int], inputs: Optional[int], references: Optional[int], freq: int,
                  name: str) -> IG2Callback:
    x_val, y_val = validation
    shown = inputs or len(x_val)
    options = {"value_range": (0.0, 1.0), "name": name, "freq": freq}
    if steps is not None:
        options["steps"] = steps
    if inputs is not None:
        options["max_outputs"] = inputs
    if references is not None:
        options["max_references"] = references
    pool_references = other_class_references(pool[0], pool[1], y_val[:shown], 8)
    return IG2Callback((x_val[:shown], y_val[:shown]), pool_references, output_dir=log_dir, **options)


def time_fit(model: keras.Model, images: np.ndarray, labels: np.ndarray, epochs: int,
             callbacks: Sequence[keras.callbacks.Callback] = (), watched: Optional[IG2Callback] = None
             ) -> List[Dict[str, float]]:
    timer = EpochTimer(watched)
    model.fit(images[:EPOCH_IMAGES], labels[:EPOCH_IMAGES], epochs=epochs, batch_size=BATCH_SIZE, verbose=0,
              shuffle=False, callbacks=[timer, *callbacks])
    return timer.rows


def measure_setting(model, validation, pool, log_dir, setting, repeats: int) -> Dict[str, float]:
    steps, inputs, references, freq = setting
    name = f"s{steps}_n{inputs}_r{references}_f{freq}".replace("None", "d")
    callback = make_callback(validation, pool, log_dir, steps, inputs, references, freq, name)
    callback.set_model(model)
    callback.on_train_begin()
    start = time.perf_counter()
    callback.on_epoch_end(0)
    first = time.perf_counter() - start
    seconds = []
    for epoch in range(1, repeats + 1):
        start = time.perf_counter()
        callback.on_epoch_end(epoch * freq)
        seconds.append(time.perf_counter() - start)
    callback.on_train_end()
    explainer = callback.explainer
    return {"steps": explainer.steps, "inputs": len(callback.inputs),
            "references": int(np.shape(callback.references)[-4]) if np.ndim(callback.references) == 5
            else int(np.shape(callback.references)[0]),
            "freq": freq, "first": first, "median": statistics.median(seconds)}


def slowdown(model, images, labels, validation, pool, log_dir, before: int, after: int) -> List[Dict[str, float]]:
    """Epochs without the callback, then with it (the callback's time left out)."""
    rows = [dict(row, phase="before") for row in time_fit(model, images, labels, before)]
    callback = make_callback(validation, pool, log_dir, None, None, None, 1, "slowdown")
    timed = CallbackTimer(callback)
    logged = time_fit(model, images, labels, after, [timed], watched=callback)
    for row, seconds in zip(logged, timed.seconds):
        rows.append(dict(row, phase="logging", callback_s=seconds))
    rows.extend(dict(row, phase="after") for row in time_fit(model, images, labels, before))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three settings, fewer repeats (about a minute)")
    parser.add_argument("--repeats", type=int, default=None, help="timed callback calls per setting")
    parser.add_argument("--train-epochs", type=int, default=None, help="epochs of the cached model")
    arguments = parser.parse_args()
    quick = arguments.quick
    # A short-trained MobileNetV2 (batch-norm momentum 0.999) scores every input alike in inference
    # mode, so the relative completeness error is huge; it is the cost, not the picture, measured here.
    warnings.simplefilter("ignore", CompletenessWarning)
    repeats = arguments.repeats or (1 if quick else 3)
    train_epochs = arguments.train_epochs or (1 if quick else 3)
    images, labels = digits64()
    validation = (images[EPOCH_IMAGES:EPOCH_IMAGES + 16], labels[EPOCH_IMAGES:EPOCH_IMAGES + 16])
    pool = (images[:EPOCH_IMAGES], labels[:EPOCH_IMAGES])
    model = trained_model(images, labels, train_epochs)
    global TRACES
    TRACES = TraceCounter(model)
    print(f"MobileNetV2 {SIZE}x{SIZE}x3 ({model.count_params():,} parameters), {EPOCH_IMAGES} images per epoch, "
          f"batch {BATCH_SIZE}, {THREADS} thread(s); callback defaults: steps {defaults.CALLBACK_STEPS}, "
          f"inputs {defaults.CALLBACK_INPUTS}, references {defaults.CALLBACK_REFERENCES}\n")

    epochs = time_fit(model, images, labels, 2 if quick else 4)[1:]  # the first epoch traces
    epoch = statistics.median(row["epoch_s"] for row in epochs)
    with tempfile.TemporaryDirectory() as log_dir:
        results = [measure_setting(model, validation, pool, log_dir, setting, repeats)
                   for setting in (QUICK_SETTINGS if quick else SETTINGS)]
        print(f"Training epoch without logging: {epoch:.2f} s (median of {len(epochs)})\n")
        print("| steps | inputs | references | freq | first call (traces) | on_epoch_end | per epoch (/ freq) "
              "| share of an epoch |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for index, row in enumerate(results):
            per_epoch = row["median"] / row["freq"]
            marker = " (defaults)" if index == 0 else ""
            print(f"| {row['steps']}{marker} | {row['inputs']} | {row['references']} | {row['freq']} | "
                  f"{row['first']:.2f} s | {row['median']:.2f} s | {per_epoch:.2f} s | {per_epoch / epoch:.2f} |")

        before, after = (2, 2) if quick else (4, 4)
        rows = slowdown(model, images, labels, validation, pool, log_dir, before, after)
    print("\nEpochs before, while and after logging (the callback's own time left out):\n")
    print("| phase | epoch | training (s) | its CPU time (s) | callback (s) | threads | RSS (MiB) | train traces "
          "| explainer traces |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for index, row in enumerate(rows):
        callback_s = f"{row['callback_s']:.2f}" if "callback_s" in row else ""
        print(f"| {row['phase']} | {index} | {row['epoch_s']:.2f} | {row['cpu_s']:.2f} | "
              f"{callback_s} | {row['threads']} | "
              f"{row['rss_mib']:.0f} | {row['train_traces']} | {row.get('explainer_traces', '')} |")


if __name__ == "__main__":
    main()
