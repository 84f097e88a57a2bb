"""The three CNNs of the realistic-CNN benchmarks, and how their explanations are run and scored.

Shared by ``realistic_cnns.py`` and ``paired_defaults.py``: scikit-learn's digits upsampled to
64x64x3 (values in [0, 1]); keras.applications' MobileNetV2 (``weights=None``), a small
ResNet-style network (basic blocks with BatchNorm) and a small ConvNeXt-style network (depthwise
7x7, LayerNorm, GELU, inverted bottleneck), trained once and cached on disk
(``benchmarks/.cache/realistic_cnns``); an explainer timed after a warm-up call; deletion,
insertion and DiffID per input with ``tf_ig2.metrics``. ``TF_IG2_BENCH_THREADS`` pins TensorFlow's
threads (set before any model is built, on import).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Optional, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_THREADS = os.environ.get("TF_IG2_BENCH_THREADS")
if _THREADS:
    tf.config.threading.set_intra_op_parallelism_threads(int(_THREADS))
    tf.config.threading.set_inter_op_parallelism_threads(int(_THREADS))

import keras  # noqa: E402

import tf_ig2  # noqa: E402
from tf_ig2 import metrics  # noqa: E402

tf.get_logger().setLevel("ERROR")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(ROOT, "benchmarks", ".cache", "realistic_cnns")
SIZE = 64
#: Bumped whenever the data, the architectures or the training change, so stale caches are not read.
CACHE_VERSION = 1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- data -------------------------------------------------------------------------------------------

def load_data(test_size: int = 400) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits upsampled (bilinear) to (N, 64, 64, 3) float32 in [0, 1]; a fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    images = tf.image.resize(images, (SIZE, SIZE), method="bilinear").numpy()
    images = np.clip(np.repeat(images, 3, axis=-1), 0.0, 1.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=test_size, random_state=0,
                                                        stratify=labels)
    return train_x, train_y, test_x, test_y


# -- models ----------------------------------------------------------------------------------------

def mobilenet_v2(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), weights=None, classes=10)
    for layer in model.layers:  # keras' 0.999 averages too slowly for a few epochs on 1397 images
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return model


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def small_resnet(seed: int) -> keras.Model:
    """ResNet-style: 3x3 stem (stride 2), three stages of two basic blocks (16, 32, 64), GAP, softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in (1, 2):
            x = _basic_block(x, filters, 2 if (block == 1 and stage > 1) else 1, f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="small_resnet")


def _convnext_block(x, dim: int, name: str):
    y = keras.layers.DepthwiseConv2D(7, padding="same", name=f"{name}_dwconv")(x)
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln")(y)
    y = keras.layers.Dense(4 * dim, name=f"{name}_pw1")(y)
    y = keras.layers.Activation("gelu", name=f"{name}_gelu")(y)
    y = keras.layers.Dense(dim, name=f"{name}_pw2")(y)
    return keras.layers.Add(name=f"{name}_out")([x, y])


def small_convnext(seed: int) -> keras.Model:
    """ConvNeXt-style: 4x4 patchify stem, stages (32, 64, 128) with depths (1, 1, 2), LayerNorm, GELU."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(32, 4, strides=4, name="stem_conv")(inputs)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="stem_ln")(x)
    for stage, (dim, depth) in enumerate(((32, 1), (64, 1), (128, 2)), start=1):
        if stage > 1:
            x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"down{stage}_ln")(x)
            x = keras.layers.Conv2D(dim, 2, strides=2, name=f"down{stage}_conv")(x)
        for block in range(1, depth + 1):
            x = _convnext_block(x, dim, f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="head_ln")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="small_convnext")


#: name -> (builder, full epochs, learning rate, earlier representation layers for the ablation).
MODELS: Dict[str, Tuple[Callable[[int], keras.Model], int, float, Tuple[str, ...]]] = {
    "MobileNetV2": (mobilenet_v2, 12, 1e-3, ("block_12_add", "block_5_add")),
    "ResNet-style": (small_resnet, 10, 2e-3, ("stage3_block1_out", "stage2_block2_out")),
    "ConvNeXt-style": (small_convnext, 12, 1e-3, ("stage3_block1_out", "stage2_block1_out")),
}


def precise_batchnorm(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> int:
    """Recomputes every BatchNorm's moving statistics as the average over the training batches.

    "Precise BN" (Wu & Johnson, 2021): forward passes in training mode with the momentum of batch
    ``i`` set to ``i / (i + 1)``, so the moving mean and variance end as the plain average of the
    per-batch statistics. Returns the number of BatchNorm layers.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    for index, start in enumerate(range(0, len(images) - batch_size + 1, batch_size)):
        for layer in layers:
            layer.momentum = index / (index + 1.0)
        model(images[start:start + batch_size], training=True)
    for layer, momentum in zip(layers, saved):
        layer.momentum = momentum
    return len(layers)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=128, verbose=0), axis=1) == y))


def trained_model(name: str, args, data, seed: int = 0) -> Tuple[keras.Model, Dict[str, Any]]:
    """The cached model, or a freshly trained (and then cached) one, with its training record."""
    builder, epochs, learning_rate, _ = MODELS[name]
    train_x, train_y, test_x, test_y = data
    subset = args.train_subset or len(train_x)
    epochs = args.epochs or epochs
    tag = f"{name.lower().replace('-', '_')}_v{CACHE_VERSION}_s{seed}_e{epochs}_n{subset}"
    path = os.path.join(args.cache_dir, tag + ".keras")
    record_path = os.path.join(args.cache_dir, tag + ".json")
    if os.path.exists(path) and os.path.exists(record_path):
        model = keras.saving.load_model(path, compile=False)
        with open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
        record["cached"] = True
        log(f"{name}: loaded {os.path.relpath(path, ROOT)}")
        return model, record
    log(f"{name}: training {epochs} epoch(s) on {subset} images")
    model = builder(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_x))[:subset]
    model.fit(train_x[order], train_y[order], epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    before = accuracy(model, test_x, test_y)
    layers = precise_batchnorm(model, train_x[order])
    after = accuracy(model, test_x, test_y)
    seconds = time.perf_counter() - start
    record = {"epochs": epochs, "train_images": int(subset), "learning_rate": learning_rate,
              "params": int(model.count_params()), "batchnorm_layers": layers,
              "test_accuracy_before_bn_recompute": before, "test_accuracy": after,
              "train_accuracy": accuracy(model, train_x[order], train_y[order]), "train_seconds": seconds,
              "cached": False}
    os.makedirs(args.cache_dir, exist_ok=True)
    model.save(path)
    with open(record_path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    log(f"{name}: test accuracy {before:.3f} -> {after:.3f} after recomputing {layers} BatchNorm layers "
        f"({seconds:.0f} s)")
    return model, record


def cached_or_quick(name: str, args, data) -> Tuple[keras.Model, Dict[str, Any]]:
    """``--quick``: the full run's cached model when there is one, else one epoch on 256 images."""
    if args.quick and args.epochs is None and args.train_subset is None:
        full = argparse.Namespace(**dict(vars(args), epochs=None, train_subset=None))
        tag_epochs = MODELS[name][1]
        tag = f"{name.lower().replace('-', '_')}_v{CACHE_VERSION}_s{args.seed}_e{tag_epochs}_n{len(data[0])}"
        if os.path.exists(os.path.join(args.cache_dir, tag + ".keras")):
            return trained_model(name, full, data, args.seed)
        quick = argparse.Namespace(**dict(vars(args), epochs=1, train_subset=256))
        return trained_model(name, quick, data, args.seed)
    return trained_model(name, args, data, args.seed)


# -- running and scoring -----------------------------------------------------------------------------

def timed_explain(make: Callable[[], Any], inputs: np.ndarray, references: Any, targets: np.ndarray,
                  warm_up: bool = True, repeats: int = 1,
                  keyword: Optional[str] = None) -> Tuple[tf_ig2.Explanation, float]:
    """Builds the explainer, warms it up on the first input (tracing), then times all inputs.

    With ``repeats`` > 1 the call is repeated and the fastest time kept (the machine is shared).
    The references go second, by position, or with ``keyword`` (a method's registered
    ``reference_keyword``) by that keyword, ``explain(inputs, **{keyword: references}, targets=...)``;
    with a keyword, ``references=None`` passes none (the method's default).
    """
    explainer = make()
    per_input = isinstance(references, np.ndarray) and references.ndim == inputs.ndim + 1

    def call(count: int) -> tf_ig2.Explanation:
        given = references[:count] if per_input else references
        if keyword is None:
            return explainer.explain(inputs[:count], given, targets[:count])
        return explainer.explain(inputs[:count], **({} if given is None else {keyword: given}),
                                 targets=targets[:count])

    if warm_up:
        call(1)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        explanation = call(len(inputs))
        best = min(best, time.perf_counter() - start)
    return explanation, best / len(inputs)


def faithfulness(model, inputs, attributions, targets, fills: Dict[str, Tuple[str, Any]], args) -> Dict[str, Any]:
    """Per-input deletion / insertion / DiffID areas for each fill."""
    scores = {}
    for label, (fill, values) in fills.items():
        options = dict(fill=fill, fill_values=values, steps=args.curve_steps, sigma=args.blur_sigma, batch_size=512)
        deletion = metrics.area_under_curve(metrics.deletion_curve(model, inputs, attributions, targets, **options))
        insertion = metrics.area_under_curve(metrics.insertion_curve(model, inputs, attributions, targets, **options))
        scores[label] = {"deletion": deletion, "insertion": insertion, "diffid": insertion - deletion}
    return scores


def summarise(model, inputs, targets, fills, args, explanation: Optional[tf_ig2.Explanation], seconds: float,
              attributions: Optional[np.ndarray] = None, relative: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Per input: the relative completeness error, and the deletion / insertion / DiffID areas per fill.

    ``attributions`` and ``relative`` replace the explanation's (for a post-hoc variant of it).
    """
    attributions = explanation.attributions if attributions is None else attributions
    if relative is None:
        relative = metrics.completeness_error(explanation, relative=True)
    return {"relative": np.asarray(relative, np.float64), "seconds": seconds,
            "scores": faithfulness(model, inputs, attributions, targets, fills, args)}


#: The fills of :func:`mean_and_blur_fills`, in the order the tables show them.
FILL_LABELS = ("mean", "blur")


def mean_and_blur_fills(train_x: np.ndarray) -> Dict[str, Tuple[str, Any]]:
    """The two fills of the deletion and insertion curves: the training-mean image, and the input
    blurred (with ``--blur-sigma``)."""
    return {"mean": ("mean", train_x.mean(axis=0)), "blur": ("blur", None)}
