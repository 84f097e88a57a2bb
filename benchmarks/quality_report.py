"""How ``benchmarks/quality.py`` shows its results: Markdown tables, and pictures drawn with PIL only.

The tables give mean ± std over seeds (digits and tabular studies), DiffID ranks with each method's
time per input and completeness error, IG²'s paired differences and the ablations. ``line_chart``
draws panels of curves over [0, 1] side by side with a shared legend (the deletion and insertion
curves); ``gallery`` puts each input beside every method's signed attribution map. Labels use DejaVu
Sans where it is installed (it has ², ×, ρ and σ), else PIL's own font with ASCII labels.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Sequence, Tuple

import numpy as np

#: Fill labels of the tables: the four metric fills, and "GradCF" (the reference fill set to the mean of
#: IG²'s own counterfactuals), which shows how much a fill favours the method whose baseline it is.
FILLS = ("zero", "mean", "blur", "reference")
DIGIT_FILLS = FILLS + ("GradCF",)


# -- tables ----------------------------------------------------------------------------------------

def digits_tables(result: Dict[str, Any]) -> str:
    """One table per fill: deletion, insertion and DiffID, mean ± std over seeds."""
    per_seed = result["per_seed"]
    methods = list(per_seed[0]["scores"])
    blocks = []
    for fill in DIGIT_FILLS:
        lines = [f"**{fill} fill**", "", "| method | Deletion ↓ | Insertion ↑ | DiffID ↑ |", "|---|---|---|---|"]
        for method in methods:
            cells = []
            for key in ("deletion", "insertion", "diffid"):
                values = np.array([seed["scores"][method][fill][key] for seed in per_seed])
                cells.append(f"{values.mean():.2f} ± {values.std():.2f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def diffid_table(result: Dict[str, Any]) -> str:
    """DiffID per fill with each method's rank, and the first seed's seconds per input and completeness error."""
    per_seed = result["per_seed"]
    methods = list(per_seed[0]["scores"])
    means = {method: {fill: np.mean([s["scores"][method][fill]["diffid"] for s in per_seed]) for fill in DIGIT_FILLS}
             for method in methods}
    stds = {method: {fill: np.std([s["scores"][method][fill]["diffid"] for s in per_seed]) for fill in DIGIT_FILLS}
            for method in methods}
    ranks = {fill: {method: 1 + sorted(methods, key=lambda m: -means[m][fill]).index(method) for method in methods}
             for fill in DIGIT_FILLS}
    lines = ["| method | " + " | ".join(f"{fill} fill" for fill in DIGIT_FILLS) + " | time per input, seed 0 (s) | "
             "median relative completeness error, seed 0 |",
             "|" + "---|" * (3 + len(DIGIT_FILLS))]
    for method in methods:
        cells = [f"{means[method][fill]:.2f} ± {stds[method][fill]:.2f} (#{ranks[fill][method]})"
                 for fill in DIGIT_FILLS]
        diagnostics = per_seed[0]["diagnostics"][method]
        delta = diagnostics["relative_delta"]
        cells.append(f"{diagnostics['seconds_per_input']:.3g}")
        cells.append("n/a" if math.isnan(delta) else f"{delta:.3f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(result: Dict[str, Any], reference_method: str) -> str:
    """DiffID of ``reference_method`` minus each other method's, per seed (paired), mean ± std."""
    per_seed = result["per_seed"]
    methods = [method for method in per_seed[0]["scores"] if method != reference_method]
    lines = ["| IG² minus … | " + " | ".join(f"{fill} fill" for fill in DIGIT_FILLS) + " |",
             "|" + "---|" * (1 + len(DIGIT_FILLS))]
    for method in methods:
        cells = []
        for fill in DIGIT_FILLS:
            differences = np.array([seed["scores"][reference_method][fill]["diffid"]
                                    - seed["scores"][method][fill]["diffid"] for seed in per_seed])
            wins = int(np.sum(differences > 0))
            cells.append(f"{differences.mean():+.2f} ± {differences.std():.2f} ({wins}/{len(differences)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tabular_table(results: Dict[float, Any]) -> str:
    """Per correlation: r(ref), r(zero) and DiffID, mean ± std over seeds, and the MLPs' R²."""
    rhos = list(results)
    methods = list(results[rhos[0]][0]["scores"])
    lines = ["| method | " + " | ".join(f"ρ={rho}: r(ref) ↑ | ρ={rho}: r(zero) ↑ | ρ={rho}: DiffID ↑" for rho in rhos)
             + " |", "|" + "---|" * (1 + 3 * len(rhos))]
    for method in methods:
        cells = []
        for rho in rhos:
            for key in ("pearson_reference", "pearson_zero", "diffid"):
                values = np.array([seed["scores"][method][key] for seed in results[rho]])
                cells.append(f"{values.mean():.2f} ± {values.std():.2f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    r2 = ", ".join(f"ρ={rho}: " + "/".join(f"{seed['r2']:.3f}" for seed in results[rho]) for rho in rhos)
    lines.append("")
    lines.append(f"MLP test R² against the noise-free target, per seed: {r2}.")
    return "\n".join(lines)


def ablation_table(rows) -> str:
    """One row per IG² setting: DiffID per fill, completeness error and wall time (tracing included)."""
    lines = ["| ablation | setting | " + " | ".join(f"DiffID, {fill}" for fill in DIGIT_FILLS)
             + " | median relative completeness error | time (s) |",
             "|" + "---|" * (4 + len(DIGIT_FILLS))]
    for group, label, scores, delta, seconds in rows:
        cells = [f"{scores[fill]['diffid']:.2f}" for fill in DIGIT_FILLS]
        lines.append(f"| {group} | {label} | " + " | ".join(cells) + f" | {delta:.3f} | {seconds:.1f} |")
    return "\n".join(lines)


# -- pictures --------------------------------------------------------------------------------------

#: ASCII spellings of the labels' other characters, for PIL's own font.
ASCII = {"²": "2", "×": "x", "ρ": "rho", "σ": "sigma"}


def _font(size: int):
    """DejaVu Sans where installed (it has ², × and σ), else PIL's own font with ASCII labels."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), False
    except OSError:
        return ImageFont.load_default(size=size), True


def _text(draw, position, text: str, font_and_ascii, fill="black") -> None:
    font, ascii_only = font_and_ascii
    if ascii_only:
        for character, spelling in ASCII.items():
            text = text.replace(character, spelling)
    draw.text(position, text, font=font, fill=fill)


#: One colour per curve: matplotlib's ten, then darker and lighter ones for longer lists of methods.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0), (0, 0, 128),
           (128, 128, 0), (255, 152, 150), (174, 199, 232), (128, 0, 0)]


def line_chart(panels: Sequence[Tuple[str, Dict[str, np.ndarray]]], path: str, y_label: str) -> None:
    """Side-by-side line charts of curves over [0, 1], with a shared legend, drawn with PIL."""
    from PIL import Image, ImageDraw

    if len(panels[0][1]) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} curves per panel; received {len(panels[0][1])}")
    width, height, margin_left, margin_bottom, margin_top = 460, 340, 60, 40, 30
    legend_height = 18 * math.ceil(len(panels[0][1]) / 2) + 10
    image = Image.new("RGB", (width * len(panels), height + legend_height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(11)
    for index, (title, curves) in enumerate(panels):
        left = index * width + margin_left
        right = (index + 1) * width - 15
        top, bottom = margin_top, height - margin_bottom
        values = np.concatenate(list(curves.values()))
        low, high = float(values.min()), float(values.max())
        span = high - low or 1.0
        low, high = low - 0.05 * span, high + 0.05 * span
        draw.rectangle([left, top, right, bottom], outline="black")
        _text(draw, (left, 2), title, font)
        for tick in range(5):
            fraction = tick / 4
            y = bottom - fraction * (bottom - top)
            draw.line([left - 4, y, left, y], fill="black")
            _text(draw, (left - 40, y - 7), f"{low + fraction * (high - low):.1f}", font)
            x = left + fraction * (right - left)
            draw.line([x, bottom, x, bottom + 4], fill="black")
            _text(draw, (x - 10, bottom + 6), f"{fraction:.2f}", font)
        _text(draw, (left + (right - left) // 2 - 60, bottom + 22), "fraction of pixels moved", font)
        _text(draw, (index * width + 4, top - 16), y_label, font)
        for color, curve in zip(PALETTE, curves.values()):
            xs = left + np.linspace(0.0, 1.0, len(curve)) * (right - left)
            ys = bottom - (curve - low) / (high - low) * (bottom - top)
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=color, width=2)
    for position, (color, name) in enumerate(zip(PALETTE, panels[0][1])):
        x = 20 + (position % 2) * (width * len(panels) // 2)
        y = height + 5 + 18 * (position // 2)
        draw.line([x, y + 7, x + 25, y + 7], fill=color, width=3)
        _text(draw, (x + 32, y), name, font)
    image.save(path)


def gallery(inputs: np.ndarray, attributions: Dict[str, np.ndarray], targets: np.ndarray, path: str, rows: int,
            scale: int = 12) -> None:
    """One row per input: the digit, then each method's signed map (red +, blue -)."""
    from PIL import Image, ImageDraw

    from tf_ig2 import visualize

    cell = 8 * scale
    label_height, gap = 40, 6
    names = list(attributions)
    image = Image.new("RGB", (gap + (cell + gap) * (len(names) + 1), label_height + (cell + gap) * rows), "white")
    draw = ImageDraw.Draw(image)
    font = _font(10)
    columns = [("input", np.asarray(visualize.rescale_images(inputs[:rows])))]
    columns += [(name, np.asarray(visualize.diverging_map(attributions[name][:rows]))) for name in names]
    for column, (name, maps) in enumerate(columns):
        x = gap + column * (cell + gap)
        words, line, text_lines = name.split(), "", []
        for word in words:
            if len(line) + len(word) > 13 and line:
                text_lines.append(line)
                line = word
            else:
                line = (line + " " + word).strip()
        text_lines.append(line)
        for number, text in enumerate(text_lines[:3]):
            _text(draw, (x, 1 + 10 * number), text, font)
        for row in range(rows):
            tile = (np.clip(maps[row], 0.0, 1.0) * 255).astype(np.uint8)
            tile = Image.fromarray(tile).resize((cell, cell), Image.NEAREST)
            image.paste(tile, (x, label_height + row * (cell + gap)))
    for row in range(rows):
        _text(draw, (2, label_height + row * (cell + gap) + 2), str(int(targets[row])), font, fill=(0, 200, 0))
    image.save(path)


def write_images(digits: Dict[str, Any], image_dir: str) -> None:
    """The first seed's deletion and insertion curves (zero and reference fills) and its gallery."""
    os.makedirs(image_dir, exist_ok=True)
    seed0_scores = digits["per_seed"][0]["scores"]
    for fill in ("zero", "reference"):
        line_chart([(f"Deletion curve, {fill} fill (lower is better)",
                     {name: scores[fill]["curves"][0] for name, scores in seed0_scores.items()}),
                    (f"Insertion curve, {fill} fill (higher is better)",
                     {name: scores[fill]["curves"][1] for name, scores in seed0_scores.items()})],
                   os.path.join(image_dir, f"quality_curves_{fill}.png"), "mean target logit")
    seed0 = digits["seed0"]
    gallery(seed0["inputs"], seed0["attributions"], seed0["targets"], os.path.join(image_dir, "quality_gallery.png"),
            rows=6)
