"""How long ``tf-ig2`` takes to refuse a command, against ``tf-ig2 --help``.

Each command runs in a fresh ``python -m tf_ig2`` process (wall clock, median of ``--repeats``
runs); the table says whether TensorFlow was imported by the time the process exited. Refusals
are checked before TensorFlow is imported, so they should cost about as much as ``--help``; a
model that exists but cannot be loaded is refused only once TensorFlow is up (shown for scale).

Usage::

    PYTHONPATH=. python benchmarks/refusals.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Dict, List, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Runs the command line, then says whether TensorFlow was imported (on stdout's last line).
SCRIPT = ("import sys\nfrom tf_ig2 import cli\nstatus = cli.main(sys.argv[1:])\n"
          "print('tensorflow' in sys.modules)\nsys.exit(status)\n")


def cases(folder: str) -> Dict[str, List[str]]:
    """The commands timed, by description."""
    inputs = os.path.join(folder, "x.npy")
    np.save(inputs, np.zeros((2, 4), np.float32))
    model = os.path.join(folder, "m.keras")
    with zipfile.ZipFile(model, "w") as archive:  # a zip archive, as .keras files are, but no model
        archive.writestr("notes.txt", "not a model")
    full = os.path.join(folder, "full")
    os.makedirs(full, exist_ok=True)
    with open(os.path.join(full, "notes.txt"), "w") as handle:
        handle.write("mine")
    with open(os.path.join(folder, "file"), "w") as handle:
        handle.write("a file")
    explain = ["explain", model, "--inputs", inputs, "--references", inputs]
    return {
        "`tf-ig2 --help`": ["--help"],
        "usage error (option of another method)": [*explain, "--method", "ig", "--segment-points", "2",
                                                   "--output", os.path.join(folder, "o")],
        "missing `--inputs` file": ["explain", model, "--inputs", os.path.join(folder, "missing.npy"),
                                    "--references", inputs, "--output", os.path.join(folder, "o")],
        "missing MODEL": ["explain", os.path.join(folder, "missing.keras"), "--inputs", inputs, "--references",
                          inputs, "--output", os.path.join(folder, "o")],
        "non-empty `--output` without `--overwrite`": [*explain, "--output", full],
        "`--output` below a regular file": [*explain, "--output", os.path.join(folder, "file", "out")],
        "`tf-ig2 demo` into a non-empty folder": ["demo", "--output", full],
        "(for scale) MODEL that cannot be loaded": [*explain, "--output", os.path.join(folder, "o")],
    }


def time_command(arguments: List[str], repeats: int) -> Tuple[float, int, bool]:
    """Median wall seconds, exit status and whether TensorFlow was imported."""
    environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        completed = subprocess.run([sys.executable, "-c", SCRIPT, *arguments], capture_output=True, text=True,
                                   env=environment, cwd=ROOT, timeout=600)
        seconds.append(time.perf_counter() - start)
    lines = completed.stdout.strip().splitlines()
    imported = bool(lines) and lines[-1] == "True"
    return statistics.median(seconds), completed.returncode, imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per command (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print("| command | exit status | wall time (s) | TensorFlow imported |")
        print("| --- | --- | --- | --- |")
        for description, arguments in cases(folder).items():
            seconds, status, imported = time_command(arguments, args.repeats)
            print(f"| {description} | {status} | {seconds:.2f} | {'yes' if imported else 'no'} |")


if __name__ == "__main__":
    main()
