"""Training pipeline: tiny end-to-end run on the shipped clips (features from the C core ->
tiny CNN -> int8 -> parity -> export), consistency of the manifest and the generated C
(compiled with gcc/g++), determinism of the generator, augmentation and bad input.
No ../shared dependency; one small model trained once per module."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("tensorflow", reason="training needs the [train] extra (tensorflow-cpu)")
pytest.importorskip("tflite_micro", reason="training needs the [train] extra (tflite-micro)")

from tools.node import audio, core, params  # noqa: E402
from training import augment, data, export, features, quantize  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.recipe import Recipe, RecipeError  # noqa: E402

ROOT = params.ROOT
AUDIO = ROOT / "tests" / "audio"
MANIFEST = AUDIO / "manifest.csv"
P = params.default()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
# the tiny model of these tests: val fold 4 sets the thresholds (held back), 2 epochs, width 8
TINY = Recipe(
    arch="ds_cnn", seed=1, val_fold=4, epochs=2, train_on_val=False, max_int8_drop=1.0, width=8
)


@pytest.fixture(scope="module")
def rows():
    return data.read_csv(MANIFEST)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, rows):
    """One tiny model trained on the shipped clips and exported (val fold 4: thresholds)."""
    from training import pipeline

    out = tmp_path_factory.mktemp("model")
    cache = tmp_path_factory.mktemp("cache")
    res = pipeline.fit_and_export(
        rows,
        AUDIO,
        out,
        TINY,
        name="test-tiny",
        created_by="pytest",
        cache_dir=cache,
        progress=False,
        log=lambda m: None,
    )
    return out, res


# ---- data --------------------------------------------------------------------------------------


def test_read_csv_and_class_map(rows):
    assert len(rows) == 12 and {r.fold for r in rows} <= {1, 2, 3, 4, 5}
    cm = data.ClassMap.default()
    assert cm.labels[-1] == "other" and cm.n_classes == 8
    assert cm.index("gunshot") == 0 and cm.index("background") == cm.negative_index
    assert cm.index("door_slam") == cm.negative_index
    cm2 = data.ClassMap.parse("gunshot,siren=siren+alarm")
    assert cm2.labels == ["gunshot", "siren", "other"] and cm2.index("alarm") == 1
    with pytest.raises(data.DataError):
        data.ClassMap.parse("gunshot,other")


def test_csv_without_path_column(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("file,label\na.wav,gunshot\n")
    with pytest.raises(data.DataError, match="no path column"):
        data.read_csv(p)


def test_bad_clips_skipped_or_strict(tmp_path, rows):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    shutil.copy(AUDIO / rows[0].path, tmp_path / "ok.wav")
    bad = [
        data.Row("ok.wav", "gunshot", 1),
        data.Row("missing.wav", "gunshot", 1),
        data.Row("corrupt.wav", "siren", 2),
    ]
    msgs = []
    clips, problems = data.load_clips(bad, tmp_path, log=msgs.append)
    assert [c.row.path for c in clips] == ["ok.wav"]
    assert len(problems) == 2 and any("missing.wav" in m and "no such file" in m for m in msgs)
    assert any("corrupt.wav" in m for m in msgs)
    with pytest.raises(data.DataError, match="missing.wav"):
        data.load_clips(bad, tmp_path, strict=True, log=msgs.append)


# ---- augmentation and features ------------------------------------------------------------------


def test_augmentation_is_deterministic():
    ev = audio.load(AUDIO / "gunshot_1.wav")
    bg = audio.load(AUDIO / "background_rain_1.wav")
    cfg = augment.AugmentConfig()
    a = augment.mix(ev, bg, augment.rng_for(3, "clip"), cfg)
    b = augment.mix(ev, bg, augment.rng_for(3, "clip"), cfg)
    c = augment.mix(ev, bg, augment.rng_for(4, "clip"), cfg)
    assert np.array_equal(a[0], b[0]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    # the SNR is what was asked for: event vs background over the event's loudest second
    stream, part, start = augment.mix(ev, bg, augment.rng_for(0, "x"), cfg, snr_db=6.0)
    bgpart = stream.astype(float) - part
    pe = augment.active_power(part[start : start + ev.size])
    pb = float(np.mean(bgpart**2))
    assert abs(10 * np.log10(pe / pb) - 6.0) < 0.5
    assert stream.dtype == np.int16


def test_training_windows_are_the_nodes_windows():
    """Windows sliced from tools.node.core.features equal the features the node hands its classifier."""
    x = audio.load(AUDIO / "gunshot_2.wav")
    stream, _ = features.eval_stream(x)
    node = core.Node(keep_features=True)
    node.process(stream)
    node.flush()
    F = core.features(stream)
    assert node.windows, "the gate opened no window on a gunshot"
    assert features.node_windows(stream) == [w.start_sample // core.HOP for w in node.windows]
    for w, f in zip(node.windows, node.features):
        assert w.start_sample % core.HOP == 0
        j = w.start_sample // core.HOP
        assert np.array_equal(F[j : j + features.FRAMES], f)


def test_window_labels_from_event_energy():
    ev = np.zeros(16000 * 4)
    ev[32000 : 32000 + 1600] = 10000.0  # a 0.1 s burst at 2 s
    energy = features.event_window_energy(ev, 240)
    lab = dict(features.label_windows([0, 120, 126, 180], energy, cls=0, neg=7))
    assert lab[120] == 0 and lab[0] == 7 and lab[180] == 7
    assert features.label_windows([5], None, 3, 7) == [(5, 7)]


def test_features_cache_and_kinds(tmp_path, rows):
    cm = data.ClassMap.default()
    sub = [r for r in rows if r.label in ("gunshot", "background", "other")]
    a = features.load_or_build(
        sub, AUDIO, cm, seed=0, cache_dir=tmp_path, progress=False, log=lambda m: None
    )
    assert list(tmp_path.glob("features-*.npz"))
    b = features.load_or_build(
        sub, AUDIO, cm, seed=0, cache_dir=tmp_path, progress=False, log=lambda m: None
    )
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert a.X.dtype == np.int8 and a.X.shape[1:] == (64, 40)
    assert set(np.unique(a.y)) <= {0, cm.negative_index} and (a.y == 0).any()
    assert (a.kind == features.KIND_MIX).any() and (a.kind == features.KIND_CONTINUOUS).any()
    # the float model input is (q - zero_point) * scale
    f = features.to_float(np.array([[[-128, 127]]], np.int8))
    assert f[0, 0, 0, 0] == 0.0 and f[0, 0, 1, 0] == pytest.approx(191.25)


# ---- end to end ----------------------------------------------------------------------------------


def test_export_manifest(exported):
    out, res = exported
    m = json.loads((out / "manifest.json").read_text())
    blob = (out / "model.tflite").read_bytes()
    assert (
        m["schema_version"] == 1 and m["labels"][-1] == "other" and m["negative_label"] == "other"
    )
    assert m["model_sha256"] == hashlib.sha256(blob).hexdigest() and m["model_bytes"] == len(blob)
    assert m["input"] == {
        "shape": [1, 64, 40, 1],
        "dtype": "int8",
        "scale": P.quant.scale,
        "zero_point": P.quant.zero_point,
    }
    assert m["output"] == {"shape": [1, 8], "dtype": "int8", "scale": 1 / 256, "zero_point": -128}
    assert m["feature_config_hash"] == P.feature_hash and m["core_config_hash"] == P.config_hash
    assert m["min_firmware_version"] == "0.2.0"
    b = quantize.NODE_BUDGET
    assert (
        0 < m["arena_bytes"] <= b["arena_bytes"]
        and len(blob) <= b["model_bytes"]
        and 0 < m["macs"] <= b["macs"]
    )
    assert "CONV_2D" in m["ops"] and "SOFTMAX" in m["ops"]
    assert m["thresholds"]["other"] is None
    assert all(0.5 <= m["thresholds"][lab] < 1.0 for lab in m["labels"][:-1])
    tr = m["training"]
    assert tr["parity"]["mismatches"] == 0 and tr["parity"]["windows"] > 0
    assert "macro_f1_drop" in tr["int8"]
    assert (tr["data"]["max_per_class"], tr["data"]["max_negatives"]) == (
        4000,
        8000,
    )  # the recipe's caps
    assert (
        tr["recipe"] == TINY.to_json()
        and tr["budget"]["arena_bytes"][1] == quantize.NODE_BUDGET["arena_bytes"]
    )


def test_parity_ref_vs_tflm(exported, rows):
    out, _ = exported
    blob = (out / "model.tflite").read_bytes()
    X = np.concatenate(
        [
            core.features(features.eval_stream(audio.load(AUDIO / r.path))[0])[:64][None]
            for r in rows
        ]
    )
    rng = np.random.default_rng(0)
    X = np.concatenate([X, rng.integers(-128, 128, (8, 64, 40), dtype=np.int8)])
    p = quantize.parity(blob, X)
    assert p["windows"] == len(X) and p["mismatches"] == 0 and p["max_abs_diff_lsb"] <= 1


def test_tools_model_loads_export(exported):
    from tools.node import model

    out, _ = exported
    m = model.load(out)
    x = core.features(audio.load(AUDIO / "siren_1.wav"))[:64]
    s = m.scores(x)
    assert s.shape == (8,) and s.dtype == np.uint8 and abs(int(s.sum()) - 256) <= 8
    ref = quantize.run_ref(m.blob, x[None])[0].astype(int) + 128
    assert np.max(np.abs(ref - s.astype(int))) <= 1


def test_input_quant_check_fails_on_mismatch():
    info = {
        "input": {"shape": [1, 64, 40, 1], "dtype": "int8", "scale": 0.8, "zero_point": -128},
        "output": {"shape": [1, 8], "dtype": "int8", "scale": 1 / 256, "zero_point": -128},
    }
    with pytest.raises(quantize.ExportError, match="input quantisation"):
        quantize.check_quant(info)
    info["input"]["scale"] = 0.75
    quantize.check_quant(info)
    info["output"]["zero_point"] = 0
    with pytest.raises(quantize.ExportError, match="output quantisation"):
        quantize.check_quant(info)


def test_generated_c_is_deterministic_and_checked(exported, tmp_path):
    out, _ = exported
    before = {n: (out / n).read_bytes() for n in export.C_FILES}
    d = tmp_path / "copy"
    shutil.copytree(out, d)
    export.generate(d)
    assert {n: (d / n).read_bytes() for n in export.C_FILES} == before
    assert export.check(d) == []
    assert main(["export", "--model-dir", str(d), "--check", "--no-arena"]) == 0
    text = (d / "ew_model.h").read_text()
    assert "generated — do not edit" in text and str(tmp_path) not in text
    (d / "ew_model.h").write_text(text.replace("EW_MODEL_N_CLASSES 8", "EW_MODEL_N_CLASSES 9"))
    assert any("ew_model.h" in p for p in export.check(d, measure_arena=False))
    assert main(["export", "--model-dir", str(d), "--check", "--no-arena"]) == 1
    assert main(["export", "--model-dir", str(d)]) == 0
    assert (d / "ew_model.h").read_bytes() == before["ew_model.h"]
    m = json.loads((d / "manifest.json").read_text())
    m["macs"] += 1
    (d / "manifest.json").write_text(json.dumps(m))
    assert any("macs" in p for p in export.check(d, measure_arena=False))


C_TEST = r"""
#include <stdio.h>
#include <stdint.h>
#include "ew_model.h"
#if EW_MODEL_SCHEMA_VERSION != 1
#error schema
#endif
static const char *labels[] = EW_MODEL_LABELS;
static const unsigned short thr[] = EW_MODEL_THRESHOLDS_Q8;
static const unsigned char hash8[] = EW_MODEL_HASH8;
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "wb");
    fwrite(ew_model_tflite, 1, ew_model_tflite_len, f);
    fclose(f);
    printf("aligned %d\n", (int)(((uintptr_t)ew_model_tflite) % 16 == 0));
    printf("n %d neg %d frames %d bands %d arena %d\n", EW_MODEL_N_CLASSES, EW_MODEL_NEGATIVE_INDEX,
           EW_MODEL_INPUT_FRAMES, EW_MODEL_INPUT_BANDS, EW_MODEL_ARENA_BYTES);
    printf("in %g %d out %g %d\n", (double)EW_MODEL_INPUT_SCALE, EW_MODEL_INPUT_ZERO_POINT,
           (double)EW_MODEL_OUTPUT_SCALE, EW_MODEL_OUTPUT_ZERO_POINT);
    for (int i = 0; i < EW_MODEL_N_CLASSES; i++) printf("label %s %u\n", labels[i], thr[i]);
    printf("hash8 "); for (int i = 0; i < 8; i++) printf("%02x", hash8[i]); printf("\n");
    printf("sha %s\nfw %d.%d.%d\n", EW_MODEL_SHA256_STR, EW_MODEL_MIN_FW_VERSION_MAJOR,
           EW_MODEL_MIN_FW_VERSION_MINOR, EW_MODEL_MIN_FW_VERSION_PATCH);
    return 0;
}
"""

CXX_TEST = r"""
#include <cstdio>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
struct R {
    int n = 0;
#define OP(name) TfLiteStatus name() { n++; std::printf(#name "\n"); return kTfLiteOk; }
    OP(AddAdd) OP(AddAveragePool2D) OP(AddConcatenation) OP(AddConv2D) OP(AddDepthwiseConv2D)
    OP(AddDequantize) OP(AddFullyConnected) OP(AddLogistic) OP(AddMaxPool2D) OP(AddMean) OP(AddMul)
    OP(AddPack) OP(AddQuantize) OP(AddRelu) OP(AddRelu6) OP(AddReshape) OP(AddSoftmax) OP(AddSplit)
    OP(AddSplitV) OP(AddSqueeze) OP(AddStridedSlice) OP(AddSub) OP(AddTanh) OP(AddUnpack)
    OP(AddTranspose) OP(AddPad) OP(AddHardSwish) OP(AddUnidirectionalSequenceLSTM)
};
#include "ew_model_ops.h"
int main() { R r; bool ok = ew_model_register_ops(r); std::printf("ok %d n %d count %d\n", ok, r.n, EW_MODEL_OP_COUNT); return 0; }
"""


@pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("g++") is None, reason="needs gcc and g++"
)
def test_generated_c_compiles_and_matches_manifest(exported, tmp_path):
    out, _ = exported
    m = json.loads((out / "manifest.json").read_text())
    (tmp_path / "t.c").write_text(C_TEST)
    exe = tmp_path / "t"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-Wall",
            "-Werror",
            "-I",
            str(out),
            str(tmp_path / "t.c"),
            str(out / "ew_model_data.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    dump = tmp_path / "dump.bin"
    txt = subprocess.run([str(exe), str(dump)], check=True, capture_output=True, text=True).stdout
    assert dump.read_bytes() == (out / "model.tflite").read_bytes()
    assert "aligned 1" in txt
    assert f"n {len(m['labels'])} neg {m['labels'].index('other')} frames 64 bands 40" in txt
    assert "in 0.75 -128 out 0.00390625 -128" in txt
    for lab in m["labels"]:
        t = m["thresholds"][lab]
        want = 256 if t is None else round(t * 256)
        assert f"label {lab} {want}\n" in txt
    assert f"hash8 {m['model_sha256'][:16]}" in txt and f"sha {m['model_sha256']}" in txt
    assert "fw 0.2.0" in txt
    arena = int(re.search(r"arena (\d+)", txt).group(1))
    assert arena >= m["arena_bytes"] and arena % 1024 == 0
    (tmp_path / "o.cc").write_text(CXX_TEST)
    subprocess.run(
        [
            "g++",
            "-std=c++14",
            "-Wall",
            "-Werror",
            "-I",
            str(out),
            str(tmp_path / "o.cc"),
            "-o",
            str(tmp_path / "o"),
        ],
        check=True,
    )
    txt = subprocess.run([str(tmp_path / "o")], check=True, capture_output=True, text=True).stdout
    assert f"ok 1 n {len(m['ops'])} count {len(m['ops'])}" in txt
    assert {export.OP_METHODS[o] for o in m["ops"]} == set(txt.split("\n")[:-2])


# ---- CLI bad input ------------------------------------------------------------------------------


def test_cli_bad_input(tmp_path, capsys):
    assert main(["features", "--csv", str(tmp_path / "none.csv"), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    p = tmp_path / "nopath.csv"
    p.write_text("file,label\na.wav,gunshot\n")
    assert main(["features", "--csv", str(p), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no path column" in err[0]
    p = tmp_path / "missing.csv"
    p.write_text("path,label\nmissing.wav,gunshot\n")
    assert (
        main(
            [
                "features",
                "--csv",
                str(p),
                "--root",
                str(tmp_path),
                "--strict",
                "--no-cache",
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.wav" in err[0]
    assert main(["export", "--model-dir", str(tmp_path), "--check"]) == 1
    assert "needs manifest.json" in capsys.readouterr().err
    for opt in ("--fa-per-hour", "--negatives-fa-per-hour"):  # a negative budget no threshold meets
        assert (
            main(
                [
                    "train",
                    "--csv",
                    str(p),
                    "--root",
                    str(tmp_path),
                    "--out",
                    str(tmp_path / "o"),
                    opt,
                    "-1",
                ]
            )
            == 2
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and opt in err[0] and "0 or more" in err[0]
    for opt in ("--mixup", "--freq-shift"):  # training settings: 0 is off
        assert (
            main(
                [
                    "crossval",
                    "--csv",
                    str(p),
                    "--root",
                    str(tmp_path),
                    "--json",
                    str(tmp_path / "x.json"),
                    opt,
                    "-1",
                ]
            )
            == 2
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and opt in err[0] and "0 (off) or more" in err[0]


# ---- crossval bookkeeping and bench (no training) ---------------------------------------------


def _fold(f1s, support, fa=1.0):
    pc = {
        c: {"precision": f, "recall": f, "f1": f, "support": n}
        for c, f, n in zip("abc", f1s, support)
    }
    part = {"macro_f1": float(np.mean(f1s)), "accuracy": 0.9, "per_class": pc}
    return {
        "node": dict(part),
        "classifier": dict(part),
        "false_alarms_per_hour": fa,
        "model_bytes": 100,
        "arena_bytes": 10,
        "macs": 5,
        "int8_macro_f1_drop": 0.01,
        "parity_mismatches": 0,
        "train_seconds": 1.0,
    }


def test_crossval_summary_mean_std():
    from training import crossval

    folds = [_fold([0.8, 0.6, 0.0], [5, 5, 0], fa=2.0), _fold([0.6, 0.8, 1.0], [5, 5, 3], fa=4.0)]
    s = crossval.summarize(folds, ["a", "b", "c"])
    assert s["node"]["macro_f1"]["mean"] == pytest.approx(
        (np.mean([0.8, 0.6, 0.0]) + 0.8) / 2, abs=1e-4
    )
    # classes without clips in a fold are left out of the supported mean and of per-class means
    assert s["node"]["macro_f1_supported"]["mean"] == pytest.approx(0.75, abs=1e-4)
    assert s["node"]["per_class"]["c"]["f1"] == {"mean": 1.0, "std": 0.0, "n": 1}
    assert s["node"]["per_class"]["a"]["f1"]["std"] == pytest.approx(0.1, abs=1e-4)
    assert s["false_alarms_per_hour"]["mean"] == 3.0
    assert (
        crossval.val_fold_for(5, [1, 2, 3, 4, 5]) == 1
        and crossval.val_fold_for(2, [1, 2, 3, 4, 5]) == 3
    )
    assert "node_room" not in s


def test_crossval_summary_of_the_room_evaluation():
    from training import crossval

    folds = [_fold([0.8, 0.6, 0.0], [5, 5, 0]), _fold([0.6, 0.8, 1.0], [5, 5, 3])]
    for f, room in zip(folds, ([0.9, 0.7, 0.0], [0.7, 0.9, 1.0])):
        f["node_room"] = _fold(room, [5, 5, int(room[2] > 0) * 3])["node"]
    s = crossval.summarize(folds, ["a", "b", "c"])
    assert s["node_room"]["macro_f1"]["mean"] == pytest.approx(
        (np.mean([0.9, 0.7, 0.0]) + np.mean([0.7, 0.9, 1.0])) / 2, abs=1e-4
    )
    assert s["gunshot_recall_node_room"] is None  # no class "gunshot" here
    assert s["node"]["macro_f1"]["mean"] < s["node_room"]["macro_f1"]["mean"]
    from training import report

    md = report.crossval_markdown(
        {
            "room_below_peak_db": 20,
            "classes": ["a", "b", "c"],
            "archs": {"ds_cnn": {"summary": s, "folds": folds}},
        }
    )
    # room: macro-F1 0.533 / 0.867 (0.8 / 0.867 over classes with clips: c has none in fold 1)
    assert "| ds_cnn node (int8), room 20 dB below the peak | 0.700 ± 0.167 | 0.833 ± 0.033 |" in md
    assert "| a | 0.70 ± 0.10 (–) | 0.70 ± 0.10 (–) | 0.80 ± 0.10 (–) |" in md  # P, R, R (room)
    assert "gate_ceiling" not in s and "ceiling" not in crossval.summary_text(
        {"archs": {"ds_cnn": {"summary": s}}}
    )


def test_crossval_summary_of_the_gate_ceiling():
    """Fold records with `gate_ceiling` (training.evaluate) get a summary of it like the node's;
    without it in every fold, none (old runs)."""
    from training import crossval

    folds = [_fold([0.8, 0.6, 0.0], [5, 5, 0]), _fold([0.6, 0.8, 1.0], [5, 5, 3])]
    for f, ceil in zip(folds, ([1.0, 0.9, 0.0], [0.9, 1.0, 1.0])):
        f["gate_ceiling"] = _fold(ceil, [5, 5, int(ceil[2] > 0) * 3])["node"]
    s = crossval.summarize(folds, ["a", "b", "c"])
    assert s["gate_ceiling"]["macro_f1"]["mean"] == pytest.approx(
        (np.mean([1.0, 0.9, 0.0]) + np.mean([0.9, 1.0, 1.0])) / 2, abs=1e-4
    )
    assert s["gate_ceiling"]["per_class"]["a"]["f1"]["mean"] == pytest.approx(0.95)
    assert "a perfect model behind the gate would score 0.800 ± 0.167" in crossval.summary_text(
        {"archs": {"ds_cnn": {"summary": s}}}
    )
    del folds[1]["gate_ceiling"]
    assert "gate_ceiling" not in crossval.summarize(folds, ["a", "b", "c"])


def test_crossval_cli_passes_the_window_caps(monkeypatch, tmp_path):
    """crossval's --max-per-class / --max-negatives reach crossval.run as train/ship pass them to
    fit_and_export: the number, or None for 0 (all windows)."""
    from training import crossval

    seen = []
    monkeypatch.setattr(crossval, "run", lambda *a, **kw: seen.append(a[3]) or {"archs": {}})
    cmd = [
        "crossval",
        "--csv",
        str(AUDIO / "manifest.csv"),
        "--root",
        str(AUDIO),
        "--json",
        str(tmp_path / "o.json"),
    ]
    assert main(cmd) == 0
    assert main(cmd + ["--max-negatives", "0", "--max-per-class", "0"]) == 0
    assert main(cmd + ["--max-negatives", "100"]) == 0
    assert [(r.max_per_class, r.max_negatives) for r in seen] == [
        (Recipe.max_per_class, Recipe.max_negatives),
        (None, None),
        (Recipe.max_per_class, 100),
    ]
    assert (tmp_path / "o.md").read_text().startswith("# Cross-validation")  # the report beside it


def test_crossval_needs_folds(tmp_path, capsys):
    p = tmp_path / "nofold.csv"
    p.write_text("path,label\ngunshot_1.wav,gunshot\n")
    assert (
        main(
            ["crossval", "--csv", str(p), "--root", str(AUDIO), "--json", str(tmp_path / "o.json")]
        )
        == 2
    )
    assert "fold" in capsys.readouterr().err


def test_bench_reads_artefacts(exported, tmp_path):
    from training import bench

    out, _ = exported
    m = json.loads((out / "manifest.json").read_text())
    b = bench.bench(out)
    assert b["model_flash_bytes"] == m["model_bytes"] and b["model_arena_bytes"] == m["arena_bytes"]
    assert b["model_macs"] == m["macs"] and b["tflm_parity_mismatches"] == 0
    assert b["crossval_node_macro_f1"] is None
    cv = {
        "archs": {
            "ds_cnn": {
                "summary": {
                    "node": {"macro_f1": {"mean": 0.5, "std": 0.1}},
                    "gunshot_recall_node": {"mean": 0.9},
                }
            }
        }
    }
    d = tmp_path / "m"
    shutil.copytree(out, d)
    (d / "crossval.json").write_text(json.dumps(cv))
    assert bench.bench(d)["crossval_node_macro_f1"] == 0.5
    assert "crossval_node_macro_f1_room" not in bench.bench(d)
    cv["archs"]["ds_cnn"]["summary"]["node_room"] = {"macro_f1": {"mean": 0.7, "std": 0.05}}
    cv["archs"]["ds_cnn"]["summary"]["gunshot_recall_node_room"] = {"mean": 0.95}
    (d / "crossval.json").write_text(json.dumps(cv))
    b = bench.bench(d)
    assert (
        b["crossval_node_macro_f1_room"] == 0.7 and b["crossval_node_gunshot_recall_room"] == 0.95
    )
    assert "crossval_gate_ceiling_macro_f1" not in b
    cv["archs"]["ds_cnn"]["summary"]["gate_ceiling"] = {
        "macro_f1": {"mean": 0.93, "std": 0.02},
        "pooled": {"macro_f1": 0.94},
    }
    (d / "crossval.json").write_text(json.dumps(cv))
    b = bench.bench(d)
    assert (
        b["crossval_gate_ceiling_macro_f1"] == 0.93
        and b["crossval_gate_ceiling_macro_f1_pooled"] == 0.94
    )


@pytest.mark.skipif(
    not (ROOT / "firmware" / "model" / "manifest.json").exists(), reason="no shipped model"
)
def test_shipped_model_is_consistent():
    """firmware/model: the manifest describes model.tflite (hash, size, ops, MACs, quantisation,
    re-measured arena) and the committed C is byte-identical to what the generator writes."""
    d = ROOT / "firmware" / "model"
    assert export.check(d) == []
    m = json.loads((d / "manifest.json").read_text())
    b = quantize.NODE_BUDGET
    assert (
        m["model_bytes"] <= b["model_bytes"]
        and m["arena_bytes"] <= b["arena_bytes"]
        and m["macs"] <= b["macs"]
    )
    assert m["labels"] == data.ClassMap.default().labels


def test_mixup_blends_windows_labels_and_weights():
    """The training pipeline's mixup: each window is a convex blend of itself and one partner
    of its batch, with the same blend of one-hot labels and class weights; mixup 0 gives the
    windows, one-hot labels and class weights unchanged."""
    from training import train

    train.tf_setup(seed=3)
    rng = np.random.default_rng(0)
    n, k = 96, 3
    X = np.full((n, 64, 40), -128, np.int8)
    y = rng.integers(0, k, n)
    for i in range(n):  # window i: every cell at level 10 + i (distinct)
        X[i] = np.int8(-128 + 10 + i)
    ws = features.WindowSet(X, y, np.zeros(n, np.int64), np.zeros(n, np.int8), [], ["a", "b", "c"])
    w = {0: 0.5, 1: 1.0, 2: 2.0}
    scale = float(P.quant.scale)
    lv = (10 + np.arange(n)) * scale  # each window's level in dB
    for alpha in (0.0, 0.4):
        f, yh, sw = (
            np.concatenate(a)
            for a in zip(
                *(
                    (b[0].numpy(), b[1].numpy(), b[2].numpy())
                    for b in train._dataset(ws, 32, False, 0, 0.0, k, w, mixup=alpha)
                )
            )
        )
        assert f.shape == (n, 64, 40, 1) and yh.shape == (n, k)
        np.testing.assert_allclose(yh.sum(1), 1.0, atol=1e-5)
        cell = f[:, 0, 0, 0]
        assert np.allclose(
            f, cell[:, None, None, None], atol=1e-4
        )  # a blend of flat windows is flat
        if alpha == 0:
            np.testing.assert_allclose(cell, lv, atol=1e-4)
            np.testing.assert_array_equal(yh.argmax(1), y)
            np.testing.assert_allclose(sw, [w[c] for c in y])
            continue
        mixed = 0
        for i in range(n):
            b0 = (i // 32) * 32
            # partner j in the same batch with cell = lam*lv[i] + (1-lam)*lv[j], labels the same blend
            lam = None
            for j in range(b0, b0 + 32):
                if j == i:
                    continue
                den = lv[i] - lv[j]
                cand = (cell[i] - lv[j]) / den
                if -1e-4 <= cand <= 1 + 1e-4:
                    ref = cand * np.eye(k)[y[i]] + (1 - cand) * np.eye(k)[y[j]]
                    if (
                        np.allclose(yh[i], ref, atol=1e-3)
                        and abs(sw[i] - (cand * w[y[i]] + (1 - cand) * w[y[j]])) < 1e-3
                    ):
                        lam = cand
                        break
            assert lam is not None or abs(cell[i] - lv[i]) < 1e-3, i
            mixed += lam is not None and 0.02 < lam < 0.98
        assert mixed > n // 4  # Beta(0.4, 0.4) puts most blends away from the ends


def test_training_is_reproducible(exported, rows, tmp_path):
    """Same data, seed and settings (features recomputed from scratch) -> the same .tflite."""
    from training import pipeline

    out, res = exported
    again = pipeline.fit_and_export(
        rows,
        AUDIO,
        tmp_path / "m",
        TINY,
        name="test-tiny",
        created_by="pytest",
        cache_dir=tmp_path / "cache",
        progress=False,
        log=lambda m: None,
    )
    assert again["manifest"]["model_sha256"] == res["manifest"]["model_sha256"]
    assert (tmp_path / "m" / "ew_model_data.c").read_bytes() == (
        out / "ew_model_data.c"
    ).read_bytes()


def test_frequency_shift():
    """Training-time augmentation of the dB windows: a frequency shift moves every window by
    one whole number of mel bands in -k..k (edge bands repeated); off leaves the windows as
    they were."""
    from training import train

    tf = train.tf_setup(seed=1)
    rng = np.random.default_rng(0)
    n, T, F = 64, 64, 40
    x = rng.uniform(10, 90, (n, T, F)).astype(np.float32)
    f = tf.constant(x)
    k = 2
    s = train._freq_shift(tf, f, 0, k).numpy()
    shifts = []
    for i in range(n):
        match = [
            d
            for d in range(-k, k + 1)
            if np.array_equal(s[i], x[i][:, np.clip(np.arange(F) - d, 0, F - 1)])
        ]
        assert len(match) == 1, i
        shifts.append(match[0])
    assert set(shifts) == set(range(-k, k + 1))  # every shift occurs
    ws = features.WindowSet(
        np.full((8, T, F), -100, np.int8),
        np.zeros(8, np.int64),
        np.zeros(8, np.int64),
        np.zeros(8, np.int8),
        [],
        ["a", "b"],
    )
    plain = np.concatenate([b[0].numpy() for b in train._dataset(ws, 4, False, 0, 0.0, 2)])
    np.testing.assert_allclose(plain[..., 0], (-100 - P.quant.zero_point) * P.quant.scale)


def test_recipe_options_reach_the_recipe():
    """train/ship/crossval's options become one Recipe: given options override its defaults,
    the others keep them; 0 windows (all) and val fold -1 (none) become None."""
    from training.__main__ import _parser, _recipe

    for cmd in (
        ["train", "--csv", "c", "--root", "r", "--out", "o"],
        ["ship"],
        ["crossval", "--csv", "c", "--root", "r", "--json", "j"],
    ):
        args = _parser().parse_args(cmd + ["--freq-shift", "4", "--mixup", "0"])
        assert _recipe(args) == Recipe(mixup=0.0, freq_shift=4)
        assert _recipe(_parser().parse_args(cmd)) == Recipe()
        assert _parser().parse_args(cmd).aligned_negatives_first  # the recipe's default
        assert (
            not _parser().parse_args(cmd + ["--no-aligned-negatives-first"]).aligned_negatives_first
        )
        assert _parser().parse_args(cmd + ["--aligned-negatives-first"]).aligned_negatives_first
        assert _parser().parse_args(cmd).train_on_val == Recipe.train_on_val is True  # the recipe
        assert not _parser().parse_args(cmd + ["--no-train-on-val"]).train_on_val
        a = _parser().parse_args(cmd)
        assert (
            (a.max_per_class, a.max_negatives)
            == (Recipe.max_per_class, Recipe.max_negatives)
            == (4000, 8000)
        )
        assert _parser().parse_args(cmd + ["--max-negatives", "0"]).max_negatives == 0  # 0 = all
        assert _recipe(_parser().parse_args(cmd + ["--max-negatives", "0"])).max_negatives is None
        assert not _recipe(_parser().parse_args(cmd + ["--no-augment"])).augment_data
    args = _parser().parse_args(
        [
            "train",
            "--csv",
            "c",
            "--root",
            "r",
            "--out",
            "o",
            "--val-fold",
            "-1",
            "--no-budget",
            "--arch",
            "crnn",
        ]
    )
    assert _recipe(args) == Recipe(val_fold=None, enforce_budget=False, arch="crnn")


def test_recipe_validation_names_the_bad_setting():
    """Recipe refuses a bad setting with one RecipeError naming it (also after replace)."""
    import dataclasses

    for kw, setting in (
        ({"mixup": -0.1}, "mixup"),
        ({"fa_per_hour": -1}, "fa_per_hour"),
        ({"arch": "mlp"}, "arch"),
        ({"epochs": 0}, "epochs"),
        ({"max_negatives": 0}, "max_negatives"),
        ({"fa_streams": "all"}, "fa_streams"),
        ({"test_fold": 2}, "test_fold"),
    ):
        with pytest.raises(RecipeError) as e:
            Recipe(**kw)
        assert e.value.setting == setting and str(e.value).startswith(setting + " must")
    with pytest.raises(RecipeError):
        dataclasses.replace(Recipe(), freq_shift=-1)
    assert (
        Recipe().to_json() == dataclasses.asdict(Recipe())
        and Recipe().to_json()["max_negatives"] == 8000
    )


def test_node_budget_is_the_documented_one():
    assert quantize.NODE_BUDGET == {"model_bytes": 65536, "arena_bytes": 49152, "macs": 3_000_000}
    assert quantize.budget_text() == "64 KB flatbuffer, 48 KB arena, 3 M MACs"
    assert quantize.check_budget(65536, 49152, 3_000_000)["macs"] == [3_000_000, 3_000_000]
    with pytest.raises(quantize.ExportError, match="arena_bytes 49153 > 49152"):
        quantize.check_budget(100, 49153, 5)
    assert quantize.check_budget(100, 49153, 5, enforce=False)["arena_bytes"] == [49153, 49152]


def test_cap_per_class_can_fill_the_negative_class_with_gate_aligned_windows_first():
    """--max-per-class keeps a seeded uniform subset of each big class; with
    --aligned-negatives-first the negative class (last label) takes every window the gate placed
    before any continuous (fixed-stride) one, while target classes stay uniform."""
    from training import train

    K = features.KIND_CONTINUOUS
    y = np.array([0] * 50 + [1] * 100)
    kind = np.array(
        [K] * 25
        + [features.KIND_PLAIN] * 25
        + [K] * 70
        + [features.KIND_PLAIN] * 20
        + [features.KIND_MIX] * 10,
        np.int8,
    )
    n = len(y)
    ws = features.WindowSet(np.zeros((n, 1, 1), np.int8), y, np.arange(n), kind, [], ["a", "other"])
    for prefer in (False, True):
        t = train.cap_per_class(ws, 40, seed=3, prefer_aligned=prefer)
        assert t.counts() == {"a": 40, "other": 40}
        neg_aligned = int(np.sum((t.y == 1) & (t.kind != K)))
        if prefer:
            assert neg_aligned == 30  # all 30 gate-aligned negatives, then 10 continuous
        else:
            assert neg_aligned < 30  # a uniform subset: 40 of 100, ~12 of them aligned
        assert 0 < np.sum((t.y == 0) & (t.kind == K)) < 40  # the target class: uniform either way
    again = train.cap_per_class(ws, 40, seed=3, prefer_aligned=False)
    np.testing.assert_array_equal(
        again.clip, train.cap_per_class(ws, 40, seed=3).clip
    )  # default: off
    small = train.cap_per_class(ws, 20, seed=3, prefer_aligned=True)
    assert np.all(small.kind[small.y == 1] != K)  # more aligned negatives than room: aligned only


def test_cap_per_class_caps_the_negative_class_on_its_own():
    """--max-negatives: the negative class (last label) has its own cap; the target classes'
    subsets do not change with it (one generator, classes drawn in label order); None = no cap."""
    from training import train

    y = np.array([0] * 50 + [1] * 30 + [2] * 100)
    n = len(y)
    ws = features.WindowSet(
        np.zeros((n, 1, 1), np.int8),
        y,
        np.arange(n),
        np.full(n, features.KIND_PLAIN, np.int8),
        [],
        ["a", "b", "other"],
    )
    same = train.cap_per_class(ws, 20, seed=5)
    assert same.counts() == {"a": 20, "b": 20, "other": 20}  # default: the same cap
    more = train.cap_per_class(ws, 20, seed=5, n_negative=60)
    assert more.counts() == {"a": 20, "b": 20, "other": 60}
    np.testing.assert_array_equal(more.clip[more.y < 2], same.clip[same.y < 2])
    assert train.cap_per_class(ws, 20, seed=5, n_negative=None).counts() == {
        "a": 20,
        "b": 20,
        "other": 100,
    }
    assert train.cap_per_class(ws, None, seed=5, n_negative=40).counts() == {
        "a": 50,
        "b": 30,
        "other": 40,
    }


def test_thresholds_hold_the_background_and_the_negatives_budget_together():
    """choose_thresholds: the lowest threshold (>= 0.5) whose events on the validation
    background stay within fa_per_hour / n_targets per hour, and, with negatives_fa_per_hour,
    whose events on every non-target clip stay within that budget as well, unless the
    threshold is already at negatives_max_threshold; each window far enough from the next to
    be its own event (holdoff merging is the node's)."""
    from training import thresholds

    cmap = data.ClassMap.default()
    n, gap = cmap.n_classes, 10 * P.sample_rate_hz

    def clip(label, gunshot_scores, seconds=3600.0):
        s = np.zeros((len(gunshot_scores), n), np.int32)
        s[:, 0] = gunshot_scores
        return {
            "label": label,
            "seconds": seconds,
            "starts": [i * gap for i in range(len(s))],
            "scores": s,
        }

    scored = [
        clip("background", [140, 150]),  # 1 h of ambience
        clip("speech", [200, 210, 220, 230]),  # 1 h of a hard negative
        clip("gunshot", [240], seconds=5.0),
    ]
    bg = thresholds.choose_thresholds(scored, cmap, 1.0, "background")
    assert (
        bg["per_class"]["gunshot"]["threshold_q8"] == 151
    )  # budget 1/7 event on 1 h: none above 150
    assert bg["thresholds"]["scream"] == 0.5  # nothing scores: the floor
    assert bg["thresholds"]["other"] is None
    assert (
        "negatives_fa_per_hour_target" not in bg
        and "negatives_false_alarms" not in bg["per_class"]["gunshot"]
    )
    for rate, want in ((14.0, 151), (7.0, 211), (3.5, 221), (1.0, 231)):
        both = thresholds.choose_thresholds(
            scored, cmap, 1.0, "background", negatives_fa_per_hour=rate, negatives_max_threshold=1.0
        )
        g = both["per_class"]["gunshot"]
        assert g["threshold_q8"] == want, rate  # budget rate * 2 h / 7 events on all negatives
        assert g["false_alarms"] == 0 and g["negatives_false_alarms"] <= rate * 2 / 7
        assert g["val_clip_recall"] == 1.0 and g["fa_target_met"]
        assert both["negatives_hours"] == 2.0 and both["negative_hours"] == 1.0
    capped = thresholds.choose_thresholds(
        scored,
        cmap,
        1.0,
        "background",
        negatives_fa_per_hour=1.0,
        negatives_max_threshold=220 / 256,
    )
    g = capped["per_class"]["gunshot"]  # the negatives budget wants 231: the cap holds it at 220
    assert g["threshold_q8"] == 220 and g["negatives_capped"] and g["negatives_false_alarms"] == 2
    assert (
        not both["per_class"]["gunshot"]["negatives_capped"]
        and capped["negatives_max_threshold"] == 220 / 256
    )
    dflt = thresholds.choose_thresholds(scored, cmap, 1.0, "background", negatives_fa_per_hour=1.0)
    assert (
        dflt["per_class"]["gunshot"]["threshold_q8"]
        == round(Recipe.negatives_max_threshold * 256)
        == 230
    )
    low_cap = thresholds.choose_thresholds(
        scored,
        cmap,
        1.0,
        "background",
        negatives_fa_per_hour=1.0,
        negatives_max_threshold=140 / 256,
    )
    assert (
        low_cap["per_class"]["gunshot"]["threshold_q8"] == 151
    )  # the background budget is never capped
    alone = thresholds.choose_thresholds(scored, cmap, 7.0, "negatives")
    assert alone["thresholds"]["gunshot"] == round(211 / 256, 6)  # the same budget as the only rule
    never = thresholds.choose_thresholds([clip("speech", [255])], cmap, 1.0, "negatives")
    assert (
        never["per_class"]["gunshot"]["threshold_q8"] == 255
        and not never["per_class"]["gunshot"]["fa_target_met"]
    )


def test_train_on_val_trains_on_the_validation_fold_and_still_thresholds_there(
    exported, rows, tmp_path
):
    """--train-on-val: the validation fold's windows join the training set (every fold but the
    test fold), training runs all epochs (no early stopping), and the thresholds are still
    chosen on the validation fold's clips through the node."""
    import dataclasses

    from training import augment as _augment
    from training import pipeline

    _, res = exported
    cache = tmp_path / "cache"
    got = pipeline.fit_and_export(
        rows,
        AUDIO,
        tmp_path / "m",
        dataclasses.replace(TINY, train_on_val=True),
        name="test-tiny-tov",
        created_by="pytest",
        cache_dir=cache,
        progress=False,
        log=lambda m: None,
    )
    ws = features.load_or_build(
        rows,
        AUDIO,
        data.ClassMap.default(),
        1,
        _augment.AugmentConfig(),
        True,
        cache_dir=cache,
        progress=False,
        log=lambda m: None,
    )
    n_val_fold = int(np.sum(ws.folds() == 4))
    rep, rep0 = got["report"], res["report"]
    assert n_val_fold > 0
    assert rep0["data"]["trained_on_val"] is False and rep["data"]["trained_on_val"] is True
    assert rep["data"]["windows"]["train"] == rep0["data"]["windows"]["train"] + n_val_fold
    assert rep["data"]["windows"]["val"] == rep0["data"]["windows"]["val"] > 0
    assert "val_loss" not in rep["history"] and rep["train"]["epochs_run"] == 2
    assert "val_loss" in rep0["history"]
    per = rep["thresholds"]["per_class"]
    assert set(per) == set(data.ClassMap.default().targets)
    th = got["manifest"]["thresholds"]
    assert all(0.5 <= th[c] <= 1.0 for c in per) and th["other"] is None
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["training"]["data"]["trained_on_val"] is True
