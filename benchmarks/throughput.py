"""Throughput and peak memory of tf_ig2.explain_dataset, on one device and on two (CPU).

IG² costs k steps of one forward pass and two gradients per (input, reference) pair (Zhuo & Ge,
TPAMI 2024, Eqs. 7-10), so explaining a dataset should cost time linear in the number of inputs N
and memory independent of N: the inputs are streamed from a ``tf.data`` pipeline (random inputs
made on the fly from the input's index) and the results go to disk shard by shard.

Three measurements, each setting in a fresh subprocess so that ``ru_maxrss`` is its own peak:

1. ``scaling``: inputs per second and peak resident memory for N = 16, 64, 256 on a digits-sized
   CNN (8x8x1) and a 64x64x3 CNN (random weights). The compiled functions are traced on one batch
   before the clock starts; each setting is timed ``--repeats`` times (median shown). A line
   ``seconds = a + b N`` is fitted: a is the fixed cost of a call (opening the folder, checksums of
   the weights and references), b the cost per input; cost linear in N shows as a small deviation
   from the fit, flat memory as a flat "peak MiB" (it may rise until one shard is held).
2. ``devices``: the same inputs explained on one device and with a ``MirroredStrategy`` over two
   logical CPU devices (``tf.config.set_logical_device_configuration``), in one process; the
   largest difference of the results and the speed-up. Logical CPU devices share the machine's
   cores and thread pools, so on a small CPU the speed-up is about 1 or below: this checks the
   distributed path, not a speed claim for GPUs.
3. ``--multi-worker``: two worker processes on localhost with ``TF_CONFIG`` and a
   ``MultiWorkerMirroredStrategy``, compared with one device (slow to start: off by default).

Run: ``PYTHONPATH=. python benchmarks/throughput.py`` (``--quick`` for a short check).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = {"digits 8x8x1": (8, 8, 1), "image 64x64x3": (64, 64, 3)}
VALUE_RANGE = (0.0, 1.0)


# -- pieces run inside the child processes ---------------------------------------------------------
def build_model(sample_shape, seed: int = 0):
    """A small CNN with random weights: two convolutions, a 64-unit representation, 10 logits."""
    import keras

    keras.utils.set_random_seed(seed)
    strides = 1 if sample_shape[0] <= 16 else 2
    return keras.Sequential([
        keras.Input(sample_shape),
        keras.layers.Conv2D(16, 3, strides=strides, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, strides=strides, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="representation"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def make_dataset(sample_shape, count: int, offset: int = 0):
    """``count`` random inputs in [0, 1), input i made from seed i: nothing held in memory."""
    import tensorflow as tf

    return tf.data.Dataset.range(offset, offset + count).map(
        lambda index: tf.random.stateless_uniform(sample_shape, seed=tf.stack([index, tf.constant(7, tf.int64)])))


def make_references(sample_shape, count: int):
    return np.random.default_rng(1).uniform(0.0, 1.0, (count, *sample_shape)).astype("float32")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def child_scaling(setting: Dict[str, Any]) -> Dict[str, Any]:
    import tf_ig2
    from tf_ig2 import dataset as tf_ig2_dataset

    shape = tuple(setting["shape"])
    explainer = tf_ig2.IG2(build_model(shape), steps=setting["steps"], value_range=VALUE_RANGE,
                           batch_size=setting["pair_batch"])
    references = make_references(shape, setting["references"])
    folder = setting["folder"]
    tf_ig2_dataset.explain_dataset(explainer, make_dataset(shape, setting["batch"], offset=10 ** 6), references,
                                   os.path.join(folder, "warmup"), batch_size=setting["batch"], progress=False)
    seconds = []
    for repeat in range(setting["repeats"]):
        output = os.path.join(folder, "run" if repeat == 0 else f"run{repeat}")
        result = tf_ig2_dataset.explain_dataset(explainer, make_dataset(shape, setting["inputs"]), references,
                                                output, batch_size=setting["batch"], shard_size=setting["shard"],
                                                progress=False)
        seconds.append(result.seconds)
    return {"seconds": statistics.median(seconds), "count": result.count, "peak_mib": peak_mib(),
            "traces": explainer.tracing_count}


def child_devices(setting: Dict[str, Any]) -> Dict[str, Any]:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tf_ig2
    from tf_ig2 import dataset as module

    shape = tuple(setting["shape"])
    explainer = tf_ig2.IG2(build_model(shape), steps=setting["steps"], value_range=VALUE_RANGE,
                           batch_size=setting["pair_batch"])
    references = make_references(shape, setting["references"])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    folder = setting["folder"]
    timings, results = {}, {}
    contenders = (("one device", None), ("two devices", strategy))
    for name, chosen in contenders:
        module.explain_dataset(explainer, make_dataset(shape, setting["batch"], offset=10 ** 6), references,
                               os.path.join(folder, f"warmup {name}"), batch_size=setting["batch"],
                               strategy=chosen, progress=False)
        timings[name] = []
    for repeat in range(setting["repeats"]):  # interleaved, so that a change of load hits both
        for name, chosen in contenders:
            result = module.explain_dataset(explainer, make_dataset(shape, setting["inputs"]), references,
                                            os.path.join(folder, f"{name} {repeat}"), batch_size=setting["batch"],
                                            shard_size=setting["shard"], strategy=chosen, progress=False)
            timings[name].append(result.seconds)
            results[name] = result.load(mmap_mode=None)
    timings = {name: statistics.median(values) for name, values in timings.items()}
    one, two = results["one device"], results["two devices"]
    difference = max(float(np.max(np.abs(one[key].astype(np.float64) - two[key]))) for key in one)
    return {"one": timings["one device"], "two": timings["two devices"], "difference": difference,
            "scale": float(np.max(np.abs(one["attributions"]))),
            "targets_equal": bool(np.array_equal(one["targets"], two["targets"]))}


def child_worker(setting: Dict[str, Any]) -> Dict[str, Any]:
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import tf_ig2
    from tf_ig2.dataset import explain_dataset

    shape = tuple(setting["shape"])
    explainer = tf_ig2.IG2(build_model(shape), steps=setting["steps"], value_range=VALUE_RANGE,
                           batch_size=setting["pair_batch"])
    references = make_references(shape, setting["references"])
    explain_dataset(explainer, make_dataset(shape, setting["batch"], offset=10 ** 6), references,
                    setting["output"] + " warmup", batch_size=setting["batch"], strategy=strategy, progress=False)
    result = explain_dataset(explainer, make_dataset(shape, setting["inputs"]), references, setting["output"],
                             batch_size=setting["batch"], shard_size=setting["shard"], strategy=strategy,
                             progress=False)
    return {"seconds": result.seconds, "replicas": strategy.num_replicas_in_sync}


# -- the parent --------------------------------------------------------------------------------------
def run_child(kind: str, setting: Dict[str, Any], environment: Dict[str, str] = None) -> Dict[str, Any]:
    environment = dict(environment or os.environ)
    environment["PYTHONPATH"] = ROOT + os.pathsep + environment.get("PYTHONPATH", "")
    completed = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind, json.dumps(setting)],
                               capture_output=True, text=True, env=environment)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode or not lines:
        raise RuntimeError(f"{kind} child failed:\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("localhost", 0))
        return handle.getsockname()[1]


def child_compare(setting: Dict[str, Any]) -> Dict[str, Any]:
    from tf_ig2.dataset import load_results

    one, two = (load_results(folder, mmap_mode=None) for folder in setting["folders"])
    return {"difference": max(float(np.max(np.abs(one[key].astype(np.float64) - two[key]))) for key in one)}


def multi_worker(setting: Dict[str, Any]) -> Dict[str, Any]:
    """Two workers on localhost; returns the chief's time and the difference to one device."""
    ports = [free_port(), free_port()]
    processes = []
    started = time.perf_counter()
    for worker in range(2):
        environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                           TF_CONFIG=json.dumps({"cluster": {"worker": [f"localhost:{port}" for port in ports]},
                                                 "task": {"type": "worker", "index": worker}}))
        processes.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", "worker", json.dumps(setting)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment))
    reports = []
    for process in processes:
        out, error = process.communicate()
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if process.returncode or not lines:
            raise RuntimeError(f"worker failed:\n{error[-3000:]}")
        reports.append(json.loads(lines[-1][len("RESULT "):]))
    wall = time.perf_counter() - started
    difference = run_child("compare", {"folders": [setting["single"], setting["output"]]})["difference"]
    return {"seconds": reports[0]["seconds"], "wall": wall, "replicas": reports[0]["replicas"],
            "difference": difference}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="k, IG² steps (default 16)")
    parser.add_argument("--references", type=int, default=2, help="R, references per input (default 2)")
    parser.add_argument("--inputs", type=int, nargs="+", default=[16, 64, 256], help="the N to time")
    parser.add_argument("--batch", type=int, default=16, help="inputs per batch (default 16)")
    parser.add_argument("--shard", type=int, default=64, help="inputs per result shard (default 64)")
    parser.add_argument("--pair-batch", type=int, default=None, help="the explainer's batch_size (pairs)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting, median shown (default 3)")
    parser.add_argument("--device-inputs", type=int, default=64, help="N for one vs two devices (default 64)")
    parser.add_argument("--multi-worker", action="store_true", help="also run two workers on localhost")
    parser.add_argument("--quick", action="store_true", help="--steps 4 --inputs 16 64 --device-inputs 16 --repeats 1")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SETTING"), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.steps, arguments.inputs, arguments.device_inputs, arguments.repeats = 4, [16, 64], 16, 1
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    if arguments.child:
        kind, setting = arguments.child[0], json.loads(arguments.child[1])
        report = {"scaling": child_scaling, "devices": child_devices, "worker": child_worker,
                  "compare": child_compare}[kind](setting)
        print("RESULT " + json.dumps(report), flush=True)
        return 0

    common = {"steps": arguments.steps, "references": arguments.references, "batch": arguments.batch,
              "shard": arguments.shard, "pair_batch": arguments.pair_batch, "repeats": arguments.repeats}
    print(f"explain_dataset throughput, CPU ({os.cpu_count()} cores visible, load average "
          f"{os.getloadavg()[0]:.2f}): IG² k={arguments.steps} steps, R={arguments.references} references, "
          f"batch {arguments.batch} inputs, shards of {arguments.shard}, inputs streamed from tf.data", flush=True)
    scratch = tempfile.mkdtemp(prefix="tf_ig2_throughput_")
    failed = False
    try:
        print()
        print(f"{'model':<16}{'N':>6}{'seconds':>10}{'inputs/s':>10}{'ms/input':>10}{'peak MiB':>10}{'traces':>8}")
        for model_name, shape in MODELS.items():
            rows: List[Dict[str, Any]] = []
            for count in arguments.inputs:
                folder = os.path.join(scratch, f"scaling-{shape[0]}-{count}")
                report = run_child("scaling", dict(common, shape=shape, inputs=count, folder=folder))
                rows.append(report)
                print(f"{model_name:<16}{count:>6}{report['seconds']:>10.2f}{count / report['seconds']:>10.1f}"
                      f"{1000 * report['seconds'] / count:>10.2f}{report['peak_mib']:>10.0f}{report['traces']:>8}",
                      flush=True)
                shutil.rmtree(folder, ignore_errors=True)
            seconds = np.array([row["seconds"] for row in rows])
            counts = np.array(arguments.inputs, dtype=float)
            slope, intercept = np.polyfit(counts, seconds, 1) if len(counts) > 1 else (seconds[0] / counts[0], 0.0)
            deviation = np.max(np.abs(seconds - (intercept + slope * counts)) / seconds)
            memory = [row["peak_mib"] for row in rows]
            print(f"{'':<16}linear fit: {intercept:.2f} s + {1000 * slope:.2f} ms/input (largest deviation "
                  f"{100 * deviation:.0f}%); peak memory spread {max(memory) - min(memory):.0f} MiB")

        print()
        print(f"one device vs MirroredStrategy on two logical CPU devices, N={arguments.device_inputs}:")
        print(f"{'model':<16}{'one s':>8}{'two s':>8}{'speed-up':>10}{'max |diff|':>12}{'attr scale':>12}"
              f"{'targets':>9}")
        for model_name, shape in MODELS.items():
            folder = os.path.join(scratch, f"devices-{shape[0]}")
            report = run_child("devices", dict(common, shape=shape, inputs=arguments.device_inputs, folder=folder))
            failed |= not report["targets_equal"] or report["difference"] > 1e-4 * max(1.0, report["scale"])
            print(f"{model_name:<16}{report['one']:>8.2f}{report['two']:>8.2f}{report['one'] / report['two']:>9.2f}x"
                  f"{report['difference']:>12.2e}{report['scale']:>12.3g}"
                  f"{'equal' if report['targets_equal'] else 'DIFFER':>9}", flush=True)
            shutil.rmtree(folder, ignore_errors=True)

        if arguments.multi_worker:
            print()
            shape = MODELS["digits 8x8x1"]
            single = os.path.join(scratch, "worker-single")
            run_child("scaling", dict(common, shape=shape, inputs=arguments.device_inputs, folder=single))
            report = multi_worker(dict(common, shape=shape, inputs=arguments.device_inputs,
                                       output=os.path.join(scratch, "workers"),
                                       single=os.path.join(single, "run")))
            failed |= report["difference"] > 1e-4
            print(f"two workers (MultiWorkerMirroredStrategy, TF_CONFIG, localhost), digits CNN, "
                  f"N={arguments.device_inputs}: {report['replicas']} replicas, {report['seconds']:.2f} s explaining "
                  f"({report['wall']:.1f} s with start-up and tracing), "
                  f"max |difference| to one device {report['difference']:.2e}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(f"load average {os.getloadavg()[0]:.2f} at the end; {'FAIL' if failed else 'results agree'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
