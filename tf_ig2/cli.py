"""The ``tf-ig2`` command line: explain a saved model with IG², or run the demo.

``tf-ig2 explain MODEL --inputs PATH --references PATH --output DIR`` loads a ``.keras``,
``.h5`` or SavedModel model (:func:`tf_ig2.saved_model.load_model`), reads inputs and references
(:func:`tf_ig2.cli_files.read_inputs`), explains them with IG² (Zhuo & Ge, TPAMI 2024, Eqs. 7-10;
:func:`tf_ig2.saved_model.explain_model`) and writes the results (:mod:`tf_ig2.cli_files`).
Models using custom layers load once ``--import MODULE`` has imported the modules registering
them (:func:`import_modules`). ``tf-ig2 demo`` trains a small CNN on scikit-learn's digits and
explains it (:mod:`tf_ig2.demo`).

With ``--stream``, inputs larger than memory are opened lazily (:func:`tf_ig2.cli_files.open_stream`)
and explained a batch at a time by :func:`tf_ig2.dataset.explain_dataset` into result shards in
``DIR/shards``, so that a stopped run continues where it stopped when the same command is run
again; :func:`tf_ig2.cli_files.finish_stream` then writes ``DIR/attributions.npy`` and ``DIR/summary.json``.

Exit status: 0 on success; 2 on a usage or input error, reported as one line
``tf-ig2: error: ...`` on stderr, with the output folder left untouched (in stream mode, finished
shards are kept); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import hashlib
import importlib
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from . import defaults
from .cli_files import one_line

PROGRAM = "tf-ig2"

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


class UsageError(Exception):
    """A problem with the command line's arguments or inputs; reported in one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a streamed run; its text says what was kept."""


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
    from .cli_files import parse_scale

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
Explain a saved model's predictions with IG2 and write the results to DIR:
  attributions.npy     (N, *S) float32, exactly what tf_ig2.saved_model.explain_saved_model returns
  counterfactuals.npy  (N, R, *S) float32, the GradCF end point of every path
  summary.json         per input: target, score, GradCF score, completeness delta,
                       representation distance at the start and end per reference;
                       plus the settings used and the tf_ig2 version
  overlay_000.png ...  one overlay per input, and grid.png (image inputs only)

Outputs are written to a temporary folder beside DIR and moved into place only when
everything succeeded. A non-empty DIR is refused unless --overwrite is given; then the
files listed above replace the files of the same names in DIR and every other file in DIR
(e.g. overlays of an earlier run with more inputs) is left as it is.

With --stream, inputs larger than memory are read from disk a batch at a time (a .npy
array memory-mapped, images one file at a time) and the results go to DIR/shards/ as they
come, one shard of --shard-size inputs at a time; at the end DIR/attributions.npy and
DIR/summary.json are written (no counterfactuals.npy and no PNGs). A stopped run continues
where it stopped when the same command is run again: an unfinished streamed run in DIR needs
no --overwrite (other settings are refused once a shard is finished); a finished one does,
and --overwrite always starts over.

Exit status: 0 on success, 2 on a usage or input error (one line on stderr, nothing
written; with --stream, finished shards are kept), 130 when interrupted."""

_DEMO_DESCRIPTION = """\
Train a small CNN on scikit-learn's digits (8x8, scaled to [0, 1]) for a few epochs
with the IG2 TensorBoard callback, save it as DIR/model.keras, explain held-out
digits against digits of other classes with the saved-model explainer, and write
DIR/explanation/ (as `tf-ig2 explain` does) and DIR/logs/ (TensorBoard).

A non-empty DIR is refused unless --overwrite is given; then model.keras,
explanation/ and logs/ are replaced as a whole and every other entry of DIR is left
as it is. Runs offline in well under a minute on two CPU cores."""


def build_parser() -> argparse.ArgumentParser:
    """The ``tf-ig2`` argument parser (subcommands ``explain`` and ``demo``)."""
    from . import __version__
    from . import cli_files

    parser = _Parser(prog=PROGRAM, description="IG2 attributions (Integrated Gradient on Iterative Gradient "
                                                "Path) for Keras and TensorFlow models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    explain = commands.add_parser(
        "explain", help="explain a saved model's predictions", description=_EXPLAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.add_argument("model", metavar="MODEL",
                         help="a .keras file, a legacy .h5 file or a SavedModel folder (e.g. from model.export())")
    explain.add_argument("--inputs", required=True, metavar="PATH",
                         help="inputs to explain: a .npy array (N, *S), a .npz archive (one array, or one named "
                              "'inputs'), an image file or a folder of images (PNG, JPEG, BMP; read in name order)")
    explain.add_argument("--references", required=True, metavar="PATH",
                         help="references: (R, *S) shared by all inputs or (N, R, *S) per input, as a .npy/.npz "
                              "array (a .npz may hold both, named 'inputs' and 'references'), or images (R images)")
    explain.add_argument("--target", type=_class_index, metavar="INT",
                         help="class index explained for every input (default: each input's predicted class)")
    explain.add_argument("--representation-layer", metavar="NAME",
                         help="layer whose output GradPath measures distances in; 'output' for the model output "
                              "(default: the input of the last layer; for a SavedModel: 'output', or the name of "
                              "another signature output)")
    explain.add_argument("--steps", type=_positive_int, default=defaults.IG2_STEPS, metavar="K",
                         help=f"number of GradPath steps (default: {defaults.IG2_STEPS})")
    explain.add_argument("--step-size", type=_step_size, default=defaults.AUTO, metavar="S|auto",
                         help=f"length of each step, or 'auto' for {defaults.AUTO_STEP_FACTOR:g} * ||x - x_r|| / "
                              "steps (default: auto)")
    explain.add_argument("--value-range", type=_finite_float, nargs=2, metavar=("LO", "HI"),
                         help="clip every path point to [LO, HI], in the units of the values after --scale "
                              "(default: no clipping); inputs and references must lie inside, except that values "
                              "within float32 round-off of a bound (at most "
                              f"{cli_files.VALUE_RANGE_ROUND_OFF_EPS} float32 epsilons times max(1, |bound|) outside, "
                              "e.g. a white pixel at 1.0000002 after --scale 1/255 and resizing) are clipped to it")
    explain.add_argument("--batch-size", type=_positive_int, metavar="B",
                         help="the most (input, reference) pairs computed at once (default: all); also sets how "
                              "often the progress bar moves")
    explain.add_argument("--image-size", type=_positive_int, nargs=2, metavar=("H", "W"),
                         help="resize image inputs and references to H x W (default: the model's input size if "
                              "it declares one, else the images' own size)")
    explain.add_argument("--scale", type=_scale, default=1.0, metavar="S",
                         help="multiply every value read (images and arrays) by S, e.g. 1/255 or "
                              "0.00392156862745098 (default: 1)")
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
                         help="enlarge PNGs by an integer factor until their shorter side is at least PX pixels "
                              f"(default: {defaults.CLI_MIN_DISPLAY_SIZE}; 1 keeps the input size)")
    explain.add_argument("--output", required=True, metavar="DIR", help="folder to write the results to")
    explain.add_argument("--overwrite", action="store_true",
                         help="allow a non-empty DIR: replace the files this command writes (attributions.npy, "
                              "counterfactuals.npy, summary.json, overlay_*.png for these inputs, grid.png) and "
                              "keep every other file")
    explain.add_argument("--stream", action="store_true",
                         help="for inputs larger than memory: read them a batch at a time (a .npy memory-mapped, "
                              "images one by one), write results to DIR/shards/ as they come and continue a "
                              "stopped run when run again; writes attributions.npy and summary.json, no PNGs")
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
                      help="allow a non-empty DIR: replace model.keras, explanation/ and logs/ as a whole and keep "
                           "every other entry")
    demo.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return parser


# -- progress ------------------------------------------------------------------------------------
class ProgressBar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, *, enabled: bool, width: int = 30):
        self.label = label
        self.enabled = enabled and bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.width = width
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = int(self.width * done / total)
        sys.stderr.write(f"\r{self.label} [{'=' * filled}{'.' * (self.width - filled)}] {done}/{total}")
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        """Ends the bar's line."""
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Shows Python warnings as single ``tf-ig2: warning: ...`` lines on stderr."""

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        sys.stderr.write(f"{PROGRAM}: warning: {one_line(str(message))}\n")

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
def _image_layout(expected: Optional[Sequence[Optional[int]]]) -> Dict[str, Any]:
    """Image size and channels implied by a model's ``(None, H, W, C)`` input shape."""
    layout: Dict[str, Any] = {"image_size": None, "channels": None}
    if expected is not None and len(expected) == 4:
        height, width, channels = expected[1:]
        if height is not None and width is not None:
            layout["image_size"] = (int(height), int(width))
        if channels in (1, 3, 4):
            layout["channels"] = int(channels)
    return layout


def _value_range(args: argparse.Namespace) -> Optional[Tuple[float, float]]:
    return None if args.value_range is None else (float(args.value_range[0]), float(args.value_range[1]))


def _read_options(args: argparse.Namespace, image_size: Optional[Tuple[int, int]],
                  layout: Dict[str, Any]) -> Dict[str, Any]:
    """The keywords of :func:`tf_ig2.cli_files.read_inputs` and :func:`tf_ig2.cli_files.open_stream` for this command.

    Besides size, channels and scale, the value range: values read within float32 round-off
    outside it (e.g. a white pixel at 1.0000002 after ``--scale 1/255``) are clipped to it.
    """
    return dict(image_size=image_size, channels=layout["channels"], scale=args.scale, value_range=_value_range(args))


def import_modules(names: Sequence[str]) -> None:
    """Imports the modules named by ``--import``, the current folder first on ``sys.path``.

    Raises:
        UsageError: If a module cannot be imported (it is missing, or its code fails); the one
            line names the module and the error.
    """
    if not names:
        return
    folder = os.getcwd()
    if folder not in sys.path:
        sys.path.insert(0, folder)
    importlib.invalidate_caches()
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - whatever the module raises is reported in one line
            hint = ""
            if isinstance(error, ModuleNotFoundError) and error.name is not None and (
                    error.name == name or name.startswith(error.name + ".")):
                hint = f" (searched the current folder {folder!r} and sys.path, which PYTHONPATH extends)"
                if name.endswith(".py"):
                    hint = f"; give the module's name without .py: --import {name[:-3]}"
            raise UsageError(f"argument --import: could not import the module {name!r}: "
                             f"{one_line(error)}{hint}") from error


def _load_model(args: argparse.Namespace) -> Any:
    """Imports the ``--import`` modules, then loads MODEL (in memory and streamed alike).

    Raises:
        UsageError: If a module cannot be imported, or the model uses a class no module
            registered (the one line names it and suggests ``--import MODULE``).
        ValueError, TypeError: As :func:`tf_ig2.saved_model.load_model`.
    """
    from . import saved_model

    import_modules(args.imports)
    try:
        return saved_model.load_model(args.model, safe_mode=not args.unsafe_deserialization,
                                      signature=args.signature, output_name=args.output_name)
    except saved_model.MissingClassError as error:
        origin = f" (saved from module {error.module!r})" if error.module else ""
        example = f", here probably --import {error.module}" if error.module else ""
        tried = f"; the modules imported ({', '.join(args.imports)}) do not register it" if args.imports else ""
        raise UsageError(
            f"Could not load the Keras model at {error.path!r}: Keras cannot locate the class {error.class_name!r} "
            f"it uses{origin}{tried}. Pass --import MODULE to import the module that defines it, decorated with "
            f"@keras.saving.register_keras_serializable(){example} (run from the folder holding the module, or "
            "with the folder on PYTHONPATH)"
        ) from error


def _ig2_options(args: argparse.Namespace) -> Dict[str, Any]:
    return dict(representation_layer=args.representation_layer, steps=args.steps, step_size=args.step_size,
                value_range=None if args.value_range is None else tuple(args.value_range),
                batch_size=args.batch_size)


def _settings(args: argparse.Namespace, image_size: Optional[Sequence[int]]) -> Dict[str, Any]:
    """The settings stored in summary.json."""
    from . import saved_model

    return {
        "model": args.model,
        "model_format": saved_model.model_format(args.model),
        "inputs": args.inputs,
        "references": args.references,
        "target": args.target,
        "representation_layer": args.representation_layer,
        "steps": args.steps,
        "step_size": args.step_size,
        "value_range": None if args.value_range is None else tuple(args.value_range),
        "batch_size": args.batch_size,
        "image_size": list(image_size) if image_size else None,
        "scale": args.scale,
        "signature": args.signature,
        "output_name": args.output_name,
        "imports": list(args.imports),
    }


def run_explain(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs ``tf-ig2 explain``; returns what was written. Raises ``UsageError`` on bad input."""
    from . import cli_files, saved_model

    if args.value_range is not None and args.value_range[0] > args.value_range[1]:
        raise UsageError(f"argument --value-range: LO must be <= HI. Received: {args.value_range[0]:g} "
                         f"{args.value_range[1]:g}")
    if args.shard_size is not None and not args.stream:
        raise UsageError(f"argument --shard-size: only applies with --stream. Received: --shard-size "
                         f"{args.shard_size} without --stream")
    if args.stream:
        return run_explain_stream(args)
    try:
        cli_files.check_output(args.output, args.overwrite)
        model = _load_model(args)
        expected = saved_model.expected_input_shape(model)
        layout = _image_layout(expected)
        image_size = tuple(args.image_size) if args.image_size else layout["image_size"]
        read = _read_options(args, image_size, layout)
        inputs, names = cli_files.read_inputs(args.inputs, "inputs", **read)
        references, _ = cli_files.read_inputs(args.references, "references", **read)
        options = _ig2_options(args)
        progress = ProgressBar("Explaining", enabled=not args.quiet)
        try:
            explanation = saved_model.explain_model(model, inputs, references, args.target, progress=progress,
                                                    **options)
        finally:
            progress.close()
        settings = _settings(args, image_size)
        with cli_files.staged_output(args.output, overwrite=args.overwrite) as staging:
            written = cli_files.write_explanation(staging, explanation, inputs, names=names, settings=settings,
                                           min_display_size=args.min_display_size)
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(str(error)) from error
    return {"output": args.output, "files": written, "count": len(inputs),
            "representation": explanation.representation}


# -- explain --stream ------------------------------------------------------------------------------
#: The settings that decide a streamed run's results: a stopped run is continued only when they
#: agree (tf_ig2.dataset.explain_dataset then also compares the model's weights, the references,
#: the targets and the first shard's inputs).
_RESUME_SETTINGS = ("target", "representation_layer", "steps", "step_size", "value_range", "image_size", "scale",
                    "signature", "output_name")


def _prepare_explainer(model: Any, options: Dict[str, Any]) -> Tuple[Any, str]:
    """An IG² explainer set up as :func:`tf_ig2.saved_model.explain_model` sets it up.

    Returns:
        ``(explainer, description of the representation GradPath moves in)``.
    """
    from . import saved_model

    try:
        return saved_model.ig2_explainer(model, options)
    except ValueError as error:
        raise ValueError(str(error).replace("pass batch_size=1", "pass --batch-size 1")) from error


def _check_stream_references(references: Any, count: int, sample_shape: Tuple[int, ...], explainer: Any) -> None:
    """Checks references ``(R, *S)`` or ``(N, R, *S)`` before any work, reading per-input ones lazily."""
    from . import validation

    if references.ndim == len(sample_shape) + 2:
        if references.shape[0] != count:
            raise ValueError(f"`references` given per input as (N, R, *input_shape) must have N={count} rows like "
                             f"`inputs`. Received: shape {tuple(references.shape)}")
        validation.references_array("references", references[:1], (1, *sample_shape))
        return
    checked = validation.references_array("references", references, (count, *sample_shape))
    validation.fits_value_range("references", checked, explainer.value_range, sample_shape)


def _read_batch(batch_size: Optional[int], references_per_input: int) -> int:
    """Inputs read and explained at a time: whole batches of ``batch_size`` pairs, as in explain_model."""
    if batch_size is None:
        return defaults.DATASET_BATCH_SIZE
    group = batch_size // math.gcd(references_per_input, batch_size)
    return group * max(1, defaults.DATASET_BATCH_SIZE // group)


def _files_sha1(path: str) -> str:
    """sha1 of a SavedModel folder's files (whose weights the results folder cannot see)."""
    folder = path if os.path.isdir(path) else (os.path.dirname(path) or ".")
    digest = hashlib.sha1()
    for root, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            file_path = os.path.join(root, name)
            digest.update(os.path.relpath(file_path, folder).encode())
            with open(file_path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _command_line_wording(text: str) -> str:
    """Messages of the Python API name keyword arguments; the command line names its options."""
    return re.sub(r"\boverwrite=True\b", "--overwrite", str(text))


def _forget_unstarted_run(output: str, created_output: bool, created_shards: bool) -> int:
    """Removes what a streamed run created when it finished no shard; returns the inputs kept."""
    from . import cli_files

    kept = cli_files.stream_explained(output)
    if kept == 0 and created_shards:
        shutil.rmtree(os.path.join(output, cli_files.STREAM_FOLDER), ignore_errors=True)
        if created_output and os.path.isdir(output) and not os.listdir(output):
            os.rmdir(output)
    return kept


def run_explain_stream(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs ``tf-ig2 explain --stream``; returns what was written. Raises ``UsageError`` on bad input.

    Nothing is written before the model, the inputs' shape and the references have been checked.
    An error or an interruption while explaining keeps the finished shards in ``DIR/shards``
    (the same command continues from there), or removes what it created when no shard was
    finished.
    """
    from . import cli_files, dataset, saved_model, validation
    from .dataset import results

    output = args.output
    try:
        record = cli_files.check_stream_output(output, args.overwrite)
        model = _load_model(args)
        layout = _image_layout(saved_model.expected_input_shape(model))
        image_size = tuple(args.image_size) if args.image_size else layout["image_size"]
        read = _read_options(args, image_size, layout)
        inputs = cli_files.open_stream(args.inputs, "inputs", **read)
        validation.fits_model_input("inputs", (inputs.count, *inputs.sample_shape),
                                    saved_model.expected_input_shape(model))
        references = cli_files.read_stream_references(args.references, "references", **read)
        options = _ig2_options(args)
        explainer, representation = _prepare_explainer(model, options)
        _check_stream_references(references, inputs.count, inputs.sample_shape, explainer)
        settings = _settings(args, image_size)
        wanted: Dict[str, Any] = {key: settings[key] for key in _RESUME_SETTINGS}
        wanted["value_range"] = None if args.value_range is None else list(args.value_range)
        if settings["model_format"] == "saved_model":
            wanted["model_sha1"] = _files_sha1(args.model)
        resuming = record is not None and not args.overwrite
        explained = cli_files.stream_explained(output) if resuming else 0
        if resuming:
            wanted["shard_size"] = args.shard_size or record["settings"].get("shard_size")
            differences = results.settings_differences(record["settings"], wanted)
            if differences and explained:
                raise ValueError(
                    f"Output folder {output!r} holds an unfinished streamed run of other settings "
                    f"({results.describe_differences(differences)}); run "
                    "the command with its settings to continue it, pass --overwrite to start over, or choose "
                    "another folder."
                )
            resuming = not differences
            if resuming and explained > inputs.count:
                raise ValueError(
                    f"Output folder {output!r} holds an unfinished streamed run that explained {explained} inputs, "
                    f"more than the {inputs.count} inputs given; pass --overwrite to start over, or choose another "
                    "folder."
                )
        if not resuming:
            wanted["shard_size"] = args.shard_size or defaults.DATASET_SHARD_SIZE
            explained = 0
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(_command_line_wording(str(error))) from error

    settings.update(stream=True, shard_size=wanted["shard_size"])
    shards = os.path.join(output, cli_files.STREAM_FOLDER)
    created_output, created_shards = not os.path.exists(output), not os.path.exists(shards)
    if resuming:
        sys.stderr.write(f"{PROGRAM}: continuing the unfinished streamed run in {output}: {explained} of "
                         f"{inputs.count} inputs were explained earlier\n")
    per_input = references.shape[1] if references.ndim == len(inputs.sample_shape) + 2 else references.shape[0]
    try:
        cli_files.write_stream_record(output, wanted, finished=False)
        result = dataset.explain_dataset(
            explainer, inputs.values, references, shards, targets=args.target,
            batch_size=_read_batch(args.batch_size, int(per_input)), shard_size=wanted["shard_size"],
            progress=not args.quiet, overwrite=not resuming)
        written = cli_files.finish_stream(output, settings=settings, names=inputs.names, representation=representation,
                                   method=explainer.method, resumed=result.resumed)
        cli_files.write_stream_record(output, wanted, finished=True)
    except KeyboardInterrupt:
        kept = _forget_unstarted_run(output, created_output, created_shards)
        raise Interrupted(f"the {kept} inputs explained so far are kept in {shards}: run the same command again to "
                          "continue" if kept else "") from None
    except (ValueError, TypeError, OSError) as error:
        kept = _forget_unstarted_run(output, created_output, created_shards)
        note = f" (the {kept} inputs explained so far are kept in {shards})" if kept else ""
        raise UsageError(_command_line_wording(str(error)) + note) from error
    except BaseException:
        _forget_unstarted_run(output, created_output, created_shards)
        raise
    return {"output": output, "files": written, "count": result.count, "resumed": result.resumed,
            "shards": result.shards, "shards_folder": shards, "representation": representation, "stream": True}


def run_demo_command(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs ``tf-ig2 demo``; returns the demo's paths. Raises ``UsageError`` on bad input."""
    from . import demo

    try:
        return demo.run_demo(args.output, overwrite=args.overwrite)
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(str(error)) from error


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
    quiet_tensorflow_startup()
    try:
        streaming = args.command == "explain" and args.stream
        with _one_line_warnings(), _logging_to_stderr((args.command == "demo" or streaming) and not args.quiet):
            if args.command == "explain":
                result = run_explain(args)
                folder = os.path.abspath(result["output"])
                if result.get("stream"):
                    earlier = f" ({result['resumed']} of them by an earlier run)" if result["resumed"] else ""
                    print(f"Explained {result['count']} input(s){earlier}; wrote {', '.join(result['files'])} to "
                          f"{folder} and {result['shards']} result shard(s) to "
                          f"{os.path.abspath(result['shards_folder'])}")
                else:
                    print(f"Explained {result['count']} input(s); wrote {len(result['files'])} files to {folder}")
                print(f"Representation: {result['representation']}")
            else:
                result = run_demo_command(args)
                print(f"Held-out accuracy of the demo CNN: {result['accuracy']:.3f}")
                print(f"Model:        {result['model']}")
                print(f"Explanations: {result['explanation']} (summary.json, grid.png, overlay_*.png, "
                      "attributions.npy, counterfactuals.npy)")
                print(f"TensorBoard:  tensorboard --logdir {result['logs']}")
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
