"""A paired study of IG²'s defaults and of the reference pickers, on the three digits CNNs.

Run through ``realistic_cnns.py`` (``--paired`` runs only this study; the default run runs it after
the main one). Every comparison explains the same held-out inputs (the first N of the test split)
for the same targets (the predicted class, its logit) against the same references, so that the
numbers can be compared input by input:

1. **Integration rule**: IG² ``integration="trapezoid"`` against ``"left"`` (the published rule).
2. **Step schedule**: IG² ``step_schedule="shrink"`` (``shrink_factor`` at its default) against
   ``"constant"`` (the published path), under each of the two rules.
3. **Reference pickers**: IG² (trapezoid) with ``tf_ig2.references.other_class`` and
   ``relevant_class`` (R references each), and straight-line IG (``tf_ig2.IntegratedGradients`` at
   its default rule and points) with those two and the usual baselines ``constant`` (at its
   default value, black), ``blurred`` (``--baseline-sigma`` px, by default the blur fill's sigma)
   and ``pool_mean`` of the training images, each paired
   against the same method with ``other_class``.

IG² runs at ``--steps`` (default k = 201), ``step_size="auto"``, ``value_range=(0, 1)``. Per
network and setting: the median relative completeness error, mean DiffID with the training-mean
and blur fills (``digits_cnns.faithfulness``), and for each pair of settings A and B the paired
difference A − B of DiffID with a 95 % interval, mean ± t · sd / √n with the t quantile for n − 1
degrees of freedom (``scipy.stats.t``), the number of inputs where A is higher, and the ratio of
the relative completeness errors A / B as a geometric mean over the inputs with a 95 % interval
(the same t interval on the log ratio). An interval that excludes 0 (or 1 for the ratio) is
marked "> 0" / "< 0" ("< 1" / "> 1").
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from digits_cnns import FILL_LABELS, MODELS, log, mean_and_blur_fills, summarise, timed_explain
from scipy import stats

import tf_ig2
from tf_ig2 import defaults, references

#: Inputs per network unless ``--paired-inputs`` says otherwise, in the order of ``MODELS``.
PAIRED_INPUTS = (32, 32, 32)

#: (label, integration, step_schedule) of the IG² settings run with other-class references.
IG2_SETTINGS = (("IG² left", "left", "constant"), ("IG² trapezoid", "trapezoid", "constant"),
                ("IG² left, shrink", "left", "shrink"), ("IG² trapezoid, shrink", "trapezoid", "shrink"))

#: (study, A, B) of the comparisons of parts 1 and 2: A − B.
COMPARISONS = (("integration rule", "IG² trapezoid", "IG² left"),
               ("step schedule", "IG² trapezoid, shrink", "IG² trapezoid"),
               ("step schedule", "IG² left, shrink", "IG² left"))

#: The pickers of part 3: (method, pickers in table order); each is paired against the method's other_class.
PICKER_ROWS = (("IG² trapezoid", ("other_class", "relevant_class")),
               ("IG", ("other_class", "relevant_class", "constant", "blurred", "pool_mean")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The paired study's options, on ``realistic_cnns.py``'s parser."""
    parser.add_argument("--paired", action="store_true", help="run only the paired study of the defaults and pickers")
    parser.add_argument("--skip-paired", action="store_true", help="leave the paired study out of the full run")
    parser.add_argument("--paired-inputs", type=int, nargs="+", default=list(PAIRED_INPUTS),
                        help="held-out inputs per network in the paired study: one number for every network, or "
                             f"one per network in the order {', '.join(MODELS)} (default {PAIRED_INPUTS})")
    parser.add_argument("--paired-models", nargs="+", default=None, choices=list(MODELS),
                        help="networks the paired study runs on (default all; the ResNet-style with --quick)")
    parser.add_argument("--baseline-sigma", type=float, default=None,
                        help="sigma in pixels of IG's blurred baseline (references.blurred); default the blur "
                             "fill's (--blur-sigma), so that the blur fill equals this baseline")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses a ``--paired-inputs`` list of the wrong length, and shrinks the study for ``--quick``."""
    if len(args.paired_inputs) not in (1, len(MODELS)) or min(args.paired_inputs) < 2:
        parser.error(f"--paired-inputs takes one number or {len(MODELS)} (one per network), each >= 2. "
                     f"Received: {args.paired_inputs}")
    if args.paired and args.skip_paired:
        parser.error("--paired and --skip-paired exclude each other")
    if args.quick:  # tracing dominates a quick run: two inputs, and the cheapest network to trace
        args.paired_inputs = [2]
    if args.baseline_sigma is None:
        args.baseline_sigma = args.blur_sigma
    if args.paired_models is None:
        args.paired_models = ["ResNet-style"] if args.quick else list(MODELS)


def inputs_for(name: str, args) -> int:
    """The number of held-out inputs the paired study explains on network ``name``."""
    counts = args.paired_inputs
    return counts[0] if len(counts) == 1 else counts[list(MODELS).index(name)]


# -- running -----------------------------------------------------------------------------------------

def picked_references(model, args, data, inputs: np.ndarray, targets: np.ndarray) -> Dict[str, Any]:
    """Each picker's references for ``inputs`` (seeded with ``--seed``)."""
    train_x, train_y = data[0], data[1]
    count = args.references
    return {"other_class": references.other_class(train_x, train_y, targets, count, seed=args.seed),
            "relevant_class": references.relevant_class(model, train_x, train_y, inputs, count, seed=args.seed),
            "constant": references.constant(inputs, defaults.REFERENCE_CONSTANT),
            "blurred": references.blurred(inputs, args.baseline_sigma),
            "pool_mean": references.pool_mean(train_x)}


def run_network(name: str, model, args, data) -> Dict[str, Any]:
    """Every setting of the three parts on one network; rows keyed ``"<method>"`` or ``"<method> | <picker>"``."""
    start = time.perf_counter()
    count = inputs_for(name, args)
    inputs = data[2][:count]
    targets = np.argmax(model.predict(inputs, verbose=0), axis=1)
    picked = picked_references(model, args, data, inputs, targets)
    fills = mean_and_blur_fills(data[0])
    rows: Dict[str, Dict[str, Any]] = {}

    def run(label: str, explainer: Any, refs: Any) -> None:
        explanation, seconds = timed_explain(lambda: explainer, inputs, refs, targets, warm_up=not args.no_warm_up)
        rows[label] = summarise(model, inputs, targets, fills, args, explanation, seconds)
        row = rows[label]
        log(f"  {name} / {label}: {seconds:.2f} s per input, median relative completeness error "
            f"{np.nanmedian(row['relative']):.3g}, DiffID mean {row['scores']['mean']['diffid'].mean():.2f}, "
            f"blur {row['scores']['blur']['diffid'].mean():.2f}")

    trapezoid = None
    for label, integration, schedule in IG2_SETTINGS:
        explainer = tf_ig2.IG2(model, steps=args.steps, value_range=(0.0, 1.0), integration=integration,
                               step_schedule=schedule)
        run(label, explainer, picked["other_class"])
        if (integration, schedule) == ("trapezoid", "constant"):
            trapezoid = explainer
    rows["IG² trapezoid | other_class"] = rows["IG² trapezoid"]
    run("IG² trapezoid | relevant_class", trapezoid, picked["relevant_class"])
    ig = tf_ig2.IntegratedGradients(model, args.ig_steps)
    for picker in PICKER_ROWS[1][1]:
        run(f"IG | {picker}", ig, picked[picker])
    seconds = time.perf_counter() - start
    log(f"{name}: paired study took {seconds:.0f} s")
    return {"inputs": count, "rows": rows, "seconds": seconds, "representation": trapezoid.representation}


# -- statistics --------------------------------------------------------------------------------------

def interval(values: np.ndarray) -> Tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its 95 % t interval, mean ± t(0.975, n − 1) · sd / √n."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(values) - 1)) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def difference_cell(difference: np.ndarray) -> str:
    """``+0.41 [−0.20, +1.02]``, followed by ``> 0`` or ``< 0`` when the interval excludes 0."""
    mean, low, high = interval(difference)
    mark = " > 0" if low > 0 else (" < 0" if high < 0 else "")
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]{mark}"


def ratio_cell(errors_a: np.ndarray, errors_b: np.ndarray) -> str:
    """The geometric mean of the per-input error ratios A / B with its 95 % interval (t on the logs)."""
    tiny = np.finfo(np.float64).tiny
    logs = np.log(np.maximum(errors_a, tiny)) - np.log(np.maximum(errors_b, tiny))
    mean, low, high = (np.exp(value) for value in interval(logs))
    mark = " < 1" if high < 1 else (" > 1" if low > 1 else "")
    return f"{mean:.3g} [{low:.3g}, {high:.3g}]{mark}"


def diffid(row: Dict[str, Any], fill: str) -> np.ndarray:
    return row["scores"][fill]["diffid"]


def higher(difference: np.ndarray) -> str:
    return f"{int(np.sum(difference > 0))} / {len(difference)}"


# -- tables --------------------------------------------------------------------------------------------

def comparison_table(results: Dict[str, Dict[str, Any]], comparisons: Sequence[Tuple[str, str, str]]) -> str:
    """One row per network and comparison A − B: completeness and DiffID of both, paired."""
    lines = ["| network (N) | A − B | rel. completeness error, median A / B | error ratio A / B, geometric mean "
             "[95 % CI] | A's error lower / N | DiffID mean fill A / B | Δ DiffID mean fill [95 % CI] | A higher / N "
             "| DiffID blur fill A / B | Δ DiffID blur fill [95 % CI] | A higher / N |",
             "|---" * 11 + "|"]
    for name, result in results.items():
        for _, a, b in comparisons:
            row_a, row_b = result["rows"][a], result["rows"][b]
            errors_a, errors_b = row_a["relative"], row_b["relative"]
            cells = [f"{name} ({result['inputs']})", f"{a} − {b}",
                     f"{np.nanmedian(errors_a):.3g} / {np.nanmedian(errors_b):.3g}", ratio_cell(errors_a, errors_b),
                     f"{int(np.sum(errors_a < errors_b))} / {len(errors_a)}"]
            for fill in FILL_LABELS:
                difference = diffid(row_a, fill) - diffid(row_b, fill)
                cells += [f"{diffid(row_a, fill).mean():.2f} / {diffid(row_b, fill).mean():.2f}",
                          difference_cell(difference), higher(difference)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def picker_label(picker: str, args) -> str:
    """How the table names a picker's call."""
    count = args.references
    ranks = "2nd" if count == 1 else f"2nd {'and' if count == 2 else 'to'} {ordinal(count + 1)}"
    return {"other_class": f"`other_class`, R = {count} (random other-class)",
            "relevant_class": f"`relevant_class`, R = {count} (the classes ranked {ranks})",
            "constant": f"`constant(inputs, {defaults.REFERENCE_CONSTANT!r})`"
                        + (" (black)" if defaults.REFERENCE_CONSTANT == 0 else ""),
            "blurred": f"`blurred(inputs, {args.baseline_sigma:g})`",
            "pool_mean": "`pool_mean(train_x)` (training mean)"}[picker]


def picker_table(result: Dict[str, Any], args) -> str:
    """One network's pickers: each method's rows paired against the same method with ``other_class``."""
    lines = ["| method | references | rel. completeness error, median | DiffID mean fill | Δ vs other_class, mean "
             "fill [95 % CI] | higher / N | DiffID blur fill | Δ vs other_class, blur fill [95 % CI] | higher / N "
             "| s / input |", "|---" * 10 + "|"]
    for method, pickers in PICKER_ROWS:
        base = result["rows"][f"{method} | other_class"]
        for picker in pickers:
            row = result["rows"][f"{method} | {picker}"]
            cells = [method, picker_label(picker, args), f"{np.nanmedian(row['relative']):.3g}"]
            for fill in FILL_LABELS:
                cells.append(f"{diffid(row, fill).mean():.2f}")
                if picker == "other_class":
                    cells += ["—", "—"]
                else:
                    difference = diffid(row, fill) - diffid(base, fill)
                    cells += [difference_cell(difference), higher(difference)]
            cells.append(f"{row['seconds']:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: Dict[str, Dict[str, Any]], args) -> List[str]:
    """The paired study's Markdown sections, in print order."""
    counts = ", ".join(f"{name} {result['inputs']}" for name, result in results.items())
    sections = [
        "## Paired study: IG²'s defaults and the reference pickers",
        f"Inputs per network: {counts} (the first held-out images), target the predicted class (logit). "
        f"IG²: k = {args.steps}, step_size auto, value_range (0, 1), shrink_factor "
        f"{defaults.IG2_SHRINK_FACTOR:g}; R = {args.references} references per input, seed {args.seed}. "
        f"IG: {args.ig_steps} points, rule {defaults.IG_RULE}. Deletion/insertion: {args.curve_steps} steps, "
        f"training-mean and blur (σ = {args.blur_sigma:g} px) fills. Paired 95 % intervals: mean ± t(0.975, n − 1)"
        f" · sd / √n (scipy.stats.t); error ratio: geometric mean over inputs, the same interval on the log ratio.",
        "### Integration rule: trapezoid − left (other-class references, constant step)",
        comparison_table(results, COMPARISONS[:1]),
        "### Step schedule: shrink − constant, under each rule (other-class references)",
        comparison_table(results, COMPARISONS[1:]),
    ]
    for name, result in results.items():
        sections += [f"### Reference pickers: {name} ({result['inputs']} inputs)", picker_table(result, args)]
    timing = ", ".join(f"{name} {result['seconds']:.0f} s" for name, result in results.items())
    total = sum(result["seconds"] for result in results.values())
    sections.append(f"Paired study time (models loaded): {timing}; {total:.0f} s in all.")
    return sections
