"""earwitness training pipeline: real recordings -> node-aligned int8 features (the C core) ->
compact CNN -> full-int8 TFLite checked against tflite-micro -> firmware/model (C arrays).

`python -m training --help` lists the commands; docs/training.md describes the pipeline and
the shipped model's figures.

A training run: `recipe.Recipe` (every setting) -> `pipeline.fit_and_export`: `features`
(windows) -> `train` (Keras fit) -> `quantize` (int8, and the checks: quantisation, the node's
budget NODE_BUDGET, parity, int8 drop) -> `thresholds` (through the node) -> `export`
(manifest, C files).  `crossval` runs it per held-out fold and `evaluate` scores a model.
"""
