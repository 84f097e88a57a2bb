"""The model inputs of ``tf-ig2 explain``: one array, several named ones, or token ids.

``--inputs PATH`` explains a model with one input. A model with several inputs takes one
``--inputs NAME=PATH`` per input (``NAME`` being the model's input name, :func:`tf_ig2.saved_model.input_specs`),
and the same for ``--references``; the arrays are then passed to the explainer as a dict keyed
by input name. ``--input-layer NAME`` reads the input that layer (an ``Embedding``) consumes as
integer token ids from a ``.npy``/``.npz`` array: not scaled, not snapped to ``--value-range``,
never an image; the path then lives in the layer's output space, as with ``input_layer=`` in
Python, and ``--padding-id`` names the id of padding positions (``none`` for none).

What can be checked without TensorFlow (the ``NAME=PATH`` syntax, that every input is named
once, that references name the same inputs, options that make no sense with token ids) is
checked by :func:`check_named_inputs` before the model is loaded; the rest (unknown or missing
input names, an ``--input-layer`` naming no layer, fractional token ids) once it is
(:func:`plan_inputs`, :func:`read_in_memory`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from tf_ig2 import defaults

#: ``NAME=PATH``: a name without ``=``, path separators or spaces, then the path.
_NAMED = re.compile(r"([^=/\\\s]+)=(.*)", re.DOTALL)

#: ``--padding-id none``: no padding positions.
NO_PADDING = "none"

#: File extensions token ids are read from (arrays only, never images).
TOKEN_EXTENSIONS = (".npy", ".npz")

FileArgument = Tuple[Optional[str], str]
Files = Union[None, str, Dict[str, str]]


class UsageError(Exception):
    """A problem with the command line's arguments or inputs; reported in one line (also ``cli_explain.UsageError``)."""


# -- parsing, before TensorFlow ---------------------------------------------------------------------
def file_argument(text: str) -> FileArgument:
    """argparse type of ``--inputs``, ``--references``: ``PATH`` -> ``(None, PATH)``, ``NAME=PATH`` -> ``(NAME, PATH)``.

    A value that exists as a file or folder is always a path, even when it holds ``=``.
    """
    match = _NAMED.fullmatch(text)
    if match is None or os.path.exists(text):
        return None, text
    if not match.group(2):
        raise argparse.ArgumentTypeError(f"NAME=PATH needs a path after '='. Received: {text!r}")
    return match.group(1), match.group(2)


def padding_id_argument(text: str) -> Union[int, str]:
    """argparse type of ``--padding-id``: an integer token id, or ``none``."""
    if text.strip().lower() == NO_PADDING:
        return NO_PADDING
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer token id or 'none'. Received: {text!r}") from None


def files_argument(entries: Optional[Sequence[FileArgument]], option: str) -> Files:
    """``--inputs``/``--references`` as given: ``None``, one unnamed value, or ``{name: path}``.

    Given several times without names, the last value counts (as for any other option).

    Raises:
        UsageError: If the option is given with and without names, or twice for one name.
    """
    if not entries:
        return None
    flag = f"--{option}"
    names = [name for name, _ in entries]
    shown = " ".join(f"{flag} {path if name is None else f'{name}={path}'}" for name, path in entries)
    if all(name is None for name in names):
        return entries[-1][1]
    if any(name is None for name in names):
        raise UsageError(f"argument {flag}: either one {flag} PATH (a model with one input) or one {flag} "
                         f"NAME=PATH per input, not both. Received: {shown}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"argument {flag}: each input is given once; {', '.join(repeated)} is given more than "
                         f"once. Received: {shown}")
    return {name: path for name, path in entries}


def check_named_inputs(args: argparse.Namespace, inputs: Files,
                       references: Union[None, str, float, Dict[str, str]], option: str = "references") -> None:
    """The checks of several or token inputs that need no model (before TensorFlow is imported).

    ``references`` is what ``--{option}`` gives: ``--references``, or ``--reference-pool``,
    which is read the same way.

    Raises:
        UsageError: On named references for an unnamed input or the reverse, references naming
            other inputs, ``--stream`` with several inputs, or an option that does nothing with
            token ids (``--value-range``, ``--scale``, ``--image-size``, ``--path-strip``, a
            number as ``--references``, image files).
    """
    flag = f"--{option}"
    if isinstance(inputs, dict):
        if isinstance(references, str):
            raise UsageError(f"argument {flag}: give one {flag} NAME=PATH per input "
                             f"({', '.join(inputs)}), as for --inputs. Received: {flag} {references}")
        if isinstance(references, dict) and set(references) != set(inputs):
            missing, unknown = sorted(set(inputs) - set(references)), sorted(set(references) - set(inputs))
            said = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                               f"not among --inputs: {', '.join(unknown)}" if unknown else "") if part)
            raise UsageError(f"argument {flag}: must name the inputs --inputs names ({', '.join(inputs)}): "
                             f"{said}")
        if args.stream:
            raise UsageError("argument --stream: streams models with one input (float arrays, images, or token ids "
                             "with --input-layer); a model with several inputs (--inputs NAME=PATH) is explained "
                             "in memory: run the command without --stream")
        if args.path_strip:
            raise UsageError("argument --path-strip: draws the GradPath of image inputs of a model with one input. "
                             f"Received: --path-strip with several inputs ({', '.join(inputs)})")
    elif isinstance(references, dict):
        raise UsageError(f"argument {flag}: named references (NAME=PATH) go with named inputs; give "
                         f"{flag} PATH for the model's single input. Received: {flag} "
                         f"{f' {flag} '.join(f'{key}={value}' for key, value in references.items())}")
    if args.input_layer is None:
        if args.padding_id is not None:
            raise UsageError(f"argument --padding-id: only applies with --input-layer (token ids). Received: "
                             f"--padding-id {args.padding_id}")
        return
    if isinstance(references, float):
        given = f"--references {references:g}" if args.references else "no --references (default 0)"
        raise UsageError("argument --references: with --input-layer the references (baselines) are token ids read "
                         "from a .npy file, (R, T) or (N, R, T), e.g. all padding ids; a number is one value for "
                         f"every float feature. Received: {given}")
    if isinstance(inputs, str):
        _check_single_token_input(args, inputs, references, option)


def _check_single_token_input(args: argparse.Namespace, inputs: str, references: Any,
                              reference_option: str = "references") -> None:
    """A model with one token input: array files only, and no option that only applies to floats."""
    for option, path in (("inputs", inputs), (reference_option, references)):
        if isinstance(path, str) and (os.path.isdir(path) or not path.lower().endswith(TOKEN_EXTENSIONS)):
            raise UsageError(f"argument --{option}: with --input-layer the {option} are token ids: expected a .npy "
                             f"or .npz array of integers. Received: --{option} {path}")
    for option, given in (("--value-range", args.value_range is not None), ("--scale", args.scale != 1.0),
                          ("--image-size", args.image_size is not None), ("--path-strip", args.path_strip)):
        if given:
            raise UsageError(
                f"argument {option}: applies to float inputs (images, arrays); token ids read through "
                f"--input-layer {args.input_layer} are not scaled, resized or clipped (their path is clipped to "
                f"the range of the layer's embedding table) and have no images. Received: {option} with "
                f"--input-layer {args.input_layer}")


def output_input_names(inputs: Files) -> Optional[List[str]]:
    """The input names of the per-input output files: those of named ``--inputs``, else ``None``."""
    return list(inputs) if isinstance(inputs, dict) else None


# -- after loading the model ------------------------------------------------------------------------
def image_layout(expected: Optional[Sequence[Optional[int]]]) -> Dict[str, Any]:
    """Image size and channels implied by a model's ``(None, H, W, C)`` input shape."""
    layout: Dict[str, Any] = {"image_size": None, "channels": None}
    if expected is not None and len(expected) == 4:
        height, width, channels = expected[1:]
        if height is not None and width is not None:
            layout["image_size"] = (int(height), int(width))
        if channels in (1, 3, 4):
            layout["channels"] = int(channels)
    return layout


def value_range_option(args: argparse.Namespace) -> Optional[Tuple[float, float]]:
    """``--value-range`` as a ``(low, high)`` pair of floats, or ``None``."""
    return None if args.value_range is None else (float(args.value_range[0]), float(args.value_range[1]))


def read_options_for(args: argparse.Namespace) -> Callable[[Any], Dict[str, Any]]:
    """The keywords of :func:`~tf_ig2.cli.files.read_inputs` and :func:`~tf_ig2.cli.stream.open_stream`.

    Returns:
        ``read_options(shape)`` for a model input of shape ``(None, *S)`` (or ``None``): the image
        size (``--image-size``, else the one the shape declares), channels, ``--scale`` and the
        value range, within float32 round-off outside of which values read (e.g. a white pixel
        at 1.0000002 after ``--scale 1/255``) are clipped to it.
    """
    def read_options(shape: Optional[Sequence[Optional[int]]]) -> Dict[str, Any]:
        layout = image_layout(shape)
        image_size = tuple(args.image_size) if args.image_size else layout["image_size"]
        return dict(image_size=image_size, channels=layout["channels"], scale=args.scale,
                    value_range=value_range_option(args))

    return read_options


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """How the model's inputs are read.

    Attributes:
        shapes: The model's inputs by name, in its input order: ``name -> (None, *S)`` (or ``None``).
        files: ``--inputs``: one path, or ``{name: path}`` for several inputs.
        tokens: The names of the inputs read as token ids (the one ``--input-layer`` consumes).
    """

    shapes: Dict[str, Optional[Tuple[Optional[int], ...]]]
    files: Union[str, Dict[str, str]]
    tokens: Tuple[str, ...] = ()

    @property
    def several(self) -> bool:
        """Whether the model has several inputs (given by name)."""
        return isinstance(self.files, dict)

    def value_range(self, value_range: Any) -> Any:
        """``value_range`` as the explainer takes it: the pair, or ``{float input: pair}`` beside token inputs."""
        if value_range is None or not (self.several and self.tokens):
            return value_range
        return {name: value_range for name in self.shapes if name not in self.tokens}


def plan_inputs(model: Any, files: Union[str, Dict[str, str]], input_layer: Optional[str]) -> InputPlan:
    """Matches ``--inputs`` to the model's inputs and finds the one ``--input-layer`` consumes.

    Raises:
        UsageError: If names are missing or unknown, a model with several inputs is given one
            unnamed ``--inputs``, a model with one input named ones, or ``--input-layer`` is given
            for a SavedModel or names no layer (the message lists the available ones).
    """
    from tf_ig2.engine.model_graph import ModelInputs, resolve_input_layers
    from tf_ig2.saved_model import explain as saved_model

    shapes = {name: shape for name, (shape, _) in saved_model.input_specs(model).items()}
    listed = ", ".join(shapes)
    if isinstance(files, dict):
        if len(shapes) == 1:
            shown = " ".join(f"--inputs {key}={value}" for key, value in files.items())
            raise UsageError(f"argument --inputs: the model has a single input ({listed}); give it as --inputs PATH, "
                             f"without a name. Received: {shown}")
        unknown, missing = sorted(set(files) - set(shapes)), [name for name in shapes if name not in files]
        if unknown:
            raise UsageError(f"argument --inputs: the model has no input named {', '.join(map(repr, unknown))}; "
                             f"its inputs are {listed}. Received: --inputs {unknown[0]}={files[unknown[0]]}")
        if missing:
            raise UsageError(f"argument --inputs: the model has {len(shapes)} inputs ({listed}); give one --inputs "
                             f"NAME=PATH for each: missing {', '.join(missing)}")
    elif len(shapes) > 1:
        raise UsageError(f"argument --inputs: the model has {len(shapes)} inputs ({listed}); give one --inputs "
                         f"NAME=PATH for each (and --references NAME=PATH). Received: --inputs {files}")
    if input_layer is None:
        return InputPlan(shapes, files)
    if isinstance(model, saved_model.SavedModelFunction):
        raise UsageError(f"argument --input-layer: a SavedModel keeps no layers to read token ids with; explain "
                         f"the .keras model. Received: --input-layer {input_layer}")
    try:
        layers = resolve_input_layers(model, ModelInputs(model), input_layer)
    except ValueError as error:
        raise UsageError(f"argument --input-layer: {error}") from error
    tokens = tuple(name for name, layer in zip(shapes, layers) if layer is not None)
    return InputPlan(shapes, files, tokens)


def read_token_ids(path: str, name: str) -> Any:
    """Token ids from a ``.npy``/``.npz`` array as int64: integers, or floats holding whole numbers.

    Raises:
        ValueError: If ``path`` is no such array, or holds fractional or non-finite values.
    """
    from tf_ig2.cli import files as cli_files

    if os.path.isdir(path) or not path.lower().endswith(TOKEN_EXTENSIONS):
        raise ValueError(f"`{name}` read through --input-layer are token ids: expected a .npy or .npz array of "
                         f"integers. Received: {path!r}")
    values = cli_files.read_array(path, name)
    return as_token_ids(values, name, path)


def as_token_ids(values: Any, name: str, path: str) -> Any:
    """``values`` as int64 token ids; floats must hold whole numbers.

    Raises:
        ValueError: On fractional or non-finite values, naming the first one.
    """
    import numpy as np

    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values) | (np.mod(np.where(np.isfinite(values), values, 0), 1) != 0)
        if bad.any():
            where = tuple(int(index) for index in np.argwhere(bad)[0])
            raise ValueError(f"`{name}` read through --input-layer must hold whole token ids (integers). Received: "
                             f"{path!r} holding {values.dtype} values with fractions, e.g. {float(values[where])!r} at "
                             f"index {where}")
    return values.astype(np.int64)


def read_in_memory(plan: InputPlan, references: Union[str, float, Dict[str, str]],
                   read_options: Callable[[Any], Dict[str, Any]],
                   reference_name: str = "references") -> Tuple[Any, Any, Optional[List[str]]]:
    """Reads the inputs and references of ``plan``: ``(inputs, references, input names)``.

    For one input, arrays (or a scalar reference); for several, dicts keyed by input name. The
    names are the image file names of a single image input, else ``None``.

    Args:
        plan: The inputs (:func:`plan_inputs`).
        references: ``--references``: a path, a number, or ``{name: path}``.
        read_options: The keywords of :func:`tf_ig2.cli.files.read_inputs` for an input shape.
        reference_name: What the references are called in messages (and the array of a ``.npz`` archive
            read): ``"references"``, or ``"reference_pool"`` for ``--reference-pool``, read the
            same way.

    Raises:
        ValueError: If a file cannot be read, or token ids are not whole numbers.
    """
    from tf_ig2.cli import files as cli_files

    option = reference_name

    def read(name: str, path: str, option: str, label: str) -> Tuple[Any, Optional[List[str]]]:
        if name in plan.tokens:
            return read_token_ids(path, label), None
        return cli_files.read_inputs(path, option, **read_options(plan.shapes[name]))

    if not plan.several:
        name = next(iter(plan.shapes))
        inputs, names = read(name, plan.files, "inputs", "inputs")
        if not isinstance(references, str):
            return inputs, references, names
        return inputs, read(name, references, option, option)[0], names
    inputs, read_references = {}, {}
    for name, path in plan.files.items():
        try:
            inputs[name] = read(name, path, "inputs", f"inputs[{name!r}]")[0]
            if isinstance(references, dict):
                read_references[name] = read(name, references[name], option, f"{option}[{name!r}]")[0]
        except ValueError as error:
            raise ValueError(f"input {name!r}: {error}") from error
    if isinstance(references, dict) and option == "references":  # a pool's rows are checked when drawn from
        _check_reference_counts(inputs, read_references)
    return inputs, read_references if isinstance(references, dict) else references, None


def _check_reference_counts(inputs: Dict[str, Any], references: Dict[str, Any]) -> None:
    """Every input's references hold the same R: ``(R, *S)`` shared or ``(N, R, *S)`` per input.

    Raises:
        ValueError: If the inputs' reference counts differ.
    """
    counts = {}
    for name, values in references.items():
        rank = len(getattr(values, "shape", ())) - len(inputs[name].shape)
        if rank in (0, 1):
            counts[name] = int(values.shape[rank])
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise ValueError(f"`references` must hold the same number R of references for every input, (R, *S) or "
                         f"(N, R, *S). Received: {shown}")


def padding_id(value: Any) -> Optional[int]:
    """``--padding-id`` as the explainer takes it (``none`` -> ``None``; unset -> the default)."""
    if value is None:
        return defaults.PADDING_ID
    return None if value == NO_PADDING else int(value)


def by_name(explanation: Any, plan: InputPlan) -> Any:
    """``explanation`` with the attributions and counterfactuals of several inputs keyed by input name.

    A model whose inputs are a list gives lists; the command line writes and reports them by name.
    """
    if not plan.several:
        return explanation
    names = list(plan.shapes)

    def keyed(value: Any) -> Any:
        return dict(zip(names, value)) if isinstance(value, (list, tuple)) else value

    return dataclasses.replace(explanation, attributions=keyed(explanation.attributions),
                               counterfactuals=keyed(explanation.counterfactuals))
