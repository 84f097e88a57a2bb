"""Pictures of attributions: pure functions from arrays to arrays (or matplotlib figures).

The package is split by job, and every public function is available from here
(``from tf_ig2 import visualize; visualize.overlay(...)``):

- :mod:`~tf_ig2.visualize.maps`: magnitude and signed (diverging) maps, colour maps, overlays,
  enlargement (``magnitude_map``, ``diverging_map``, ``colorize``, ``rescale_images``, ``overlay``,
  ``upscale``, ``display_factor``, ``display_channels``);
- :mod:`~tf_ig2.visualize.panel_layout`: one labelled uint8 picture per explained image, input | GradCF |
  signed map with colour bar | magnitude on grey (``panel``, ``panels``, ``explanation_panels``);
- :mod:`~tf_ig2.visualize.tokens`: token heat strips, HTML spans and Markdown tables;
- :mod:`~tf_ig2.visualize.bars`: bar charts of tabular attributions;
- :mod:`~tf_ig2.visualize.tiles`: the one tiler (``tile``, ``grid``) and the callbacks' overlays;
- :mod:`~tf_ig2.visualize.png`: the one PNG encoder (``encode_png``, ``encode_images``);
- :mod:`~tf_ig2.visualize.markup`: HTML- and Markdown-safe text, inline images, the notebook summary;
- :mod:`~tf_ig2.visualize.strip`: the GradPath film strip as one uint8 picture (``path_strip``);
- :mod:`~tf_ig2.visualize.report`: the HTML report of a run, pictures linked by relative paths
  (``report_html``, ``picture_source``);
- :mod:`~tf_ig2.visualize.plots`: matplotlib figures (``plot``, ``plot_path``), only with the
  optional extra ``pip install "tf-ig2[plot]"``; matplotlib is imported when they are called.

Nothing here writes files or prints.
"""

from tf_ig2._lazy import lazy_names

#: Public name -> the submodule defining it (imported on first use, so that importing the package,
#: or the HTML helpers that ``Explanation._repr_html_`` uses, does not import TensorFlow).
_PUBLIC = {
    "feature_bars": "bars",
    **{name: "maps" for name in ("COLORMAP_NAMES", "check_colormap", "check_percentile", "colormap_table",
                                 "colorize", "display_factor", "diverging_map", "magnitude_map", "overlay",
                                 "rescale_images", "upscale", "display_channels")},
    **{name: "markup" for name in ("caption", "explanation_html", "html_image", "html_table", "html_text",
                                   "markdown_text")},
    **{name: "panel_layout" for name in ("explanation_panels", "panel", "panels")},
    **{name: "plots" for name in ("path_frames", "plot", "plot_path")},
    **{name: "png" for name in ("encode_images", "encode_png")},
    **{name: "report" for name in ("picture_source", "report_html")},
    "path_strip": "strip",
    **{name: "tiles" for name in ("display_images", "grid", "tile", "to_uint8")},
    **{name: "tokens" for name in ("check_vocabulary", "token_html", "token_markdown", "token_strip", "token_texts")},
}

_SUBMODULES = ("bars", "maps", "markup", "panel_layout", "plots", "png", "report", "strip", "tiles", "tokens")

__all__ = sorted(name for name in _PUBLIC if not name.startswith("_"))


__getattr__, __dir__ = lazy_names(__name__, _PUBLIC, _SUBMODULES)
