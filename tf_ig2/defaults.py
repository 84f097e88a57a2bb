"""Every default setting of the package, in one place.

The explainers, the callback and the command line all read their defaults from here, so that a
change of, say, the number of IG² steps happens in one line.
"""

from __future__ import annotations

#: Number of GradPath steps k for IG² (the authors' ImageNet setting).
IG2_STEPS: int = 201

#: How IG² integrates the target's gradient along the GradPath (see tf_ig2.methods.ig2.INTEGRATIONS):
#: "left" is the published left Riemann sum.
IG2_INTEGRATION: str = "left"

#: The GradPath's momentum beta (0: the published path; see tf_ig2.methods.ig2.integrate_gradpath).
IG2_MOMENTUM: float = 0.0

#: How the GradPath's step length changes along the path (see tf_ig2.methods.ig2.integrate_gradpath):
#: "shrink" multiplies a pair's step length by ``IG2_SHRINK_FACTOR`` each time its representation
#: distance rises after a step; "constant" is the published path. The paired re-measurement on three
#: trained CNNs (docs/completeness.md) chose "shrink": with the left rule it cut the completeness error
#: on every input of all three (3-11x) and raised DiffID on two, with no significant change on the third.
IG2_STEP_SCHEDULE: str = "shrink"
IG2_SHRINK_FACTOR: float = 0.5

#: ``integration="midpoint"``: gradient evaluations per GradPath segment, at the midpoints of
#: that many equal sub-segments.
IG2_SEGMENT_POINTS: int = 4

#: ``integration="rescaled"``: a segment's attributions are scaled by ``delta f / sum`` unless
#: their sum is smaller than this share of their absolute sum (they cancel); then the missing
#: ``delta f - sum`` is spread over the features in proportion to ``|attribution|``.
IG2_RESCALE_MIN_SHARE: float = 0.1

#: ``explain`` warns (tf_ig2.CompletenessWarning) when the median relative completeness error
#: ``|delta| / |f(x) - f(counterfactual)|`` of a call exceeds this.
COMPLETENESS_WARNING_THRESHOLD: float = 0.1
#: A score gap ``|f(x) - f(counterfactual)|`` is negligible, so that there is no score change to
#: attribute and ``relative_delta`` is NaN, when it is at most the larger of
#: ``NEGLIGIBLE_GAP_RELATIVE * max(|f(x)|, |f(counterfactual)|)`` (the scores agree to about four
#: significant digits: a few hundred float32 round-offs of the score) and ``NEGLIGIBLE_GAP_ABSOLUTE``
#: (scores that are all but zero, e.g. an untrained network's logits of 1e-12).
NEGLIGIBLE_GAP_RELATIVE: float = 1e-4
NEGLIGIBLE_GAP_ABSOLUTE: float = 1e-6

#: ``step_size="auto"`` makes each step ``AUTO_STEP_FACTOR * ||x - x_r||_2 / steps`` long, i.e. the
#: path is about ``AUTO_STEP_FACTOR`` times as long as the straight line to the reference.
AUTO_STEP_FACTOR: float = 2.0

#: The token that selects the automatic step size.
AUTO: str = "auto"

#: tf_ig2.references: the seed of the pickers' draws, and the value of a constant reference (the black
#: or all-zero baseline of Integrated Gradients).
REFERENCES_SEED: int = 0
REFERENCE_CONSTANT: float = 0.0
#: How many references a picker (``other_class``, ``relevant_class``) draws per input when asked by name: the
#: callbacks' ``references="other_class"`` and ``tf-ig2 explain --reference-pool`` (``--references-per-input``).
REFERENCES_PER_INPUT: int = 4
#: How many models tf_ig2.references.relevant_class keeps compiled scoring functions for.
REFERENCES_CACHE_SIZE: int = 4

#: How many (model, method, settings) keep their compiled functions for every explainer of equal
#: settings (tf_ig2.engine.compiled_model.shared_functions): a second IG2(model) traces nothing.
SHARED_COMPILED_SETTINGS: int = 8

#: Number of interpolation points for straight-line Integrated Gradients.
IG_STEPS: int = 64

#: Quadrature rule for straight-line Integrated Gradients.
IG_RULE: str = "trapezoid"

#: Guided IG settings (Kapishnikov et al., CVPR 2021), as published.
GUIDED_IG_STEPS: int = 200
GUIDED_IG_FRACTION: float = 0.25
GUIDED_IG_MAX_DIST: float = 0.02

#: Blur IG settings (Xu et al., CVPR 2020): PAIR saliency's defaults (saliency.core.blur_ig.BlurIG.GetMask):
#: the most blurred image's sigma in pixels, the number of blur levels, the sigma step of the forward
#: difference d(blur)/d(sigma), and whether the levels are spaced as sqrt(k * max_sigma / steps).
BLUR_IG_MAX_SIGMA: float = 50.0
BLUR_IG_STEPS: int = 100
BLUR_IG_GRAD_STEP: float = 0.01
BLUR_IG_SQRT: bool = False
#: Blur IG's Gaussian kernel reaches int(BLUR_IG_TRUNCATE * sigma + 0.5) pixels either side, as
#: scipy.ndimage.gaussian_filter's default, which PAIR saliency's BlurIG calls (not an option).
BLUR_IG_TRUNCATE: float = 4.0
#: Expected Gradients (Erion et al., Nature Machine Intelligence 2021): Monte Carlo draws of a
#: (reference, alpha) pair per input, one gradient each (SHAP GradientExplainer's nsamples default),
#: and the seed of the numpy generator making the draws (tf_ig2.methods.expected_gradients.draws).
EXPECTED_GRADIENTS_SAMPLES: int = 200
EXPECTED_GRADIENTS_SEED: int = 0

#: Representation layer selector meaning "the model output itself".
OUTPUT_REPRESENTATION: str = "output"

#: Percentile at which magnitude maps are clipped before scaling to [0, 1].
HEATMAP_PERCENTILE: float = 99.0

#: Folder the callbacks write their run folders to (``logs/ig2`` for IG²), like Keras' TensorBoard callback.
CALLBACK_OUTPUT_DIR: str = "logs"

#: Faithfulness metrics (tf_ig2.metrics). Deletion and insertion curves are scored at
#: ``METRIC_CURVE_STEPS + 1`` equally spaced fractions of the features, 0 to 1.
METRIC_CURVE_STEPS: int = 32

#: What a removed feature is replaced by, unless told otherwise.
METRIC_FILL: str = "zero"

#: Standard deviation (in pixels) of the Gaussian blur fill, as in RISE (Petsiuk et al., 2018).
METRIC_BLUR_SIGMA: float = 5.0

#: The blur kernel reaches ``ceil(METRIC_BLUR_TRUNCATE * sigma)`` pixels either side.
METRIC_BLUR_TRUNCATE: float = 3.0

#: Stability: noisy copies per input, the noise standard deviation (input units) and the
#: reduction over the copies ("max" as in max-sensitivity, Yeh et al. 2019, or "mean").
METRIC_STABILITY_SAMPLES: int = 8
METRIC_STABILITY_NOISE_SCALE: float = 0.02
METRIC_STABILITY_REDUCTION: str = "max"

#: How many models the metrics keep compiled scoring functions for.
METRIC_CACHE_SIZE: int = 8

#: Colour map of magnitude maps and overlays ("inferno", "viridis" or "jet").
HEATMAP_COLORMAP: str = "inferno"

#: Weight of the coloured map when it is blended over the input image (0: image only, 1: map only).
OVERLAY_ALPHA: float = 0.5

#: The callbacks enlarge small images (nearest neighbour, integer factor) until their shorter side
#: is at least this many pixels, so that 8x8 inputs stay legible in TensorBoard.
CALLBACK_MIN_DISPLAY_SIZE: int = 64

#: The SavedModel signature served unless another one is named.
SAVED_MODEL_SIGNATURE: str = "serving_default"

#: The PNGs the command line writes (overlays, grid) are enlarged (nearest neighbour, integer
#: factor) until their shorter side is at least this many pixels; 1 keeps the input size.
CLI_MIN_DISPLAY_SIZE: int = 64

#: The folder ``tf-ig2 demo`` writes to unless told otherwise.
DEMO_OUTPUT_DIR: str = "tf_ig2_demo"

#: The demo: training epochs on scikit-learn's digits, IG² steps, held-out digits explained
#: (one per class while there are enough classes) and references (digits of other classes) each.
DEMO_EPOCHS: int = 8
DEMO_STEPS: int = 64
DEMO_EXPLAINED: int = 10
DEMO_REFERENCES: int = 4

#: With an embedding ``input_layer``: the token id of padding positions, which get no attribution.
PADDING_ID: int = 0

#: Explaining datasets (tf_ig2.dataset): inputs explained per batch, inputs per result shard (the
#: unit that is written to disk and never redone), and the most seconds between two progress log
#: lines when stderr is not a terminal.
DATASET_BATCH_SIZE: int = 32
DATASET_SHARD_SIZE: int = 1024
DATASET_LOG_INTERVAL: float = 10.0

#: Text summaries of token attributions (the callbacks' ``<name>/text``): values whose magnitude is
#: at least this fraction of the sentence's largest are shown in bold.
CALLBACK_TEXT_EMPHASIS: float = 0.5

#: ``tf-ig2 explain --stream`` lists one record per input in summary.json only up to this many
#: inputs; beyond it the summary holds counts and completeness statistics, and the per-input
#: values stay in the result shards (tf_ig2.dataset.load_results).
CLI_SUMMARY_MAX_INPUTS: int = 1000

#: The callbacks' IG² settings when none are given, chosen so that logging an epoch costs at most
#: about a quarter of a 1,000-image training epoch of a MobileNetV2 at 64x64x3 on one thread
#: (benchmarks/callback_cost.py; see docs/callback.md): GradPath steps, explained inputs and
#: references per input (the first ones of those given).
CALLBACK_STEPS: int = 32
CALLBACK_INPUTS: int = 4
CALLBACK_REFERENCES: int = 2

#: Panels and figures show small inputs enlarged (nearest neighbour, integer factor) until their
#: shorter side is at least this many pixels (an 8x8 digit becomes 96x96).
PANEL_MIN_SIZE: int = 96

#: ``tf_ig2.plot`` draws at most this many inputs, one per row.
PLOT_MAX_ROWS: int = 4

#: ``tf_ig2.plot_path`` shows the GradPath at these fractions of its steps.
PATH_FRACTIONS: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)

#: The command line's report (index.html): a streamed run (``tf-ig2 explain --stream``) draws a panel
#: and a report row for at most this many inputs (the first ones), and ``--path-strip`` draws the
#: GradPath film strips of at most this many inputs, in any run (each is explained again, alone, with
#: its whole path).
CLI_REPORT_MAX_INPUTS: int = 50

#: The noise tunnel (tf_ig2.smooth; Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise"): what the
#: attributions of an input's noisy copies are reduced to ("smoothgrad": their mean; "smoothgrad_sq": the mean of
#: their squares; "vargrad": their variance, Adebayo et al. 2018), how many noisy copies each input gets (the paper
#: sees little change in the maps beyond about 50, Sec. 3.2), the noise's standard deviation as a fraction of each
#: input's range max(x) - min(x) (the paper's noise level of 10-20%; PAIR saliency's stdev_spread default 0.15), and
#: the seed of the draws (numpy.random.default_rng).
SMOOTH_KIND: str = "smoothgrad"
SMOOTH_SAMPLES: int = 50
SMOOTH_NOISE: float = 0.15
SMOOTH_SEED: int = 0
#: The callbacks' noisy copies per input when their ``smooth`` setting does not say: each copy costs one explanation,
#: so that logging stays cheap beside training (like CALLBACK_STEPS).
CALLBACK_SMOOTH_SAMPLES: int = 8
