"""The ``tf-ig2`` command line: explain a saved model with IG² or another registered method, or run the demo.

``tf-ig2 explain MODEL --inputs PATH --references PATH --output DIR [--method NAME]``
loads a ``.keras``, ``.h5`` or SavedModel model (:func:`tf_ig2.saved_model.load_model`), reads
inputs and references (:mod:`tf_ig2.cli.files`), explains them with the chosen method, IG² (Zhuo &
Ge, TPAMI 2024, Eqs. 7-10) by default, and writes the results; :mod:`tf_ig2.cli.explain` runs
it, in memory or, with ``--stream``, a batch at a time into resumable result shards. Each
method's options come from the method registry (:mod:`tf_ig2.methods`). ``tf-ig2 demo`` trains a
small CNN on scikit-learn's digits and explains it (:mod:`tf_ig2.cli.demo`).

This module holds the parser, the entry point :func:`main` and what keeps stderr readable:
TensorFlow's start-up lines removed, warnings and errors on one line each.

Exit status: 0 on success; 2 on a usage or input error, reported as one line
``tf-ig2: error: ...`` on stderr, with the output folder left untouched (in stream mode, finished
shards are kept); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import faulthandler
import logging
import math
import os
import re
import sys
import tempfile
import textwrap
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional

from tf_ig2 import defaults
from tf_ig2.cli import inputs as cli_inputs
from tf_ig2.cli import pool as cli_pool
from tf_ig2.cli import smoothing as cli_smoothing
from tf_ig2.cli import targets as cli_targets
from tf_ig2.cli.explain import (
    PROGRAM,
    ProgressBar,
    UsageError,
    check_explain,
    method_flags,
    reserved_output,
    run_explain,
)
from tf_ig2.cli.wording import command_line_wording
from tf_ig2.methods import registry as methods

__all__ = ["main", "build_parser", "quiet_tensorflow_startup", "ProgressBar", "UsageError", "PROGRAM"]
from tf_ig2.validation import one_line

#: Exit statuses.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


#: The environment variable TensorFlow's C++ runtime reads its log level from, at import time.
TF_LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
#: Its value for ``tf-ig2`` when the user has not set it: errors only (no INFO or WARNING lines).
TF_LOG_LEVEL_DEFAULT = "2"

#: TensorFlow's start-up lines on stderr, which its C++ runtime writes whatever
#: TF_CPP_MIN_LOG_LEVEL says (absl logs everything before ``absl::InitializeLog()``), e.g.
#: ``I0000 00:00:1796004792.897143    3289 port.cc:153] oneDNN custom operations are on. ...``,
#: ``I0000 ... cudart_stub.cc:31] Could not find cuda drivers ...``,
#: ``E0000 ... cuda_platform.cc:52] failed call to cuInit: ...`` and the absl banner.
TENSORFLOW_STARTUP_LINE = re.compile(
    r"^(?:[IWE]\d{4} [\d:.]+\s+\d+ [\w.\-/]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.\s*$)")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``tf-ig2: error: ...`` line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{PROGRAM}: error: {one_line(message)} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


# -- TensorFlow's start-up lines -------------------------------------------------------------------
@contextlib.contextmanager
def _without_stderr_lines(pattern: "re.Pattern[str]") -> Iterator[None]:
    """Passes what the block writes on stderr through, without the lines ``pattern`` matches.

    What is written to file descriptor 2 (by Python, C or C++ code) is held back in a temporary
    file while the block runs, then written to stderr. Should the process die inside the block
    (TensorFlow aborts when it cannot run on this CPU), Python's fault handler reports where on
    the real stderr, unless a fault handler is already on.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr to redirect
        yield
        return
    capture = tempfile.TemporaryFile()
    handler = not faulthandler.is_enabled()
    try:
        os.dup2(capture.fileno(), 2)
        if handler:
            faulthandler.enable(file=saved)
        yield
    finally:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
        if handler:
            faulthandler.disable()
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
        capture.close()
        kept = "".join(line for line in text.splitlines(keepends=True) if not pattern.match(line))
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()


def quiet_tensorflow_startup() -> None:
    """Keeps TensorFlow's C++ start-up lines off stderr, unless the user set TF_CPP_MIN_LOG_LEVEL.

    When ``TF_CPP_MIN_LOG_LEVEL`` is unset, sets it to ``"2"`` (errors only) and imports
    TensorFlow and lists its devices (where CUDA is probed) with the lines
    :data:`TENSORFLOW_STARTUP_LINE` matches removed from stderr: TensorFlow writes them
    whatever the variable says. Everything else written meanwhile is passed on. When the user
    set the variable (to any value), nothing is changed or removed.

    TensorFlow reads the variable once, when it is imported: where ``tf_ig2``'s package
    ``__init__`` has imported TensorFlow already, only the lines of the device listing (such as
    ``failed call to cuInit``) are removed.
    """
    if TF_LOG_LEVEL_VARIABLE in os.environ:
        return
    os.environ[TF_LOG_LEVEL_VARIABLE] = TF_LOG_LEVEL_DEFAULT
    with _without_stderr_lines(TENSORFLOW_STARTUP_LINE):
        import tensorflow as tf

        tf.config.list_physical_devices()


# -- argument types ------------------------------------------------------------------------------
def _integer_at_least(minimum: int, expected: str) -> Callable[[str], int]:
    """An argparse type accepting integers >= ``minimum``; errors say ``expected``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be {expected}. Received: {text!r}")
        return value

    return parse


_positive_int = _integer_at_least(1, "an integer >= 1")
_class_index = _integer_at_least(0, "a class index (an integer >= 0)")


def _target(text: str) -> Any:
    """``--target``: a class index, or the path of a ``.npy`` file of class indices (one per input)."""
    return text if text.lower().endswith(".npy") else _class_index(text)


def _targets(text: str) -> Any:
    """``--targets``: comma-separated distinct class indices, or the path of an ``(N, T)`` ``.npy`` file."""
    if text.lower().endswith(".npy"):
        return text
    try:
        return cli_targets.class_list(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_seed = _integer_at_least(0, "a non-negative integer")


def _step_size(text: str) -> Any:
    if text == defaults.AUTO:
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive number. Received: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive number. Received: {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number. Received: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number. Received: {text!r}")
    return value


def _scale(text: str) -> float:
    from tf_ig2.cli.files import parse_scale

    try:
        return parse_scale(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number or a fraction such as 1/255. Received: {text!r}") from None


def _module_name(text: str) -> str:
    if not text or not all(part.isidentifier() for part in text.split(".")):
        raise argparse.ArgumentTypeError(
            f"must be a Python module name such as my_layers or package.layers. Received: {text!r}")
    return text


# -- parser --------------------------------------------------------------------------------------
_EXPLAIN_DESCRIPTION = """\
Explain a saved model's predictions with IG2 (or another --method) and write the
results to DIR:
  attributions.npy     (N, *S) float32, exactly what tf_ig2.saved_model.explain_saved_model returns
  counterfactuals.npy  (N, R, *S) float32, the end point of every path (GradCF for IG2,
                       the baselines for the other methods)
  summary.json         per input: target, score, counterfactual score, completeness delta and
                       relative delta, for IG2 the representation distance at the start and end
                       per reference; plus the settings used and the tf_ig2 version
  index.html           a report to open in a browser: the settings, then per input its panel,
                       target, scores, deltas and representation distances (pictures linked by
                       relative paths: the folder can be zipped and shared)
  panel_000.png ...    one panel per input: input | GradCF (or baseline) | signed attribution
                       with its colour bar | magnitude on grey (image inputs only)
  overlay_000.png ...  one overlay per input, and grid.png (image inputs only)
  path_000.png ...     with --path-strip (ig2): the GradPath to the first reference at 0, 25,
                       50, 75 and 100% of the steps, for the first {report_max} inputs

A text model: --input-layer NAME (the Embedding layer the path moves in) reads the inputs
and references as integer token ids from .npy/.npz arrays (not scaled, resized or
clipped); attributions.npy is then (N, T), one value per token; padding positions
(--padding-id, default {padding_id}; 'none' for none) get none. No pictures: the report
lists the numbers.

A model with several inputs: one --inputs NAME=PATH and one --references NAME=PATH per
input, NAME being the model's input name; each input is read as one input is (images,
arrays, or token ids for the input --input-layer reads), --value-range applies to every
float input, and the arrays are written one file per input:
attributions.<NAME>.npy and counterfactuals.<NAME>.npy (summary.json names them under
"files" and lists "input_names"); no pictures. --stream explains models with one input.

Several classes per input: --targets 3,5 (or an (N, T) .npy file) or --top-k K explains T
classes of every input along one path: attributions.npy is then (N, T, *S), summary.json
lists per input each target's class, scores and deltas, and each (input, class) gets its
own overlay and panel (overlay_000_class3.png, panel_000_class3.png ...), in the report too.

References from a labelled pool instead of --references: --reference-pool X.npy
--reference-labels Y.npy draws --references-per-input R (default {per_input}) references per input,
--pick other-class (items of classes other than the explained ones, at random: the IG2
paper's references) or relevant-class (one item of each class the model ranks next), with
--reference-seed (default {seed}); summary.json lists the pool rows drawn. Not with --stream.

Smoothed attributions: --smooth smoothgrad|smoothgrad_sq|vargrad reduces the attributions of
noisy copies of each input (--smooth-samples, --smooth-noise, --smooth-seed). Not with --stream.

Each method takes its own options (tf_ig2.methods):
{method_options}
An option of another method is a usage error.

Outputs are written to a staging folder inside DIR and moved into place only when
everything succeeded; on any error DIR is left as it was. One run at a time: DIR is locked
while a run goes on. A non-empty DIR is refused unless --overwrite is given; then the files
tf-ig2 wrote there earlier (listed in DIR/.tf_ig2.files.json) are replaced or removed, every
other file in DIR is left as it is, and a file of yours where an output goes is refused.

With --stream, inputs larger than memory are read from disk a batch at a time (a .npy
array memory-mapped, images one file at a time) and the results go to DIR/shards/ as they
come, one shard of --shard-size inputs at a time; at the end DIR/attributions.npy,
DIR/summary.json and DIR/index.html are written, with panels of the first {report_max} inputs
(no counterfactuals.npy, so no GradCF column, and no overlays). A stopped run continues
where it stopped when the same command is run again: an unfinished streamed run in DIR needs
no --overwrite (other settings are refused once a shard is finished); a finished one does,
and --overwrite always starts over.

Exit status: 0 on success, 2 on a usage or input error (one line on stderr, nothing
written; with --stream, finished shards are kept), 130 when interrupted."""

_DEMO_DESCRIPTION = """\
Train a small CNN on scikit-learn's digits (8x8, scaled to [0, 1]) for a few epochs
with the IG2 TensorBoard callback, save it as DIR/model.keras, explain held-out
digits against digits of other classes with the saved-model explainer, and write
DIR/explanation/ (as `tf-ig2 explain` does, with panels, GradPath film strips and
the report DIR/explanation/index.html, whose path is printed first) and DIR/logs/
(TensorBoard).

A non-empty DIR is refused unless --overwrite is given; then the files an earlier
demo wrote (model.keras, explanation/, logs/) are replaced and every other file is left
as it is. Runs offline in well under a minute on two CPU cores."""


def _takers(name: str) -> str:
    """The methods taking the setting ``name``, e.g. ``"ig, guided_ig"``."""
    return ", ".join(key for key, entry in methods.METHODS.items() if name in entry.settings.names())


def _default(name: str) -> str:
    """The defaults of the setting ``name`` for each method taking it, e.g. ``"ig2 201, ig 64"``."""
    values = {key: next(field.default for field in dataclasses.fields(entry.settings) if field.name == name)
              for key, entry in methods.METHODS.items() if name in entry.settings.names()}
    if len(set(map(repr, values.values()))) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{key} {value}" for key, value in values.items())


def _explain_description() -> str:
    """:data:`_EXPLAIN_DESCRIPTION` with each method's options, as the registry lists them."""
    flags = method_flags()
    lines = [textwrap.fill(", ".join(flags[name] for name in entry.settings.names() if name in flags),
                           width=88, initial_indent=f"  {key:<11}", subsequent_indent=" " * 13)
             for key, entry in methods.METHODS.items()]
    return _EXPLAIN_DESCRIPTION.format(method_options="\n".join(lines), report_max=defaults.CLI_REPORT_MAX_INPUTS,
                                       padding_id=defaults.PADDING_ID, per_input=defaults.REFERENCES_PER_INPUT,
                                       seed=defaults.REFERENCES_SEED)


def _kind_arguments(name: str, metadata: Any) -> Dict[str, Any]:
    """``add_argument`` keywords of a settings field, by its kind (:data:`tf_ig2.methods.settings.OPTION_KINDS`)."""
    kind, metavar = metadata["kind"], metadata["metavar"]
    parsers = {"positive_int": _positive_int, "seed": _seed, "number": _finite_float, "step_size": _step_size,
               "number_pair": _finite_float, "token_id": cli_inputs.padding_id_argument}
    arguments: Dict[str, Any] = {}
    if kind in parsers:
        arguments["type"] = parsers[kind]
    if kind == "choice":
        arguments["choices"] = metadata["choices"]
    elif kind == "number_pair":
        arguments.update(nargs=2, metavar=tuple((metavar or "LOW HIGH").split()))
    elif metavar:
        arguments["metavar"] = metavar
    return arguments


def _add_method_options(explain: argparse.ArgumentParser) -> None:
    """One flag per setting of the registered methods (:func:`method_flags`), all defaulting to ``None``.

    The help of each is its settings field's (:func:`tf_ig2.methods.settings.option`): which methods
    take it, what it does, and each method's default.
    """
    fields = {}
    for entry in methods.METHODS.values():
        for field in entry.settings.fields():
            fields.setdefault(field.name, field)
    for name, flag in method_flags().items():
        metadata = fields[name].metadata
        note = f"; {metadata['command_line_note']}" if metadata.get("command_line_note") else ""
        default = metadata.get("default_text") or _default(name)
        explain.add_argument(flag, dest=name, **_kind_arguments(name, metadata),
                             help=f"({_takers(name)}) {metadata['help']}{note} (default: {default})")


def _add_inputs(explain: argparse.ArgumentParser) -> None:
    """``--inputs``, ``--method``, ``--references`` or the pool's flags, and ``--target`` or its alternatives."""
    explain.add_argument("--inputs", required=True, action="append", type=cli_inputs.file_argument,
                         metavar="PATH|NAME=PATH",
                         help="inputs to explain: a .npy array (N, *S), a .npz archive (one array, or one named "
                              "'inputs'), an image file or a folder of images (PNG, JPEG, BMP; read in name order); "
                              "for a model with several inputs, one --inputs NAME=PATH per input, NAME being the "
                              "model's input name")
    explain.add_argument("--method", choices=sorted(methods.METHODS), default="ig2",
                         help="attribution method: " + ", ".join(entry.description
                                                                 for entry in methods.METHODS.values()))
    references = explain.add_mutually_exclusive_group()
    references.add_argument("--references", action="append", type=cli_inputs.file_argument,
                            metavar="PATH|NUMBER|NAME=PATH",
                            help="references (ig2) or baselines (the other methods): (R, *S) shared by all inputs "
                                 "or (N, R, *S) per input, as a .npy/.npz array (a .npz may hold both, named "
                                 "'inputs' and 'references'), or images (R images); for baselines also a number "
                                 "such as 0, one baseline value for every float feature (their default: 0; "
                                 "required for ig2 unless --reference-pool); for a model with several inputs, one "
                                 "--references NAME=PATH per input (or a number)")
    cli_pool.add_arguments(explain, references, count=_positive_int, seed=_seed)
    cli_targets.add_arguments(explain, target=_target, targets=_targets, count=_positive_int)


def build_parser() -> argparse.ArgumentParser:
    """The ``tf-ig2`` argument parser (subcommands ``explain`` and ``demo``)."""
    from tf_ig2 import __version__

    parser = _Parser(prog=PROGRAM, description="IG2 attributions (Integrated Gradient on Iterative Gradient "
                                                "Path) for Keras and TensorFlow models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    explain = commands.add_parser(
        "explain", help="explain a saved model's predictions", description=_explain_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.add_argument("model", metavar="MODEL",
                         help="a .keras file, a legacy .h5 file or a SavedModel folder (e.g. from model.export())")
    _add_inputs(explain)
    _add_method_options(explain)
    cli_smoothing.add_arguments(explain, count=_positive_int, seed=_seed)
    explain.add_argument("--image-size", type=_positive_int, nargs=2, metavar=("H", "W"),
                         help="resize image inputs and references to H x W (default: the model's input size if "
                              "it declares one, else the images' own size)")
    explain.add_argument("--scale", type=_scale, default=1.0, metavar="S",
                         help="multiply every value read (images and float arrays; not token ids) by S, e.g. "
                              "1/255 or 0.00392156862745098 (default: 1)")
    explain.add_argument("--signature", metavar="NAME",
                         help=f"SavedModel signature to call (default: {defaults.SAVED_MODEL_SIGNATURE})")
    explain.add_argument("--output-name", metavar="NAME",
                         help="SavedModel signature output holding the class scores, when the signature has "
                              "several (default: the only one, or the one not named by --representation-layer)")
    explain.add_argument("--import", dest="imports", action="append", default=[], type=_module_name,
                         metavar="MODULE",
                         help="import MODULE before loading the model, e.g. the module defining custom layers "
                              "registered with @keras.saving.register_keras_serializable(); the current folder is "
                              "searched first (repeatable)")
    explain.add_argument("--unsafe-deserialization", action="store_true",
                         help="turn off Keras' safe mode when loading a .keras/.h5 file, so that Lambda layers "
                              "can be loaded: this runs Python code stored in the file, which can do anything "
                              "on this machine; only use it for files you trust")
    explain.add_argument("--min-display-size", type=_positive_int, default=defaults.CLI_MIN_DISPLAY_SIZE,
                         metavar="PX",
                         help="enlarge the images in the PNGs (overlays, panels, path strips) by an integer factor "
                              f"until their shorter side is at least PX pixels (default: "
                              f"{defaults.CLI_MIN_DISPLAY_SIZE}; 1 keeps the input size)")
    explain.add_argument("--path-strip", action="store_true",
                         help="(ig2) also draw, for each of the first "
                              f"{defaults.CLI_REPORT_MAX_INPUTS} image inputs, its GradPath towards its first "
                              "reference at 0, 25, 50, 75 and 100%% of the steps (path_000.png ..., shown in "
                              "index.html); each such input is explained once more, alone, keeping its whole path")
    explain.add_argument("--output", required=True, metavar="DIR", help="folder to write the results to")
    explain.add_argument("--overwrite", action="store_true",
                         help="allow a non-empty DIR: replace or remove the files tf-ig2 wrote there earlier "
                              "(attributions*.npy, counterfactuals*.npy, summary.json, index.html, overlay_*.png, "
                              "panel_*.png, path_*.png, grid.png) and keep every other file")
    explain.add_argument("--stream", action="store_true",
                         help="for inputs larger than memory: read them a batch at a time (a .npy memory-mapped, "
                              "images one by one), write results to DIR/shards/ as they come and continue a "
                              "stopped run when run again; writes attributions.npy, summary.json, index.html and "
                              f"the panels of the first {defaults.CLI_REPORT_MAX_INPUTS} inputs, no overlays")
    explain.add_argument("--shard-size", type=_positive_int, metavar="N",
                         help=f"with --stream: inputs per result shard, the unit written to disk and kept when a "
                              f"run stops (default: {defaults.DATASET_SHARD_SIZE}, or the unfinished run's)")
    explain.add_argument("--quiet", action="store_true", help="no progress bar on stderr")

    demo = commands.add_parser(
        "demo", help="train a small CNN on scikit-learn's digits and explain it", description=_DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--output", default=defaults.DEMO_OUTPUT_DIR, metavar="DIR",
                      help=f"folder to write to (default: ./{defaults.DEMO_OUTPUT_DIR})")
    demo.add_argument("--overwrite", action="store_true",
                      help="allow a non-empty DIR: replace the files an earlier demo wrote there and keep every "
                           "other file")
    demo.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return parser


# -- messages ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Shows Python warnings as single ``tf-ig2: warning: ...`` lines on stderr."""

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        sys.stderr.write(f"{PROGRAM}: warning: {one_line(command_line_wording(str(message)))}\n")

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _without_resume_note(record: logging.LogRecord) -> bool:
    """Drops the dataset module's own note on continuing a run: the command line says it in its words."""
    return not (record.name == "tf_ig2.dataset" and str(record.msg).startswith("continuing in "))


@contextlib.contextmanager
def _logging_to_stderr(enabled: bool) -> Iterator[None]:
    """Sends the package's INFO messages to stderr for the duration of the command."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("tf_ig2")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROGRAM}: %(message)s"))
    handler.addFilter(_without_resume_note)
    previous_level, previous_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        logger.propagate = previous_propagate


# -- commands ------------------------------------------------------------------------------------
def check_demo_output(args: argparse.Namespace) -> None:
    """Checks, writing nothing and before TensorFlow is imported, that the demo may write to DIR.

    Raises:
        UsageError: If DIR is refused (see :func:`tf_ig2.cli.demo.check_output_folder`).
    """
    from tf_ig2.cli import demo

    try:
        demo.check_output_folder(args.output, args.overwrite)
    except (ValueError, OSError) as error:
        raise UsageError(str(error)) from error


def run_demo_command(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs ``tf-ig2 demo``; returns the demo's paths. Raises ``UsageError`` on bad input."""
    from tf_ig2.cli import demo

    try:
        return demo.run_demo(args.output, overwrite=args.overwrite)
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(str(error)) from error


def _print_explained(result: Dict[str, Any]) -> None:
    """The lines ``tf-ig2 explain`` prints on stdout when it succeeds."""
    folder = os.path.abspath(result["output"])
    if result.get("stream"):
        earlier = f" ({result['resumed']} of them by an earlier run)" if result["resumed"] else ""
        if result.get("target_count") is not None:
            earlier += f" for {result['target_count']} target(s) each"
        named = [name for name in result["files"] if not name.endswith(".png")]
        pictures = len(result["files"]) - len(named)
        wrote = ", ".join(named) + (f" and {pictures} PNG(s)" if pictures else "")
        print(f"Explained {result['count']} input(s){earlier}; wrote {wrote} to "
              f"{folder} and {result['shards']} result shard(s) to "
              f"{os.path.abspath(result['shards_folder'])}")
    else:
        targets = f" for {result['target_count']} target(s) each" if result.get("target_count") is not None else ""
        print(f"Explained {result['count']} input(s){targets}; wrote {len(result['files'])} files to {folder}")
    print(f"Report: {os.path.abspath(result['report'])}")
    if result["representation"] is not None:
        print(f"Representation: {result['representation']}")
    else:
        print(f"Method: {methods.get_method(result['method']).description}")


def _print_demo(result: Dict[str, Any]) -> None:
    """The lines ``tf-ig2 demo`` prints on stdout when it succeeds."""
    print(f"Report:       {result['report']}")
    print(f"Held-out accuracy of the demo CNN: {result['accuracy']:.3f}")
    print(f"Model:        {result['model']}")
    print(f"Explanations: {result['explanation']} (index.html, summary.json, panel_*.png, path_*.png, "
          "overlay_*.png, grid.png, attributions.npy, counterfactuals.npy)")
    print(f"TensorBoard:  tensorboard --logdir {result['logs']}")
    print(f"Explain again from the command line: {result['command']}")


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``tf-ig2`` and ``python -m tf_ig2``; returns the exit status.

    Args:
        argv: The arguments after the program name; ``None`` for ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0) if not isinstance(exit_request.code, str) else EXIT_USAGE
    try:
        streaming = args.command == "explain" and args.stream
        with contextlib.ExitStack() as reserved:
            # Arguments, files and DIR are checked, and DIR locked, before TensorFlow is imported.
            if args.command == "explain":
                check_explain(args)
            else:
                check_demo_output(args)
            reserved.enter_context(reserved_output(args))
            quiet_tensorflow_startup()
            reserved.enter_context(_one_line_warnings())
            reserved.enter_context(_logging_to_stderr((args.command == "demo" or streaming) and not args.quiet))
            if args.command == "explain":
                _print_explained(run_explain(args))
            else:
                _print_demo(run_demo_command(args))
    except UsageError as error:
        sys.stderr.write(f"{PROGRAM}: error: {one_line(str(error))}\n")
        return EXIT_USAGE
    except KeyboardInterrupt as interruption:
        note = one_line(str(interruption))
        sys.stderr.write(f"{PROGRAM}: interrupted{'; ' + note if note else ''}\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
