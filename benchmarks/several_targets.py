"""T targets in one ``explain`` call against T single-target calls (CPU), for IG² and IG.

IG² searches one GradPath per (input, reference) pair whatever the target, so T targets cost one
forward pass, the distance gradient and T score gradients per step, against T forward passes and
2T gradients for T separate calls: at most ``3T / (T + 2)`` times faster when a forward pass costs
as much as a gradient (1.8x at T = 3, 2.5x at T = 10). Straight-line IG saves less: its line does
not depend on the target, but each point still needs T gradients (``2T / (T + 1)`` at most).

Contenders, on the same N inputs x R references, through the public ``explain``:

- ``one call``: ``explainer.explain(inputs, references, targets=indices)`` with ``(N, T)`` indices;
- ``T calls``: ``explainer.explain(inputs, references, targets=indices[:, t])`` for t < T.

Models: the 28x28x1 CNN of ``speed.py`` and ``keras.applications.MobileNetV2(weights=None,
input_shape=(64, 64, 3), classes=10)`` (random weights: timing only). Each contender is warmed up
once (tracing is not timed), then the two run in alternating turns and the medians are compared;
the speed-up is also given as the median of the ratios of back-to-back runs. Targets for IG²:
at least 1.7x at T = 3 and 2.2x at T = 10. The attributions of both contenders are compared too.

Run: ``PYTHONPATH=. python benchmarks/several_targets.py`` (or ``--quick``: fewer steps and turns).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Callable, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from speed import benchmark_cnn  # noqa: E402

import tf_ig2  # noqa: E402

TARGETS = {3: 1.7, 10: 2.2}  # IG²: the least speed-up of one call over T calls, by T
QUICK_STEPS = 21


def mobilenet() -> keras.Model:
    """MobileNetV2 on 64x64x3 inputs, 10 classes, seeded random weights."""
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=10)


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=201, help="k, path steps (default 201)")
    parser.add_argument("--inputs", type=int, default=4, help="N, explained inputs (default 4)")
    parser.add_argument("--references", type=int, default=4, help="R, references per input (default 4)")
    parser.add_argument("--targets", type=int, nargs="+", default=[3, 10], help="values of T (default 3 10)")
    parser.add_argument("--repeats", type=int, default=5, help="turns per contender (default 5)")
    parser.add_argument("--models", nargs="+", default=["cnn", "mobilenet"], choices=["cnn", "mobilenet"])
    parser.add_argument("--methods", nargs="+", default=["ig2", "ig"], choices=["ig2", "ig"])
    parser.add_argument("--quick", action="store_true",
                        help=f"k={QUICK_STEPS} steps and 3 turns (the speed-ups hardly depend on k)")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.steps, arguments.repeats = QUICK_STEPS, 3
    return arguments


def time_interleaved(contenders: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, List[float]]:
    """Wall-clock seconds of each contender, ``repeats`` turns each, in alternating order."""
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for turn in range(repeats):
        for name in names if turn % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


def run_case(explainer, inputs, references, count: int, repeats: int) -> Dict[str, object]:
    """Times one call with ``count`` targets against ``count`` single-target calls; returns a table row."""
    indices = np.tile(np.arange(count), (len(inputs), 1))
    results: Dict[str, object] = {}

    def one_call():
        results["one"] = explainer.explain(inputs, references, targets=indices)

    def separate_calls():
        results["separate"] = [explainer.explain(inputs, references, targets=indices[:, t]) for t in range(count)]

    contenders = {"one call": one_call, "T calls": separate_calls}
    for contender in contenders.values():  # warm-up: traces once
        contender()
    traces = explainer.tracing_count
    times = time_interleaved(contenders, repeats)
    one, separate = times["one call"], times["T calls"]
    several = results["one"].attributions
    singles = np.stack([explanation.attributions for explanation in results["separate"]], axis=1)
    scale = float(np.max(np.abs(singles))) or 1.0
    return {
        "one": statistics.median(one), "separate": statistics.median(separate),
        "speedup": statistics.median(separate) / statistics.median(one),
        "paired": statistics.median(s / o for s, o in zip(separate, one)),
        "difference": float(np.max(np.abs(several - singles))) / scale,
        "retraced": explainer.tracing_count != traces,
    }


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    warnings.simplefilter("ignore")  # random weights: completeness and degeneracy warnings say nothing here
    n, r, k = arguments.inputs, arguments.references, arguments.steps
    builders = {"cnn": ("28x28x1 CNN (speed.py)", benchmark_cnn),
                "mobilenet": ("MobileNetV2 64x64x3, 10 classes", mobilenet)}
    print(f"Several targets, CPU, TensorFlow {tf.__version__}: N={n} inputs x R={r} references, k={k} steps, "
          f"{arguments.repeats} interleaved turns; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    print()
    print("| model | method | T | one call (s) | T calls (s) | speed-up | paired | target | max rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    passed = True
    for key in arguments.models:
        label, build = builders[key]
        model = build()
        shape = tuple(model.inputs[0].shape[1:])
        rng = np.random.default_rng(1)
        inputs = rng.random((n, *shape)).astype(np.float32)
        references = rng.random((r, *shape)).astype(np.float32)
        for method in arguments.methods:
            explainer = (tf_ig2.IG2(model, steps=k, value_range=(0.0, 1.0)) if method == "ig2"
                         else tf_ig2.IntegratedGradients(model, steps=k))
            for count in arguments.targets:
                row = run_case(explainer, inputs, references, count, arguments.repeats)
                target = TARGETS.get(count) if method == "ig2" else None
                if target is not None:
                    passed &= row["paired"] >= target
                print(f"| {label} | {method} | {count} | {row['one']:.3f} | {row['separate']:.3f} | "
                      f"{row['speedup']:.2f}x | {row['paired']:.2f}x | "
                      f"{'-' if target is None else f'>= {target}x'} | {row['difference']:.1e}"
                      f"{' (retraced!)' if row['retraced'] else ''} |", flush=True)
    print()
    print("speed-up: ratio of the median times; paired: median of the ratios of back-to-back turns (the target's "
          "measure); max rel. diff: max |one call - T calls| over the attributions, relative to their largest "
          f"magnitude. Load average at the end {os.getloadavg()[0]:.2f}.")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
