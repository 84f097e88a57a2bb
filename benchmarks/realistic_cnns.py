"""IG² on realistic CNNs: completeness and faithfulness of the integration rules, with ablations.

Three networks with BatchNorm or LayerNorm, skip connections and ReLU/ReLU6/GELU are trained on
scikit-learn's digits upsampled to 64x64x3 (values in [0, 1]) and cached on disk
(``benchmarks/.cache/``): keras.applications' MobileNetV2 (``weights=None``), a small ResNet-style
network (basic blocks with BatchNorm) and a small ConvNeXt-style network (depthwise 7x7, LayerNorm,
GELU, inverted bottleneck); see ``digits_cnns.py``. Reruns load the cached ``.keras`` files and skip
training.

For each network, N held-out inputs are explained against R references (random other-class
training inputs) by IG² with every integration rule ("left" as published, "trapezoid", "midpoint"
with m = 4 gradients per segment, "rescaled"), by straight-line IG (same references as baselines)
and by Guided IG (zero baseline as published, and the same references); then by every other method
of the registry (``tf_ig2.methods.METHODS``), built with ``get_method(name).build(model)`` and
called with its registered reference keyword, at its defaults: the plain gradient, gradient × input
(zero baseline), Blur IG (``max_sigma`` 50 px, 100 steps), Expected Gradients (the same R
references per input as its pool, 200 samples unless ``--eg-samples``), and SmoothGrad, the noise
tunnel ``tf_ig2.smooth(..., kind="smoothgrad")`` over the gradient (50 noisy copies, noise 0.15 of
each input's range); last by IG² with the GradPath variant ``momentum=0.9``. For each: the relative
completeness error ``|delta| / |f(x) - mean_r f(x'_r)|`` (median and 90th percentile over the
inputs; n/a where completeness does not apply: the gradient and SmoothGrad), deletion,
insertion and DiffID with the training-mean and Gaussian-blur fills (``tf_ig2.metrics``, logit of
the predicted class, 16 curve steps), and seconds per input (every explainer warmed up once on one
input, so tracing is not timed, then timed over two calls, the faster kept). Ablations of IG²
("left" and "rescaled") follow: representation layer, reference choice, step size and number of
steps; then a step-by-step diagnosis of the published GradPath. Last, the paired study of
``paired_defaults.py``: trapezoid against left, a shrinking step against the constant one, and the
reference pickers of ``tf_ig2.references`` for IG² and IG, on more inputs, with paired 95 % intervals.

Run (one core of a busy machine, cached models: about 13 minutes for the methods tables alone,
``--main-only``; the ablations, momentum rows and diagnostics add several more (the whole main study
took about 18 minutes before the other registered methods were added); training takes 3.5 to 12
minutes on a first run; the paired study about 19 minutes)::

    TF_IG2_BENCH_THREADS=1 PYTHONPATH=. python benchmarks/realistic_cnns.py

``--paired`` runs the paired study alone, ``--skip-paired`` leaves it out; ``--main-only`` runs the
methods tables alone (``--skip-ablations --skip-momentum --skip-diagnostics --skip-paired``).
``--quick`` is a smoke run of every part (2 inputs, 16 steps, 16 EG samples, 4 SmoothGrad copies,
no warm-up, cached models or a one-epoch training on a subset, cached separately; the paired study
on the ResNet-style only, about 20 seconds with ``--paired``; about 2 minutes with
``--main-only``). Tables go to stdout as Markdown, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import paired_defaults  # noqa: E402
import tensorflow as tf  # noqa: E402
from digits_cnns import (  # noqa: E402
    CACHE_DIR,
    FILL_LABELS,
    MODELS,
    SIZE,
    cached_or_quick,
    load_data,
    log,
    mean_and_blur_fills,
    summarise,
    timed_explain,
)

import tf_ig2  # noqa: E402
from tf_ig2.engine.model_view import target_scores  # noqa: E402
from tf_ig2.methods import METHODS, get_method  # noqa: E402

# -- references -------------------------------------------------------------------------------------

def other_class_references(rng: np.random.Generator, train_x: np.ndarray, train_y: np.ndarray,
                           targets: np.ndarray, count: int) -> np.ndarray:
    """(N, R, *S): R random training inputs of classes other than each input's predicted class."""
    chosen = [rng.choice(np.flatnonzero(train_y != target), size=count, replace=False) for target in targets]
    return train_x[np.stack(chosen)]


def ranked_class_references(rng: np.random.Generator, train_x: np.ndarray, train_y: np.ndarray,
                            logits: np.ndarray, ranks: Sequence[int] = (2, 3, 4)) -> np.ndarray:
    """(N, len(ranks), *S): one random training input of each class the model ranks 2nd, 3rd, 4th.

    As in the authors' ImageNet notebook, the references come from the classes the model finds
    closest to its prediction.
    """
    order = np.argsort(-logits, axis=1, kind="stable")
    chosen = [[rng.choice(np.flatnonzero(train_y == order[n, rank - 1])) for rank in ranks]
              for n in range(len(logits))]
    return train_x[np.array(chosen)]


def nearest_other_class_references(train_x: np.ndarray, train_y: np.ndarray, inputs: np.ndarray,
                                   targets: np.ndarray, count: int) -> np.ndarray:
    """(N, R, *S): the R other-class training inputs nearest to each input in pixel space (L2)."""
    flat = train_x.reshape(len(train_x), -1).astype(np.float64)
    chosen = []
    for x, target in zip(inputs.reshape(len(inputs), -1), targets):
        pool = np.flatnonzero(train_y != target)
        distances = np.linalg.norm(flat[pool] - x[None], axis=1)
        chosen.append(pool[np.argsort(distances, kind="stable")[:count]])
    return train_x[np.stack(chosen)]


def rescale_globally(explanation: tf_ig2.Explanation) -> np.ndarray:
    """Attributions multiplied per input by ``(f(x) - mean_r f(x'_r)) / sum A``: the same ranking
    (where the factor is positive), exact completeness; a post-hoc normalisation, not a rule."""
    attributions = explanation.attributions
    sums = attributions.reshape(len(attributions), -1).sum(axis=1, dtype=np.float64)
    gaps = explanation.target_scores.astype(np.float64) - explanation.counterfactual_scores
    factor = np.where(np.abs(sums) > 0, gaps / np.where(sums == 0, 1.0, sums), 0.0)
    return (attributions * factor.reshape((-1,) + (1,) * (attributions.ndim - 1))).astype(np.float32)


# -- tables ------------------------------------------------------------------------------------------

def completeness_cells(relative: np.ndarray) -> List[str]:
    """The median and 90th percentile of the relative completeness errors over the inputs where it is
    defined; "n/a" where it is defined for none (a method without completeness: delta is NaN)."""
    finite = np.asarray(relative, np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return ["n/a", "n/a"]
    return [f"{np.median(finite):.3g}", f"{np.percentile(finite, 90):.3g}"]


def seconds_cell(seconds: float) -> str:
    """Seconds per input: two decimals, or two significant digits below 0.1 s (the gradient's 0.003)."""
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.2g}"


def method_table(rows: Dict[str, Dict[str, Any]]) -> str:
    lines = ["| method | rel. completeness error, median | 90th pct | Deletion ↓ (mean) | Insertion ↑ (mean) | "
             "DiffID ↑ (mean) | Deletion ↓ (blur) | Insertion ↑ (blur) | DiffID ↑ (blur) | s / input |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        cells = completeness_cells(row["relative"])
        for fill in FILL_LABELS:
            cells += [f"{row['scores'][fill][key].mean():.2f}" for key in ("deletion", "insertion", "diffid")]
        cells.append(seconds_cell(row["seconds"]) if row["seconds"] is not None else "(as left)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(rows: Dict[str, Dict[str, Any]], base: str) -> str:
    """DiffID minus the base method's, per input: mean ± standard error, and how many inputs are higher."""
    lines = [f"| method | DiffID − {base} (mean fill) | higher / N | DiffID − {base} (blur fill) | higher / N |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        if name == base:
            continue
        cells = []
        for fill in FILL_LABELS:
            difference = row["scores"][fill]["diffid"] - rows[base]["scores"][fill]["diffid"]
            error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else float("nan")
            cells += [f"{difference.mean():+.2f} ± {error:.2f}", f"{int(np.sum(difference > 0))} / {len(difference)}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_table(rows: List[Tuple[str, str, str, Dict[str, Any]]]) -> str:
    lines = ["| ablation | setting | rule | rel. completeness error, median | 90th pct | DiffID ↑ (mean) | "
             "DiffID ↑ (blur) | s / input |", "|---|---|---|---|---|---|---|---|"]
    for group, setting, rule, row in rows:
        lines.append(f"| {group} | {setting} | {rule} | {np.median(row['relative']):.3g} | "
                     f"{np.percentile(row['relative'], 90):.3g} | {row['scores']['mean']['diffid'].mean():.2f} | "
                     f"{row['scores']['blur']['diffid'].mean():.2f} | {seconds_cell(row['seconds'])} |")
    return "\n".join(lines)


# -- why the left rule over-counts: the path, step by step --------------------------------------------

def path_diagnostics(model, inputs: np.ndarray, references: np.ndarray, targets: np.ndarray,
                     steps: int) -> Dict[str, float]:
    """Follows the published GradPath (left rule) and measures, per step j of every pair:

    ``p_j = sum (gamma_j - gamma_{j+1}) * grad f(gamma_j)`` (what the left rule adds),
    ``a_j = f(gamma_j) - f(gamma_{j+1})`` (what the score really does),
    ``e_j = sum (gamma_j - gamma_{j+1}) * grad f(gamma_{j+1})`` (the same step seen from its end),
    the representation distance before and after, and the cosine between consecutive score gradients.
    Returns medians over the pairs of the per-pair summaries.
    """
    from tf_ig2.engine.model_view import ModelView

    explanation = tf_ig2.IG2(model, steps=steps, value_range=(0.0, 1.0), step_schedule=PUBLISHED_PATH).explain(
        inputs, references, targets, return_path=True)
    view = ModelView(model)
    path = explanation.path  # (N, R, k + 1, *S)
    n, r = path.shape[:2]
    points = path.reshape((-1,) + path.shape[3:])
    owners = np.repeat(np.repeat(targets, r), steps + 1).astype(np.int32)
    reference_points = np.repeat(references.reshape((-1,) + references.shape[2:]), steps + 1, axis=0)

    @tf.function
    def evaluate(points, references, targets):
        with tf.GradientTape() as tape:
            tape.watch(points)
            representation, outputs = view(points)
            scores = target_scores(outputs, targets)
        gradient = tape.gradient(scores, points)
        reference_representation = view(references)[0]
        difference = tf.reshape(representation - reference_representation, [tf.shape(points)[0], -1])
        return scores, gradient, tf.norm(difference, axis=1)

    scores, gradients, distances = [], [], []
    for start in range(0, len(points), 64):
        s, g, d = evaluate(tf.constant(points[start:start + 64]), tf.constant(reference_points[start:start + 64]),
                           tf.constant(owners[start:start + 64]))
        scores.append(s.numpy())
        gradients.append(g.numpy())
        distances.append(d.numpy())
    shape = (n * r, steps + 1)
    scores = np.concatenate(scores).reshape(shape).astype(np.float64)
    distances = np.concatenate(distances).reshape(shape).astype(np.float64)
    gradients = np.concatenate(gradients).reshape(shape + (-1,)).astype(np.float64)
    flat = points.reshape(shape + (-1,)).astype(np.float64)
    moved = flat[:, :-1] - flat[:, 1:]
    predicted = np.einsum("pjf,pjf->pj", moved, gradients[:, :-1])
    from_end = np.einsum("pjf,pjf->pj", moved, gradients[:, 1:])
    actual = scores[:, :-1] - scores[:, 1:]
    norms = np.linalg.norm(gradients, axis=2)
    consecutive = np.einsum("pjf,pjf->pj", gradients[:, :-1], gradients[:, 1:]) / np.maximum(
        norms[:, :-1] * norms[:, 1:], 1e-30)
    step_cosine = predicted / np.maximum(np.linalg.norm(moved, axis=2) * norms[:, :-1], 1e-30)
    step_norms = np.linalg.norm(moved, axis=2)
    turning = np.einsum("pjf,pjf->pj", moved[:, :-1], moved[:, 1:]) / np.maximum(
        step_norms[:, :-1] * step_norms[:, 1:], 1e-30)
    rising = np.diff(distances, axis=1) > 0
    excess = predicted - actual
    lowest = np.argmin(distances, axis=1)
    after = np.array([predicted[p, lowest[p]:].sum() for p in range(n * r)])
    summary = {
        "left sum / score gap": np.median(predicted.sum(1) / actual.sum(1)),
        "trapezoid sum / score gap": np.median(0.5 * (predicted + from_end).sum(1) / actual.sum(1)),
        "Σ abs(a_j) / abs(Σ a_j) (the score goes up and down)": np.median(np.abs(actual).sum(1)
                                                                           / np.abs(actual.sum(1))),
        "median over steps of p_j / a_j": np.median(np.median(predicted / np.where(actual == 0, np.nan, actual),
                                                              axis=1)),
        "median over steps of e_j / p_j (gradient along the step, end vs start)": np.median(
            np.median(from_end / np.where(predicted == 0, np.nan, predicted), axis=1)),
        "cosine(step, score gradient)": np.median(step_cosine),
        "cosine(consecutive score gradients)": np.median(consecutive),
        "share of steps where the left rule adds a positive amount (p_j > 0)": np.median(np.mean(predicted > 0,
                                                                                              axis=1)),
        "share of steps where the score really falls (a_j > 0)": np.median(np.mean(actual > 0, axis=1)),
        "cosine(consecutive steps)": np.median(turning),
        "share of steps where the representation distance rises": np.median(np.mean(rising, axis=1)),
        "share of the over-count Σ(p_j − a_j) from those steps": np.median((excess * rising).sum(1) / excess.sum(1)),
        "step of the lowest representation distance / k": np.median(lowest / steps),
        "share of the left sum added after that step": np.median(after / predicted.sum(1)),
        "representation distance at the end / at the start": np.median(distances[:, -1] / distances[:, 0]),
    }
    return {key: float(value) for key, value in summary.items()}


def diagnostics_table(results: Dict[str, Dict[str, float]]) -> str:
    names = list(results)
    lines = ["| quantity (median over pairs) | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in results[names[0]]:
        lines.append(f"| {key} | " + " | ".join(f"{results[name][key]:.3g}" for name in names) + " |")
    return "\n".join(lines)


# -- one network ---------------------------------------------------------------------------------------

#: IG²'s path in the main study, the ablations and the diagnostics: the published one (constant steps), as
#: when these tables were first measured; the paired study compares it with "shrink".
PUBLISHED_PATH = "constant"
RULES = (("left", "IG² left (published)"), ("trapezoid", "IG² trapezoid"), ("midpoint", "IG² midpoint, m = 4"),
         ("rescaled", "IG² rescaled"))


def other_methods(model, args, references: np.ndarray) -> List[Tuple[str, str, Callable[[], Any], Any]]:
    """The other registered methods and SmoothGrad: (label, registry name, make, references to pass).

    Each is built through its registry entry at its defaults, but Expected Gradients' samples with
    ``--eg-samples``. Expected Gradients gets the R references per input as its pool; the methods
    whose result depends on the input alone get none (``None``: their own default), but SmoothGrad
    gets ``baselines=0.0``, which the gradient checks and does not use: the noise tunnel passes the
    gradient's default of ``None`` on as baselines, which the preparation of the copies refuses.
    """
    eg = {} if args.eg_samples is None else {"samples": args.eg_samples}
    smooth = {} if args.smooth_samples is None else {"samples": args.smooth_samples}
    blur = METHODS["blur_ig"].settings()
    samples = eg.get("samples", tf_ig2.defaults.EXPECTED_GRADIENTS_SAMPLES)
    smooth_samples = smooth.get("samples", tf_ig2.defaults.SMOOTH_SAMPLES)
    return [
        ("gradient", "gradient", lambda: get_method("gradient").build(model), None),
        ("gradient × input, zero baseline", "gradient_input", lambda: get_method("gradient_input").build(model),
         None),
        (f"Blur IG (max σ = {blur.max_sigma:g}, {blur.steps} steps)", "blur_ig",
         lambda: get_method("blur_ig").build(model), None),
        (f"EG, the R references as pool ({samples} samples)", "eg", lambda: get_method("eg").build(model, **eg),
         references),
        (f"SmoothGrad of the gradient ({smooth_samples} samples, noise {tf_ig2.defaults.SMOOTH_NOISE:g})",
         "gradient", lambda: tf_ig2.smooth(get_method("gradient").build(model), kind="smoothgrad", **smooth), 0.0),
    ]


def ablations(name: str, model: keras.Model, args, data, rng: np.random.Generator, run: Callable,
              probabilities: np.ndarray, references: np.ndarray,
              result: Dict[str, Any]) -> List[Tuple[str, str, str, Dict[str, Any]]]:
    """IG² ("left" and "rescaled") with another representation layer, references, step size or steps."""
    train_x, train_y, test_x = data[0], data[1], data[2]
    inputs, targets = test_x[:args.inputs], result["targets"]
    base = dict(steps=args.steps, value_range=(0.0, 1.0), step_schedule=PUBLISHED_PATH)
    rows = result["rows"]
    ranked = ranked_class_references(rng, train_x, train_y, probabilities)
    nearest = nearest_other_class_references(train_x, train_y, inputs, targets, args.references)
    variants: List[Tuple[str, str, Dict[str, Any], np.ndarray]] = []
    for layer in MODELS[name][3]:
        variants.append(("representation", f"`{layer}` output", dict(representation_layer=layer), references))
    variants.append(("references", "classes ranked 2nd-4th by the model, one each (R = 3)", {}, ranked))
    variants.append(("references", f"nearest other-class in pixel L2 (R = {args.references})", {}, nearest))
    for size in args.step_sizes:
        variants.append(("step size", f"η = {size} (fixed)", dict(step_size=size), references))
    for count in args.ablation_steps:
        if count != args.steps:
            variants.append(("steps", f"k = {count}", dict(steps=count), references))
    table: List[Tuple[str, str, str, Dict[str, Any]]] = []
    for rule, label in (("left", "IG² left (published)"), ("rescaled", "IG² rescaled")):
        table.append(("default", f"penultimate, R = {args.references} random other-class, auto η "
                      f"(median {result['auto_eta']:.3g}), k = {args.steps}", rule, rows[label]))
    for group, setting, options, refs in variants:
        for rule in ("left", "rescaled"):
            row = run(f"ablation {group} {setting} {rule}",
                      lambda: tf_ig2.IG2(model, integration=rule, **dict(base, **options)), refs=refs)
            table.append((group, setting, rule, row))
    return table


def study(name: str, model: keras.Model, args, data) -> Dict[str, Any]:
    train_x, train_y, test_x, test_y = data
    rng = np.random.default_rng(args.seed)
    inputs = test_x[:args.inputs]
    probabilities = model.predict(inputs, verbose=0)
    targets = np.argmax(probabilities, axis=1)
    references = other_class_references(rng, train_x, train_y, targets, args.references)
    fills = mean_and_blur_fills(train_x)
    base = dict(steps=args.steps, value_range=(0.0, 1.0), step_schedule=PUBLISHED_PATH)
    rows: Dict[str, Dict[str, Any]] = {}
    explanations: Dict[str, tf_ig2.Explanation] = {}

    def run(label: str, make: Callable[[], Any], refs: Any = references,
            method: Optional[str] = None) -> Dict[str, Any]:
        keyword = None if method is None else get_method(method).reference_keyword
        explanation, seconds = timed_explain(make, inputs, refs, targets, warm_up=not args.no_warm_up,
                                             repeats=args.timing_repeats, keyword=keyword)
        explanations[label] = explanation
        row = summarise(model, inputs, targets, fills, args, explanation, seconds)
        relative = completeness_cells(row["relative"])[0]
        log(f"  {name} / {label}: {seconds_cell(seconds)} s per input, median relative completeness error "
            f"{relative}, DiffID mean {row['scores']['mean']['diffid'].mean():.2f}, "
            f"blur {row['scores']['blur']['diffid'].mean():.2f}")
        return row

    for rule, label in RULES:
        rows[label] = run(label, lambda: tf_ig2.IG2(model, integration=rule, segment_points=args.segment_points,
                                                    **base))
        if rule == "left":
            left = explanations[label]
            rows["IG² left, sum rescaled per input (post hoc)"] = summarise(
                model, inputs, targets, fills, args, None, None, attributions=rescale_globally(left),
                relative=np.zeros(len(inputs)))
    rows["IG, reference baselines"] = run("IG, reference baselines",
                                          lambda: tf_ig2.IntegratedGradients(model, args.ig_steps))
    rows["Guided IG, zero baseline"] = run("Guided IG, zero baseline",
                                           lambda: tf_ig2.GuidedIG(model, args.guided_steps), refs=0.0)
    rows["Guided IG, reference baselines"] = run("Guided IG, reference baselines",
                                                 lambda: tf_ig2.GuidedIG(model, args.guided_steps))
    for label, method, make, refs in other_methods(model, args, references):
        rows[label] = run(label, make, refs=refs, method=method)
    if not args.skip_momentum:
        for rule in ("left", "rescaled"):
            label = f"IG² momentum={args.momentum:g} GradPath, {rule}"
            rows[label] = run(label, lambda: tf_ig2.IG2(model, momentum=args.momentum, integration=rule, **base))
    eta = tf_ig2.defaults.AUTO_STEP_FACTOR * np.linalg.norm(
        (inputs[:, None] - references).reshape(len(inputs) * args.references, -1), axis=1) / args.steps
    result = {"rows": rows, "targets": targets, "auto_eta": float(np.median(eta)),
              "representation": tf_ig2.IG2(model).representation,
              "gap": float(np.median(np.abs(left.target_scores - left.counterfactual_scores))),
              "distance_ratio": float(np.median(left.representation_distance[..., 1]
                                                / left.representation_distance[..., 0]))}
    if name in args.ablation_models and not args.skip_ablations:
        result["ablations"] = ablations(name, model, args, data, rng, run, probabilities, references, result)
    if not args.skip_diagnostics:
        count = min(args.diagnostic_inputs, len(inputs))
        log(f"  {name}: path diagnostics on {count} inputs")
        result["diagnostics"] = path_diagnostics(model, inputs[:count], references[:count], targets[:count],
                                                 args.steps)
    return result


# -- main ---------------------------------------------------------------------------------------------

def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of every part in about a minute")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ablation-models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help="networks the IG² ablations run on (default all)")
    parser.add_argument("--inputs", type=int, default=8, help="held-out inputs explained per network, default 8")
    parser.add_argument("--references", type=int, default=2, help="references per input, default 2")
    parser.add_argument("--steps", type=int, default=tf_ig2.defaults.IG2_STEPS, help="IG² steps, default 201")
    parser.add_argument("--segment-points", type=int, default=4, help="midpoint rule gradients per segment")
    parser.add_argument("--ig-steps", type=int, default=tf_ig2.defaults.IG_STEPS, help="IG points, default 64")
    parser.add_argument("--guided-steps", type=int, default=tf_ig2.defaults.GUIDED_IG_STEPS,
                        help="Guided IG steps, default 200")
    parser.add_argument("--curve-steps", type=int, default=16, help="deletion/insertion steps, default 16")
    parser.add_argument("--blur-sigma", type=float, default=tf_ig2.defaults.METRIC_BLUR_SIGMA,
                        help="blur fill sigma in pixels, default 5")
    parser.add_argument("--step-sizes", type=float, nargs="+", default=[0.1, 1.0], help="fixed η for the ablation")
    parser.add_argument("--ablation-steps", type=int, nargs="+", default=[64, 400])
    parser.add_argument("--momentum", type=float, default=0.9, help="momentum of the GradPath variant (IG2 momentum=)")
    parser.add_argument("--diagnostic-inputs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default per network)")
    parser.add_argument("--train-subset", type=int, default=None, help="train on this many images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--no-warm-up", action="store_true", help="time the first (tracing) call too")
    parser.add_argument("--timing-repeats", type=int, default=2,
                        help="explain calls per explainer, the fastest one timed (default 2)")
    parser.add_argument("--eg-samples", type=int, default=None,
                        help=f"Expected Gradients' samples per input (default its own, "
                             f"{tf_ig2.defaults.EXPECTED_GRADIENTS_SAMPLES})")
    parser.add_argument("--smooth-samples", type=int, default=None,
                        help=f"SmoothGrad's noisy copies per input (default its own, {tf_ig2.defaults.SMOOTH_SAMPLES})")
    parser.add_argument("--skip-ablations", action="store_true")
    parser.add_argument("--skip-momentum", action="store_true")
    parser.add_argument("--skip-diagnostics", action="store_true")
    parser.add_argument("--main-only", action="store_true",
                        help="the main table only: --skip-ablations --skip-momentum --skip-diagnostics --skip-paired")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    paired_defaults.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.main_only:
        if args.paired:
            parser.error("--paired and --main-only exclude each other")
        args.skip_ablations = args.skip_momentum = args.skip_diagnostics = args.skip_paired = True
    paired_defaults.check_arguments(parser, args)
    if args.quick:
        args.eg_samples = args.eg_samples or 16
        args.smooth_samples = args.smooth_samples or 4
        args.inputs, args.steps, args.ig_steps, args.guided_steps, args.curve_steps = 2, 16, 8, 8, 4
        args.segment_points, args.diagnostic_inputs = 2, 1
        args.step_sizes, args.ablation_steps = [1.0], [8]
        # Tracing dominates a quick run; the cheapest network to trace runs the ablations.
        args.ablation_models = ["ResNet-style"]
        args.no_warm_up, args.timing_repeats = True, 1
    return args


def to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def networks_table(records: Dict[str, Dict[str, Any]], representations: Dict[str, str]) -> str:
    lines = ["| network | parameters | epochs | training images | held-out accuracy before BN recompute | "
             "held-out accuracy | training s | representation (default) |", "|---|---|---|---|---|---|---|---|"]
    for name, record in records.items():
        cached = " (cached)" if record.get("cached") else ""
        lines.append(f"| {name} | {record['params']:,} | {record['epochs']} | {record['train_images']} | "
                     f"{record['test_accuracy_before_bn_recompute']:.3f} | {record['test_accuracy']:.3f} | "
                     f"{record['train_seconds']:.0f}{cached} | {representations[name]} |")
    return "\n".join(lines)


def print_study(results: Dict[str, Dict[str, Any]], args) -> None:
    """The main study's tables: methods, DiffID paired against the left rule, ablations, diagnostics."""
    for name, result in results.items():
        print(f"## {name}: methods\n")
        print(f"Median |f(x) − mean_r f(GradCF_r)| of IG² left: {result['gap']:.3g} (logit); median representation "
              f"distance end/start {result['distance_ratio']:.3g}; median auto η {result['auto_eta']:.3g}.\n")
        print(method_table(result["rows"]) + "\n")
        print(f"### {name}: DiffID paired against IG² left, per input\n")
        print(paired_table(result["rows"], "IG² left (published)") + "\n")
        if "ablations" in result:
            print(f"## {name}: IG² ablations\n")
            print(ablation_table(result["ablations"]) + "\n")
    diagnostics = {name: result["diagnostics"] for name, result in results.items() if "diagnostics" in result}
    if diagnostics:
        print(f"## The published GradPath step by step (left rule, {args.diagnostic_inputs} inputs × "
              f"{args.references} references per network)\n")
        print(diagnostics_table(diagnostics) + "\n")


def main(argv=None) -> None:
    args = parse_arguments(argv)
    start = time.perf_counter()
    import warnings

    warnings.filterwarnings("ignore", category=tf_ig2.CompletenessWarning)
    data = load_data()
    threads = os.environ.get("TF_IG2_BENCH_THREADS", "TensorFlow's default")
    print(f"# IG² on realistic CNNs (digits upsampled to {SIZE}x{SIZE}x3)\n")
    if not args.paired:
        print(f"{args.inputs} held-out inputs per network, R = {args.references} references, k = {args.steps} "
              f"steps, deletion/insertion with {args.curve_steps} steps (blur σ = {args.blur_sigma} px), "
              f"threads: {threads}.\n")
        print(f"IG {args.ig_steps} points, Guided IG {args.guided_steps} steps. Through the registry "
              "(`get_method(name).build(model)`) at their defaults: the plain gradient, gradient × input (zero "
              "baseline), Blur IG, Expected Gradients (the same R references per input as its pool) and SmoothGrad "
              "of the gradient (`tf_ig2.smooth(..., kind=\"smoothgrad\")`, noise a fraction of each input's "
              "range); the samples are in the rows' labels.\n")
    else:
        print(f"The paired study only (`--paired`); threads: {threads}.\n")
    records, results, paired = {}, {}, {}
    for name in args.models:
        in_paired = name in args.paired_models and not args.skip_paired
        if args.paired and not in_paired:
            continue
        model, record = cached_or_quick(name, args, data)
        records[name] = record
        if not args.paired:
            log(f"{name}: explaining")
            results[name] = study(name, model, args, data)
        if in_paired:
            log(f"{name}: paired study")
            paired[name] = paired_defaults.run_network(name, model, args, data)
        keras.backend.clear_session()
    representations = {name: (results.get(name) or paired[name])["representation"] for name in records}
    print("## Networks\n")
    print(networks_table(records, representations) + "\n")
    print_study(results, args)
    if paired:
        print("\n\n".join(paired_defaults.report(paired, args)) + "\n")
    total = time.perf_counter() - start
    print(f"Total time: {total:.0f} s")
    if args.json:
        report = {"arguments": vars(args), "records": records, "results": results, "paired": paired, "seconds": total}
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(to_json(report), handle, indent=1, default=float)


if __name__ == "__main__":
    main()
