"""Attribution quality of IG² against other gradient methods: faithfulness and ground truth.

Three studies, all seeded and self-contained (no downloads):

1. **Digits.** A small CNN trained here on scikit-learn's 8x8 digits (values in [0, 1]) is
   explained on held-out inputs by IG² (references drawn from other classes, as in Zhuo & Ge,
   TPAMI 2024), straight-line IG with zero, blurred and reference baselines (the last averaged
   over the same references as IG²), Guided IG (zero baseline), gradient x input, SmoothGrad,
   tf-explain's shipped ``IntegratedGradients`` (zero baseline; its output lacks the
   ``x - x'`` factor and explains the softmax probability) and a random ranking. Deletion,
   insertion and DiffID (``tf_ig2.metrics``, logit scores, one pixel per curve step) are reported
   for four fills (zero, training mean, Gaussian blur, an other-class reference), as mean and
   standard deviation over seeds; a seed fixes the CNN's training and the reference draw.
2. **Tabular ground truth** in the manner of XAI-Bench (Liu et al., 2021): Gaussian features with
   pairwise correlation rho, ``y = sin x0 + |x1| + x2^2 + exp(-x3) + 0 x4 + noise``, an MLP
   regressor trained here. Each method is scored by the Pearson correlation, per input over the
   five features, between its attributions and the true contributions relative to the references,
   ``mean_r [g_i(x_i) - g_i(x_r,i)]``, and to the zero baseline, ``g_i(x_i) - g_i(0)``; and by
   DiffID with the training-mean fill.
3. **Ablations of IG²** on the digits (first seed): steps, step size, the number and choice of
   references, and the representation layer.

Run: ``PYTHONPATH=. python benchmarks/quality.py`` (a few minutes on 2 CPU cores) or ``--quick``.
The tables are printed as Markdown; images go to ``--image-dir`` (``docs/images`` for a full run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_ig2  # noqa: E402
from tf_ig2 import metrics  # noqa: E402

tf.get_logger().setLevel("ERROR")  # new models per seed retrace by design; keep the output readable

#: Fill labels of the tables: the four metric fills, and "GradCF" (the reference fill set to the mean of
#: IG²'s own counterfactuals), which shows how much a fill favours the method whose baseline it is.
FILLS = ("zero", "mean", "blur", "reference")
DIGIT_FILLS = FILLS + ("GradCF",)
Attributions = Dict[str, np.ndarray]
IG2_DIGITS = "IG² (other-class refs)"


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


# -- simple methods written here ------------------------------------------------------------------

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


def gradient_times_input(gradient_fn, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return gradient_fn(inputs, targets) * inputs


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


def attributions_of(result: Any) -> np.ndarray:
    return result.attributions if isinstance(result, tf_ig2.Explanation) else np.asarray(result, np.float32)


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

def digits_methods(args, model, inputs, targets, references, rng) -> Tuple[Attributions, Dict]:
    """Every method's (N, 8, 8, 1) attributions, and diagnostics (time, completeness)."""
    gradient_fn = make_gradient_fn(logits_model(model))
    blurred = np.asarray(metrics.gaussian_blur(inputs, args.blur_sigma))
    runs: Dict[str, Callable[[], Any]] = {
        IG2_DIGITS: lambda: tf_ig2.IG2(model, steps=args.ig2_steps, value_range=(0.0, 1.0),
                                                    batch_size=args.batch_size).explain(inputs, references, targets),
        "IG, zero baseline": lambda: tf_ig2.IntegratedGradients(model, args.ig_steps).explain(inputs, 0.0, targets),
        "IG, blurred baseline": lambda: tf_ig2.IntegratedGradients(model, args.ig_steps).explain(
            inputs, blurred[:, None], targets),
        "IG, reference baselines": lambda: tf_ig2.IntegratedGradients(model, args.ig_steps).explain(
            inputs, references, targets),
    }
    guided = guided_ig_class()
    if guided is not None:
        runs["Guided IG, zero baseline"] = lambda: guided(model, args.guided_steps).explain(inputs, 0.0, targets)
    runs.update({
        "gradient × input": lambda: gradient_times_input(gradient_fn, inputs, targets),
        "SmoothGrad": lambda: smoothgrad(gradient_fn, inputs, targets, rng, args.smoothgrad_samples,
                                         args.smoothgrad_noise),
        "tf-explain IG (as shipped)": lambda: tf_explain_ig(model, inputs, targets, args.ig_steps),
        "random ranking": lambda: rng.normal(size=inputs.shape).astype(np.float32),
    })
    attributions: Attributions = {}
    diagnostics: Dict[str, Any] = {}
    gradcf = None
    for name, run in runs.items():
        result, seconds = timed(run)
        attributions[name] = attributions_of(result)
        if isinstance(result, tf_ig2.Explanation) and result.method == "ig2":
            gradcf = result.counterfactuals.mean(axis=1)
        diagnostics[name] = {"seconds": seconds}
        if isinstance(result, tf_ig2.Explanation):
            diagnostics[name]["relative_delta"] = float(np.median(metrics.completeness_error(result, relative=True)))
        log(f"    {name}: {seconds:.1f} s")
    return attributions, diagnostics, gradcf


def guided_ig_class():
    try:
        from tf_ig2.methods.guided_ig import GuidedIG
    except ImportError:
        return None
    return GuidedIG


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


def digits_tables(result: Dict[str, Any]) -> str:
    """One table per fill: deletion, insertion and DiffID, mean ± std over seeds."""
    per_seed = result["per_seed"]
    methods = list(per_seed[0]["scores"])
    blocks = []
    for fill in DIGIT_FILLS:
        lines = [f"**{fill} fill**", "", "| method | Deletion ↓ | Insertion ↑ | DiffID ↑ |", "|---|---|---|---|"]
        for method in methods:
            cells = []
            for key in ("deletion", "insertion", "diffid"):
                values = np.array([seed["scores"][method][fill][key] for seed in per_seed])
                cells.append(f"{values.mean():.2f} ± {values.std():.2f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def diffid_table(result: Dict[str, Any]) -> str:
    """DiffID per fill with each method's rank, and the diagnostics of the first seed."""
    per_seed = result["per_seed"]
    methods = list(per_seed[0]["scores"])
    means = {method: {fill: np.mean([s["scores"][method][fill]["diffid"] for s in per_seed]) for fill in DIGIT_FILLS}
             for method in methods}
    stds = {method: {fill: np.std([s["scores"][method][fill]["diffid"] for s in per_seed]) for fill in DIGIT_FILLS}
            for method in methods}
    ranks = {fill: {method: 1 + sorted(methods, key=lambda m: -means[m][fill]).index(method) for method in methods}
             for fill in DIGIT_FILLS}
    lines = ["| method | " + " | ".join(f"{fill} fill" for fill in DIGIT_FILLS) + " | time, seed 0 (s) | "
             "median relative completeness error, seed 0 |",
             "|" + "---|" * (3 + len(DIGIT_FILLS))]
    for method in methods:
        cells = [f"{means[method][fill]:.2f} ± {stds[method][fill]:.2f} (#{ranks[fill][method]})"
                 for fill in DIGIT_FILLS]
        diagnostics = per_seed[0]["diagnostics"][method]
        delta = diagnostics.get("relative_delta")
        cells.append(f"{diagnostics['seconds']:.1f}")
        cells.append("–" if delta is None else f"{delta:.3f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(result: Dict[str, Any], reference_method: str) -> str:
    """DiffID of ``reference_method`` minus each other method's, per seed (paired), mean ± std."""
    per_seed = result["per_seed"]
    methods = [method for method in per_seed[0]["scores"] if method != reference_method]
    lines = ["| IG² minus … | " + " | ".join(f"{fill} fill" for fill in DIGIT_FILLS) + " |",
             "|" + "---|" * (1 + len(DIGIT_FILLS))]
    for method in methods:
        cells = []
        for fill in DIGIT_FILLS:
            differences = np.array([seed["scores"][reference_method][fill]["diffid"]
                                    - seed["scores"][method][fill]["diffid"] for seed in per_seed])
            wins = int(np.sum(differences > 0))
            cells.append(f"{differences.mean():+.2f} ± {differences.std():.2f} ({wins}/{len(differences)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def tabular_study(args) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    for rho in args.correlations:
        covariance = (1.0 - rho) * np.eye(5) + rho * np.ones((5, 5))
        per_seed = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(2000 + seed)
            x = rng.multivariate_normal(np.zeros(5), covariance, size=args.tabular_train + args.inputs)
            x = x.astype(np.float32)
            y = additive_parts(x).sum(axis=1) + rng.normal(0.0, 0.05, size=len(x))
            train_x, train_y = x[:args.tabular_train], y[:args.tabular_train].astype(np.float32)
            inputs = x[args.tabular_train:]
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
            gradient_fn = make_gradient_fn(model)
            targets = np.zeros(len(inputs), np.int64)
            runs = {
                "IG² (random refs)": lambda: tf_ig2.IG2(model, steps=args.ig2_steps).explain(inputs, references, 0),
                "IG, reference baselines": lambda: tf_ig2.IntegratedGradients(model, args.ig_steps).explain(
                    inputs, references, 0),
                "IG, zero baseline": lambda: tf_ig2.IntegratedGradients(model, args.ig_steps).explain(inputs, 0.0, 0),
            }
            guided = guided_ig_class()
            if guided is not None:
                runs["Guided IG, zero baseline"] = lambda: guided(model, args.guided_steps).explain(inputs, 0.0, 0)
            runs.update({
                "gradient × input": lambda: gradient_times_input(gradient_fn, inputs, targets),
                "SmoothGrad": lambda: smoothgrad(gradient_fn, inputs, targets, rng, args.smoothgrad_samples, 0.15),
                "random ranking": lambda: rng.normal(size=inputs.shape).astype(np.float32),
            })
            scores = {}
            for name, run in runs.items():
                attributions = attributions_of(run())
                curves = faithfulness(model, inputs, attributions, 0, {"mean": ("mean", train_x.mean(axis=0))},
                                      5, 1.0)
                scores[name] = {"pearson_reference": float(np.nanmean(pearson_rows(attributions, truth_reference))),
                                "pearson_zero": float(np.nanmean(pearson_rows(attributions, truth_zero))),
                                "diffid": curves["mean"]["diffid"]}
            per_seed.append({"r2": float(r2), "scores": scores})
            log(f"tabular rho={rho}, seed {seed}: R² {r2:.3f}")
        results[rho] = per_seed
    return results


def tabular_table(results: Dict[float, Any]) -> str:
    rhos = list(results)
    methods = list(results[rhos[0]][0]["scores"])
    lines = ["| method | " + " | ".join(f"ρ={rho}: r(ref) ↑ | ρ={rho}: r(zero) ↑ | ρ={rho}: DiffID ↑" for rho in rhos)
             + " |", "|" + "---|" * (1 + 3 * len(rhos))]
    for method in methods:
        cells = []
        for rho in rhos:
            for key in ("pearson_reference", "pearson_zero", "diffid"):
                values = np.array([seed["scores"][method][key] for seed in results[rho]])
                cells.append(f"{values.mean():.2f} ± {values.std():.2f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    r2 = ", ".join(f"ρ={rho}: " + "/".join(f"{seed['r2']:.3f}" for seed in results[rho]) for rho in rhos)
    lines.append("")
    lines.append(f"MLP test R² against the noise-free target, per seed: {r2}.")
    return "\n".join(lines)


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
        explainer = tf_ig2.IG2(model, value_range=(0.0, 1.0), batch_size=args.batch_size, **options)
        explanation, seconds = timed(lambda: explainer.explain(inputs, references, targets))
        scores = faithfulness(model, inputs, explanation.attributions, targets, fill_values, args.curve_steps,
                              args.blur_sigma)
        delta = float(np.median(metrics.completeness_error(explanation, relative=True)))
        rows.append((group, label, scores, delta, seconds))
        log(f"  ablation {group} / {label}: {seconds:.1f} s")
    return rows


def ablation_table(rows) -> str:
    lines = ["| ablation | setting | " + " | ".join(f"DiffID, {fill}" for fill in DIGIT_FILLS)
             + " | median relative completeness error | time (s) |",
             "|" + "---|" * (4 + len(DIGIT_FILLS))]
    for group, label, scores, delta, seconds in rows:
        cells = [f"{scores[fill]['diffid']:.2f}" for fill in DIGIT_FILLS]
        lines.append(f"| {group} | {label} | " + " | ".join(cells) + f" | {delta:.3f} | {seconds:.1f} |")
    return "\n".join(lines)


# -- images (PIL only) ------------------------------------------------------------------------------

def _font(size: int):
    """DejaVu Sans where installed (it has ² and ×), else PIL's own font with ASCII labels."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), False
    except OSError:
        return ImageFont.load_default(size=size), True


def _text(draw, position, text: str, font_and_ascii, fill="black") -> None:
    font, ascii_only = font_and_ascii
    if ascii_only:
        text = text.replace("²", "2").replace("×", "x").replace("ρ", "rho")
    draw.text(position, text, font=font, fill=fill)


PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def line_chart(panels: Sequence[Tuple[str, Dict[str, np.ndarray]]], path: str, y_label: str) -> None:
    """Side-by-side line charts of curves over [0, 1], with a shared legend, drawn with PIL."""
    from PIL import Image, ImageDraw

    width, height, margin_left, margin_bottom, margin_top = 460, 340, 60, 40, 30
    legend_height = 18 * math.ceil(len(panels[0][1]) / 2) + 10
    image = Image.new("RGB", (width * len(panels), height + legend_height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(11)
    for index, (title, curves) in enumerate(panels):
        left = index * width + margin_left
        right = (index + 1) * width - 15
        top, bottom = margin_top, height - margin_bottom
        values = np.concatenate(list(curves.values()))
        low, high = float(values.min()), float(values.max())
        span = high - low or 1.0
        low, high = low - 0.05 * span, high + 0.05 * span
        draw.rectangle([left, top, right, bottom], outline="black")
        _text(draw, (left, 2), title, font)
        for tick in range(5):
            fraction = tick / 4
            y = bottom - fraction * (bottom - top)
            draw.line([left - 4, y, left, y], fill="black")
            _text(draw, (left - 40, y - 7), f"{low + fraction * (high - low):.1f}", font)
            x = left + fraction * (right - left)
            draw.line([x, bottom, x, bottom + 4], fill="black")
            _text(draw, (x - 10, bottom + 6), f"{fraction:.2f}", font)
        _text(draw, (left + (right - left) // 2 - 60, bottom + 22), "fraction of pixels moved", font)
        _text(draw, (index * width + 4, top - 16), y_label, font)
        for color, curve in zip(PALETTE, curves.values()):
            xs = left + np.linspace(0.0, 1.0, len(curve)) * (right - left)
            ys = bottom - (curve - low) / (high - low) * (bottom - top)
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=color, width=2)
    for position, (color, name) in enumerate(zip(PALETTE, panels[0][1])):
        x = 20 + (position % 2) * (width * len(panels) // 2)
        y = height + 5 + 18 * (position // 2)
        draw.line([x, y + 7, x + 25, y + 7], fill=color, width=3)
        _text(draw, (x + 32, y), name, font)
    image.save(path)


def gallery(inputs: np.ndarray, attributions: Attributions, targets: np.ndarray, path: str, rows: int,
            scale: int = 12) -> None:
    """One row per input: the digit, then each method's signed map (red +, blue -)."""
    from PIL import Image, ImageDraw

    from tf_ig2 import visualize

    cell = 8 * scale
    label_height, gap = 40, 6
    names = list(attributions)
    image = Image.new("RGB", (gap + (cell + gap) * (len(names) + 1), label_height + (cell + gap) * rows), "white")
    draw = ImageDraw.Draw(image)
    font = _font(10)
    columns = [("input", np.asarray(visualize.rescale_images(inputs[:rows])))]
    columns += [(name, np.asarray(visualize.diverging_map(attributions[name][:rows]))) for name in names]
    for column, (name, maps) in enumerate(columns):
        x = gap + column * (cell + gap)
        words, line, text_lines = name.split(), "", []
        for word in words:
            if len(line) + len(word) > 13 and line:
                text_lines.append(line)
                line = word
            else:
                line = (line + " " + word).strip()
        text_lines.append(line)
        for number, text in enumerate(text_lines[:3]):
            _text(draw, (x, 1 + 10 * number), text, font)
        for row in range(rows):
            tile = (np.clip(maps[row], 0.0, 1.0) * 255).astype(np.uint8)
            tile = Image.fromarray(tile).resize((cell, cell), Image.NEAREST)
            image.paste(tile, (x, label_height + row * (cell + gap)))
    for row in range(rows):
        _text(draw, (2, label_height + row * (cell + gap) + 2), str(int(targets[row])), font, fill=(0, 200, 0))
    image.save(path)


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
    if guided_ig_class() is None:
        print("Guided IG: tf_ig2.methods.guided_ig is not available; skipped.\n")
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
        os.makedirs(args.image_dir, exist_ok=True)
        seed0_scores = digits["per_seed"][0]["scores"]
        for fill in ("zero", "reference"):
            line_chart([(f"Deletion curve, {fill} fill (lower is better)",
                         {name: scores[fill]["curves"][0] for name, scores in seed0_scores.items()}),
                        (f"Insertion curve, {fill} fill (higher is better)",
                         {name: scores[fill]["curves"][1] for name, scores in seed0_scores.items()})],
                       os.path.join(args.image_dir, f"quality_curves_{fill}.png"), "mean target logit")
        seed0 = digits["seed0"]
        gallery(seed0["inputs"], seed0["attributions"], seed0["targets"],
                os.path.join(args.image_dir, "quality_gallery.png"), rows=6)
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
