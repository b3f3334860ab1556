"""Training: class-weighted, seeded, early-stopped Keras training on int8 feature windows.

    tf_setup(threads=2, seed=0)
    model, info = train(train_ws, val_ws, Recipe(arch="ds_cnn", seed=0))

The int8 windows are turned into the model's float input ((q - zp) * scale, dB) inside the
tf.data pipeline; a random level offset (Recipe.gain_jitter_db, clipped to the int8 range)
simulates gain, in-batch mixup and a frequency shift augment the training batches.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from training import features, models
from training.recipe import Recipe

_TF_READY = False


def tf_setup(threads: int = 2, seed: int = 0):
    """Quiet, CPU-friendly, reproducible TensorFlow (call before building models)."""
    global _TF_READY
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras
    import tensorflow as tf

    if not _TF_READY:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # already initialised by an earlier call in this process
        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:
            pass
        _TF_READY = True
    keras.utils.set_random_seed(seed)
    return tf


def class_weights(
    y: np.ndarray, n_classes: int, max_ratio: float = 20.0, power: float = 0.5
) -> dict:
    """Weights (N / (K * n_c)) ** power, normalised to mean 1 over present classes, capped.
    power 1 = fully balanced; the default 0.5 only half-balances (in log terms): fully
    balanced weights made the negative class ("other", the majority in the field) so cheap
    that the model called every loud sound an event."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / (n_classes * np.maximum(counts, 1))) ** power, 0.0)
    w = np.minimum(w, max_ratio * w[w > 0].min())
    w = w / w[counts > 0].mean()
    return {i: float(v) for i, v in enumerate(w)}


def _freq_shift(tf, f, seed, max_bands):
    """Shift each window by -max_bands..+max_bands mel bands (edge band repeated): a crude
    pitch/brightness change between recordings of the same kind of sound."""
    n, F = tf.shape(f)[0], tf.shape(f)[2]
    s = tf.random.uniform([n], -max_bands, max_bands + 1, tf.int32, seed=seed + 30)
    idx = tf.clip_by_value(tf.range(F)[None, :] - s[:, None], 0, F - 1)  # [B, F]
    return tf.gather(f, idx, axis=2, batch_dims=1)


def _dataset(
    ws,
    batch,
    shuffle,
    seed,
    jitter_db,
    n_classes,
    weights=None,
    mixup: float = 0.0,
    freq_shift: int = 0,
):
    """tf.data pipeline of (float log-mel window, one-hot label, sample weight).

    The sample weight of a window is its class's weight in `weights` (default 1).
    freq_shift > 0: each window shifted by a random -freq_shift..+freq_shift mel bands
    (_freq_shift).  mixup > 0 (training only): every window is blended with a random partner
    of the same batch, x = lam*x1 + (1-lam)*x2 and the same for the one-hot label and the
    weight, lam ~ Beta(mixup, mixup) per window (Zhang et al. 2018; the blend is of the dB
    feature cells, as is usual for log-mel mixup)."""
    import tensorflow as tf

    zp, scale = float(features.P.quant.zero_point), float(features.P.quant.scale)
    top = (127.0 - zp) * scale
    ds = tf.data.Dataset.from_tensor_slices((ws.X, ws.y))
    if shuffle:
        ds = ds.shuffle(len(ws), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)
    w_table = tf.constant(
        [float((weights or {}).get(c, 1.0)) for c in range(n_classes)], tf.float32
    )

    def to_float(x, y):
        f = (tf.cast(x, tf.float32) - zp) * scale
        if jitter_db:
            off = tf.random.uniform([tf.shape(f)[0], 1, 1], -jitter_db, jitter_db, seed=seed)
            f = tf.where(f > 0.0, tf.clip_by_value(f + off, 0.0, top), f)
        if freq_shift:
            f = _freq_shift(tf, f, seed, freq_shift)
        f = f[..., None]
        yh = tf.one_hot(tf.cast(y, tf.int32), n_classes)
        sw = tf.gather(w_table, tf.cast(y, tf.int32))
        if mixup:
            n = tf.shape(f)[0]
            g1 = tf.random.gamma([n], mixup, seed=seed)
            g2 = tf.random.gamma([n], mixup, seed=seed + 1)
            lam = g1 / tf.maximum(g1 + g2, 1e-12)
            perm = tf.random.shuffle(tf.range(n), seed=seed)
            f = lam[:, None, None, None] * f + (1.0 - lam[:, None, None, None]) * tf.gather(f, perm)
            yh = lam[:, None] * yh + (1.0 - lam[:, None]) * tf.gather(yh, perm)
            sw = lam * sw + (1.0 - lam) * tf.gather(sw, perm)
        return f, yh, sw

    return ds.map(to_float).prefetch(2)


def train(train_ws, val_ws, recipe: Recipe | None = None, verbose: int = 2, log=None):
    """Train one model with the recipe's model, seed and fit settings; returns (keras model
    with the best validation weights, info dict).  val_ws (None: none) is watched for early
    stopping."""
    r = recipe or Recipe()
    log = log or (lambda m: print(m, file=sys.stderr))
    tf_setup(seed=r.seed)
    import keras

    n_classes = len(train_ws.labels)
    model = models.build(r.arch, n_classes, width=r.width)
    steps = max(1, int(np.ceil(len(train_ws) / r.batch_size)))
    sched = keras.optimizers.schedules.CosineDecay(r.lr, decay_steps=steps * r.epochs, alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(sched),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    cw = class_weights(train_ws.y, n_classes)
    # one-hot labels with the class weights as sample weights (so that mixup can blend both)
    tr = _dataset(
        train_ws,
        r.batch_size,
        True,
        r.seed,
        r.gain_jitter_db,
        n_classes,
        cw,
        mixup=r.mixup,
        freq_shift=r.freq_shift,
    )
    callbacks = []
    va = None
    stop_from = 0
    if val_ws is not None and len(val_ws):
        va = _dataset(val_ws, 256, False, r.seed, 0.0, n_classes)
        # early stopping only watches the second half of the cosine schedule: in the first
        # epochs (high learning rate) the validation loss wanders
        stop_from = min(r.stop_from_epoch, max(0, r.epochs - r.patience - 1))
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=r.patience,
                restore_best_weights=True,
                start_from_epoch=stop_from,
            )
        )
    t0 = time.time()
    log(
        f"train {r.arch}: {len(train_ws)} windows {train_ws.counts()}, "
        f"val {0 if val_ws is None else len(val_ws)}, mixup {r.mixup}, frequency shift "
        f"±{r.freq_shift}, class weights "
        f"{ {train_ws.labels[k]: round(v, 2) for k, v in cw.items()} }"
    )
    hist = model.fit(tr, validation_data=va, epochs=r.epochs, callbacks=callbacks, verbose=verbose)
    h = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    best = (
        stop_from + int(np.argmin(h["val_loss"][stop_from:])) + 1
        if "val_loss" in h and len(h["val_loss"]) > stop_from
        else len(h["loss"])
    )
    info = {
        "arch": r.arch,
        "seed": r.seed,
        "epochs_run": len(h["loss"]),
        "best_epoch": best,
        "batch_size": r.batch_size,
        "lr": r.lr,
        "mixup": r.mixup,
        "freq_shift": r.freq_shift,
        "class_weights": {train_ws.labels[k]: v for k, v in cw.items()},
        "n_train_windows": len(train_ws),
        "n_val_windows": 0 if val_ws is None else len(val_ws),
        "train_counts": train_ws.counts(),
        "train_seconds": round(time.time() - t0, 1),
        "history": h,
        "params": int(model.count_params()),
    }
    return model, info


def predict_float(model, X_int8: np.ndarray, batch: int = 512) -> np.ndarray:
    """Float model probabilities of int8 windows."""
    out = [
        model(features.to_float(X_int8[i : i + batch]), training=False).numpy()
        for i in range(0, len(X_int8), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]))


def cap_per_class(
    ws, n: int | None, seed: int = 0, prefer_aligned: bool = False, n_negative: int | None = -1
):
    """At most n windows per target class and n_negative of the negative class (the last label)
    (seeded random subsets; None = no cap; n_negative -1 = n): the big classes (donated baby
    cries, 'other') would otherwise dominate the epoch time; class weights balance the rest.
    prefer_aligned (--aligned-negatives-first): fill the negative class's
    n_negative with windows the node's gate placed (every kind but the fixed-stride
    continuous windows) before continuous ones: the node classifies gate-aligned windows, so
    those are the negatives that matter (target classes keep a uniform subset: their
    continuous windows are time-shifted targets).  The classes are drawn in label order from
    one generator, so a different n_negative leaves the target classes' subsets as they were."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(ws), bool)
    neg = len(ws.labels) - 1
    for c in np.unique(ws.y):
        idx = np.flatnonzero(ws.y == c)
        m = (n if n_negative == -1 else n_negative) if c == neg else n
        if m is not None and idx.size > m:
            if prefer_aligned and c == neg:
                first = idx[ws.kind[idx] != features.KIND_CONTINUOUS]
                rest = idx[ws.kind[idx] == features.KIND_CONTINUOUS]
                if first.size >= m:
                    idx = rng.choice(first, m, replace=False)
                else:
                    idx = np.concatenate([first, rng.choice(rest, m - first.size, replace=False)])
            else:
                idx = rng.choice(idx, m, replace=False)
        keep[idx] = True
    return ws.subset(keep)
