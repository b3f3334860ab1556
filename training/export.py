"""Export a converted model for the firmware: model.tflite, manifest.json and generated C.

    export.write(out_dir, blob, labels=..., negative_label="other", thresholds={...},
                 name="...", created_by="python -m training ship", training={...})
    export.generate(out_dir)          # C from model.tflite + manifest.json (byte-deterministic)
    export.check(out_dir)             # [] when manifest and C match the .tflite, else problems

Generated files (firmware/model/ is the shipped default):
  ew_model.h        labels, thresholds (Q0.8, 256 = off), quantisation, arena, hashes, version
  ew_model_data.c   the flatbuffer as a 16-byte aligned array + its length
  ew_model_ops.h    C++: EW_MODEL_OP_COUNT and ew_model_register_ops(resolver) for exactly
                    the ops the model uses
They carry a banner, the model's SHA-256 and EW_MODEL_SCHEMA_VERSION; nothing in them
depends on the date, the machine or the output path.

EW_MODEL_ARENA_BYTES = the arena measured by the tflite-micro interpreter on the host
(64-bit pointers, reference kernels) + ARENA_MARGIN (25 %, for the ESP32's optimised kernels'
scratch buffers), rounded up to 1 KiB.  The manifest keeps the measured figure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from training import quantize

SCHEMA_VERSION = 1
MIN_FIRMWARE_VERSION = "0.2.0"
ARENA_MARGIN = 0.25
THRESHOLD_OFF_Q8 = 256
TFLITE_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
C_FILES = ("ew_model.h", "ew_model_data.c", "ew_model_ops.h")
REGEN = "python -m training export --model-dir <this folder>"
BANNER = (
    "generated — do not edit, regenerate with `{regen}`\n"
    " * (C generated from model.tflite + manifest.json of this folder)"
)

# TFLite builtin op -> tflite::MicroMutableOpResolver method
OP_METHODS = {
    "ADD": "AddAdd",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "FULLY_CONNECTED": "AddFullyConnected",
    "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MUL": "AddMul",
    "PACK": "AddPack",
    "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "TANH": "AddTanh",
    "UNPACK": "AddUnpack",
    "TRANSPOSE": "AddTranspose",
    "PAD": "AddPad",
    "HARD_SWISH": "AddHardSwish",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def threshold_q8(t) -> int:
    """Q0.8 threshold for a float in [0, 1]; None -> 256 (off). Scores are <= 255."""
    if t is None:
        return THRESHOLD_OFF_Q8
    return max(0, min(THRESHOLD_OFF_Q8, int(round(float(t) * 256))))


def arena_with_margin(measured: int) -> int:
    return -(-int(measured * (1 + ARENA_MARGIN)) // 1024) * 1024


def build_manifest(
    blob: bytes,
    labels,
    negative_label,
    thresholds: dict,
    name: str,
    created_by: str,
    training: dict | None = None,
    arena: int | None = None,
) -> dict:
    from tools.node import params

    P = params.default()
    info = quantize.inspect(blob)
    for op in info["ops"]:
        if op not in OP_METHODS:
            raise quantize.ExportError(f"op {op} has no known TFLM resolver registration")
    th = {
        lab: (None if thresholds.get(lab) is None else round(float(thresholds[lab]), 6))
        for lab in labels
    }
    if negative_label in th:
        th[negative_label] = None
    if arena is None:
        arena = quantize.arena_bytes(blob)
    return {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "created_by": created_by,
        "labels": list(labels),
        "negative_label": negative_label,
        "thresholds": th,
        "input": info["input"],
        "output": info["output"],
        "feature_config_hash": P.feature_hash,
        "core_config_hash": P.config_hash,
        "model_sha256": sha256(blob),
        "model_bytes": len(blob),
        "arena_bytes": int(arena),
        "arena_bytes_firmware": arena_with_margin(arena),
        "ops": info["ops"],
        "macs": info["macs"],
        "min_firmware_version": MIN_FIRMWARE_VERSION,
        "training": training or {},
    }


def _c_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(manifest: dict, blob: bytes) -> dict[str, str]:
    """The generated C files (name -> text) for a manifest and its flatbuffer."""
    m = manifest
    sha = sha256(blob)
    labels = m["labels"]
    neg = m.get("negative_label")
    neg_idx = labels.index(neg) if neg in labels else -1
    thr = [threshold_q8(m["thresholds"].get(lab)) for lab in labels]
    ver = [int(v) for v in m["min_firmware_version"].split(".")]
    banner = BANNER.format(regen=REGEN)
    head = (
        f"/* {banner}\n * model: {m['name']}\n * model_sha256: {sha}\n"
        f" * feature_config_hash: {m['feature_config_hash']}\n */\n"
    )
    hash8 = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(sha[:16]))
    h = [
        head,
        "#ifndef EW_MODEL_H",
        "#define EW_MODEL_H",
        "",
        f"#define EW_MODEL_SCHEMA_VERSION {SCHEMA_VERSION}  /* layout of this header; consumers check it */",
        f"#define EW_MODEL_NAME {_c_str(m['name'])}",
        f"#define EW_MODEL_N_CLASSES {len(labels)}",
        "#define EW_MODEL_LABELS { " + ", ".join(_c_str(x) for x in labels) + " }",
        f"#define EW_MODEL_NEGATIVE_INDEX {neg_idx}  /* never reported as an event */",
        "#define EW_MODEL_THRESHOLDS_Q8 { "
        + ", ".join(str(t) for t in thr)
        + " }  /* Q0.8, 256 = off */",
        f"#define EW_MODEL_INPUT_SCALE {m['input']['scale']!r}f  /* dB per LSB */",
        f"#define EW_MODEL_INPUT_ZERO_POINT ({m['input']['zero_point']})",
        f"#define EW_MODEL_OUTPUT_SCALE {m['output']['scale']!r}f  /* softmax: Q0.8 score = q + 128 */",
        f"#define EW_MODEL_OUTPUT_ZERO_POINT ({m['output']['zero_point']})",
        f"#define EW_MODEL_INPUT_FRAMES {m['input']['shape'][1]}",
        f"#define EW_MODEL_INPUT_BANDS {m['input']['shape'][2]}",
        f"#define EW_MODEL_ARENA_MEASURED_BYTES {m['arena_bytes']}  /* tflite-micro, host (64-bit), reference kernels */",
        f"#define EW_MODEL_ARENA_BYTES {arena_with_margin(m['arena_bytes'])}  /* measured + {int(ARENA_MARGIN * 100)} %, rounded up to 1 KiB */",
        f"#define EW_MODEL_MACS {m['macs']}u  /* multiply-accumulates per window */",
        f"#define EW_MODEL_TFLITE_BYTES {len(blob)}u",
        f"#define EW_MODEL_SHA256_STR {_c_str(sha)}",
        f"#define EW_MODEL_HASH8 {{ {hash8} }}  /* first 8 bytes of the SHA-256, as in HELLO */",
        f"#define EW_MODEL_FEATURE_HASH_STR {_c_str(m['feature_config_hash'])}",
        f"#define EW_MODEL_CORE_CONFIG_HASH_STR {_c_str(m['core_config_hash'])}",
        f"#define EW_MODEL_MIN_FW_VERSION_MAJOR {ver[0]}",
        f"#define EW_MODEL_MIN_FW_VERSION_MINOR {ver[1]}",
        f"#define EW_MODEL_MIN_FW_VERSION_PATCH {ver[2]}",
        f"#define EW_MODEL_MIN_FW_VERSION_STR {_c_str(m['min_firmware_version'])}",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "extern const unsigned char ew_model_tflite[];",
        "extern const unsigned int ew_model_tflite_len;",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        "#endif /* EW_MODEL_H */",
        "",
    ]
    guard = (
        f"#if !defined(EW_MODEL_SCHEMA_VERSION) || EW_MODEL_SCHEMA_VERSION != {SCHEMA_VERSION}\n"
        f'#error "ew_model.h does not match this generated file: regenerate with {REGEN}"\n#endif\n'
    )
    rows = []
    for i in range(0, len(blob), 12):
        rows.append("    " + " ".join(f"0x{b:02x}," for b in blob[i : i + 12]))
    c = [
        head,
        '#include "ew_model.h"',
        "",
        guard,
        "#if defined(__GNUC__) || defined(__clang__)",
        "#define EW_MODEL_ALIGNED __attribute__((aligned(16)))",
        "#else",
        "#define EW_MODEL_ALIGNED _Alignas(16)",
        "#endif",
        "",
        f"/* {len(blob)} bytes, sha256 {sha} */",
        "const unsigned char ew_model_tflite[] EW_MODEL_ALIGNED = {",
        *rows,
        "};",
        f"const unsigned int ew_model_tflite_len = {len(blob)}u;",
        "",
    ]
    ops = m["ops"]
    o = [
        head,
        "#ifndef EW_MODEL_OPS_H",
        "#define EW_MODEL_OPS_H",
        "",
        '#include "ew_model.h"',
        "",
        guard,
        "#ifndef __cplusplus",
        '#error "ew_model_ops.h is C++ (tflite-micro\'s op resolver)"',
        "#endif",
        "",
        f"#define EW_MODEL_OP_COUNT {len(ops)}",
        "",
        "/* Register exactly the ops the model uses (" + ", ".join(ops) + ").",
        " * R: tflite::MicroMutableOpResolver<EW_MODEL_OP_COUNT> (or larger). false on any error. */",
        "template <class R>",
        "static inline bool ew_model_register_ops(R &r)",
        "{",
    ]
    for op in ops:
        o.append(f"    if (r.{OP_METHODS[op]}() != kTfLiteOk) return false;")
    o += ["    return true;", "}", "", "#endif /* EW_MODEL_OPS_H */", ""]
    return {
        "ew_model.h": "\n".join(h),
        "ew_model_data.c": "\n".join(c),
        "ew_model_ops.h": "\n".join(o),
    }


def _manifest_text(m: dict) -> str:
    return json.dumps(m, indent=2, sort_keys=False) + "\n"


def write(out_dir, blob: bytes, manifest: dict) -> Path:
    """Write model.tflite, manifest.json and the generated C into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / TFLITE_FILE).write_bytes(blob)
    (out / MANIFEST_FILE).write_text(_manifest_text(manifest))
    generate(out)
    return out


def _load(model_dir) -> tuple[dict, bytes]:
    d = Path(model_dir)
    mp, tp = d / MANIFEST_FILE, d / TFLITE_FILE
    if not mp.exists() or not tp.exists():
        raise quantize.ExportError(f"{d}: needs {MANIFEST_FILE} and {TFLITE_FILE}")
    try:
        m = json.loads(mp.read_text())
    except ValueError as e:
        raise quantize.ExportError(f"{mp}: not valid JSON ({e})") from None
    if m.get("schema_version") != SCHEMA_VERSION:
        raise quantize.ExportError(
            f"{mp}: schema_version {m.get('schema_version')} != {SCHEMA_VERSION}"
        )
    return m, tp.read_bytes()


def generate(model_dir) -> list[Path]:
    """(Re)write the C files of a model folder from its model.tflite + manifest.json."""
    m, blob = _load(model_dir)
    if m.get("model_sha256") != sha256(blob):
        raise quantize.ExportError(
            f"{model_dir}: manifest model_sha256 does not match {TFLITE_FILE}"
        )
    out = []
    for name, text in render(m, blob).items():
        p = Path(model_dir) / name
        p.write_text(text)
        out.append(p)
    return out


def check(model_dir, measure_arena: bool = True) -> list[str]:
    """Problems (empty list = consistent): manifest vs .tflite (hash, size, ops, MACs,
    quantisation, arena) and the C files vs what `generate` would write."""
    m, blob = _load(model_dir)
    problems = []
    if m.get("model_sha256") != sha256(blob):
        problems.append("manifest model_sha256 != sha256(model.tflite)")
    if m.get("model_bytes") != len(blob):
        problems.append(f"manifest model_bytes {m.get('model_bytes')} != {len(blob)}")
    info = quantize.inspect(blob)
    for k in ("ops", "macs", "input", "output"):
        if m.get(k) != info[k]:
            problems.append(f"manifest {k} {m.get(k)} != model's {info[k]}")
    try:
        quantize.check_quant(info)
    except quantize.ExportError as e:
        problems.append(str(e))
    if measure_arena:
        a = quantize.arena_bytes(blob)
        if m.get("arena_bytes") != a:
            problems.append(f"manifest arena_bytes {m.get('arena_bytes')} != measured {a}")
    for name, text in render(m, blob).items():
        p = Path(model_dir) / name
        if not p.exists():
            problems.append(f"{name} missing")
        elif p.read_text() != text:
            problems.append(f"{name} is stale (regenerate with {REGEN})")
    return problems
