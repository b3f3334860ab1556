"""tools/model.py: loading an exported model and running it with the TFLM interpreter."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tools import audio, core, model, params

P = params.default()
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

LABELS = ["gunshot", "siren", "other"]


def _tiny_tflite(seed: int = 0) -> bytes:
    """A tiny full-int8 model with the node's input (64 x 40 int8, scale 0.75, zp -128)."""
    keras = tf.keras
    keras.utils.set_random_seed(seed)
    inp = keras.Input((P.frames_per_window, P.n_mels, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    m = keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    top = (127 - P.quant.zero_point) * P.quant.scale        # 191.25 dB: the int8 range's top

    def rep():
        lo = np.zeros((1, P.frames_per_window, P.n_mels, 1), np.float32)
        yield [lo]
        yield [lo + top]
        for _ in range(8):
            yield [rng.uniform(0, top, lo.shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    blob = _tiny_tflite()
    (d / "model.tflite").write_bytes(blob)
    it = tf.lite.Interpreter(model_content=blob)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    manifest = {
        "schema_version": 1, "labels": LABELS, "negative_label": "other",
        "thresholds": {"gunshot": 0.5, "siren": 0.7, "other": None},
        "input": {"shape": [int(v) for v in i["shape"]], "dtype": "int8",
                  "scale": float(i["quantization"][0]), "zero_point": int(i["quantization"][1])},
        "output": {"shape": [int(v) for v in o["shape"]], "dtype": "int8",
                   "scale": float(o["quantization"][0]), "zero_point": int(o["quantization"][1])},
        "feature_config_hash": P.feature_hash, "model_sha256": hashlib.sha256(blob).hexdigest(),
        "arena_bytes": 0,
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_load_and_views(tiny_dir):
    m = model.load(tiny_dir)
    assert m.labels == LABELS and m.n_classes == 3 and m.negative_index == 2
    assert m.thresholds == [0.5, 0.7, None]
    assert m.hash8 == bytes.fromhex(m.sha256[:16])
    # the calibration corners force the converter to the front end's own quantisation
    assert m.input_quant == (pytest.approx(P.quant.scale), P.quant.zero_point)
    assert m.output_quant == (pytest.approx(1 / 256), -128)
    assert model.load(tiny_dir / "manifest.json").sha256 == m.sha256


def test_scores_equal_tflite_reference(tiny_dir):
    """TFLM (what the node runs) against TFLite's reference kernels, +-1 LSB."""
    m = model.load(tiny_dir)
    ref = tf.lite.Interpreter(
        model_path=str(tiny_dir / "model.tflite"),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    ref.allocate_tensors()
    feats = core.features(audio.load(params.ROOT / "tests" / "audio" / "gunshot_1.wav"))
    assert feats.shape[0] >= 2 * P.frames_per_window
    for start in range(0, feats.shape[0] - P.frames_per_window, 16):
        w = feats[start:start + P.frames_per_window]
        ref.set_tensor(ref.get_input_details()[0]["index"], w.reshape(1, P.frames_per_window, P.n_mels, 1))
        ref.invoke()
        want = ref.get_tensor(ref.get_output_details()[0]["index"]).reshape(-1).astype(np.int32)
        got = m.output_q(w).astype(np.int32)
        assert np.max(np.abs(got - want)) <= 1
        s = m.scores(w)
        assert s.dtype == np.uint8 and np.array_equal(s.astype(np.int32), got + 128)


def test_node_uses_model(tiny_dir):
    m = model.load(tiny_dir)
    x = audio.load(params.ROOT / "tests" / "audio" / "gunshot_1.wav")
    stream, _ = audio.with_lead_in(x)
    node = m.node(keep_features=True)
    node.process(stream)
    node.flush()
    assert node.windows, "the gate opened no analysis window on a gunshot"
    for f in node.features:
        assert np.array_equal(m.scores(f), m.classify(None, f))
    # the node reports only classes whose threshold is set
    assert all(e.class_index != m.negative_index for e in node.events)


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: (d / "manifest.json").unlink(), "no such file"),
    (lambda d: (d / "manifest.json").write_text("{"), "not a readable manifest"),
    (lambda d: _edit(d, schema_version=99), "schema 99"),
    (lambda d: _edit(d, feature_config_hash="00" * 32), "trained on features"),
    (lambda d: _edit(d, model_sha256="11" * 32), "SHA-256 differs"),
    (lambda d: (d / "model.tflite").unlink(), "cannot read the model file"),
])
def test_bad_models_are_refused(tiny_dir, tmp_path, mutate, reason):
    d = tmp_path / "m"
    d.mkdir()
    for f in tiny_dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    mutate(d)
    with pytest.raises(model.ModelError, match=reason):
        model.load(d)


def _edit(d, **kv):
    m = json.loads((d / "manifest.json").read_text())
    m.update(kv)
    (d / "manifest.json").write_text(json.dumps(m))
