"""Attribution quality of IG² against other gradient methods: faithfulness and ground truth.

Three studies, all seeded and self-contained (no downloads):

1. **Digits.** A small CNN trained here on scikit-learn's 8x8 digits (values in [0, 1]) is
   explained on held-out inputs by every method of the registry (``tf_ig2.methods.METHODS``), each
   built and called through its entry: IG² (references drawn from other classes, as in Zhuo & Ge,
   TPAMI 2024), straight-line IG with zero, blurred and reference baselines (the last averaged over
   the same references as IG²), Expected Gradients with those references as its pool, Guided IG
   (zero baseline), Blur IG, gradient x input (zero baseline) and the plain gradient; beside them
   SmoothGrad, tf-explain's shipped ``IntegratedGradients`` (zero baseline; its output lacks the
   ``x - x'`` factor and explains the softmax probability) and a random ranking. Deletion,
   insertion and DiffID (``tf_ig2.metrics``, logit scores, one pixel per curve step) are reported
   for four fills (zero, training mean, Gaussian blur, an other-class reference), as mean and
   standard deviation over seeds; a seed fixes the CNN's training and the reference draw. Each
   method's time per input is measured after one warm-up call (tracing excluded).
2. **Tabular ground truth** in the manner of XAI-Bench (Liu et al., 2021): Gaussian features with
   pairwise correlation rho, ``y = sin x0 + |x1| + x2^2 + exp(-x3) + 0 x4 + noise``, an MLP
   regressor trained here. Each method is scored by the Pearson correlation, per input over the
   five features, between its attributions and the true contributions relative to the references,
   ``mean_r [g_i(x_i) - g_i(x_r,i)]``, and to the zero baseline, ``g_i(x_i) - g_i(0)``; and by
   DiffID with the training-mean fill. The registered methods run here too, but Blur IG (images only).
3. **Ablations of IG²** on the digits (first seed): steps, step size, the number and choice of
   references, and the representation layer.

Run: ``PYTHONPATH=. python benchmarks/quality.py`` (a few minutes on 2 CPU cores) or ``--quick``.
The tables are printed as Markdown and the images go to ``--image-dir`` (``docs/images`` for a full run),
both made by ``quality_report.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_ig2  # noqa: E402
from tf_ig2 import metrics  # noqa: E402
from tf_ig2.methods import METHODS, get_method  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from quality_report import (  # noqa: E402
    ablation_table,
    diffid_table,
    digits_tables,
    paired_table,
    tabular_table,
    write_images,
)

tf.get_logger().setLevel("ERROR")  # new models per seed retrace by design; keep the output readable

Attributions = Dict[str, np.ndarray]
IG2_DIGITS = "IG² (other-class refs)"
#: IG²'s path in these tables: the published one (constant steps), as when they were first measured.
PATH = "constant"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- data and models ----------------------------------------------------------------------------

def load_digits_split(test_size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as (N, 8, 8, 1) float32 in [0, 1]; a fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=test_size, random_state=0,
                                                        stratify=labels)
    return train_x, train_y, test_x, test_y


def digits_cnn(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    hidden = keras.layers.Conv2D(32, 3, activation="relu", name="conv2")(hidden)
    hidden = keras.layers.Flatten(name="flatten")(hidden)
    hidden = keras.layers.Dense(64, activation="relu", name="penultimate")(hidden)
    logits = keras.layers.Dense(10, name="logits")(hidden)
    outputs = keras.layers.Softmax(name="softmax")(logits)
    return keras.Model(inputs, outputs)


def train_classifier(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)


def logits_model(model: keras.Model) -> keras.Model:
    return keras.Model(model.inputs, model.get_layer("logits").output)


def draw_references(rng: np.random.Generator, train_x: np.ndarray, train_y: np.ndarray, targets: np.ndarray,
                    count: int, choice: str, inputs: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, R, *S) references per input: ``random`` (any class), ``other`` or ``nearest`` other-class."""
    references = np.empty((len(targets), count) + train_x.shape[1:], np.float32)
    flat_train = train_x.reshape(len(train_x), -1)
    for n, target in enumerate(targets):
        if choice == "random":
            pool = np.arange(len(train_x))
        else:
            pool = np.flatnonzero(train_y != target)
        if choice == "nearest":
            distances = np.linalg.norm(flat_train[pool] - inputs[n].reshape(1, -1), axis=1)
            chosen = pool[np.argsort(distances, kind="stable")[:count]]
        else:
            chosen = rng.choice(pool, size=count, replace=False)
        references[n] = train_x[chosen]
    return references


# -- methods outside the registry -----------------------------------------------------------------

def make_gradient_fn(model: keras.Model) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Compiled ``(x (P, *S), targets (P,)) -> grad_x f_target(x)`` of the model's logits."""
    spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32)])
    def gradient(points, targets):
        with tf.GradientTape() as tape:
            tape.watch(points)
            outputs = model(points, training=False)
            scores = tf.gather(outputs, targets, axis=1, batch_dims=1)
        return tape.gradient(scores, points)

    def run(points: np.ndarray, targets: np.ndarray, batch: int = 4096) -> np.ndarray:
        parts = [gradient(tf.constant(points[start:start + batch]), tf.constant(targets[start:start + batch],
                                                                                   tf.int32)).numpy()
                 for start in range(0, len(points), batch)]
        return np.concatenate(parts)

    return run


def smoothgrad(gradient_fn, inputs: np.ndarray, targets: np.ndarray, rng: np.random.Generator,
               samples: int, noise: float) -> np.ndarray:
    """Mean gradient over ``samples`` Gaussian-noised copies (Smilkov et al., 2017)."""
    noisy = inputs[:, None] + rng.normal(0.0, noise, size=(len(inputs), samples) + inputs.shape[1:])
    noisy = noisy.astype(np.float32).reshape((-1,) + inputs.shape[1:])
    gradients = gradient_fn(noisy, np.repeat(targets, samples))
    return gradients.reshape((len(inputs), samples) + inputs.shape[1:]).mean(axis=1).astype(np.float32)


def tf_explain_ig(model: keras.Model, inputs: np.ndarray, targets: np.ndarray, steps: int) -> np.ndarray:
    """tf-explain 0.3's IntegratedGradients as shipped (zero baseline, softmax output, no x - x')."""
    from tf_explain.core.integrated_gradients import IntegratedGradients

    attributions = np.zeros_like(inputs)
    for class_index in np.unique(targets):
        rows = np.flatnonzero(targets == class_index)
        interpolated = IntegratedGradients.generate_interpolations(inputs[rows], steps)
        values = IntegratedGradients.get_integrated_gradients(interpolated, model, int(class_index), steps)
        attributions[rows] = np.asarray(values, np.float32)
    return attributions


def timed(function: Callable[[], Any]) -> Tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


# -- the registered methods ------------------------------------------------------------------------

#: The reference set of a run that passes none: the method's own default (the zero baseline of
#: gradient × input; none for the gradient and Blur IG, whose results depend on the input alone).
DEFAULT = "default"
#: Registered methods that explain images only, left out of the tabular study.
IMAGE_ONLY = ("blur_ig",)
#: One registered run: (row label, registry name, options of ``build``, name of its reference set).
Run = Tuple[str, str, Dict[str, Any], str]


def registered_runs(configured: List[Run], skip: Sequence[str] = ()) -> List[Run]:
    """``configured``, then every other registered method (but ``skip``) at its defaults.

    A method not configured here gets the study's references if it needs references, else its own
    default, so that a newly registered method shows up in the tables without a change here.
    """
    named = {name for _, name, _, _ in configured}
    others = [(entry.title or name, name, {}, "references" if entry.references_required else DEFAULT)
              for name, entry in METHODS.items() if name not in named and name not in skip]
    return configured + others


def eg_options(args) -> Dict[str, Any]:
    """Expected Gradients' options: its own number of samples unless ``--eg-samples`` is given."""
    options: Dict[str, Any] = {"batch_size": args.batch_size}
    if args.eg_samples is not None:
        options["samples"] = args.eg_samples
    return options


def timed_explain(name: str, explainer: Any, inputs: np.ndarray, references: Any,
                  targets: np.ndarray) -> Tuple[tf_ig2.Explanation, float]:
    """Explains the first input once (tracing), then all inputs: the explanation and the seconds per input.

    ``references`` go by the method's registered keyword (``references`` or ``baselines``); ``None``
    passes none (the method's default). Per-input references ``(N, R, *S)`` are cut to the first input
    for the warm-up.
    """
    keyword = get_method(name).reference_keyword

    def given(count: int) -> Dict[str, Any]:
        if references is None:
            return {}
        per_input = isinstance(references, np.ndarray) and references.ndim == inputs.ndim + 1
        return {keyword: references[:count] if per_input else references}

    with warnings.catch_warnings():  # a diagnostic of one input says little; the timed call gives them
        warnings.simplefilter("ignore")
        explainer.explain(inputs[:1], targets=targets[:1], **given(1))
    start = time.perf_counter()
    explanation = explainer.explain(inputs, targets=targets, **given(len(inputs)))
    return explanation, (time.perf_counter() - start) / len(inputs)


def median_relative_delta(explanation: tf_ig2.Explanation) -> float:
    """Median relative completeness error over the inputs; NaN where completeness does not apply (all NaN)."""
    values = metrics.completeness_error(explanation, relative=True)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else math.nan


def run_registered(runs: List[Run], model: keras.Model, inputs: np.ndarray, targets: np.ndarray,
                   reference_sets: Dict[str, Any]) -> Tuple[Attributions, Dict[str, Any], Dict[str, Any]]:
    """Every run built and explained through its registry entry.

    Returns:
        The attributions and the diagnostics (``seconds_per_input``, ``relative_delta``) per label,
        and the explanations per label.
    """
    attributions: Attributions = {}
    diagnostics: Dict[str, Any] = {}
    explanations: Dict[str, Any] = {}
    for label, name, options, reference_set in runs:
        explainer = get_method(name).build(model, **options)
        explanation, seconds = timed_explain(name, explainer, inputs, reference_sets[reference_set], targets)
        attributions[label], explanations[label] = explanation.attributions, explanation
        diagnostics[label] = {"seconds_per_input": seconds, "relative_delta": median_relative_delta(explanation)}
    return attributions, diagnostics, explanations


# -- faithfulness -----------------------------------------------------------------------------------

def faithfulness(model, inputs, attributions, targets, fills: Dict[str, Tuple[str, Any]], steps: int, sigma: float,
                 keep_curves: bool = False) -> Dict[str, Any]:
    """Mean deletion / insertion / DiffID per fill (``{label: (fill, fill_values)}``), optionally the mean curves."""
    scores: Dict[str, Any] = {}
    for label, (fill, values) in fills.items():
        options = dict(fill=fill, fill_values=values, steps=steps, sigma=sigma, batch_size=8192)
        deletion = metrics.deletion_curve(model, inputs, attributions, targets, **options)
        insertion = metrics.insertion_curve(model, inputs, attributions, targets, **options)
        deletion_area, insertion_area = metrics.area_under_curve(deletion), metrics.area_under_curve(insertion)
        scores[label] = {"deletion": float(deletion_area.mean()), "insertion": float(insertion_area.mean()),
                         "diffid": float((insertion_area - deletion_area).mean())}
        if keep_curves:
            scores[label]["curves"] = (deletion.mean(axis=0), insertion.mean(axis=0))
    return scores


# -- study 1: digits --------------------------------------------------------------------------------

def digits_runs(args) -> List[Run]:
    """The registered methods of the digits study, with their options and reference sets."""
    ig = dict(steps=args.ig_steps)
    return registered_runs([
        (IG2_DIGITS, "ig2", dict(steps=args.ig2_steps, value_range=(0.0, 1.0), batch_size=args.batch_size,
                                 step_schedule=PATH),
         "references"),
        ("IG, zero baseline", "ig", ig, "zero"),
        ("IG, blurred baseline", "ig", ig, "blurred"),
        ("IG, reference baselines", "ig", ig, "references"),
        ("EG (other-class refs)", "eg", eg_options(args), "references"),
        ("Guided IG, zero baseline", "guided_ig", dict(steps=args.guided_steps), "zero"),
        (f"Blur IG (max σ = {args.blur_ig_max_sigma:g})", "blur_ig", dict(max_sigma=args.blur_ig_max_sigma),
         DEFAULT),
        ("gradient × input", "gradient_input", {}, DEFAULT),
        ("gradient", "gradient", {}, DEFAULT),
    ])


def digits_methods(args, model, inputs, targets, references, rng) -> Tuple[Attributions, Dict, np.ndarray]:
    """Every method's (N, 8, 8, 1) attributions, diagnostics (seconds per input, completeness) and IG²'s GradCF."""
    blurred = np.asarray(metrics.gaussian_blur(inputs, args.blur_sigma))
    reference_sets = {"references": references, "zero": 0.0, "blurred": blurred[:, None], DEFAULT: None}
    attributions, diagnostics, explanations = run_registered(digits_runs(args), model, inputs, targets,
                                                             reference_sets)
    gradcf = explanations[IG2_DIGITS].counterfactuals.mean(axis=1)
    gradient_fn = make_gradient_fn(logits_model(model))
    gradient_fn(inputs[:1], targets[:1])  # traced once: its input signature takes any batch
    # (label, run, warm-up): tf-explain's tf.function retraces per class and shape, so its warm-up is the full call.
    unregistered = [
        ("SmoothGrad", lambda: smoothgrad(gradient_fn, inputs, targets, rng, args.smoothgrad_samples,
                                          args.smoothgrad_noise), False),
        ("tf-explain IG (as shipped)", lambda: tf_explain_ig(model, inputs, targets, args.ig_steps), True),
        ("random ranking", lambda: rng.normal(size=inputs.shape).astype(np.float32), False),
    ]
    for label, run, warm_up in unregistered:
        if warm_up:
            run()
        values, seconds = timed(run)
        attributions[label] = np.asarray(values, np.float32)
        diagnostics[label] = {"seconds_per_input": seconds / len(inputs), "relative_delta": math.nan}
    for label, entry in diagnostics.items():
        log(f"    {label}: {1000 * entry['seconds_per_input']:.2f} ms per input")
    return attributions, diagnostics, gradcf


def digits_study(args, data) -> Dict[str, Any]:
    train_x, train_y, test_x, test_y = data
    train_mean = train_x.mean(axis=0)
    per_seed: List[Dict[str, Any]] = []
    keep: Dict[str, Any] = {}
    for seed in range(args.seeds):
        log(f"digits, seed {seed}: training")
        model = digits_cnn(seed)
        train_classifier(model, train_x, train_y, args.epochs)
        accuracy = float(np.mean(np.argmax(model.predict(test_x, verbose=0), axis=1) == test_y))
        inputs = test_x[:args.inputs]
        targets = np.argmax(model.predict(inputs, verbose=0), axis=1)  # the predicted class
        rng = np.random.default_rng(1000 + seed)
        references = draw_references(rng, train_x, train_y, targets, args.references, "other")
        attributions, diagnostics, gradcf = digits_methods(args, model, inputs, targets, references, rng)
        fill_values = {"zero": ("zero", None), "mean": ("mean", train_mean), "blur": ("blur", None),
                       "reference": ("reference", references[:, 0]), "GradCF": ("reference", gradcf)}
        scores = {name: faithfulness(model, inputs, values, targets, fill_values, args.curve_steps,
                                     args.blur_sigma, keep_curves=seed == 0)
                  for name, values in attributions.items()}
        per_seed.append({"accuracy": accuracy, "scores": scores, "diagnostics": diagnostics})
        if seed == 0:
            keep = {"model": model, "inputs": inputs, "targets": targets, "references": references,
                    "attributions": attributions, "fill_values": fill_values}
        log(f"  test accuracy {accuracy:.3f}")
    return {"per_seed": per_seed, "seed0": keep}


# -- study 2: tabular ground truth --------------------------------------------------------------------

COMPONENTS = (np.sin, np.abs, np.square, lambda values: np.exp(-values), np.zeros_like)


def additive_parts(x: np.ndarray) -> np.ndarray:
    """(N, 5) per-feature terms g_i(x_i) of the XAI-Bench style target."""
    return np.stack([component(x[:, i]) for i, component in enumerate(COMPONENTS)], axis=1)


def tabular_mlp(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(64, activation="relu", name="dense1")(inputs)
    hidden = keras.layers.Dense(64, activation="relu", name="dense2")(hidden)
    outputs = keras.layers.Dense(1, name="regression")(hidden)
    return keras.Model(inputs, outputs)


def pearson_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per-row Pearson correlation; NaN where a row is constant."""
    a = first - first.mean(axis=1, keepdims=True)
    b = second - second.mean(axis=1, keepdims=True)
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


def tabular_runs(args) -> List[Run]:
    """The registered methods of the tabular study (not Blur IG: images only)."""
    return registered_runs([
        ("IG² (random refs)", "ig2", dict(steps=args.ig2_steps, step_schedule=PATH), "references"),
        ("IG, reference baselines", "ig", dict(steps=args.ig_steps), "references"),
        ("EG (random refs)", "eg", eg_options(args), "references"),
        ("IG, zero baseline", "ig", dict(steps=args.ig_steps), "zero"),
        ("Guided IG, zero baseline", "guided_ig", dict(steps=args.guided_steps), "zero"),
        ("gradient × input", "gradient_input", {}, DEFAULT),
        ("gradient", "gradient", {}, DEFAULT),
    ], skip=IMAGE_ONLY)


def tabular_data(args, rho: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated Gaussian features: (training inputs, training targets, explained inputs)."""
    covariance = (1.0 - rho) * np.eye(5) + rho * np.ones((5, 5))
    x = rng.multivariate_normal(np.zeros(5), covariance, size=args.tabular_train + args.inputs)
    x = x.astype(np.float32)
    y = additive_parts(x).sum(axis=1) + rng.normal(0.0, 0.05, size=len(x))
    return x[:args.tabular_train], y[:args.tabular_train].astype(np.float32), x[args.tabular_train:]


def tabular_study(args) -> Dict[str, Any]:
    """Per correlation and seed: the MLP's R² and every method's correlations with the truth and DiffID."""
    results: Dict[str, Any] = {}
    for rho in args.correlations:
        per_seed = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(2000 + seed)
            train_x, train_y, inputs = tabular_data(args, rho, rng)
            model = tabular_mlp(seed)
            model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
            model.fit(train_x, train_y, epochs=args.tabular_epochs, batch_size=64, verbose=0)
            predictions = model.predict(inputs, verbose=0)[:, 0]
            truth_y = additive_parts(inputs).sum(axis=1)
            r2 = 1.0 - np.mean((predictions - truth_y) ** 2) / np.var(truth_y)
            chosen = rng.integers(0, len(train_x), size=(len(inputs), args.references))
            references = train_x[chosen]  # (N, R, 5)
            truth_reference = (additive_parts(inputs)[:, None] - additive_parts(references.reshape(-1, 5)).reshape(
                references.shape)).mean(axis=1)
            truth_zero = additive_parts(inputs) - additive_parts(np.zeros_like(inputs))
            targets = np.zeros(len(inputs), np.int64)
            attributions, _, _ = run_registered(tabular_runs(args), model, inputs, targets,
                                                {"references": references, "zero": 0.0, DEFAULT: None})
            attributions["SmoothGrad"] = smoothgrad(make_gradient_fn(model), inputs, targets, rng,
                                                    args.smoothgrad_samples, 0.15)
            attributions["random ranking"] = rng.normal(size=inputs.shape).astype(np.float32)
            scores = {}
            for name, values in attributions.items():
                curves = faithfulness(model, inputs, values, 0, {"mean": ("mean", train_x.mean(axis=0))}, 5, 1.0)
                scores[name] = {"pearson_reference": float(np.nanmean(pearson_rows(values, truth_reference))),
                                "pearson_zero": float(np.nanmean(pearson_rows(values, truth_zero))),
                                "diffid": curves["mean"]["diffid"]}
            per_seed.append({"r2": float(r2), "scores": scores})
            log(f"tabular rho={rho}, seed {seed}: R² {r2:.3f}")
        results[rho] = per_seed
    return results


# -- study 3: ablations --------------------------------------------------------------------------------

def ablation_study(args, data, seed0: Dict[str, Any]) -> List[Tuple[str, str, Dict[str, Any], float, float]]:
    train_x, train_y, _, _ = data
    model, inputs, targets = seed0["model"], seed0["inputs"], seed0["targets"]
    fill_values = seed0["fill_values"]
    base = dict(steps=args.ig2_steps, step_size="auto", representation_layer=None)
    variants: List[Tuple[str, str, Dict[str, Any], Any]] = []
    for steps in args.ablation_steps:
        variants.append(("steps", f"k = {steps}", dict(base, steps=steps), None))
    variants.append(("step size", "auto (η = 2‖x − x_r‖ / k)", base, None))
    for size in args.ablation_step_sizes:
        variants.append(("step size", f"η = {size}", dict(base, step_size=size), None))
    for count in args.ablation_references:
        variants.append(("references", f"R = {count}, other-class", base, ("other", count)))
    for choice in ("random", "nearest"):
        variants.append(("references", f"R = {args.references}, {choice}", base, (choice, args.references)))
    for label, layer in (("conv1 output (earliest)", "conv1"), ("conv2 output (earlier)", "conv2"),
                         ("logits (\"output\")", "output")):
        variants.append(("representation", label, dict(base, representation_layer=layer), None))
    rows = []
    for group, label, options, reference_spec in variants:
        references = seed0["references"]
        if reference_spec is not None:
            choice, count = reference_spec
            rng = np.random.default_rng(3000 + count)
            references = draw_references(rng, train_x, train_y, targets, count, choice, inputs)
        explainer = tf_ig2.IG2(model, value_range=(0.0, 1.0), batch_size=args.batch_size,
                               **dict(dict(step_schedule=PATH), **options))
        explanation, seconds = timed(lambda: explainer.explain(inputs, references, targets))
        scores = faithfulness(model, inputs, explanation.attributions, targets, fill_values, args.curve_steps,
                              args.blur_sigma)
        delta = float(np.median(metrics.completeness_error(explanation, relative=True)))
        rows.append((group, label, scores, delta, seconds))
        log(f"  ablation {group} / {label}: {seconds:.1f} s")
    return rows


# -- main -----------------------------------------------------------------------------------------------

def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run of every part")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (training + reference draw), default 3")
    parser.add_argument("--inputs", type=int, default=200, help="held-out inputs explained, default 200")
    parser.add_argument("--references", type=int, default=5, help="references per input, default 5")
    parser.add_argument("--epochs", type=int, default=15, help="CNN training epochs, default 15")
    parser.add_argument("--ig2-steps", type=int, default=64, help="IG² GradPath steps, default 64")
    parser.add_argument("--ig-steps", type=int, default=64, help="IG quadrature points, default 64")
    parser.add_argument("--guided-steps", type=int, default=64, help="Guided IG steps, default 64")
    parser.add_argument("--curve-steps", type=int, default=64, help="deletion/insertion steps, default 64 (1 pixel)")
    parser.add_argument("--blur-sigma", type=float, default=1.0, help="blur baseline and fill sigma (pixels)")
    parser.add_argument("--blur-ig-max-sigma", type=float, default=8.0,
                        help="Blur IG's largest blur, in pixels (default 8, the width of a digit)")
    parser.add_argument("--eg-samples", type=int, default=None,
                        help="Expected Gradients' draws per input (default: the method's own)")
    parser.add_argument("--smoothgrad-samples", type=int, default=25)
    parser.add_argument("--smoothgrad-noise", type=float, default=0.15, help="SmoothGrad noise std (inputs in [0, 1])")
    parser.add_argument("--batch-size", type=int, default=2000, help="pairs per IG² batch")
    parser.add_argument("--tabular-train", type=int, default=4000)
    parser.add_argument("--tabular-epochs", type=int, default=40)
    parser.add_argument("--correlations", type=float, nargs="+", default=[0.0, 0.5, 0.9])
    parser.add_argument("--ablation-steps", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--ablation-step-sizes", type=float, nargs="+", default=[0.02, 0.1, 0.5])
    parser.add_argument("--ablation-references", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--skip-tabular", action="store_true")
    parser.add_argument("--skip-ablations", action="store_true")
    parser.add_argument("--image-dir", default=None,
                        help="where quality_*.png go (default docs/images; none with --quick unless given)")
    parser.add_argument("--json", default=None, help="also write the raw numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.inputs, args.references, args.epochs = 2, 24, 2, 3
        args.ig2_steps = args.ig_steps = args.guided_steps = 8
        args.curve_steps, args.smoothgrad_samples = 16, 4
        args.tabular_train, args.tabular_epochs = 400, 3
        args.ablation_steps, args.ablation_step_sizes, args.ablation_references = [4], [0.1], [1]
    if args.image_dir is None and not args.quick:
        args.image_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "images")
    return args


def main(argv=None) -> None:
    args = parse_arguments(argv)
    start = time.perf_counter()
    data = load_digits_split(test_size=max(400, args.inputs))
    report: Dict[str, Any] = {"arguments": vars(args)}
    digits = digits_study(args, data)
    accuracies = ", ".join(f"{seed['accuracy']:.3f}" for seed in digits["per_seed"])
    print(f"## Digits: {args.inputs} held-out inputs, {args.seeds} seeds (CNN test accuracy {accuracies})\n")
    print(digits_tables(digits) + "\n")
    print("### DiffID per fill (rank among the methods)\n")
    print(diffid_table(digits) + "\n")
    print("### IG² DiffID minus each method's, paired by seed (seeds where IG² is higher)\n")
    print(paired_table(digits, IG2_DIGITS) + "\n")
    report["digits"] = [{"accuracy": seed["accuracy"], "diagnostics": seed["diagnostics"],
                         "scores": {method: {fill: {key: value for key, value in entry.items() if key != "curves"}
                                             for fill, entry in scores.items()}
                                    for method, scores in seed["scores"].items()}}
                        for seed in digits["per_seed"]]
    if args.image_dir:
        write_images(digits, args.image_dir)
        log(f"images written to {args.image_dir}")
    if not args.skip_tabular:
        tabular = tabular_study(args)
        print("## Tabular ground truth (XAI-Bench style)\n")
        print(tabular_table(tabular) + "\n")
        report["tabular"] = {str(rho): value for rho, value in tabular.items()}
    if not args.skip_ablations:
        rows = ablation_study(args, data, digits["seed0"])
        print("## IG² ablations (digits, seed 0)\n")
        print(ablation_table(rows) + "\n")
        report["ablations"] = [{"group": g, "setting": s, "scores": sc, "relative_delta": d, "seconds": t}
                               for g, s, sc, d, t in rows]
    total = time.perf_counter() - start
    print(f"Total time: {total:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1, default=float)


if __name__ == "__main__":
    main()
