"""Explain a Kim-style text CNN on generated questions with IG², token by token.

The model follows the TREC question classifier of the IG² paper (Zhuo & Ge, TPAMI 2024, Sec. 6):
an embedding, parallel 1-D convolutions over windows of 2, 3 and 4 tokens, global max pooling,
a dense feature layer and a softmax over four question types (location, number, person,
description). The questions are generated here from templates, so nothing is downloaded. IG²'s
path moves in the embedding space (``input_layer="embedding"``), clipped to the per-dimension range
of the embedding table; a token's attribution is the sum over its embedding dimensions, and padding
gets exactly zero. The references of each question are questions of the other classes. Run::

    PYTHONPATH=. python examples/text_classification.py [--output FOLDER] [--overwrite] [--logdir LOGS]

It prints every explained question's tokens with their attributions and the completeness error,
and writes ``text_token_strips.png`` (one heat strip per question: red pushes towards the
explained class, blue away from it) and ``text_tokens.html`` to the output folder. Two questions
per class are explained for their true class; the "what ..." questions of other classes are then
explained for the description class too, as contrasts. With ``--logdir``, an IG² callback also
logs token strips and a text table of four more questions to TensorBoard every other epoch.
Global max pooling is not smooth, so the completeness error can stay larger than on smooth models.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from typing import Dict, List, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_ig2  # noqa: E402
from tf_ig2 import visualize  # noqa: E402

CLASSES = ["location", "number", "person", "description"]
LENGTH = 12  # every question is padded (id 0) to this many tokens
OUTPUT_FILES = ("text_token_strips.png", "text_tokens.html")

FILLERS: Dict[str, List[str]] = {
    "place": ["paris", "tokyo", "the eiffel tower", "mount everest", "the amazon river", "the sahara desert",
              "lake victoria", "the great barrier reef", "machu picchu", "the dead sea", "big ben", "the nile"],
    "thing": ["a good bakery", "the oldest library", "fresh water", "wild tigers", "the best coffee",
              "ancient ruins", "a quiet beach", "penguins"],
    "animal": ["a spider", "an octopus", "a cat", "an ant", "a starfish", "a horse"],
    "unit": ["days", "hours", "minutes", "weeks", "seconds"],
    "period": ["a year", "a week", "a day", "a month", "a century"],
    "thing_with_size": ["the moon", "the earth", "a blue whale", "an elephant", "the sun", "a football field"],
    "work": ["hamlet", "the odyssey", "don quixote", "war and peace", "the origin of species", "frankenstein"],
    "invention": ["the telephone", "the light bulb", "the printing press", "the radio", "penicillin",
                  "the steam engine"],
    "painting": ["the mona lisa", "the starry night", "the last supper", "guernica", "the scream"],
    "concept": ["photosynthesis", "gravity", "democracy", "inflation", "a black hole", "an atom", "a vaccine",
                "a volcano", "evolution", "a rainbow"],
    "acronym": ["nasa", "dna", "laser", "radar", "unesco"],
    "mechanism": ["a compass", "a rainbow", "a vaccine", "a refrigerator", "the internet", "a volcano"],
}

TEMPLATES: Dict[str, List[str]] = {
    "location": ["where is {place}", "where can i find {thing}", "what country is {place} in",
                 "in which country is {place}", "where do {animal}s live", "what continent is {place} on",
                 "where was {invention} invented"],
    "number": ["how many legs does {animal} have", "how many {unit} are in {period}", "how far is {place}",
               "how big is {thing_with_size}", "how much does {thing_with_size} weigh",
               "what year was {invention} invented", "how old is {place}"],
    "person": ["who wrote {work}", "who invented {invention}", "who painted {painting}",
               "what is the name of the man who invented {invention}", "who was the author of {work}",
               "which artist painted {painting}", "who discovered {concept}"],
    "description": ["what is {concept}", "what does {acronym} stand for", "how does {mechanism} work",
                    "define {concept}", "why is {concept} important", "what is the meaning of {concept}",
                    "describe {mechanism}"],
}


def generate_questions(count: int, seed: int) -> Tuple[List[List[str]], np.ndarray]:
    """``count`` tokenised questions from the templates, classes in turn, and their labels."""
    rng = np.random.default_rng(seed)
    questions, labels = [], []
    for index in range(count):
        label = index % len(CLASSES)
        template = str(rng.choice(TEMPLATES[CLASSES[label]]))
        filled = template.format(**{slot: str(rng.choice(words)) for slot, words in FILLERS.items()})
        questions.append(filled.split())
        labels.append(label)
    return questions, np.array(labels, np.int64)


def build_vocabulary(questions: List[List[str]]) -> List[str]:
    """Id 0 is padding and id 1 an unknown word; then every word seen, most frequent first."""
    counts: Dict[str, int] = {}
    for question in questions:
        for word in question:
            counts[word] = counts.get(word, 0) + 1
    return ["<pad>", "<unk>"] + sorted(counts, key=lambda word: (-counts[word], word))


def encode(questions: List[List[str]], vocabulary: List[str]) -> np.ndarray:
    index = {word: position for position, word in enumerate(vocabulary)}
    ids = np.zeros((len(questions), LENGTH), np.int32)
    for row, question in enumerate(questions):
        words = question[:LENGTH]
        ids[row, :len(words)] = [index.get(word, 1) for word in words]
    return ids


def build_model(vocabulary_size: int) -> keras.Model:
    """Kim (2014)-style CNN: embedding, windows 2/3/4, global max pooling, dense features, softmax."""
    ids = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(vocabulary_size, 32, name="embedding")(ids)
    pooled = [keras.layers.GlobalMaxPooling1D(name=f"max_pool_{window}")(
        keras.layers.Conv1D(24, window, activation="relu", name=f"conv_{window}")(embedded)) for window in (2, 3, 4)]
    features = keras.layers.Dense(32, activation="relu", name="features")(keras.layers.Concatenate()(pooled))
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(features)
    model = keras.Model(ids, outputs, name="question_cnn")
    model.compile(keras.optimizers.Adam(0.005), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def strips_picture(rows: List[Tuple[str, List[str], np.ndarray]]) -> np.ndarray:
    """One uint8 RGB picture: per question a label, then its token heat strip."""
    import cv2

    label_width, gap = 250, 6
    strips = [np.round(visualize.token_strip(tokens, values).numpy() * 255).astype(np.uint8)
              for _, tokens, values in rows]
    height = strips[0].shape[0]
    width = label_width + max(strip.shape[1] for strip in strips)
    sheet = np.full((len(strips) * (height + gap) - gap, width, 3), 255, np.uint8)
    for row, ((label, _, _), strip) in enumerate(zip(rows, strips)):
        top = row * (height + gap)
        cv2.putText(sheet, label, (4, top + height // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        sheet[top:top + height, label_width:label_width + strip.shape[1]] = strip
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="text_classification_ig2",
                        help="folder for the PNG and HTML (default: %(default)s in the current directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier run")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=201, help="IG² steps (the paper's setting)")
    parser.add_argument("--references", type=int, default=8, help="references (other classes) per question")
    parser.add_argument("--logdir", default=None,
                        help="also log IG² token strips and text to TensorBoard while training, in this folder")
    arguments = parser.parse_args()
    output_paths = [os.path.join(arguments.output, name) for name in OUTPUT_FILES]
    existing = [path for path in output_paths if os.path.exists(path)]
    if existing and not arguments.overwrite:
        print(f"Not overwriting {', '.join(existing)}; pass --overwrite or another --output.", file=sys.stderr)
        return 1

    keras.utils.set_random_seed(0)
    train_questions, train_labels = generate_questions(2400, seed=0)
    test_questions, test_labels = generate_questions(400, seed=1)
    vocabulary = build_vocabulary(train_questions)
    train_ids, test_ids = encode(train_questions, vocabulary), encode(test_questions, vocabulary)
    rng = np.random.default_rng(0)
    model = build_model(len(vocabulary))
    callbacks = []
    if arguments.logdir:
        shown = np.concatenate([np.flatnonzero(test_labels == label)[2:3] for label in range(len(CLASSES))])
        shown_references = tf_ig2.references.other_class(train_ids, train_labels, test_labels[shown], 4, seed=1)
        callbacks = [tf_ig2.callbacks.IG2Callback(
            (test_ids[shown], test_labels[shown]), shown_references, output_dir=arguments.logdir,
            input_layer="embedding", vocabulary=vocabulary, steps=64, freq=2),
            keras.callbacks.TensorBoard(arguments.logdir)]
    model.fit(train_ids, train_labels, epochs=arguments.epochs, batch_size=64, verbose=0, callbacks=callbacks)
    accuracy = model.evaluate(test_ids, test_labels, verbose=0)[1]
    print(f"{len(vocabulary)} tokens, {len(train_ids)} training questions; held-out accuracy {accuracy:.3f}")

    # Two held-out questions per class; references: training questions of the other classes.
    chosen = np.concatenate([np.flatnonzero(test_labels == label)[:2] for label in range(len(CLASSES))])
    inputs, labels = test_ids[chosen], test_labels[chosen]
    references = tf_ig2.references.other_class(train_ids, train_labels, labels, arguments.references,
                                               seed=rng)  # (N, R, LENGTH) int token ids
    # Contrast: the "what ..." questions of other classes, explained for the description class,
    # against references that are not descriptions. Red words speak for "description", blue against.
    description = CLASSES.index("description")
    contrast = np.flatnonzero((inputs[:, 0] == vocabulary.index("what")) & (labels != description))
    inputs = np.concatenate([inputs, inputs[contrast]])
    references = np.concatenate([references, tf_ig2.references.other_class(
        train_ids, train_labels, np.full(len(contrast), description), arguments.references, seed=rng)])
    targets = np.concatenate([labels, np.full(len(contrast), description)])
    labels = np.concatenate([labels, labels[contrast]])

    explainer = tf_ig2.IG2(model, input_layer="embedding", steps=arguments.steps)
    explanation = explainer.explain(inputs, references, targets=targets)
    probabilities = model.predict(inputs, verbose=0)

    rows, sections = [], []
    print(f"\nIG² ({arguments.steps} steps, {arguments.references} references), attribution per token; "
          "score = logit of the explained class (the true class, then contrasts)")
    for index, (ids, label, target) in enumerate(zip(inputs, labels, targets)):
        kept = ids != 0
        tokens = [vocabulary[token] for token in ids[kept]]
        values = explanation.attributions[index][kept]
        predicted = int(np.argmax(probabilities[index]))
        header = (f"{CLASSES[label]} (predicted {CLASSES[predicted]}, p={probabilities[index, predicted]:.2f})"
                  + ("" if target == label else f", explaining '{CLASSES[target]}'"))
        print(f"\n[{header}]  " + "  ".join(f"{token}({value:+.2f})" for token, value in zip(tokens, values)))
        gap = explanation.target_scores[index] - explanation.counterfactual_scores[index]
        print(f"  f(x) = {explanation.target_scores[index]:.3f}, mean f(GradCF) = "
              f"{explanation.counterfactual_scores[index]:.3f}, sum of attributions = {values.sum():.3f}, "
              f"delta = {explanation.delta[index]:+.3f} ({abs(explanation.delta[index]) / max(abs(gap), 1e-12):.1%}"
              " of the score gap)")
        rows.append((f"{CLASSES[label]}: explaining {CLASSES[target]}", tokens, values))
        sections.append(f"<h3>{html.escape(header)}</h3>\n{visualize.token_html(tokens, values)}\n"
                        f"<p>delta = {explanation.delta[index]:+.4f}</p>")
    relative = np.abs(explanation.delta) / np.maximum(np.abs(explanation.target_scores
                                                             - explanation.counterfactual_scores), 1e-12)
    print(f"\nmedian |delta| / |f(x) - f(GradCF)| = {np.median(relative):.1%} (global max pooling is not smooth; "
          "see docs/method.md)")

    import cv2

    os.makedirs(arguments.output, exist_ok=True)
    picture = strips_picture(rows)
    if not cv2.imwrite(output_paths[0], cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"Could not write {output_paths[0]!r}")
    with open(output_paths[1], "w", encoding="utf-8") as handle:
        handle.write("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>IG² token attributions</title>"
                     "</head><body>\n<p>Red: towards the explained class; blue: away from it (hover for values).</p>\n"
                     + "\n".join(sections) + "\n</body></html>\n")
    print(f"\nWrote {output_paths[0]} and {output_paths[1]}")
    if arguments.logdir:
        print(f"Token strips and text logged while training; see them with: tensorboard --logdir {arguments.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
