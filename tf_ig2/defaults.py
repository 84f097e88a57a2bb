"""Every default setting of the package, in one place.

The explainers, the callback and the command line all read their defaults from here, so that a
change of, say, the number of IG² steps happens in one line.
"""

from __future__ import annotations

#: Number of GradPath steps k for IG² (the authors' ImageNet setting).
IG2_STEPS: int = 201

#: ``step_size="auto"`` makes each step ``AUTO_STEP_FACTOR * ||x - x_r||_2 / steps`` long, i.e. the
#: path is about ``AUTO_STEP_FACTOR`` times as long as the straight line to the reference.
AUTO_STEP_FACTOR: float = 2.0

#: The token that selects the automatic step size.
AUTO: str = "auto"

#: Number of interpolation points for straight-line Integrated Gradients.
IG_STEPS: int = 64

#: Quadrature rule for straight-line Integrated Gradients.
IG_RULE: str = "trapezoid"

#: Guided IG settings (Kapishnikov et al., CVPR 2021), as published.
GUIDED_IG_STEPS: int = 200
GUIDED_IG_FRACTION: float = 0.25
GUIDED_IG_MAX_DIST: float = 0.02

#: Representation layer selector meaning "the model output itself".
OUTPUT_REPRESENTATION: str = "output"

#: Percentile at which magnitude maps are clipped before scaling to [0, 1].
HEATMAP_PERCENTILE: float = 99.0

#: Number of explained inputs the callbacks log per epoch, at most.
CALLBACK_MAX_OUTPUTS: int = 8

#: Folder the callbacks write to, as in tf-explain's callbacks.
CALLBACK_OUTPUT_DIR: str = "logs/ig2"
