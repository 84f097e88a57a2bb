"""Speed of tf_ig2.IG2 against the published loop and against a bare compiled loop (CPU).

IG² costs k steps of one forward pass and two gradients per (input, reference) pair (Zhuo & Ge,
TPAMI 2024, Eqs. 7-10). Three ways to compute it on the same N x R pairs are timed:

- ``tf_ig2.IG2``: the package, ``batch_size=None`` (all pairs at once), ``step_size="auto"``;
- ``compiled floor``: one ``tf.function`` with a ``tf.while_loop`` over k doing, on the batch of
  pairs, one forward pass of a functional sub-model ``z -> (phi(z), logits(z))``, two gradients
  with a persistent tape and the GradPath update, nothing else;
- ``authors' loop``: the literal eager port in ``authors_loop.py``, one pair per call with numpy
  round trips at every step (and, for information, the same with the R references of one input
  batched, as the published ``GetMask`` does).

Each contender is warmed up once (tracing excluded; the eager ports trace nothing and warm up with
a 2-step call), then the contenders are timed in turns, ``--repeats`` (``--port-repeats``) times
each, in alternating order. Targets: IG2 at least 15x faster than the per-pair port (ratio of
median wall-clock times), and at most 1.15x the floor (median of the ratios of back-to-back
calls, the measure least disturbed by a changing machine load). Process CPU times are printed too.

Run: ``PYTHONPATH=. python benchmarks/speed.py`` (or ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import authors_loop  # noqa: E402

import tf_ig2  # noqa: E402
from tf_ig2 import defaults  # noqa: E402

SPEEDUP_TARGET = 15.0
OVERHEAD_TARGET = 1.15
VALUE_RANGE = (0.0, 1.0)
REPRESENTATION = "representation"
LOGITS = "logits"
IG2_NAME = "tf_ig2.IG2"
FLOOR_NAME = "compiled floor"
PER_PAIR = "authors' loop, per pair"
BATCHED = "authors' loop, R batched"


def benchmark_cnn(input_shape=(28, 28, 1), classes: int = 10, seed: int = 0) -> keras.Model:
    """Two convolutions, a 64-unit Dense representation, Dense logits and a Softmax; seeded."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation="relu", name=REPRESENTATION),
        keras.layers.Dense(classes, name=LOGITS),
        keras.layers.Softmax(name="probabilities"),
    ])


def compiled_floor(function: keras.Model, sample_shape, steps: int, value_range=VALUE_RANGE):
    """The bare loop: k x (forward, distance gradient, logit gradient, update) on all pairs.

    Returns a ``tf.function`` mapping ``(inputs (P, *S), references (P, *S), targets (P,))`` to
    ``(attributions (P, *S), counterfactuals (P, *S))`` of each pair.
    """
    rank = len(sample_shape)
    axes = list(range(1, rank + 1))
    low, high = (tf.constant(bound, tf.float32) for bound in value_range)
    spec = tf.TensorSpec([None, *sample_shape], tf.float32)

    def norm(values):
        return tf.sqrt(tf.reduce_sum(tf.square(values), axis=axes, keepdims=True))

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([None], tf.int32)])
    def floor(inputs, references, targets):
        reference_representation = function(references, training=False)[0]
        eta = defaults.AUTO_STEP_FACTOR * norm(inputs - references) / steps

        def step(j, point, total):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(point)
                representation, logits = function(point, training=False)
                distance = tf.reduce_sum(tf.square(representation - reference_representation))
                score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
            distance_gradient = tape.gradient(distance, point)
            score_gradient = tape.gradient(score, point)
            del tape
            following = point - eta * tf.math.divide_no_nan(distance_gradient, norm(distance_gradient))
            following = tf.minimum(tf.maximum(following, low), high)
            return j + 1, following, total + (point - following) * score_gradient

        _, end, total = tf.while_loop(lambda j, *_: j < steps, step,
                                      (tf.constant(0), inputs, tf.zeros_like(inputs)), parallel_iterations=1)
        return total, end

    return floor


def make_data(sample_shape, inputs: int, references: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.0, 1.0, (inputs, *sample_shape)).astype(np.float32),
            rng.uniform(0.0, 1.0, (references, *sample_shape)).astype(np.float32))


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=defaults.IG2_STEPS, help="k, GradPath steps (default 201)")
    parser.add_argument("--inputs", type=int, default=4, help="N, explained inputs (default 4)")
    parser.add_argument("--references", type=int, default=8, help="R, references per input (default 8)")
    parser.add_argument("--repeats", type=int, default=21,
                        help="timed calls of each compiled contender (default 21)")
    parser.add_argument("--port-repeats", type=int, default=3,
                        help="timed calls of each eager port (default 3; they are slow)")
    parser.add_argument("--no-batched-port", action="store_true",
                        help="skip the informational port with the references of one input batched")
    parser.add_argument("--quick", action="store_true",
                        help="a fast check: --steps 51 --repeats 9 --port-repeats 1")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.steps, arguments.repeats, arguments.port_repeats = 51, 9, 1
    for name in ("steps", "inputs", "references", "repeats", "port_repeats"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    sample_shape = (28, 28, 1)
    steps, n, r = arguments.steps, arguments.inputs, arguments.references
    model = benchmark_cnn(sample_shape)
    function = authors_loop.representation_and_logits(model, REPRESENTATION, LOGITS)
    inputs, references = make_data(sample_shape, n, r)
    targets = np.argmax(function(inputs)[1].numpy(), axis=1)

    # The published path: the same loop as the floor's and the authors' port.
    explainer = tf_ig2.IG2(model, representation_layer=REPRESENTATION, steps=steps, value_range=VALUE_RANGE,
                           step_schedule="constant")
    floor = compiled_floor(function, sample_shape, steps)
    pair_inputs = tf.constant(np.repeat(inputs, r, axis=0))
    pair_references = tf.constant(np.tile(references, (n,) + (1,) * len(sample_shape)))
    pair_targets = tf.constant(np.repeat(targets, r).astype(np.int32))

    def port(port_steps: int, batch_references: bool) -> Callable[[], object]:
        return lambda: authors_loop.authors_ig2(function, inputs, references, targets, steps=port_steps,
                                                value_range=VALUE_RANGE, batch_references=batch_references)

    contenders: Dict[str, Callable[[], object]] = {
        IG2_NAME: lambda: explainer.explain(inputs, references, targets),
        FLOOR_NAME: lambda: [value.numpy() for value in floor(pair_inputs, pair_references, pair_targets)],
        PER_PAIR: port(steps, False),
    }
    # The eager ports trace nothing: a 2-step call warms up their op caches.
    warmups = dict(contenders, **{PER_PAIR: port(2, False)})
    if not arguments.no_batched_port:
        contenders[BATCHED] = port(steps, True)
        warmups[BATCHED] = port(2, True)
    repeats = {name: arguments.port_repeats if name in (PER_PAIR, BATCHED) else arguments.repeats
               for name in contenders}

    print(f"IG² speed, CPU, TensorFlow {tf.__version__}: 28x28x1 CNN, N={n} inputs x R={r} references "
          f"= {n * r} pairs, k={steps} steps, value_range={VALUE_RANGE}, step_size='auto'")
    print(f"{os.cpu_count()} CPU cores visible; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    warmup: Dict[str, float] = {}
    for name in contenders:
        start = time.perf_counter()
        warmups[name]()
        warmup[name] = time.perf_counter() - start
    traces_after_warmup = explainer.tracing_count

    results: Dict[str, object] = {}
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    cpu_times: Dict[str, List[float]] = {name: [] for name in contenders}
    pair_ratios: List[float] = []
    for round_index in range(max(repeats.values())):
        # Interleaved: every round runs each contender once, in reverse order every other round.
        order = list(contenders) if round_index % 2 == 0 else list(reversed(contenders))
        for name in order:
            if round_index < repeats[name]:
                start, start_cpu = time.perf_counter(), time.process_time()
                result = contenders[name]()
                times[name].append(time.perf_counter() - start)
                cpu_times[name].append(time.process_time() - start_cpu)
                results.setdefault(name, result)
        if round_index < arguments.repeats:
            pair_ratios.append(times[IG2_NAME][-1] / times[FLOOR_NAME][-1])
    traces_after_timing = explainer.tracing_count

    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_times.items()}
    reference = medians[IG2_NAME]
    print()
    print(f"{'contender':<28}{'median s/call':>14}{'min':>9}{'max':>9}{'runs':>6}{'vs tf_ig2':>11}"
          f"{'CPU s/call':>12}{'warm-up s':>11}")
    for name in contenders:
        values = times[name]
        print(f"{name:<28}{medians[name]:>14.3f}{min(values):>9.3f}{max(values):>9.3f}{len(values):>6}"
              f"{medians[name] / reference:>10.2f}x{cpu_medians[name]:>12.3f}{warmup[name]:>11.2f}")
    print("(wall-clock seconds; 'CPU s/call' is the process CPU time, all threads, which a loaded machine "
          "disturbs less)")

    explanation = results[IG2_NAME]
    port_attributions, port_counterfactuals = results[PER_PAIR]
    floor_attributions = results[FLOOR_NAME][0].reshape((n, r) + sample_shape).mean(axis=1)
    print()
    print("agreement with tf_ig2.IG2 (max |difference|, attribution scale "
          f"{np.abs(explanation.attributions).max():.3g}): authors' loop attributions "
          f"{np.abs(port_attributions - explanation.attributions).max():.2e}, GradCF "
          f"{np.abs(port_counterfactuals - explanation.counterfactuals).max():.2e}; floor attributions "
          f"{np.abs(floor_attributions - explanation.attributions).max():.2e}")
    if BATCHED in results:
        # ReLU units flipping one step earlier or later amplify float32 rounding along the path:
        # the two ports differ from each other about as much as from tf_ig2.IG2.
        print(f"  for scale, the two ports' GradCF differ by "
              f"{np.abs(results[BATCHED][1] - port_counterfactuals).max():.2e} from each other")
    print(f"tf_ig2.IG2 tracing_count: {traces_after_warmup} after warm-up, {traces_after_timing} after "
          f"{len(times[IG2_NAME])} more calls -> "
          f"{'no retracing' if traces_after_timing == traces_after_warmup else 'RETRACED'}")

    speedup = medians[PER_PAIR] / reference
    overhead = statistics.median(pair_ratios)
    speed_pass, overhead_pass = speedup >= SPEEDUP_TARGET, overhead <= OVERHEAD_TARGET
    print()
    print(f"target 1: tf_ig2.IG2 vs authors' loop per pair: {speedup:7.1f}x faster "
          f"(need >= {SPEEDUP_TARGET:g}x)  {'PASS' if speed_pass else 'FAIL'}   "
          f"[CPU time: {cpu_medians[PER_PAIR] / cpu_medians[IG2_NAME]:.1f}x]")
    print(f"target 2: tf_ig2.IG2 / compiled floor:          {overhead:7.3f}x "
          f"(need <= {OVERHEAD_TARGET:g}x)  {'PASS' if overhead_pass else 'FAIL'}   "
          f"[median of {len(pair_ratios)} back-to-back pairs; ratio of medians {reference / medians[FLOOR_NAME]:.3f}x, "
          f"of minima {min(times[IG2_NAME]) / min(times[FLOOR_NAME]):.3f}x, "
          f"of CPU times {cpu_medians[IG2_NAME] / cpu_medians[FLOOR_NAME]:.3f}x]")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0 if speed_pass and overhead_pass else 1


if __name__ == "__main__":
    sys.exit(main())
