"""``tf-ig2 explain``: a saved model's predictions explained with a registered method.

The method (``--method``, :mod:`tf_ig2.methods`) decides which options apply: each option of
:data:`METHOD_OPTIONS` belongs to the methods whose settings dataclass (:mod:`tf_ig2.settings`)
has its field, and is a usage error for the others. The model's inputs (one, several given as
``NAME=PATH``, token ids read through ``--input-layer``) are matched and read by
:mod:`tf_ig2.cli_inputs`. In memory, the inputs and references are read whole
(:func:`tf_ig2.cli_files.read_inputs`) and explained by
:func:`tf_ig2.saved_model.explain_model`; with ``--stream`` they are opened lazily
(:func:`tf_ig2.cli_stream.open_stream`) and explained a batch at a time by
:func:`tf_ig2.dataset.explain_dataset` into result shards in ``DIR/shards``, so that a stopped run
continues where it stopped; :func:`tf_ig2.cli_stream.finish_stream` then writes
``DIR/attributions.npy``, ``DIR/summary.json`` and ``DIR/index.html``. Either way the pictures
and the report come from :mod:`tf_ig2.cli_report`; ``--path-strip`` (IG² only) adds the GradPath
film strips of the first inputs. Problems are raised as :class:`UsageError`, reported by
:func:`tf_ig2.cli.main` in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import math
import os
import re
import sys
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

from . import cli_inputs, defaults, methods, validation
from .cli_inputs import UsageError, read_options_for, value_range_option
from .validation import one_line

PROGRAM = "tf-ig2"

#: The method options of ``tf-ig2 explain``: setting name (:mod:`tf_ig2.settings`) -> option. An
#: option applies to the methods whose settings dataclass has that field (:mod:`tf_ig2.methods`).
METHOD_OPTIONS = {
    "representation_layer": "--representation-layer",
    "steps": "--steps",
    "step_size": "--step-size",
    "value_range": "--value-range",
    "integration": "--integration",
    "segment_points": "--segment-points",
    "momentum": "--momentum",
    "rule": "--rule",
    "fraction": "--fraction",
    "max_dist": "--max-dist",
    "batch_size": "--batch-size",
    "input_layer": "--input-layer",
    "padding_id": "--padding-id",
}

#: Settings of streamed runs recorded before ``--method`` existed: those runs were IG² runs with
#: the published integration and path.
_SETTINGS_BEFORE_METHODS = {"method": "ig2", "integration": "left", "segment_points": defaults.IG2_SEGMENT_POINTS,
                            "momentum": 0.0}

#: Settings of streamed runs recorded before ``--input-layer`` existed: float inputs.
_SETTINGS_BEFORE_TOKENS = {"input_layer": None, "padding_id": defaults.PADDING_ID}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a streamed run; its text says what was kept."""


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



# -- the model ---------------------------------------------------------------------------------------
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
        origin = (f" (saved from module {error.module!r})" if error.module
                  else " (defined in the script that saved the model: move it into a module of its own)")
        example = f", here probably --import {error.module}" if error.module else ""
        tried = f"; the modules imported ({', '.join(args.imports)}) do not register it" if args.imports else ""
        raise UsageError(
            f"Could not load the Keras model at {error.path!r}: Keras cannot locate the class {error.class_name!r} "
            f"it uses{origin}{tried}. Pass --import MODULE to import the module that defines it, decorated with "
            f"@keras.saving.register_keras_serializable(){example} (run from the folder holding the module, or "
            "with the folder on PYTHONPATH)"
        ) from error


# -- the method and its options ---------------------------------------------------------------------
def method_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The options given for ``args.method``, as keywords of its explainer (checked by its settings).

    Raises:
        UsageError: If an option of another method was given, or a value is out of range.
    """
    entry = methods.get(args.method)
    taken = entry.settings.names()
    options: Dict[str, Any] = {}
    for name, flag in METHOD_OPTIONS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in taken:
            accepted = ", ".join(METHOD_OPTIONS[key] for key in taken if key in METHOD_OPTIONS)
            shown = " ".join(f"{item:g}" if isinstance(item, float) else str(item)
                             for item in (value if isinstance(value, list) else [value]))
            raise UsageError(f"argument {flag}: not an option of --method {args.method}, which takes {accepted}. "
                             f"Received: {flag} {shown}")
        options[name] = tuple(value) if isinstance(value, list) else value
    if "padding_id" in options:
        options["padding_id"] = cli_inputs.padding_id(options["padding_id"])
    if "value_range" in options and options["value_range"][0] > options["value_range"][1]:
        low, high = options["value_range"]
        raise UsageError(f"argument --value-range: LO must be <= HI. Received: {low:g} {high:g}")
    try:
        entry.check_options(options)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from error
    return options


def inputs_argument(args: argparse.Namespace) -> Union[str, Dict[str, str]]:
    """``--inputs``: one path, or ``{input name: path}`` (:func:`tf_ig2.cli_inputs.files_argument`)."""
    files = cli_inputs.files_argument(args.inputs, "inputs")
    if files is None:
        raise UsageError("argument --inputs: required")
    return files


def _references_argument(args: argparse.Namespace) -> Union[str, float, Dict[str, str]]:
    """``--references``: a path, a number (a baseline for every feature), ``{input name: path}``, or 0.

    Raises:
        UsageError: If it is missing for a method that needs references, a number for one that
            does not take a scalar, or given several times without names.
    """
    entry = methods.get(args.method)
    text = cli_inputs.files_argument(args.references, "references")
    if isinstance(text, dict):
        return text
    if text is None:
        if entry.references_required:
            raise UsageError(f"argument --references: required for --method {args.method}, which integrates "
                             "towards references read from a file")
        return 0.0
    try:
        value = float(text)
    except ValueError:
        return text
    if os.path.exists(text):
        return text
    if not entry.scalar_reference:
        scalar = ", ".join(key for key, other in methods.METHODS.items() if other.scalar_reference)
        raise UsageError(f"argument --references: a number is a baseline for --method {scalar}; --method "
                         f"{args.method} reads its references from a file. Received: --references {text}")
    if not math.isfinite(value):
        raise UsageError(f"argument --references: must be a finite number or a path. Received: {text!r}")
    return value


def settings_record(args: argparse.Namespace, image_size: Optional[Sequence[int]], options: Dict[str, Any],
                    references: Union[str, float, Dict[str, str]]) -> Dict[str, Any]:
    """The settings stored in summary.json: the method with all its options (defaults filled in)."""
    from . import saved_model

    resolved = methods.get(args.method).check_options(options).as_dict()
    record: Dict[str, Any] = {
        "model": args.model,
        "model_format": saved_model.model_format(args.model),
        "inputs": inputs_argument(args),
        "references": references,
        "target": args.target,
        "method": args.method,
    }
    for name in METHOD_OPTIONS:
        if name in resolved:
            value = resolved[name]
            record[name] = list(value) if isinstance(value, tuple) else value
    record.update(image_size=list(image_size) if image_size else None, scale=args.scale, signature=args.signature,
                  output_name=args.output_name, imports=list(args.imports))
    return record


def check_path_strip(args: argparse.Namespace) -> None:
    """``--path-strip`` draws the GradPath: only for methods that return their path (IG²).

    Raises:
        UsageError: For another method.
    """
    if getattr(args, "path_strip", False) and "path" not in methods.get(args.method).extra_outputs:
        takers = ", ".join(key for key, entry in methods.METHODS.items() if "path" in entry.extra_outputs)
        raise UsageError(f"argument --path-strip: draws the GradPath of --method {takers}; --method {args.method} "
                         f"integrates along a path it does not return. Received: --path-strip --method {args.method}")


def report_options(args: argparse.Namespace, explainer: Any = None, references: Any = None,
                   sample_shape: Optional[Tuple[int, ...]] = None) -> Any:
    """The pictures' settings; with ``--path-strip``, the film strips of ``explainer`` and ``references``.

    Raises:
        ValueError: If ``--path-strip`` is given for inputs that are not images ``(H, W, C)``.
    """
    from . import cli_report

    strips = None
    if getattr(args, "path_strip", False):
        if sample_shape is None or len(sample_shape) != 3:
            raise ValueError(f"--path-strip draws image paths: the inputs must be images (N, H, W, C). Received: "
                             f"inputs of shape (N, {', '.join(map(str, sample_shape or ()))})")
        strips = cli_report.path_strip_maker(explainer, references, value_range=value_range_option(args),
                                             min_size=args.min_display_size)
    return cli_report.ReportOptions(min_display_size=args.min_display_size, value_range=value_range_option(args),
                                    max_inputs=defaults.CLI_REPORT_MAX_INPUTS, path_strips=strips)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scale_hint(text: str) -> str:
    """For values above a range starting at 0, the ``--scale`` that brings them inside, e.g. ``--scale 1/16``."""
    found = re.search(r"`value_range` \[(\S+), (\S+)\]\. Received: values from (\S+) to (\S+)$", text)
    if not found:
        return ""
    try:
        low, high, _, largest = (float(value) for value in found.groups())
    except ValueError:
        return ""
    if low != 0.0 or high <= 0.0 or largest <= high:
        return ""
    ratio = largest / high
    # Values in other common units: digits of 0 to 16, percentages, 8-bit and 16-bit pixels.
    units = [unit for unit in (16, 100, 255, 65535) if unit / 2 < ratio <= unit]
    if not units:
        return ""
    scale = f"1/{units[0]}" if high == 1.0 else f"{high / units[0]:.6g}"
    return f". If the inputs are in other units (here 0 to {largest:g}), pass --scale {scale}."


def command_line_wording(text: str) -> str:
    """Messages of the Python API name keyword arguments; the command line names its options.

    ``name='value'`` becomes ``--name value``, ``overwrite=True`` ``--overwrite``, ``batch_size=1``
    ``--batch-size 1``, "more steps" "more --steps", and ``explanation.relative_delta`` the
    ``relative_delta`` of ``summary.json``; a value-range refusal suggests a ``--scale``.
    """
    text = str(text)
    text += _scale_hint(text)
    text = re.sub(r"\boverwrite=True\b", "--overwrite", text)
    text = re.sub(r"\b([a-z_]+)='([^']*)'", lambda match: f"{_option(match.group(1))} {match.group(2)}", text)
    text = re.sub(r"\b(batch_size|steps)=(\d+)\b", lambda match: f"{_option(match.group(1))} {match.group(2)}", text)
    text = re.sub(r"\b(more|a larger) (steps|segment_points)\b",
                  lambda match: f"{match.group(1)} {_option(match.group(2))}", text)
    text = text.replace("input_layer=", "--input-layer").replace("`value_range`", "--value-range")
    return text.replace("explanation.relative_delta", "relative_delta in summary.json")


def read_targets(args: argparse.Namespace, count: int) -> Any:
    """``--target``: ``None``, one class index, or the ``(N,)`` class indices read from its ``.npy`` file.

    Raises:
        UsageError: If the file does not hold ``count`` non-negative integers.
    """
    if not isinstance(args.target, str):
        return args.target
    import numpy as np
    try:
        values = np.load(args.target, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"argument --target: could not read {args.target!r} as a .npy array: {error}") from error
    if values.shape != (count,) or not np.issubdtype(values.dtype, np.integer) or np.any(values < 0):
        raise UsageError(f"argument --target: {args.target!r} must hold {count} class indices (integers >= 0), one "
                         f"per input. Received: {values.dtype} array of shape {values.shape}")
    return values.astype(np.int64)


# -- checks before TensorFlow is imported ------------------------------------------------------------
def check_explain(args: argparse.Namespace) -> Union[str, float, Dict[str, str]]:
    """Checks the options, that MODEL, the inputs and references exist and that DIR may be written.

    Imports neither TensorFlow nor Keras, so that a refusal is quick; returns ``--references``
    (:func:`_references_argument`). Named inputs (``--inputs NAME=PATH``) and token ids
    (``--input-layer``) are checked as far as the model is not needed
    (:func:`tf_ig2.cli_inputs.check_named_inputs`).

    Raises:
        UsageError: On the first problem found.
    """
    from . import cli_output, cli_stream

    method_options(args)
    check_path_strip(args)
    reference = _references_argument(args)
    inputs = inputs_argument(args)
    cli_inputs.check_named_inputs(args, inputs, reference)
    if args.shard_size is not None and not args.stream:
        raise UsageError(f"argument --shard-size: only applies with --stream. Received: --shard-size "
                         f"{args.shard_size} without --stream")
    if not os.path.exists(args.model):
        raise UsageError(f"No model found: MODEL does not exist. Received: {args.model!r}")
    if args.model.lower().endswith(".keras"):
        try:
            validation.keras_archive("MODEL", args.model)
        except ValueError as error:
            raise UsageError(str(error)) from error
    for name, given in (("inputs", inputs), ("references", reference), ("target", args.target)):
        for key, path in (given.items() if isinstance(given, dict) else [(None, given)]):
            if isinstance(path, str) and not os.path.exists(path):
                shown = path if key is None else f"{key}={path}"
                raise UsageError(f"`{name}` file not found. Received: --{name} {shown!r}")
    try:
        if args.stream:
            cli_stream.check_stream_output(args.output, args.overwrite)
        else:
            cli_output.check_output(args.output, args.overwrite,
                                    cli_output.output_names(inputs=cli_inputs.output_input_names(inputs)))
    except (ValueError, OSError) as error:
        raise UsageError(command_line_wording(str(error))) from error
    return reference


@contextlib.contextmanager
def reserved_output(args: argparse.Namespace) -> Iterator[None]:
    """Holds DIR's lock for the block (created if missing; removed again if left empty).

    Raises:
        UsageError: If another run holds it, or DIR cannot be created.
    """
    from . import folders

    stack = contextlib.ExitStack()
    try:
        stack.enter_context(folders.holding(args.output))
    except (ValueError, OSError) as error:
        raise UsageError(command_line_wording(str(error))) from error
    with stack:
        yield


# -- explain in memory --------------------------------------------------------------------------
def run_explain(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs ``tf-ig2 explain``; returns what was written. Raises ``UsageError`` on bad input.

    Everything is checked (:func:`check_explain`) and DIR's lock taken before the model is loaded.
    """
    reference = check_explain(args)
    options = method_options(args)
    with reserved_output(args):
        if args.stream:
            return run_explain_stream(args, options, reference)
        return _explain_in_memory(args, options, reference)


def _explain_in_memory(args: argparse.Namespace, options: Dict[str, Any],
                       reference: Union[str, float, Dict[str, str]]) -> Dict[str, Any]:
    from . import cli_output, cli_report, saved_model

    try:
        model = _load_model(args)
        plan = cli_inputs.plan_inputs(model, inputs_argument(args), args.input_layer)
        read_options = read_options_for(args)
        inputs, references, names = cli_inputs.read_in_memory(plan, reference, read_options)
        image_size = args.image_size if plan.several else read_options(next(iter(plan.shapes.values())))[
            "image_size"]
        explained_options = dict(options, **({"value_range": plan.value_range(options["value_range"])}
                                             if "value_range" in options else {}))
        explainer = saved_model.build_explainer(model, options, args.method)[0] if args.path_strip else None
        report = report_options(args, explainer, references, None if plan.several else inputs.shape[1:])
        progress = ProgressBar("Explaining", enabled=not args.quiet)
        try:
            rows = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
            explanation = saved_model.explain_model(model, inputs, references, read_targets(args, rows),
                                                    method=args.method, progress=progress, **explained_options)
        finally:
            progress.close()
        explanation = cli_inputs.by_name(explanation, plan)
        settings = settings_record(args, image_size, options, reference)
        input_names = list(plan.shapes) if plan.several else None
        with cli_output.staged_output(args.output, overwrite=args.overwrite,
                                      names=cli_output.output_names(inputs=input_names)) as staging:
            written = cli_output.write_explanation(staging, explanation, inputs, names=names, settings=settings,
                                                   report=report)
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(command_line_wording(str(error))) from error
    count = len(explanation.target_scores)
    return {"output": args.output, "files": written, "count": count, "method": args.method,
            "representation": explanation.representation,
            "report": os.path.join(args.output, cli_report.REPORT_FILE)}


# -- explain --stream ------------------------------------------------------------------------------
#: The settings that decide a streamed run's results besides the method's options: a stopped run
#: is continued only when they agree (tf_ig2.dataset.explain_dataset then also compares the
#: model's weights, the references, the targets and the first shard's inputs).
_RESUME_SETTINGS = ("target", "method", "image_size", "scale", "signature", "output_name")


def _check_stream_references(references: Any, count: int, sample_shape: Tuple[int, ...], explainer: Any,
                             method: str) -> None:
    """Checks references ``(R, *S)``, ``(N, R, *S)`` (read lazily) or a scalar before any work."""
    from . import validation

    entry = methods.get(method)
    embedded = explainer.view.input_layer is not None
    if references.ndim == len(sample_shape) + 2:
        if references.shape[0] != count:
            raise ValueError(f"`references` given per input as (N, R, *input_shape) must have N={count} rows like "
                             f"`inputs`. Received: shape {tuple(references.shape)}")
        validation.references_array("references", references[:1], (1, *sample_shape), integer=embedded)
        return
    checked = validation.references_array("references", references, (count, *sample_shape), integer=embedded,
                                          allow_scalar=entry.scalar_reference and not embedded)
    if "value_range" in entry.settings.names() and not embedded:
        validation.fits_value_range("references", checked, explainer.value_range, sample_shape)


def _references_per_input(references: Any, sample_shape: Tuple[int, ...]) -> int:
    """R: references ``(N, R, *S)`` or ``(R, *S)``; 1 for a scalar or an ``S``-shaped baseline."""
    if references.ndim == len(sample_shape) + 2:
        return int(references.shape[1])
    return int(references.shape[0]) if references.ndim == len(sample_shape) + 1 else 1


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


def _forget_unstarted_run(output: str, created_shards: bool) -> int:
    """Removes the files a streamed run wrote when it finished no shard; returns the inputs kept.

    Only files listed in the results folder's manifest and the run's record go; the folder
    ``DIR/shards`` itself only if it was created by this run and is then empty.
    """
    from . import cli_stream
    from .dataset import results

    kept = cli_stream.stream_explained(output)
    if kept == 0 and created_shards:
        shards = os.path.join(output, cli_stream.STREAM_FOLDER)
        results.discard(shards)
        if cli_stream.stream_record(output) is not None:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(shards, cli_stream.STREAM_RECORD))
        with contextlib.suppress(OSError):
            os.rmdir(shards)
    return kept


def _open_stream_inputs(args: argparse.Namespace, model: Any,
                        reference: Union[str, float]) -> Tuple[Any, Any, Optional[Tuple[int, int]]]:
    """Opens a streamed run's inputs, reads its references; returns them with the image size read at.

    Token ids (``--input-layer``) are streamed from a ``.npy`` array as int64
    (:func:`tf_ig2.cli_stream.open_token_stream`) and their references read into memory.

    Raises:
        UsageError, ValueError: If the inputs do not fit the model or cannot be read.
    """
    import numpy as np

    from . import cli_stream, validation

    plan = cli_inputs.plan_inputs(model, inputs_argument(args), args.input_layer)
    shape = next(iter(plan.shapes.values()))
    read = read_options_for(args)(shape)
    image_size = read["image_size"]
    if plan.tokens:
        inputs = cli_stream.open_token_stream(plan.files, "inputs")
        references = cli_inputs.read_token_ids(reference, "references")
    else:
        inputs = cli_stream.open_stream(plan.files, "inputs", **read)
        references = np.float32(reference) if isinstance(reference, float) else cli_stream.read_stream_references(
            reference, "references", **read)
    validation.fits_model_input("inputs", (inputs.count, *inputs.sample_shape), shape)
    return inputs, references, image_size


def run_explain_stream(args: argparse.Namespace, options: Dict[str, Any],
                       reference: Union[str, float]) -> Dict[str, Any]:
    """Runs ``tf-ig2 explain --stream``; returns what was written. Raises ``UsageError`` on bad input.

    Nothing is written before the model, the inputs' shape and the references have been checked.
    An error or an interruption while explaining keeps the finished shards in ``DIR/shards``
    (the same command continues from there), or removes what it created when no shard was
    finished.

    Args:
        args: The parsed command line.
        options: The method's options (:func:`method_options`).
        reference: ``--references``: a path or a number (:func:`_references_argument`).
    """

    from . import cli_report, cli_stream, dataset, saved_model
    from .dataset import results

    output = args.output
    try:
        record = cli_stream.check_stream_output(output, args.overwrite)
        model = _load_model(args)
        inputs, references, image_size = _open_stream_inputs(args, model, reference)
        explainer, representation = saved_model.build_explainer(model, options, args.method)
        _check_stream_references(references, inputs.count, inputs.sample_shape, explainer, args.method)
        report = report_options(args, explainer, references, inputs.sample_shape)
        settings = settings_record(args, image_size, options, reference)
        wanted: Dict[str, Any] = {key: value for key, value in settings.items()
                                  if key in _RESUME_SETTINGS or (key in METHOD_OPTIONS and key != "batch_size")}
        if settings["model_format"] == "saved_model":
            wanted["model_sha1"] = _files_sha1(args.model)
        resuming = record is not None and not args.overwrite
        explained = cli_stream.stream_explained(output) if resuming else 0
        if resuming:
            stored = {**_SETTINGS_BEFORE_TOKENS, **record["settings"]} if "method" in record["settings"] else {
                **_SETTINGS_BEFORE_TOKENS, **_SETTINGS_BEFORE_METHODS, **record["settings"]}
            wanted["shard_size"] = args.shard_size or stored.get("shard_size")
            differences = results.settings_differences(stored, wanted)
            if differences and explained:
                raise ValueError(
                    f"Output folder {output!r} holds an unfinished streamed run of other settings "
                    f"({results.describe_differences(differences)}); run the command with its settings to continue "
                    "it, pass --overwrite to start over, or choose another folder."
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
        raise UsageError(command_line_wording(str(error))) from error

    settings.update(stream=True, shard_size=wanted["shard_size"])
    shards = os.path.join(output, cli_stream.STREAM_FOLDER)
    created_shards = not os.path.exists(shards)
    if resuming:
        sys.stderr.write(f"{PROGRAM}: continuing the unfinished streamed run in {output}: {explained} of "
                         f"{inputs.count} inputs were explained earlier\n")
    per_input = _references_per_input(references, inputs.sample_shape)
    try:
        cli_stream.write_stream_record(output, wanted, finished=False)
        result = dataset.explain_dataset(
            explainer, inputs.values, references, shards, targets=read_targets(args, inputs.count),
            batch_size=_read_batch(args.batch_size, per_input), shard_size=wanted["shard_size"],
            progress=not args.quiet, overwrite=not resuming)
        written = cli_stream.finish_stream(output, settings=settings, names=inputs.names,
                                           representation=representation, method=explainer.method,
                                           resumed=result.resumed, inputs=inputs, report=report)
        cli_stream.write_stream_record(output, wanted, finished=True)
    except KeyboardInterrupt:
        kept = _forget_unstarted_run(output, created_shards)
        raise Interrupted(f"the {kept} inputs explained so far are kept in {shards}: run the same command again to "
                          "continue" if kept else "") from None
    except (ValueError, TypeError, OSError) as error:
        kept = _forget_unstarted_run(output, created_shards)
        note = f" (the {kept} inputs explained so far are kept in {shards})" if kept else ""
        raise UsageError(command_line_wording(str(error)) + note) from error
    except BaseException:
        _forget_unstarted_run(output, created_shards)
        raise
    return {"output": output, "files": written, "count": result.count, "resumed": result.resumed,
            "shards": result.shards, "shards_folder": shards, "method": args.method,
            "representation": representation, "stream": True,
            "report": os.path.join(output, cli_report.REPORT_FILE)}
