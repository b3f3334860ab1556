"""Full-int8 conversion and the checks that make an export trustworthy.

- `convert(model, arch, rep_windows)`: rebuilds the network with a fixed batch of 1 (no
  dynamic-shape ops), converts with TFLiteConverter (int8 in/out, TFLITE_BUILTINS_INT8) on
  representative windows from the training data.  Two calibration windows put one cell at
  0 dB and one at 191.25 dB so the input range is exactly the front end's int8 range: the
  converter then derives scale 0.75 / zero point -128, i.e. P.quant.
- `input_quant_ok`, `inspect` (ops, MACs, tensor shapes), `arena_bytes` (measured with the
  tflite-micro interpreter: print_allocations captured from fd 2, bisection as fallback),
  `run_ref` (TFLite BUILTIN_REF kernels), `run_tflm` (tflite-micro), `parity`.
- the export checks: `check_budget` (NODE_BUDGET), `check_parity` (reference vs tflite-micro),
  `check_int8_drop` (window macro-F1, float vs int8); each raises ExportError.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from training import features, models

P = features.P
SOFTMAX_SCALE = 1.0 / 256
SOFTMAX_ZP = -128
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# the node's budget for one model: int8 flatbuffer in flash, measured tflite-micro arena in RAM,
# multiply-accumulates per window (time per inference)
NODE_BUDGET = {"model_bytes": 64 * 1024, "arena_bytes": 48 * 1024, "macs": 3_000_000}


def budget_text() -> str:
    """NODE_BUDGET in words: '64 KB flatbuffer, 48 KB arena, 3 M MACs'."""
    b = NODE_BUDGET
    return (
        f"{b['model_bytes'] // 1024} KB flatbuffer, {b['arena_bytes'] // 1024} KB arena, "
        f"{b['macs'] / 1e6:g} M MACs"
    )


class ExportError(Exception):
    """A converted model that fails a check (input quantisation, parity, budget)."""


def calibration_windows(X_int8: np.ndarray, n: int = 300, seed: int = 0) -> np.ndarray:
    """Representative float inputs: n training windows + two range anchors."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(X_int8), min(n, len(X_int8)), replace=False) if len(X_int8) else []
    F = (
        features.to_float(X_int8[np.sort(idx)])
        if len(idx)
        else np.zeros((0, 64, 40, 1), np.float32)
    )
    lo_q, hi_q = -128, 127
    a = features.to_float(np.full((1, 64, 40), -100, np.int8))
    b = a.copy()
    a[0, 0, 0, 0] = (lo_q - P.quant.zero_point) * P.quant.scale  # 0 dB
    b[0, 0, 0, 0] = (hi_q - P.quant.zero_point) * P.quant.scale  # 191.25 dB
    b[0, 1, 0, 0] = 0.0
    return np.concatenate([a, b, F]).astype(np.float32)


def fixed_batch_copy(model, arch: str, **arch_kw):
    """The same network with keras.Input(batch_size=1) and the trained weights."""
    m1 = models.build(arch, model.output_shape[-1], batch_size=1, **arch_kw)
    m1.set_weights(model.get_weights())
    return m1


def convert(model, arch: str, X_rep_int8: np.ndarray, seed: int = 0, **arch_kw) -> bytes:
    import tensorflow as tf

    m1 = fixed_batch_copy(model, arch, **arch_kw)
    cal = calibration_windows(X_rep_int8, seed=seed)

    def rep():
        for i in range(len(cal)):
            yield [cal[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(m1)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def _ref_interpreter(blob: bytes):
    import tensorflow as tf

    return tf.lite.Interpreter(
        model_content=blob,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
    )


def inspect(blob: bytes) -> dict:
    """Input/output quantisation, ops used (sorted, unique) and MACs per inference."""
    it = _ref_interpreter(blob)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops, macs = [], 0
    for op in it._get_ops_details():
        name = op["op_name"]
        ops.append(name)
        if name not in MAC_OPS:
            continue
        o = tensors[op["outputs"][0]]["shape"]
        w = tensors[op["inputs"][1]]["shape"]
        if name == "CONV_2D":  # out N,H,W,Cout; weights Cout,kh,kw,Cin
            macs += int(np.prod(o)) * int(w[1] * w[2] * w[3])
        elif name == "DEPTHWISE_CONV_2D":  # weights 1,kh,kw,C
            macs += int(np.prod(o)) * int(w[1] * w[2])
        else:  # weights Cout,Cin
            macs += int(np.prod(o)) * int(w[1])
    return {
        "input": {
            "shape": [int(v) for v in inp["shape"]],
            "dtype": np.dtype(inp["dtype"]).name,
            "scale": float(inp["quantization"][0]),
            "zero_point": int(inp["quantization"][1]),
        },
        "output": {
            "shape": [int(v) for v in out["shape"]],
            "dtype": np.dtype(out["dtype"]).name,
            "scale": float(out["quantization"][0]),
            "zero_point": int(out["quantization"][1]),
        },
        "ops": sorted(set(ops)),
        "macs": int(macs),
    }


def check_quant(info: dict) -> None:
    i, o = info["input"], info["output"]
    if i["dtype"] != "int8" or o["dtype"] != "int8":
        raise ExportError(f"model input/output must be int8 (got {i['dtype']}/{o['dtype']})")
    if abs(i["scale"] - P.quant.scale) > 1e-7 or i["zero_point"] != P.quant.zero_point:
        raise ExportError(
            f"model input quantisation scale {i['scale']} zero point {i['zero_point']} "
            f"!= the front end's {P.quant.scale} / {P.quant.zero_point}"
        )
    if abs(o["scale"] - SOFTMAX_SCALE) > 1e-9 or o["zero_point"] != SOFTMAX_ZP:
        raise ExportError(
            f"model output quantisation scale {o['scale']} zero point {o['zero_point']} "
            f"!= softmax 1/256 / -128"
        )
    if i["shape"] != [1, P.frames_per_window, P.n_mels, 1]:
        raise ExportError(
            f"model input shape {i['shape']} != [1, {P.frames_per_window}, {P.n_mels}, 1]"
        )


def run_ref(blob: bytes, X_int8: np.ndarray) -> np.ndarray:
    """int8 outputs from TFLite's reference kernels (BUILTIN_REF)."""
    it = _ref_interpreter(blob)
    it.allocate_tensors()
    ii, oi = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for x in X_int8:
        it.set_tensor(ii, x.reshape(1, P.frames_per_window, P.n_mels, 1).astype(np.int8))
        it.invoke()
        out.append(it.get_tensor(oi).reshape(-1).copy())
    return np.array(out, np.int8).reshape(len(X_int8), -1)


def tflm_interpreter(blob: bytes, arena: int = 256 * 1024):
    from tflite_micro.python.tflite_micro import runtime as tflm

    return tflm.Interpreter.from_bytes(blob, arena_size=arena)


def run_tflm(blob: bytes, X_int8: np.ndarray, arena: int = 256 * 1024) -> np.ndarray:
    it = tflm_interpreter(blob, arena)
    out = []
    for x in X_int8:
        it.set_input(x.reshape(1, P.frames_per_window, P.n_mels, 1).astype(np.int8), 0)
        it.invoke()
        out.append(np.asarray(it.get_output(0)).reshape(-1).copy())
    return np.array(out, np.int8).reshape(len(X_int8), -1)


def parity(blob: bytes, X_int8: np.ndarray) -> dict:
    """TFLite BUILTIN_REF vs tflite-micro on the same windows: outputs within +-1 LSB?"""
    return _parity_counts(run_ref(blob, X_int8), run_tflm(blob, X_int8))


def _parity_counts(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = a.astype(np.int32), b.astype(np.int32)
    d = np.abs(a - b)
    return {
        "windows": int(len(a)),
        "max_abs_diff_lsb": int(d.max()) if d.size else 0,
        "mismatches": int(np.sum(np.any(d > 1, axis=1))) if d.size else 0,
        "windows_not_identical": int(np.sum(np.any(d > 0, axis=1))) if d.size else 0,
        "argmax_differs": int(np.sum(a.argmax(1) != b.argmax(1))) if d.size else 0,
    }


def _capture_fd2(fn) -> str:
    """Run fn() with C-level stderr redirected to a temporary file; return what it wrote."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def arena_bytes(blob: bytes) -> int:
    """Tensor arena the tflite-micro interpreter (host, 64-bit) actually allocates."""
    x = np.zeros((1, P.frames_per_window, P.n_mels, 1), np.int8)

    def go():
        it = tflm_interpreter(blob, 512 * 1024)
        it.set_input(x, 0)
        it.invoke()
        it.print_allocations()

    text = _capture_fd2(go)
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    if m:
        return int(m.group(1))
    return arena_bytes_bisect(blob)


def arena_bytes_bisect(blob: bytes, hi: int = 512 * 1024) -> int:
    """Smallest arena (16-byte steps) with which construction and invoke succeed."""
    x = np.zeros((1, P.frames_per_window, P.n_mels, 1), np.int8)

    def ok(n):
        try:
            it = tflm_interpreter(blob, n)
            it.set_input(x, 0)
            it.invoke()
            return True
        except Exception:
            return False

    lo = 1024
    if not ok(hi):
        raise ExportError(f"the model does not run in a {hi}-byte arena")
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# ---- the export checks -------------------------------------------------------------------------


def check_budget(model_bytes: int, arena: int, macs: int, enforce: bool = True) -> dict:
    """{figure: [value, NODE_BUDGET's limit]}; raises ExportError when over (with enforce)."""
    budget = {
        "model_bytes": [int(model_bytes), NODE_BUDGET["model_bytes"]],
        "arena_bytes": [int(arena), NODE_BUDGET["arena_bytes"]],
        "macs": [int(macs), NODE_BUDGET["macs"]],
    }
    over = {k: v for k, v in budget.items() if v[0] > v[1]}
    if over and enforce:
        raise ExportError(
            "over the node's budget: " + ", ".join(f"{k} {v[0]} > {v[1]}" for k, v in over.items())
        )
    return budget


def check_parity(
    blob: bytes, X_int8: np.ndarray, max_rate: float, keep_dir
) -> tuple[dict, np.ndarray]:
    """TFLite BUILTIN_REF vs tflite-micro on the windows: (counts, tflite-micro outputs).
    Raises ExportError (keeping the model in keep_dir/failed-parity.tflite) when more than
    max_rate of the windows differ by more than 1 LSB or in arg-max."""
    from pathlib import Path

    q_tflm = run_tflm(blob, X_int8)
    par = _parity_counts(run_ref(blob, X_int8), q_tflm)
    allowed = int(max_rate * len(X_int8))
    if par["mismatches"] > allowed or par["argmax_differs"] > allowed:
        bad = Path(keep_dir) / "failed-parity.tflite"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(blob)
        raise ExportError(
            f"TFLite BUILTIN_REF and tflite-micro differ by more than 1 LSB "
            f"on {par['mismatches']} of {par['windows']} windows, arg-max on "
            f"{par['argmax_differs']} (allowed {allowed}); model kept in {bad}"
        )
    return par, q_tflm


def window_metrics(y_true, y_pred, cmap) -> dict:
    """Window accuracy and macro-F1 over the target classes."""
    from sklearn.metrics import f1_score

    tg = list(range(len(cmap.targets)))
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else None,
        "macro_f1": float(f1_score(y_true, y_pred, labels=tg, average="macro", zero_division=0))
        if len(y_true)
        else None,
    }


def check_int8_drop(y_true, p_float: np.ndarray, q_int8: np.ndarray, cmap, max_drop: float) -> dict:
    """Window metrics of the float and the int8 model and the drop; raises ExportError when
    int8 loses more than max_drop window macro-F1."""
    mf = window_metrics(y_true, p_float.argmax(1), cmap)
    mq = window_metrics(y_true, q_int8.argmax(1), cmap)
    drop = {
        "float": mf,
        "int8": mq,
        "accuracy_drop": round(mf["accuracy"] - mq["accuracy"], 4)
        if mf["accuracy"] is not None
        else None,
        "macro_f1_drop": round(mf["macro_f1"] - mq["macro_f1"], 4)
        if mf["macro_f1"] is not None
        else None,
    }
    if drop["macro_f1_drop"] is not None and drop["macro_f1_drop"] > max_drop:
        raise ExportError(
            f"int8 model loses {drop['macro_f1_drop']:.3f} window macro-F1 "
            f"(> {max_drop}) against the float model"
        )
    return drop
