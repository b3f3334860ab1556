"""tools/node/model.py: loading an exported model and running it with the TFLM interpreter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.tinymodel import build_tiny_model

from tools.node import audio, core, model, params

P = params.default()
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

LABELS = ["gunshot", "siren", "other"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(
        tmp_path_factory.mktemp("model"), labels=LABELS, threshold={"gunshot": 0.5, "siren": 0.7}
    )


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
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
    )
    ref.allocate_tensors()
    feats = core.features(audio.load(params.ROOT / "tests" / "audio" / "gunshot_1.wav"))
    assert feats.shape[0] >= 2 * P.frames_per_window
    for start in range(0, feats.shape[0] - P.frames_per_window, 16):
        w = feats[start : start + P.frames_per_window]
        ref.set_tensor(
            ref.get_input_details()[0]["index"], w.reshape(1, P.frames_per_window, P.n_mels, 1)
        )
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


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: (d / "manifest.json").unlink(), "no such file"),
        (lambda d: (d / "manifest.json").write_text("{"), "not a readable manifest"),
        (lambda d: _edit(d, schema_version=99), "schema 99"),
        (lambda d: _edit(d, feature_config_hash="00" * 32), "trained on features"),
        (lambda d: _edit(d, model_sha256="11" * 32), "SHA-256 differs"),
        (lambda d: (d / "model.tflite").unlink(), "cannot read the model file"),
    ],
)
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
