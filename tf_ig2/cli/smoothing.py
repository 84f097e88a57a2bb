"""``tf-ig2 explain --smooth KIND``: the attributions smoothed by a noise tunnel (:func:`tf_ig2.smooth`).

- ``--smooth smoothgrad|smoothgrad_sq|vargrad``: each input is explained ``--smooth-samples`` times with
  Gaussian noise of standard deviation ``--smooth-noise`` times its range ``max(x) - min(x)`` (the
  seed of the draws ``--smooth-seed``), for the class of the clean input, and the attributions are
  averaged (``smoothgrad``), their squares averaged (``smoothgrad_sq``) or their variance taken
  (``vargrad``); defaults :data:`tf_ig2.defaults.SMOOTH_SAMPLES`, :data:`~tf_ig2.defaults.SMOOTH_NOISE`,
  :data:`~tf_ig2.defaults.SMOOTH_SEED`. attributions.npy then holds exactly what
  ``tf_ig2.smooth(explainer, ...).explain(inputs, references, targets)`` returns; summary.json's settings
  record ``"smooth": {"kind", "samples", "noise", "seed"}``; for ``smoothgrad_sq`` and ``vargrad`` the
  completeness deltas are ``null`` (squares and variances add up to no score gap).
- The companion flags only apply with ``--smooth``; ``--smooth`` is refused with ``--stream`` (a
  streamed run explains a batch at a time and continues stopped runs, while the draws are one
  sequence over all inputs) and for token ids (``--input-layer``: noise cannot move them).

The cost is ``--smooth-samples`` times that of the method; ``--batch-size`` bounds the (noisy copy,
reference) pairs explained at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, Callable, Dict, Optional

from tf_ig2 import defaults
from tf_ig2.cli.inputs import UsageError
from tf_ig2.methods.noise_tunnel import KINDS, SmoothSettings

#: The flags that only apply with ``--smooth``, by their ``args`` attribute, and the setting each gives.
COMPANIONS = {"smooth_samples": ("--smooth-samples", "samples"), "smooth_noise": ("--smooth-noise", "noise"),
              "smooth_seed": ("--smooth-seed", "seed")}


def _noise(text: str) -> float:
    """``--smooth-noise``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (a fraction of each input's range, e.g. 0.15). "
                                         f"Received: {text!r}")
    return value


def add_arguments(explain: argparse.ArgumentParser, *, count: Callable[[str], int],
                  seed: Callable[[str], int]) -> None:
    """Adds ``--smooth`` and its companions ``--smooth-samples``, ``--smooth-noise`` and ``--smooth-seed``.

    Args:
        explain: The parser of ``tf-ig2 explain``.
        count, seed: The argparse types of ``--smooth-samples`` (>= 1) and ``--smooth-seed`` (>= 0).
    """
    explain.add_argument("--smooth", choices=KINDS,
                         help="smooth the attributions with a noise tunnel: explain each input --smooth-samples "
                              "times with Gaussian noise and keep the mean (smoothgrad), the mean of the squares "
                              "(smoothgrad_sq) or the variance (vargrad) of the attributions; costs "
                              "--smooth-samples times as much; not with --stream or --input-layer")
    explain.add_argument("--smooth-samples", type=count, metavar="N",
                         help=f"with --smooth: noisy copies per input (default: {defaults.SMOOTH_SAMPLES})")
    explain.add_argument("--smooth-noise", type=_noise, metavar="S",
                         help=f"with --smooth: the noise's standard deviation as a fraction of each input's range "
                              f"max(x) - min(x) (default: {defaults.SMOOTH_NOISE:g})")
    explain.add_argument("--smooth-seed", type=seed, metavar="SEED",
                         help=f"with --smooth: seed of the noise draws (default: {defaults.SMOOTH_SEED})")


def smooth_argument(args: argparse.Namespace) -> Optional[SmoothSettings]:
    """``--smooth`` and its companions, checked before TensorFlow is imported; ``None`` without ``--smooth``.

    Raises:
        UsageError: If a companion is given without ``--smooth``, or ``--smooth`` with ``--stream`` or
            ``--input-layer``.
    """
    kind = getattr(args, "smooth", None)
    given = {name: getattr(args, name, None) for name in COMPANIONS}
    if kind is None:
        for name, value in given.items():
            if value is not None:
                flag = COMPANIONS[name][0]
                raise UsageError(f"argument {flag}: only applies with --smooth KIND. Received: {flag} {value} "
                                 "without --smooth")
        return None
    if getattr(args, "stream", False):
        raise UsageError(f"argument --smooth: not with --stream (a streamed run explains a batch at a time, while "
                         f"the noise is one sequence of draws over all inputs); explain in memory. Received: "
                         f"--smooth {kind} --stream")
    if getattr(args, "input_layer", None) is not None:
        raise UsageError(f"argument --smooth: adds Gaussian noise to float inputs, and --input-layer reads token ids, "
                         f"which noise cannot move. Received: --smooth {kind} --input-layer {args.input_layer}")
    options = {COMPANIONS[name][1]: value for name, value in given.items() if value is not None}
    return SmoothSettings(kind=kind, **options)


def settings(args: argparse.Namespace) -> Dict[str, Any]:
    """summary.json's settings entry ``smooth`` (all four settings, defaults filled in), when ``--smooth`` is given."""
    checked = smooth_argument(args)
    return {} if checked is None else {"smooth": checked.as_dict()}


def explain_smoothed(model: Any, inputs: Any, references: Any, targets: Any, *, method: str, options: Dict[str, Any],
                     smoothing: SmoothSettings, progress: Any = None) -> Any:
    """The explanation of ``inputs`` through the noise tunnel over ``method``'s explainer of ``model``.

    Args:
        model: The loaded model (a Keras model or a SavedModel function).
        inputs, references, targets: As read for :func:`tf_ig2.saved_model.explain_model`.
        method: The registered method.
        options: Its settings.
        smoothing: The noise tunnel's settings.
        progress: Called as ``progress(N, N)`` once the N inputs are explained.

    Returns:
        An :class:`~tf_ig2.Explanation` whose ``representation`` describes, for IG², the space its
        paths moved in (as :func:`~tf_ig2.saved_model.explain_model`'s does).
    """
    from tf_ig2.methods.noise_tunnel import smooth
    from tf_ig2.saved_model import explain as saved_model

    explainer, description = saved_model.build_explainer(model, options, method)
    explanation = smooth(explainer, **smoothing.as_dict()).explain(inputs, references, targets)
    if progress is not None:
        progress(len(explanation), len(explanation))
    return dataclasses.replace(explanation, representation=description)
