"""``tf-ig2 explain``: a saved model's predictions explained with a registered method.

The method (``--method``, :mod:`tf_ig2.methods`) decides which options apply: each option of
:func:`method_flags` belongs to the methods whose settings dataclass (:mod:`tf_ig2.methods.registry`)
has its field, and is a usage error for the others. The model's inputs (one, several given as
``NAME=PATH``, token ids read through ``--input-layer``) are matched and read by
:mod:`tf_ig2.cli.inputs`. In memory, the inputs and references are read whole
(:func:`tf_ig2.cli.files.read_inputs`) and explained by
:func:`tf_ig2.saved_model.explain_model`; with ``--stream`` they are opened lazily
(:func:`tf_ig2.cli.stream.open_stream`) and explained a batch at a time by
:func:`tf_ig2.dataset.explain_dataset` into result shards in ``DIR/shards``, so that a stopped run
continues where it stopped; :func:`tf_ig2.cli.stream.finish_stream` then writes
``DIR/attributions.npy``, ``DIR/summary.json`` and ``DIR/index.html``. Either way the pictures
and the report come from :mod:`tf_ig2.cli.report`; ``--path-strip`` (IG² only) adds the GradPath
film strips of the first inputs; ``--smooth`` (in memory only) the noise tunnel of
:mod:`tf_ig2.cli.smoothing`. Problems are raised as :class:`UsageError`, reported by
:func:`tf_ig2.cli.main` in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

from tf_ig2 import defaults, validation
from tf_ig2.cli import inputs as cli_inputs
from tf_ig2.cli import pool as cli_pool
from tf_ig2.cli import smoothing as cli_smoothing
from tf_ig2.cli import targets as cli_targets
from tf_ig2.cli.inputs import UsageError, read_options_for, value_range_option
from tf_ig2.cli.targets import read_targets
from tf_ig2.cli.wording import command_line_wording
from tf_ig2.methods import registry as methods
from tf_ig2.validation import one_line

PROGRAM = "tf-ig2"

def method_flags() -> Dict[str, str]:
    """The method options of ``tf-ig2 explain``: setting name -> flag, derived from the registry.

    Every field of a registered method's settings (:mod:`tf_ig2.methods.registry`) that has a
    command-line flag becomes ``--<name-with-dashes>``; it applies to the methods whose settings
    have that field. Read at call time, so that a newly registered method brings its options.
    """
    flags: Dict[str, str] = {}
    for entry in methods.METHODS.values():
        for field in entry.settings.fields():
            if field.metadata.get("command_line", False) and field.name not in flags:
                flags[field.name] = "--" + field.name.replace("_", "-")
    return flags


#: Settings of streamed runs recorded before ``--method`` existed: those runs were IG² runs with
#: the published integration and path.
SETTINGS_BEFORE_METHODS = {"method": "ig2", "integration": "left", "segment_points": defaults.IG2_SEGMENT_POINTS,
                            "momentum": 0.0}

#: Settings of streamed runs recorded before ``--input-layer`` existed: float inputs.
SETTINGS_BEFORE_TOKENS = {"input_layer": None, "padding_id": defaults.PADDING_ID}


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


def load_explained_model(args: argparse.Namespace) -> Any:
    """Imports the ``--import`` modules, then loads MODEL (in memory and streamed alike).

    Raises:
        UsageError: If a module cannot be imported, or the model uses a class no module
            registered (the one line names it and suggests ``--import MODULE``).
        ValueError, TypeError: As :func:`tf_ig2.saved_model.load_model`.
    """
    from tf_ig2.saved_model import explain as saved_model

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
    entry = methods.get_method(args.method)
    taken = entry.settings.names()
    options: Dict[str, Any] = {}
    flags = method_flags()
    for name, flag in flags.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in taken:
            accepted = ", ".join(flags[key] for key in taken if key in flags)
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
    """``--inputs``: one path, or ``{input name: path}`` (:func:`tf_ig2.cli.inputs.files_argument`)."""
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
    entry = methods.get_method(args.method)
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
                    references: Union[str, float, Dict[str, str]],
                    pool: Optional[cli_pool.PoolArgument] = None) -> Dict[str, Any]:
    """The settings stored in summary.json: the method with all its options (defaults filled in).

    ``--targets``, ``--top-k``, ``--class-names`` and the pool's flags are recorded when given
    (``references`` is then ``None``), so that a run of one target records what it always did.
    """
    from tf_ig2.saved_model import explain as saved_model

    resolved = methods.get_method(args.method).check_options(options).as_dict()
    record: Dict[str, Any] = {
        "model": args.model,
        "model_format": saved_model.model_format(args.model),
        "inputs": inputs_argument(args),
        "references": None if pool is not None else references,
        **(pool.settings() if pool is not None else {}),
        "target": args.target,
        **cli_targets.settings(args),
        "method": args.method,
        **cli_smoothing.settings(args),
    }
    for name in method_flags():
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
    if getattr(args, "path_strip", False) and "path" not in methods.get_method(args.method).extra_outputs:
        takers = ", ".join(key for key, entry in methods.METHODS.items() if "path" in entry.extra_outputs)
        raise UsageError(f"argument --path-strip: draws the GradPath of --method {takers}; --method {args.method} "
                         f"integrates along a path it does not return. Received: --path-strip --method {args.method}")


def report_options(args: argparse.Namespace, explainer: Any = None, references: Any = None,
                   sample_shape: Optional[Tuple[int, ...]] = None, class_names: Optional[Sequence[str]] = None) -> Any:
    """The pictures' settings; with ``--path-strip``, the film strips of ``explainer`` and ``references``.

    ``class_names`` (``--class-names``) label the classes in the pictures and the report.

    Raises:
        ValueError: If ``--path-strip`` is given for inputs that are not images ``(H, W, C)``.
    """
    from tf_ig2.cli import report as cli_report

    strips = None
    if getattr(args, "path_strip", False):
        if sample_shape is None or len(sample_shape) != 3:
            raise ValueError(f"--path-strip draws image paths: the inputs must be images (N, H, W, C). Received: "
                             f"inputs of shape (N, {', '.join(map(str, sample_shape or ()))})")
        strips = cli_report.path_strip_maker(explainer, references, value_range=value_range_option(args),
                                             min_size=args.min_display_size, class_names=class_names)
    return cli_report.ReportOptions(min_display_size=args.min_display_size, value_range=value_range_option(args),
                                    max_inputs=defaults.CLI_REPORT_MAX_INPUTS, path_strips=strips,
                                    class_names=tuple(class_names) if class_names is not None else None)


# -- checks before TensorFlow is imported ------------------------------------------------------------
def check_explain(args: argparse.Namespace) -> Union[str, float, Dict[str, str]]:
    """Checks the options, that MODEL, the inputs and references exist and that DIR may be written.

    Imports neither TensorFlow nor Keras, so that a refusal is quick; returns ``--references``
    (:func:`_references_argument`), or ``--reference-pool`` when a pool is given
    (:func:`tf_ig2.cli.pool.pool_argument`). Named inputs (``--inputs NAME=PATH``) and token ids
    (``--input-layer``) are checked as far as the model is not needed
    (:func:`tf_ig2.cli.inputs.check_named_inputs`).

    Raises:
        UsageError: On the first problem found.
    """
    from tf_ig2.cli import output as cli_output
    from tf_ig2.cli import stream as cli_stream

    method_options(args)
    check_path_strip(args)
    cli_smoothing.smooth_argument(args)
    pool = cli_pool.pool_argument(args)
    reference = _references_argument(args) if pool is None else pool.files
    inputs = inputs_argument(args)
    cli_inputs.check_named_inputs(args, inputs, reference, "references" if pool is None else "reference-pool")
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
    given_files = [("inputs", inputs), ("references" if pool is None else "reference-pool", reference),
                   *([("reference-labels", pool.labels)] if pool is not None else []),
                   *cli_targets.files(args).items()]
    for name, given in given_files:
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
    from tf_ig2 import folders

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
            from tf_ig2.cli.explain_stream import run_explain_stream

            return run_explain_stream(args, options, reference)
        return _explain_in_memory(args, options, reference, cli_pool.pool_argument(args))


def _explain_in_memory(args: argparse.Namespace, options: Dict[str, Any],
                       reference: Union[str, float, Dict[str, str]],
                       pool: Optional[cli_pool.PoolArgument] = None) -> Dict[str, Any]:
    """Explains the inputs read whole; with ``pool``, against references drawn from it for the explained classes."""
    from tf_ig2.cli import output as cli_output
    from tf_ig2.cli import report as cli_report
    from tf_ig2.saved_model import explain as saved_model

    try:
        class_names = cli_targets.read_class_names(args)
        model = load_explained_model(args)
        plan = cli_inputs.plan_inputs(model, inputs_argument(args), args.input_layer)
        read_options = read_options_for(args)
        inputs, references, names = cli_inputs.read_in_memory(
            plan, reference, read_options, "references" if pool is None else "reference_pool")
        image_size = args.image_size if plan.several else read_options(next(iter(plan.shapes.values())))[
            "image_size"]
        explained_options = dict(options, **({"value_range": plan.value_range(options["value_range"])}
                                             if "value_range" in options else {}))
        rows = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
        targets = read_targets(args, rows)
        explainer = (saved_model.build_explainer(model, explained_options, args.method)[0]
                     if args.path_strip or pool is not None else None)
        picked = None
        if pool is not None:
            from tf_ig2.cli import files as cli_files

            labels = cli_files.read_array(pool.labels, "reference_labels")
            targets = cli_targets.resolve(explainer, inputs, targets)
            references, picked = cli_pool.pick_references(
                pool, references, labels, targets, model=explainer.model, inputs=inputs,
                input_layer=options.get("input_layer"), batch_size=options.get("batch_size"))
        report = report_options(args, explainer, references, None if plan.several else inputs.shape[1:],
                                class_names)
        progress = ProgressBar("Explaining", enabled=not args.quiet)
        smoothing = cli_smoothing.smooth_argument(args)
        try:
            explanation = (saved_model.explain_model(model, inputs, references, targets, method=args.method,
                                                     progress=progress, **explained_options) if smoothing is None
                           else cli_smoothing.explain_smoothed(model, inputs, references, targets, method=args.method,
                                                               options=explained_options, smoothing=smoothing,
                                                               progress=progress))
        finally:
            progress.close()
        explanation = cli_inputs.by_name(explanation, plan)
        settings = settings_record(args, image_size, options, reference, pool)
        input_names = list(plan.shapes) if plan.several else None
        with cli_output.staged_output(args.output, overwrite=args.overwrite,
                                      names=cli_output.output_names(inputs=input_names)) as staging:
            written = cli_output.write_explanation(staging, explanation, inputs, names=names, settings=settings,
                                                   report=report, reference_rows=picked)
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(command_line_wording(str(error))) from error
    count = len(explanation.target_scores)
    return {"output": args.output, "files": written, "count": count, "method": args.method,
            "representation": explanation.representation, "target_count": explanation.target_count,
            "report": os.path.join(args.output, cli_report.REPORT_FILE)}
