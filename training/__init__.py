"""earwitness training pipeline: real recordings -> node-aligned int8 features (the C core) ->
compact CNN -> full-int8 TFLite checked against tflite-micro -> firmware/model (C arrays).

`python -m training --help` lists the commands; docs/training.md describes the pipeline and
the shipped model's figures.
"""
