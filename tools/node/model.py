"""The exported int8 model on the host, run by the real TFLM interpreter (tflite-micro's Python
package): what the simulated node, the evaluation and the HIL reference pipeline call.

    from tools.node import model
    m = model.load("firmware/model")         # folder or its manifest.json
    q = core.features(pcm)                   # (frames, 40) int8, the node's front end
    m.scores(q[:64])                         # uint8 Q0.8 per class (m.labels)
    node = m.node()                          # tools.node.core.Node with the model's classes/thresholds

The manifest (`manifest.json`, written by `python -m training export`) is the single source of
labels, thresholds and quantisation; `load` refuses a model whose feature configuration is not
the one the C core was built with, or whose file does not match the manifest's hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.node import core, params

DEFAULT_DIR = params.MODEL_DIR
MANIFEST_SCHEMA_VERSION = 1
# The host interpreter is 64-bit (pointers, alignment): its arena need is larger than the
# ESP32's; give it this many times the manifest's (device-oriented) figure, at least 64 KiB.
HOST_ARENA_FACTOR = 2
HOST_ARENA_MIN_BYTES = 64 * 1024


class ModelError(Exception):
    """A model that cannot be used here, with the reason (callers exit 2)."""


@dataclass
class Model:
    path: Path  # folder holding manifest.json and the .tflite
    manifest: dict
    blob: bytes = field(repr=False)
    _interp: object = field(default=None, repr=False)

    # ---- manifest views -----------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def n_classes(self) -> int:
        return len(self.manifest["labels"])

    @property
    def negative_index(self) -> int | None:
        neg = self.manifest.get("negative_label")
        return self.labels.index(neg) if neg in self.labels else None

    @property
    def thresholds(self) -> list[float | None]:
        """Per class (label order); None = never reported (the negative class)."""
        th = self.manifest.get("thresholds", {})
        default = params.default().detector["default_threshold"]
        out = []
        for i, lab in enumerate(self.labels):
            v = th.get(lab, None if i == self.negative_index else default)
            out.append(None if v is None else float(v))
        return out

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.blob).hexdigest()

    @property
    def hash8(self) -> bytes:
        """What HELLO carries: the first 8 bytes of the model file's SHA-256."""
        return bytes.fromhex(self.sha256[:16])

    @property
    def input_quant(self) -> tuple[float, int]:
        q = self.manifest["input"]
        return float(q["scale"]), int(q["zero_point"])

    @property
    def output_quant(self) -> tuple[float, int]:
        q = self.manifest["output"]
        return float(q["scale"]), int(q["zero_point"])

    # ---- inference ----------------------------------------------------------------------------
    def interpreter(self):
        if self._interp is None:
            from tflite_micro.python.tflite_micro import runtime as tflm

            arena = max(
                HOST_ARENA_MIN_BYTES, HOST_ARENA_FACTOR * int(self.manifest.get("arena_bytes", 0))
            )
            try:
                self._interp = tflm.Interpreter.from_bytes(self.blob, arena_size=arena)
            except Exception as e:  # the TFLM runtime raises plain RuntimeError/ValueError
                raise ModelError(f"{self.path}: TFLM cannot load the model ({e})") from None
        return self._interp

    def output_q(self, features: np.ndarray) -> np.ndarray:
        """Raw int8 output of one window of int8 features (frames x bands, frame-major)."""
        shape = tuple(self.manifest["input"]["shape"])
        x = np.ascontiguousarray(features, dtype=np.int8).reshape(shape)
        it = self.interpreter()
        it.set_input(x, 0)
        it.invoke()
        return np.asarray(it.get_output(0)).reshape(-1).astype(np.int8)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Q0.8 probabilities (uint8, one per label) of one window: what the node compares with
        its thresholds.  Same arithmetic as the firmware's glue: round(p * 256), clipped."""
        scale, zp = self.output_quant
        q = self.output_q(features).astype(np.int32)
        if scale == 1.0 / 256 and zp == -128:  # the exported softmax: exact
            return (q + 128).astype(np.uint8)
        p = (q - zp) * scale
        return np.clip(np.round(p * 256), 0, 255).astype(np.uint8)

    def classify(self, window, features) -> np.ndarray:
        """tools.node.core.Node's classifier callback."""
        return self.scores(features)

    def node(self, **kw) -> core.Node:
        """A host node (the real C detector) that classifies with this model."""
        kw.setdefault("thresholds", self.thresholds)
        return core.Node(self.classify, self.n_classes, **kw)


def load(path=None, check_features: bool = True) -> Model:
    """Load a model folder (or its manifest.json).  Raises ModelError with a reason."""
    path = Path(path) if path is not None else DEFAULT_DIR
    mpath = path / "manifest.json" if path.is_dir() else path
    folder = mpath.parent
    if not mpath.exists():
        raise ModelError(
            f"{mpath}: no such file (train and export a model with "
            f"`python -m training export`, or pass --model DIR)"
        )
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{mpath}: not a readable manifest ({e})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{mpath}: not a manifest object")
    ver = manifest.get("schema_version")
    if ver != MANIFEST_SCHEMA_VERSION:
        raise ModelError(
            f"{mpath}: manifest schema {ver}, this tool reads "
            f"{MANIFEST_SCHEMA_VERSION}: re-export the model"
        )
    for key in ("labels", "input", "output"):
        if key not in manifest:
            raise ModelError(f"{mpath}: manifest has no '{key}'")
    tfl = folder / manifest.get("tflite_file", "model.tflite")
    try:
        blob = tfl.read_bytes()
    except OSError as e:
        raise ModelError(f"{tfl}: cannot read the model file ({e.strerror})") from None
    want = manifest.get("model_sha256")
    if want and hashlib.sha256(blob).hexdigest() != want:
        raise ModelError(
            f"{tfl}: SHA-256 differs from the manifest's: the manifest belongs to "
            f"another model (re-export)"
        )
    P = params.default()
    if check_features:
        fh = manifest.get("feature_config_hash")
        if fh is not None and fh != P.feature_hash:
            raise ModelError(
                f"{mpath}: model trained on features {fh[:16]}, this core computes "
                f"{P.feature_hash[:16]}: retrain, or use the matching firmware/lib"
            )
        iq = manifest["input"]
        if (
            abs(float(iq["scale"]) - P.quant.scale) > 1e-9
            or int(iq["zero_point"]) != P.quant.zero_point
        ):
            raise ModelError(
                f"{mpath}: model input quantisation scale {iq['scale']} zero point "
                f"{iq['zero_point']} != the front end's {P.quant.scale} / "
                f"{P.quant.zero_point}"
            )
        shape = list(iq.get("shape", []))
        if shape[1:3] != [P.frames_per_window, P.n_mels]:
            raise ModelError(
                f"{mpath}: model input {shape}, the front end makes windows of "
                f"{P.frames_per_window} x {P.n_mels}"
            )
    if len(manifest["labels"]) > core.MAX_CLASSES:
        raise ModelError(
            f"{mpath}: {len(manifest['labels'])} classes, the node supports {core.MAX_CLASSES}"
        )
    return Model(folder, manifest, blob)
