"""The first call: tracing plus one run, of tf_ig2.IG2 against the bare compiled loop (CPU).

Every ``tf-ig2 explain`` run and the callback's first logged epoch pay the tracing of the compiled
GradPath loop. Each measurement runs in a fresh Python process (nothing traced or cached before it),
contenders alternating, ``--repeats`` processes each:

- ``tf_ig2.IG2``: ``IG2(model, ...)`` built and its first ``explain`` call (the predicted classes,
  ``step_size="auto"``, ``value_range=(0, 1)``), timed from before the explainer exists to the
  numpy result; a per-function table says what was traced and what its first call cost beyond
  its second;
- ``compiled floor``: ``speed.compiled_floor`` built and called once (the same k steps on the same
  pairs, one forward pass and two gradients per step, nothing else).

Models: the 28x28x1 CNN of ``speed.py`` (k=51 as ``speed.py --quick``, N=4, R=8) and
``keras.applications.MobileNetV2(weights=None)`` at 64x64x3 (k=51, N=4, R=4). Target: the first
``explain`` costs at most 1.5x the floor's first call (median of the per-process ratios).

The command line: ``tf-ig2 explain`` of 4 digits (4 references) on the demo's CNN (trained once on
scikit-learn's digits and cached in ``benchmarks/.cache/``), as a whole process, against a process
doing ``import tensorflow, keras; keras.saving.load_model(...)`` plus one first call of the floor
with the same steps. Target: at most 1.5x.

Run: ``PYTHONPATH=. python benchmarks/first_call.py`` (``--quick``: 2 processes each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache", "first_call")
TARGET = 1.5
STEPS = 51
MODELS = {"cnn": ("28x28x1 CNN (speed.py)", 4, 8), "mobilenet": ("MobileNetV2 64x64x3", 4, 4)}


# -- the child processes ---------------------------------------------------------------------------
def _model(name: str) -> Any:
    sys.path.insert(0, HERE)
    import keras
    import speed

    if name == "cnn":
        return speed.benchmark_cnn((28, 28, 1))
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=10)


def _representation_and_logits(model: Any) -> Any:
    """``z -> (phi(z), logits(z))``: the input of the last Dense layer, and that layer without its activation."""
    import keras
    import tensorflow as tf

    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):  # the speed.py CNN: a Dense 'logits' layer, then Softmax
        last = model.layers[-2]
    representation = keras.Model(model.inputs, last.input)

    def function(points: Any, training: bool = False) -> Any:
        features = representation(points, training=training)
        return features, tf.matmul(features, last.kernel) + last.bias

    return function


def _instrument(records: List[Dict[str, Any]]) -> None:
    """Times every compiled function of the explainer: its first and its second call."""
    import tensorflow as tf

    from tf_ig2.engine import compiled_model

    build_function = compiled_model.CompiledModel.function

    def function(self: Any, key: Any, build: Any, score: Any = None) -> Any:
        def timed_build() -> Any:
            compiled = build()
            record = {"function": str(key[0]), "seconds": []}
            records.append(record)

            class Timed:
                def __call__(self, *arguments: Any) -> Any:
                    start = time.perf_counter()
                    outputs = compiled(*arguments)
                    for value in tf.nest.flatten(outputs):
                        value.numpy()
                    record["seconds"].append(time.perf_counter() - start)
                    record["traces"] = compiled.experimental_get_tracing_count()
                    return outputs

                def experimental_get_tracing_count(self) -> int:
                    return compiled.experimental_get_tracing_count()

            return Timed()
        return build_function(self, key, timed_build, score)

    compiled_model.CompiledModel.function = function


def _with_autograph() -> None:
    """Compiled functions as they were made before: ``tf.function`` with AutoGraph on (its default)."""
    import tensorflow as tf

    from tf_ig2.engine import compiled_model

    initialise = compiled_model.CompiledFunction.__init__

    def with_autograph(self: Any, function: Any, input_signature: Any) -> None:
        initialise(self, function, input_signature)
        self._function = tf.function(function, input_signature=input_signature)

    compiled_model.CompiledFunction.__init__ = with_autograph


def child_explain(kind: str, name: str) -> Dict[str, Any]:
    """One fresh process: build and call ``kind`` (``ig2``, ``ig2-autograph`` or ``floor``) twice."""
    import warnings

    import numpy as np
    import tensorflow as tf

    sys.path.insert(0, HERE)
    import speed

    warnings.simplefilter("ignore")  # random weights: completeness warnings say nothing here
    _, n, r = MODELS[name]
    model = _model(name)
    shape = tuple(model.input_shape[1:])
    inputs, references = speed.make_data(shape, n, r)
    records: List[Dict[str, Any]] = []
    if kind.startswith("ig2"):
        import tf_ig2

        if kind == "ig2-autograph":
            _with_autograph()
        _instrument(records)
        start = time.perf_counter()
        # the published path, as the floor's
        explainer = tf_ig2.IG2(model, steps=STEPS, value_range=speed.VALUE_RANGE, step_schedule="constant")
        explainer.explain(inputs, references)
        first = time.perf_counter() - start
        start = time.perf_counter()
        explainer.explain(inputs, references)
        second = time.perf_counter() - start
    else:
        function = _representation_and_logits(model)
        targets = np.argmax(function(tf.constant(inputs))[1].numpy(), axis=1)  # as IG2 finds them, untimed
        pair_inputs = tf.constant(np.repeat(inputs, r, axis=0))
        pair_references = tf.constant(np.tile(references, (n,) + (1,) * len(shape)))
        pair_targets = tf.constant(np.repeat(targets, r).astype(np.int32))
        seconds = []
        start = time.perf_counter()
        floor = speed.compiled_floor(function, shape, STEPS)
        for _ in range(2):
            [value.numpy() for value in floor(pair_inputs, pair_references, pair_targets)]
            seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
        first, second = seconds
    return {"first": first, "second": second, "functions": records}


def child_load_floor(model_path: str, inputs_path: str, references_path: str, steps: int) -> Dict[str, Any]:
    """``import tensorflow, keras; keras.saving.load_model(...)`` plus one first call of the floor."""
    import keras
    import numpy as np
    import tensorflow as tf

    sys.path.insert(0, HERE)
    import speed

    model = keras.saving.load_model(model_path)
    inputs, references = np.load(inputs_path), np.load(references_path)
    function = _representation_and_logits(model)
    n, r = len(inputs), len(references)
    shape = tuple(inputs.shape[1:])
    floor = speed.compiled_floor(function, shape, steps)
    targets = np.argmax(function(tf.constant(inputs))[1].numpy(), axis=1)
    outputs = floor(tf.constant(np.repeat(inputs, r, axis=0)), tf.constant(np.tile(references, (n, 1, 1, 1))),
                    tf.constant(np.repeat(targets, r).astype(np.int32)))
    return {"attributions": float(np.abs(outputs[0].numpy()).sum())}


# -- the parent --------------------------------------------------------------------------------------
def _run_child(arguments: List[str]) -> Dict[str, Any]:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    completed = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *arguments],
                               capture_output=True, text=True, env=environment, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _timed_process(command: List[str]) -> float:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    return time.perf_counter() - start


def measure_models(names: List[str], repeats: int) -> None:
    print(f"First call (tracing + one run), k={STEPS}, each in a fresh process, {repeats} processes per contender")
    print()
    print("| model | pairs | floor: first call s | tf_ig2.IG2: first call s | ratio (median of paired) | target | "
          "IG2 with AutoGraph (as before): first call s | its ratio |")
    print("|---|---|---|---|---|---|---|---|")
    tables = {}
    for name in names:
        label, n, r = MODELS[name]
        kinds = ("floor", "ig2", "ig2-autograph")
        runs: Dict[str, List[Dict[str, Any]]] = {kind: [] for kind in kinds}
        for turn in range(repeats):
            for kind in kinds if turn % 2 == 0 else kinds[::-1]:
                runs[kind].append(_run_child(["explain", kind, name]))
        first = {kind: statistics.median(run["first"] for run in runs[kind]) for kind in kinds}
        ratio, before = (statistics.median(run["first"] / floor["first"]
                                           for run, floor in zip(runs[kind], runs["floor"]))
                         for kind in ("ig2", "ig2-autograph"))
        print(f"| {label} | {n * r} | {first['floor']:.2f} | {first['ig2']:.2f} | {ratio:.2f}x | "
              f"{'met' if ratio <= TARGET else 'MISSED'} (<= {TARGET}x) | {first['ig2-autograph']:.2f} | "
              f"{before:.2f}x |", flush=True)
        tables[label] = runs
    print()
    print("What tf_ig2.IG2's first call traced (median over processes; tracing ~ first call - second call):")
    print()
    print("| model | function | traces | first call s | second call s | tracing s |")
    print("|---|---|---|---|---|---|")
    for (label, runs), kind in ((item, kind) for item in tables.items() for kind in ("ig2", "ig2-autograph")):
        label = label if kind == "ig2" else f"{label}, with AutoGraph"
        by_function: Dict[str, List[Dict[str, Any]]] = {}
        for run in runs[kind]:
            for record in run["functions"]:
                by_function.setdefault(record["function"], []).append(record)
        for function, records in by_function.items():
            first = statistics.median(record["seconds"][0] for record in records)
            second = statistics.median(record["seconds"][1] for record in records if len(record["seconds"]) > 1)
            traces = max(record["traces"] for record in records)
            print(f"| {label} | `{function}` | {traces} | {first:.3f} | {second:.3f} | {first - second:.3f} |")
        whole = statistics.median(run["first"] - run["second"] for run in runs[kind])
        print(f"| {label} | whole first explain - second | | | | {whole:.3f} |")


def demo_files() -> Dict[str, str]:
    """The demo's CNN trained on digits (cached) and 4 held-out digits with 4 references of other classes."""
    import numpy as np

    from tf_ig2 import references as pickers
    from tf_ig2.cli import demo

    paths = {name: os.path.join(CACHE, file) for name, file in
             (("model", "model.keras"), ("inputs", "inputs.npy"), ("references", "references.npy"))}
    if all(os.path.exists(path) for path in paths.values()):
        return paths
    import keras

    os.makedirs(CACHE, exist_ok=True)
    train_x, train_y, test_x, test_y = demo.load_digits_data()
    keras.utils.set_random_seed(0)
    model = demo.build_model(train_x.shape[1:])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_x, train_y, epochs=5, batch_size=64, verbose=0)
    model.save(paths["model"])
    inputs = test_x[:4]
    chosen = pickers.other_class(train_x, train_y, test_y[:4], 1)[:, 0]
    np.save(paths["inputs"], inputs)
    np.save(paths["references"], np.asarray(chosen, np.float32))
    return paths


def measure_command_line(repeats: int) -> None:
    from tf_ig2 import defaults

    paths = demo_files()
    command = os.path.join(os.path.dirname(sys.executable), "tf-ig2")
    steps = defaults.IG2_STEPS
    cli_times, floor_times = [], []
    with tempfile.TemporaryDirectory() as folder:
        for turn in range(repeats):
            def explain() -> None:
                cli_times.append(_timed_process([
                    command, "explain", paths["model"], "--inputs", paths["inputs"], "--references",
                    paths["references"], "--output", os.path.join(folder, f"run{turn}"), "--quiet"]))

            def floor() -> None:
                floor_times.append(_timed_process([
                    sys.executable, os.path.abspath(__file__), "--child", "load-floor", paths["model"],
                    paths["inputs"], paths["references"], str(steps)]))

            for contender in (explain, floor) if turn % 2 == 0 else (floor, explain):
                contender()
    ratio = statistics.median(c / f for c, f in zip(cli_times, floor_times))
    print()
    print(f"The command line: 4 digits x 4 references on the demo's CNN, k={steps}, whole processes")
    print()
    print("| python -c 'import tensorflow, keras; load_model' + floor first call s | tf-ig2 explain s | ratio "
          "(median of paired) | target |")
    print("|---|---|---|---|")
    print(f"| {statistics.median(floor_times):.2f} | {statistics.median(cli_times):.2f} | {ratio:.2f}x | "
          f"{'met' if ratio <= TARGET else 'MISSED'} (<= {TARGET}x) |")


def main(argv: Any = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, *rest = argv[1:]
        result = child_explain(*rest) if kind == "explain" else child_load_floor(*rest[:3], int(rest[3]))
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per contender (default 5)")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-command-line", action="store_true", help="skip the tf-ig2 explain measurement")
    parser.add_argument("--quick", action="store_true", help="2 processes per contender")
    arguments = parser.parse_args(argv)
    repeats = 2 if arguments.quick else arguments.repeats
    print(f"{os.cpu_count()} CPU cores visible; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    if arguments.models:
        measure_models(arguments.models, repeats)
    if not arguments.no_command_line:
        measure_command_line(repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
