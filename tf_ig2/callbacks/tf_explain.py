"""IG² with the interface of tf-explain's core explainers (``explain`` then ``save``).

``TfExplainIG2().explain(validation_data, model, class_index, references)`` computes IG²
attributions (Zhuo & Ge, TPAMI 2024, Eqs. 7-10) and returns, like tf-explain's
``IntegratedGradients``, one uint8 grid image of all inputs: here each cell is the input blended
with its coloured magnitude map. ``save(grid, output_dir, output_name)`` writes it as a PNG.
"""

from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from tf_ig2 import defaults, visualize
from tf_ig2.callbacks.inputs import choose_targets, split_validation_data
from tf_ig2.methods.ig2 import ig2

#: Keyword arguments of :meth:`TfExplainIG2.explain` that set the picture rather than IG².
DISPLAY_OPTIONS = ("alpha", "percentile", "colormap", "columns")


class TfExplainIG2:
    """IG² explainer in tf-explain's style: built without a model, the model comes with the data.

    Compiled IG² functions are cached per model and settings (through :func:`tf_ig2.ig2`), so
    explaining again with the same model and image size does not retrace.

    Example:
        >>> explainer = TfExplainIG2()
        >>> grid = explainer.explain((images, labels), model, class_index=None, references=refs)
        >>> explainer.save(grid, "outputs", "ig2.png")
    """

    def explain(self, validation_data: Any, model: Any, class_index: Any = None, references: Any = None,
                **options: Any) -> np.ndarray:
        """Explains the images of ``validation_data`` and tiles their overlays into one image.

        Args:
            validation_data: Images ``x`` or ``(x, y)``: ``x`` ``(N, H, W)``, ``(N, H, W, 1)`` or
                ``(N, H, W, 3)`` floats, ``y`` ``(N,)`` int labels or ``(N, C)`` one-hot rows.
            model: The Keras model to explain.
            class_index: One int or ``N`` ints, one class per image (tf-explain's interface; for
                several classes per image call ``explain`` once per class, or use
                ``tf_ig2.IG2(model).explain(..., targets=(N, T))``); ``None`` for the labels ``y`` if
                given, else the predicted class.
            references: ``(R, H, W[, C])`` references shared by all images, or
                ``(N, R, H, W[, C])`` per image (required).
            **options: IG² settings (``steps``, ``step_size``, ``value_range``,
                ``representation_layer``, ``batch_size``) and display settings (``alpha``,
                ``percentile``, ``colormap``, ``columns``).

        Returns:
            ``(rows * H, columns * W, 3)`` uint8 RGB grid, ``columns = ceil(sqrt(N))`` unless given.

        Raises:
            TypeError, ValueError: On malformed data, references or options, or several classes per
                image in ``class_index`` (an ``(N, T)`` array, ``[[...]]`` or ``"top-K"``).
        """
        if references is None:
            raise ValueError("`references` is required by IG² (e.g. a few images of other classes). "
                             "Received: references=None")
        display = {key: options.pop(key) for key in DISPLAY_OPTIONS if key in options}
        columns = display.pop("columns", None)
        images, labels = split_validation_data(validation_data)
        targets = choose_targets(class_index, labels, len(images))
        explanation = ig2(model, images, references, targets, **options)
        overlays = visualize.overlay(images, explanation.attributions,
                                     alpha=display.get("alpha", defaults.OVERLAY_ALPHA),
                                     percentile=display.get("percentile", defaults.HEATMAP_PERCENTILE),
                                     colormap=display.get("colormap", defaults.HEATMAP_COLORMAP))
        tiles = visualize.grid(overlays, columns).numpy()
        return np.clip(np.round(tiles * 255.0), 0, 255).astype(np.uint8)

    def save(self, grid: np.ndarray, output_dir: Union[str, "os.PathLike[str]"], output_name: str) -> None:
        """Writes ``grid`` (``(H, W, 3)`` uint8 RGB) to ``output_dir/output_name`` (a PNG name).

        The folder is created if needed; an existing file of that name is replaced, as with
        tf-explain's savers (which do not report a failed write; this one raises).

        Raises:
            TypeError, ValueError: On a malformed grid or name.
            OSError: If the image could not be written.
        """
        import cv2  # only needed here

        grid = np.asarray(grid)
        if grid.dtype != np.uint8 or grid.ndim != 3 or grid.shape[-1] != 3:
            raise ValueError(f"`grid` must be an (H, W, 3) uint8 image as returned by explain(). "
                             f"Received: shape {grid.shape} and dtype {grid.dtype}")
        if not isinstance(output_name, str) or not output_name:
            raise TypeError(f"`output_name` must be a file name. Received: output_name={output_name!r}")
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(os.fspath(output_dir), output_name)
        try:
            written = cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        except cv2.error as error:
            raise OSError(f"Could not write the image to {path!r}: {error}") from error
        if not written:
            raise OSError(f"Could not write the image to {path!r} (is the name's extension an image format?)")
