#!/usr/bin/env bash
# Explain a saved model with IG² from the command line.
#
#   bash examples/explain_saved_model.sh [WORK_DIR]
#
# 1. `tf-ig2 demo` trains a small digits CNN and saves WORK_DIR/demo/model.keras;
# 2. a few held-out digits and references of other classes are written as .npy arrays,
#    and the model is also exported as a SavedModel;
# 3. `tf-ig2 explain` explains the .keras file and the SavedModel.
# Without an installed package, the script runs `python -m tf_ig2` from the repository root.
set -euo pipefail

WORK_DIR="${1:-ig2_cli_example}"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if command -v tf-ig2 >/dev/null 2>&1; then TF_IG2=(tf-ig2); else TF_IG2=(python -m tf_ig2); fi

"${TF_IG2[@]}" demo --output "$WORK_DIR/demo" --overwrite

python - "$WORK_DIR" <<'EOF'
import os, sys
import numpy as np
import keras
from tf_ig2 import demo

work = sys.argv[1]
x_train, y_train, x_held_out, y_held_out = demo.load_digits_data(seed=0)
chosen = demo.pick_one_per_class(y_held_out, 6)
np.save(os.path.join(work, "inputs.npy"), x_held_out[chosen])                     # (6, 8, 8, 1)
references = demo.other_class_references(x_train, y_train, y_held_out[chosen], 4, np.random.default_rng(1))
np.save(os.path.join(work, "references.npy"), references)                       # (6, 4, 8, 8, 1)
# A SavedModel has no layers: export the logits and the penultimate features as named outputs.
model = keras.saving.load_model(os.path.join(work, "demo", "model.keras"))
inputs = keras.Input(model.input_shape[1:])
features = inputs
for layer in model.layers[:-1]:
    features = layer(features)
logits_layer = keras.layers.Dense(model.layers[-1].units, name="logits")
logits = logits_layer(features)
logits_layer.set_weights(model.layers[-1].get_weights())
keras.Model(inputs, {"logits": logits, "features": features}).export(
    os.path.join(work, "saved_model"), verbose=False)
EOF

# A .keras file: the representation is the input of the last layer (the 32 'features').
"${TF_IG2[@]}" explain "$WORK_DIR/demo/model.keras" \
    --inputs "$WORK_DIR/inputs.npy" --references "$WORK_DIR/references.npy" \
    --steps 64 --value-range 0 1 --batch-size 8 \
    --output "$WORK_DIR/explained_keras" --overwrite

# The same model as a SavedModel: GradPath moves in its 'features' output and the scores are
# the one other output, 'logits' (--output-name logits says so explicitly); the attributions
# match those of the .keras file up to float round-off carried along the path.
"${TF_IG2[@]}" explain "$WORK_DIR/saved_model" \
    --inputs "$WORK_DIR/inputs.npy" --references "$WORK_DIR/references.npy" \
    --representation-layer features --steps 64 --value-range 0 1 --batch-size 8 \
    --output "$WORK_DIR/explained_saved_model" --overwrite
python -c "import numpy as np, sys; a, b = (np.load(sys.argv[i] + '/attributions.npy') for i in (1, 2)); \
print(f'largest difference between the two: {np.abs(a - b).max():.2e}')" \
    "$WORK_DIR/explained_keras" "$WORK_DIR/explained_saved_model"

# An error is one line on stderr and exit status 2; nothing is written.
if "${TF_IG2[@]}" explain "$WORK_DIR/demo/model.keras" --inputs "$WORK_DIR/inputs.npy" \
    --references "$WORK_DIR/references.npy" --representation-layer nope \
    --output "$WORK_DIR/never_written" 2>"$WORK_DIR/error.txt"; then
  echo "expected an error" >&2; exit 1
fi
grep "tf-ig2: error:" "$WORK_DIR/error.txt"

echo "Results: $WORK_DIR/explained_keras and $WORK_DIR/explained_saved_model (summary.json, grid.png)"
