"""Model architectures (Keras 3), sized for the node: <= 64 KB int8 flatbuffer, <= 48 KB
tensor arena, <= 3 M multiply-accumulates per 64 x 40 window.

- `ds_cnn` (default): depthwise-separable CNN (MobileNet/DS-CNN keyword-spotting style):
  one strided 3x3 convolution, then depthwise 3x3 + pointwise 1x1 blocks, average pooling
  over the last 8 x 5 map, a dense softmax.  BatchNorm folds into the convolutions at conversion.
- `crnn`: the same convolutional front (frequency pooled away, time kept at 8 steps), projected to the GRU width, then a
  GRU unrolled over the 8 steps (so it converts to plain FULLY_CONNECTED/LOGISTIC/TANH/MUL/ADD
  ops that TFLM runs in int8), last state -> dense softmax.

Inputs are float dB ((q - zero_point) * scale, range [0, 191.25]); the first convolution +
BatchNorm learn the normalisation, so the int8 model takes the front end's bytes unchanged.
`keras.Input(shape, batch_size=1)` keeps Flatten/reshape free of dynamic-shape ops.
"""

from __future__ import annotations

ARCHS = ("ds_cnn", "crnn")


def _keras():
    import keras

    return keras


def _conv_bn(x, filters, kernel, strides, name):
    keras = _keras()
    L = keras.layers
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=name + "_bn")(x)
    return L.ReLU(name=name + "_relu")(x)


def _ds_block(x, filters, strides, name):
    keras = _keras()
    L = keras.layers
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=name + "_dw")(x)
    x = L.BatchNormalization(name=name + "_dw_bn")(x)
    x = L.ReLU(name=name + "_dw_relu")(x)
    x = L.Conv2D(filters, 1, use_bias=False, name=name + "_pw")(x)
    x = L.BatchNormalization(name=name + "_pw_bn")(x)
    return L.ReLU(name=name + "_pw_relu")(x)


def ds_cnn(
    n_classes: int,
    input_shape=(64, 40, 1),
    width: int = 32,
    dropout: float = 0.2,
    batch_size: int | None = None,
):
    """Default model. width=32: 2.3 M MACs, ~27 k parameters (channels grow as the map shrinks)."""
    keras = _keras()
    L = keras.layers
    inp = keras.Input(input_shape, batch_size=batch_size, name="features")
    x = _conv_bn(inp, width // 2, 3, 2, "conv0")  # 32 x 20 x 16
    x = _ds_block(x, width, 1, "ds1")  # 32 x 20 x 32
    x = _ds_block(x, 2 * width, 2, "ds2")  # 16 x 10 x 64
    x = _ds_block(x, 2 * width, 1, "ds3")
    x = _ds_block(x, 3 * width, 2, "ds4")  # 8 x 5 x 96
    x = _ds_block(x, 3 * width, 1, "ds5")
    # average pooling over the whole 8 x 5 map (AVERAGE_POOL_2D + RESHAPE in TFLite: the same
    # reference kernel in TFLite and TFLM; MEAN rounds differently between the two)
    x = L.AveragePooling2D((8, 5), name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dropout(dropout, name="drop")(x)
    out = L.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="ds_cnn")


def crnn(
    n_classes: int,
    input_shape=(64, 40, 1),
    width: int = 32,
    rnn_units: int = 24,
    dropout: float = 0.2,
    batch_size: int | None = None,
):
    """CRNN variant: convolutional front, frequency averaged away, GRU over 8 time steps."""
    keras = _keras()
    L = keras.layers
    inp = keras.Input(input_shape, batch_size=batch_size, name="features")
    x = _conv_bn(inp, width // 2, 3, 2, "conv0")  # 32 x 20
    x = _ds_block(x, width, 2, "ds1")  # 16 x 10 (small arena: the
    x = _ds_block(x, 2 * width, 1, "ds2")  # unrolled GRU's ops need room)
    x = _ds_block(x, 2 * width, 2, "ds3")  # 8 x 5
    x = L.AveragePooling2D((1, 5), name="freq_pool")(x)  # 8 x 1
    x = L.Conv2D(rnn_units, 1, use_bias=False, name="proj")(x)  # fewer GRU inputs
    x = L.BatchNormalization(name="proj_bn")(x)
    x = L.ReLU(name="proj_relu")(x)
    x = L.Reshape((8, rnn_units), name="to_seq")(x)
    x = L.GRU(rnn_units, unroll=True, reset_after=False, name="gru")(x)
    x = L.Dropout(dropout, name="drop")(x)
    out = L.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="crnn")


def build(arch: str, n_classes: int, batch_size: int | None = None, **kw):
    if arch == "ds_cnn":
        return ds_cnn(n_classes, batch_size=batch_size, **kw)
    if arch == "crnn":
        return crnn(n_classes, batch_size=batch_size, **kw)
    raise ValueError(f"unknown architecture '{arch}' (choose from {', '.join(ARCHS)})")
