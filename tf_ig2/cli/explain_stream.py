"""``tf-ig2 explain --stream``: inputs larger than memory, explained a batch at a time into resumable shards.

The inputs are opened lazily (:func:`tf_ig2.cli.stream.open_stream`) and explained by
:func:`tf_ig2.dataset.explain_dataset` into result shards in ``DIR/shards``; the run's settings are
recorded there, so that a stopped run continues where it stopped (and a run with other settings is
refused); :func:`tf_ig2.cli.stream.finish_stream` then writes ``DIR/attributions.npy``,
``DIR/summary.json`` and ``DIR/index.html``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import sys
from typing import Any, Dict, Optional, Tuple, Union

from tf_ig2 import defaults, folders, validation
from tf_ig2.cli import inputs as cli_inputs
from tf_ig2.cli import targets as cli_targets
from tf_ig2.cli.explain import (
    PROGRAM,
    SETTINGS_BEFORE_METHODS,
    SETTINGS_BEFORE_TOKENS,
    Interrupted,
    inputs_argument,
    load_explained_model,
    method_flags,
    read_targets,
    report_options,
    settings_record,
)
from tf_ig2.cli.inputs import UsageError, read_options_for
from tf_ig2.cli.wording import command_line_wording
from tf_ig2.methods import registry as methods

# -- explain --stream ------------------------------------------------------------------------------
#: The settings that decide a streamed run's results besides the method's options: a stopped run
#: is continued only when they agree (tf_ig2.dataset.explain_dataset then also compares the
#: model's weights, the references, the targets and the first shard's inputs).
_RESUME_SETTINGS = ("target", "targets", "top_k", "method", "image_size", "scale", "signature", "output_name")


def _check_stream_references(references: Any, count: int, sample_shape: Tuple[int, ...], explainer: Any,
                             method: str) -> None:
    """Checks references ``(R, *S)``, ``(N, R, *S)`` (read lazily) or a scalar before any work."""

    entry = methods.get_method(method)
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
    for root, subfolders, names in os.walk(folder):
        subfolders.sort()
        for name in sorted(names):
            file_path = os.path.join(root, name)
            digest.update(os.path.relpath(file_path, folder).encode())
            digest.update(folders.file_sha1(file_path).encode())
    return digest.hexdigest()


def _forget_unstarted_run(output: str, created_shards: bool) -> int:
    """Removes the files a streamed run wrote when it finished no shard; returns the inputs kept.

    Only files listed in the results folder's manifest and the run's record go; the folder
    ``DIR/shards`` itself only if it was created by this run and is then empty.
    """
    from tf_ig2.cli import stream as cli_stream
    from tf_ig2.dataset import results

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
    (:func:`tf_ig2.cli.stream.open_token_stream`) and their references read into memory.

    Raises:
        UsageError, ValueError: If the inputs do not fit the model or cannot be read.
    """
    import numpy as np

    from tf_ig2.cli import stream as cli_stream

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


def _can_resume(output: str, record: Dict[str, Any], wanted: Dict[str, Any], shard_size: Optional[int],
                explained: int, count: int) -> bool:
    """Whether the unfinished streamed run recorded in ``output`` continues with the ``wanted`` settings.

    Sets ``wanted["shard_size"]`` to the recorded one unless ``--shard-size`` is given. Raises a
    ``ValueError`` when the run explained inputs with other settings, or more inputs than given.
    """
    from tf_ig2.dataset import results

    stored = {**SETTINGS_BEFORE_TOKENS, **record["settings"]} if "method" in record["settings"] else {
        **SETTINGS_BEFORE_TOKENS, **SETTINGS_BEFORE_METHODS, **record["settings"]}
    # options added since, as the runs that did not record them had them (option(older_records=...))
    stored = results.with_older_records({"method": stored["method"], "options": stored})["options"]
    wanted["shard_size"] = shard_size or stored.get("shard_size")
    differences = results.settings_differences(stored, wanted)
    if differences and explained:
        raise ValueError(
            f"Output folder {output!r} holds an unfinished streamed run of other settings "
            f"({results.describe_differences(differences)}); run the command with its settings to continue "
            "it, pass --overwrite to start over, or choose another folder."
        )
    if not differences and explained > count:
        raise ValueError(
            f"Output folder {output!r} holds an unfinished streamed run that explained {explained} inputs, "
            f"more than the {count} inputs given; pass --overwrite to start over, or choose another folder."
        )
    return not differences


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

    from tf_ig2 import dataset
    from tf_ig2.cli import report as cli_report
    from tf_ig2.cli import stream as cli_stream
    from tf_ig2.saved_model import explain as saved_model

    output = args.output
    try:
        record = cli_stream.check_stream_output(output, args.overwrite)
        model = load_explained_model(args)
        inputs, references, image_size = _open_stream_inputs(args, model, reference)
        explainer, representation = saved_model.build_explainer(model, options, args.method)
        _check_stream_references(references, inputs.count, inputs.sample_shape, explainer, args.method)
        targets = read_targets(args, inputs.count)
        report = report_options(args, explainer, references, inputs.sample_shape, cli_targets.read_class_names(args))
        settings = settings_record(args, image_size, options, reference)
        wanted: Dict[str, Any] = {key: value for key, value in settings.items()
                                  if key in _RESUME_SETTINGS or (key in method_flags() and key != "batch_size")}
        if settings["model_format"] == "saved_model":
            wanted["model_sha1"] = _files_sha1(args.model)
        resuming = record is not None and not args.overwrite
        explained = cli_stream.stream_explained(output) if resuming else 0
        if resuming:
            resuming = _can_resume(output, record, wanted, args.shard_size, explained, inputs.count)
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
            explainer, inputs.values, references, shards, targets=targets,
            batch_size=_read_batch(args.batch_size, per_input), shard_size=wanted["shard_size"],
            progress=not args.quiet, overwrite=not resuming)
        written = cli_stream.finish_stream(output, settings=settings, names=inputs.names,
                                           representation=representation, method=explainer.method,
                                           resumed=result.resumed, inputs=inputs, report=report,
                                           target_count=cli_targets.target_count(targets))
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
            "target_count": cli_targets.target_count(targets),
            "shards": result.shards, "shards_folder": shards, "method": args.method,
            "representation": representation, "stream": True,
            "report": os.path.join(output, cli_report.REPORT_FILE)}
