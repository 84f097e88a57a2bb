"""Peak memory of tf_ig2.IG2 against the number of GradPath steps (CPU).

tf_ig2 fuses the GradPath search with the integration (Zhuo & Ge, TPAMI 2024, Eqs. 7-10), so the
loop carries only the current point and the running sum: without ``return_path`` its memory must
not grow with ``steps``. Asking for the path stores ``N * R * (steps + 1)`` inputs, about
``N*R*(steps+1)*64*64*3*4`` bytes here (~315 MB for 400 steps).

Every setting runs in a fresh subprocess, which builds the 64x64x3 benchmark CNN, warms the
explainer up on a single pair (tracing included), reads its peak resident memory
(``resource.getrusage(...).ru_maxrss``), explains N inputs x R references and reads the peak
again; the table shows the growth. TensorFlow's ``get_memory_info`` does not cover CPU memory.

Run: ``PYTHONPATH=. python benchmarks/memory.py`` (``--steps 50 200 400``, ``--no-return-path``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

SAMPLE_SHAPE = (64, 64, 3)
BYTES_PER_MB = 1024 * 1024


def peak_mb() -> float:
    """The process's peak resident memory so far, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def path_estimate_mb(inputs: int, references: int, steps: int) -> float:
    """MiB taken by a float32 ``(N, R, steps + 1, 64, 64, 3)`` path."""
    values = inputs * references * (steps + 1)
    for size in SAMPLE_SHAPE:
        values *= size
    return values * 4 / BYTES_PER_MB


def child(steps: int, inputs: int, references: int, return_path: bool) -> None:
    """Measures one setting and prints one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    import speed

    import tf_ig2

    model = speed.benchmark_cnn(SAMPLE_SHAPE)
    images, bases = speed.make_data(SAMPLE_SHAPE, inputs, references)
    explainer = tf_ig2.IG2(model, representation_layer=speed.REPRESENTATION, steps=steps,
                           value_range=speed.VALUE_RANGE)
    explainer.explain(images[:1], bases[:1], return_path=return_path)  # traces; same function after
    traces, before = explainer.tracing_count, peak_mb()
    explanation = explainer.explain(images, bases, return_path=return_path)
    after = peak_mb()
    print(json.dumps({"before": before, "after": after, "retraced": explainer.tracing_count != traces,
                      "path_shape": None if explanation.path is None else list(explanation.path.shape),
                      "finite": bool(np.all(np.isfinite(explanation.attributions)))}))


def measure(steps: int, inputs: int, references: int, return_path: bool) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", "--steps", str(steps), "--inputs", str(inputs),
               "--references", str(references)] + (["--return-path"] if return_path else [])
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"setting steps={steps}, return_path={return_path} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 200, 400], help="settings of k")
    parser.add_argument("--inputs", type=int, default=2, help="N, explained inputs (default 2)")
    parser.add_argument("--references", type=int, default=8, help="R, references per input (default 8)")
    parser.add_argument("--no-return-path", action="store_true",
                        help="only estimate, do not measure, what return_path=True needs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--return-path", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if min(arguments.steps) < 1 or arguments.inputs < 1 or arguments.references < 1:
        parser.error("--steps, --inputs and --references must be >= 1")
    if arguments.child:
        child(arguments.steps[0], arguments.inputs, arguments.references, arguments.return_path)
        return 0

    n, r = arguments.inputs, arguments.references
    print(f"IG² peak memory, CPU: 64x64x3 CNN, N={n} inputs x R={r} references = {n * r} pairs; "
          "one fresh process per row; MiB of peak resident memory (ru_maxrss)")
    print()
    print(f"{'steps':>6}{'return_path':>13}{'after warm-up':>15}{'peak':>9}{'growth':>9}{'path estimate':>15}"
          f"{'growth / estimate':>19}")
    growth = {}
    for return_path in ([False] if arguments.no_return_path else [False, True]):
        for steps in arguments.steps:
            row = measure(steps, n, r, return_path)
            growth[steps, return_path] = row["after"] - row["before"]
            estimate = path_estimate_mb(n, r, steps)
            ratio = f"{growth[steps, return_path] / estimate:>18.1f}x" if return_path else ""
            warning = "" if row["finite"] and not row["retraced"] else "  (non-finite or retraced!)"
            print(f"{steps:>6}{str(return_path):>13}{row['before']:>15.1f}{row['after']:>9.1f}"
                  f"{growth[steps, return_path]:>9.1f}{estimate:>15.1f}{ratio}{warning}", flush=True)
    if arguments.no_return_path:
        for steps in arguments.steps:
            print(f"{steps:>6}{'True':>13}{'':>33}{path_estimate_mb(n, r, steps):>15.1f}  (estimate only)")

    low, high = min(arguments.steps), max(arguments.steps)
    without_path = [growth[steps, False] for steps in arguments.steps]
    spread = max(without_path) - min(without_path)
    allowed = 0.1 * (path_estimate_mb(n, r, high) - path_estimate_mb(n, r, low))
    print()
    print(f"without return_path the growth varies by {spread:.1f} MiB from {low} to {high} steps; "
          f"storing the path would add {path_estimate_mb(n, r, high) - path_estimate_mb(n, r, low):.1f} MiB "
          f"(allowed: {allowed:.1f} MiB)  {'PASS' if spread <= allowed else 'FAIL'}")
    return 0 if spread <= allowed else 1


if __name__ == "__main__":
    sys.exit(main())
