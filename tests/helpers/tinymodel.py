"""A tiny full-int8 model (random weights) with the node's input/output quantisation and a
manifest, for the tests that need a real .tflite without training (tools.node.model, evaluation,
twin)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tools.node import params

LABELS = list(params.DEFAULT_LABELS)


def build_tiny_model(
    out: Path, labels=LABELS, seed: int = 0, threshold: float | dict = 0.1
) -> Path:
    """Full-int8 keras model with the contract's input/output quantisation + a manifest.
    `threshold`: one score for every target label, or {label: score}."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((64, 40, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    o = keras.layers.Dense(
        len(labels),
        activation="softmax",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.02, seed=seed),
    )(x)
    model = keras.Model(inp, o)
    rng = np.random.default_rng(seed)

    def rep():  # spans [0, 191.25] dB exactly: input scale 0.75, zero point -128
        for _ in range(8):
            a = rng.uniform(0, 191.25, (1, 64, 40, 1)).astype(np.float32)
            a.flat[0], a.flat[1] = 0.0, 191.25
            yield [a]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    blob = conv.convert()
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(blob)
    P = params.default()
    manifest = {
        "schema_version": 1,
        "name": "tiny-test",
        "created_by": "tests/helpers/tinymodel.py",
        "labels": labels,
        "negative_label": "other",
        "thresholds": {
            lab: (
                None
                if lab == "other"
                else threshold.get(lab)
                if isinstance(threshold, dict)
                else threshold
            )
            for lab in labels
        },
        "input": {"shape": [1, 64, 40, 1], "dtype": "int8", "scale": 0.75, "zero_point": -128},
        "output": {
            "shape": [1, len(labels)],
            "dtype": "int8",
            "scale": 1 / 256,
            "zero_point": -128,
        },
        "feature_config_hash": P.feature_hash,
        "core_config_hash": P.config_hash,
        "model_sha256": hashlib.sha256(blob).hexdigest(),
        "model_bytes": len(blob),
        "arena_bytes": 16384,
        "ops": ["CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"],
        "macs": 0,
        "min_firmware_version": "0.2.0",
        "training": {},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out
