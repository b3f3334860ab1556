"""training.evaluate / training.metrics / training.report: schema, hand-checked metrics, report
files, bad input.  A tiny int8 model (random weights, low thresholds so that the node reports
events) is built with TensorFlow in a fixture; the clips are the shipped tests/audio."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.tinymodel import LABELS, build_tiny_model

from tools.node import params
from training import evaluate, metrics, report

AUDIO = params.ROOT / "tests" / "audio"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return evaluate.read_csv(AUDIO / "manifest.csv")


@pytest.fixture(scope="module")
def result(tiny_model, rows) -> dict:
    return evaluate.evaluate(tiny_model, rows, AUDIO, progress=False)


# ---- metrics: hand-checked, no scikit-learn --------------------------------------------------


def test_summary_hand_example():
    truth = ["a", "a", "a", "b", "b", "n", "n", "n"]
    pred = ["a", "a", "b", "b", "n", "n", "a", "n"]
    s = metrics.summary(truth, pred, ["a", "b", "c", "d"], "n")
    # c: no clip, no prediction -> undefined, out of the macro average; d: same here
    assert s["confusion"]["labels"] == ["a", "b", "c", "d", "n"]
    assert s["confusion"]["matrix"] == [
        [2, 1, 0, 0, 0],
        [0, 1, 0, 0, 1],
        [0] * 5,
        [0] * 5,
        [1, 0, 0, 0, 2],
    ]
    a, b = s["per_class"]["a"], s["per_class"]["b"]
    assert (a["precision"], a["recall"], a["support"]) == (
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
        3,
    )
    assert a["f1"] == pytest.approx(2 / 3)
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == (0.5, 0.5, 0.5, 2)
    assert s["per_class"]["c"]["f1"] is None and s["per_class"]["c"]["precision"] is None
    assert s["macro_f1_classes"] == ["a", "b"]
    assert s["macro_f1"] == pytest.approx(7 / 12) == s["macro_f1_supported"]
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["negative"]["recall"] == pytest.approx(2 / 3) and s["negative"][
        "precision"
    ] == pytest.approx(2 / 3)


def test_summary_false_alarm_class_counts_zero():
    # d has no clip but is predicted once: F1 = 0 and it drags the macro average down
    s = metrics.summary(["a", "n"], ["a", "d"], ["a", "d"], "n")
    assert s["per_class"]["d"]["f1"] == 0.0 and s["per_class"]["d"]["recall"] is None
    assert s["per_class"]["d"]["precision"] == 0.0
    assert s["macro_f1"] == pytest.approx(0.5)
    assert s["macro_f1_supported"] == pytest.approx(1.0)  # only a has clips
    assert s["accuracy"] == pytest.approx(0.5)


def test_summary_rejects_unknown_labels():
    with pytest.raises(ValueError):
        metrics.summary(["a"], ["zzz"], ["a"], "n")
    with pytest.raises(ValueError):
        metrics.summary(["a"], ["a"], ["a", "n"], "n")


def test_binary_curves_hand_example():
    c = metrics.binary_curves([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    assert c["precision"] == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2])
    assert c["recall"] == pytest.approx([0.5, 0.5, 1, 1])
    assert c["average_precision"] == pytest.approx(5 / 6)
    assert c["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered
    tie = metrics.binary_curves([1, 0], [0.5, 0.5])
    assert tie["roc_auc"] == pytest.approx(0.5) and tie["thresholds"] == [0.5]
    assert metrics.binary_curves([0, 0], [0.1, 0.2])["average_precision"] is None


def test_mean_std():
    assert metrics.mean_std([1.0, 3.0, None]) == {"mean": 2.0, "std": 1.0, "n": 2}
    assert metrics.mean_std([None])["mean"] is None


# ---- evaluate ------------------------------------------------------------------------------


def _in01(v):
    return v is None or 0.0 <= v <= 1.0


def test_evaluate_schema(result, rows):
    r = result
    for k in (
        "n_clips",
        "model_sha256",
        "node",
        "classifier",
        "false_alarms_per_hour",
        "false_alarms_per_hour_background",
        "false_alarms",
        "n_unreadable",
        "clips",
        "classes",
        "negative_label",
        "audio_seconds",
    ):
        assert k in r, k
    assert r["n_clips"] == len(rows) and r["n_unreadable"] == 0
    assert r["warnings"] == []  # the fixture's manifest names this core config
    assert r["classes"] == LABELS[:-1] and r["negative_label"] == "other"
    assert len(r["model_sha256"]) == 64
    for system in ("node", "classifier", "classifier_any_window"):
        s = r[system]
        assert set(s["per_class"]) == set(r["classes"])
        assert _in01(s["macro_f1"]) and _in01(s["accuracy"])
        for v in s["per_class"].values():
            assert {"precision", "recall", "f1", "support"} <= set(v)
            assert all(
                _in01(v[m]) for m in ("precision", "recall", "f1", "average_precision", "roc_auc")
            )
        m = np.array(s["confusion"]["matrix"])
        assert s["confusion"]["labels"] == r["classes"] + ["other"]
        assert m.shape == (8, 8) and m.sum() == r["n_clips"]
        truth_counts = m.sum(axis=1)
        for i, c in enumerate(r["classes"]):
            assert (
                truth_counts[i]
                == s["per_class"][c]["support"]
                == sum(x["label"] == c for x in rows)
            )
        assert s["accuracy"] == pytest.approx(np.trace(m) / m.sum())
    json.dumps(r)  # serialisable as is


def test_evaluate_clip_decisions_consistent(result):
    neg = result["negative_label"]
    for c in result["clips"]:
        assert c["truth"] == (c["label"] if c["label"] in result["classes"] else neg)
        if c["events"]:
            best = max(c["events"], key=lambda e: e["score"])
            assert c["node"] == best["label"]
            assert all(e["score"] >= 0.1 for e in c["events"])  # the manifest's threshold
        else:
            assert c["node"] == neg
        assert c["windows"]["continuous"] > 0
        assert set(c["classifier_scores"]) == set(result["classes"])
        # the most target-like of many windows scores at least as high as the peak window
        best_any = max(c["classifier_any_window_scores"].values())
        assert best_any >= max(c["classifier_scores"].values()) - 2 / 256
    # the low thresholds make the random model fire: the test exercises events and false alarms
    assert result["node"]["diagnostics"]["events"] > 0
    neg_clips = [c for c in result["clips"] if c["truth"] == neg]
    fa = result["false_alarms"]
    assert fa["clips"] == len(neg_clips)
    assert fa["events"] == sum(len(c["events"]) for c in neg_clips)
    assert fa["seconds"] == pytest.approx(sum(c["seconds"] for c in neg_clips), abs=0.01)
    assert result["false_alarms_per_hour"] == pytest.approx(
        fa["events"] * 3600 / fa["seconds"], rel=1e-3
    )


def test_gate_ceiling_is_a_perfect_model_behind_the_gate(tiny_model, rows):
    """gate_ceiling answers every target clip with a gated window right, the others with "no
    target event", every negative right: no false positive, recall = window coverage, and the
    node (any model behind the same gate) cannot beat it.  The three steady background clips,
    relabelled siren, are target clips on which the gate opens no window."""
    result = evaluate.evaluate(
        tiny_model, rows, AUDIO, progress=False, label_map={"background": "siren"}
    )
    siren = [c for c in result["clips"] if c["truth"] == "siren"]
    assert [c["windows"]["gated"] > 0 for c in siren] == [
        True,
        False,
        False,
        False,
    ]  # siren_1 first
    assert result["gate_ceiling"]["per_class"]["siren"] == pytest.approx(
        {"precision": 1.0, "recall": 0.25, "f1": 0.4, "support": 4, "tp": 1, "fp": 0, "fn": 3}
    )
    neg = result["negative_label"]
    ceil = result["gate_ceiling"]
    labels = ceil["confusion"]["labels"]
    m = np.array(ceil["confusion"]["matrix"])
    expect = np.zeros_like(m)
    for c in result["clips"]:
        answer = c["truth"] if c["truth"] == neg or c["windows"]["gated"] > 0 else neg
        expect[labels.index(c["truth"]), labels.index(answer)] += 1
    np.testing.assert_array_equal(m, expect)
    tgt = [c for c in result["clips"] if c["truth"] != neg]
    assert ceil["per_class"]  # every target class is listed
    for cls, v in ceil["per_class"].items():
        mine = [c for c in tgt if c["truth"] == cls]
        with_window = sum(c["windows"]["gated"] > 0 for c in mine)
        assert v["support"] == len(mine)
        if with_window:
            assert v["precision"] == 1.0 and v["recall"] == pytest.approx(with_window / len(mine))
    covered = sum(c["windows"]["gated"] > 0 for c in tgt) / len(tgt)
    assert covered == pytest.approx(result["node"]["diagnostics"]["target_clips_with_window"])
    assert ceil["macro_f1"] >= result["node"]["macro_f1"]
    assert ceil["accuracy"] >= result["node"]["accuracy"]
    assert "perfect model" in result["settings"]["gate_ceiling"]


def test_evaluate_classes_subset_and_label_map(tiny_model, rows):
    sub = [r for r in rows if r["label"] in ("gunshot", "siren", "background")]
    res = evaluate.evaluate(
        tiny_model,
        sub,
        AUDIO,
        progress=False,
        classes=["gunshot"],
        label_map={"siren": "gunshot"},
        include_clips=False,
    )
    assert list(res["node"]["per_class"]) == ["gunshot"]
    assert res["node"]["confusion"]["labels"] == ["gunshot", "other"]
    assert res["node"]["per_class"]["gunshot"]["support"] == 3  # 2 gunshots + mapped siren
    assert "clips" not in res
    with pytest.raises(evaluate.EvalError, match="not a target class"):
        evaluate.evaluate(tiny_model, sub, AUDIO, progress=False, classes=["helicopter"])


def test_evaluate_skips_unreadable(tiny_model, rows, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    shutil.copy(AUDIO / "gunshot_1.wav", tmp_path / "g.wav")
    res = evaluate.evaluate(
        tiny_model,
        [
            {"path": "g.wav", "label": "gunshot"},
            {"path": "bad.wav", "label": "gunshot"},
            {"path": "missing.wav", "label": "other"},
        ],
        tmp_path,
        progress=False,
    )
    assert res["n_clips"] == 1 and res["n_unreadable"] == 2
    assert {u["path"] for u in res["unreadable"]} == {"bad.wav", "missing.wav"}
    assert "skipped:" in capsys.readouterr().err
    with pytest.raises(evaluate.EvalError, match="no readable clip"):
        evaluate.evaluate(tiny_model, [{"path": "bad.wav", "label": "x"}], tmp_path, progress=False)


# ---- CLI and report ---------------------------------------------------------------------------


def test_cli_writes_json_and_report(tiny_model, tmp_path, capsys):
    out = tmp_path / "eval" / "e.json"
    rc = evaluate.main(
        [
            "--csv",
            str(AUDIO / "manifest.csv"),
            "--json-out",
            str(out),
            "--model",
            str(tiny_model),
            "--fold",
            "4",
            "--fold",
            "5",
            "-q",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["n_clips"] == 7  # rows of folds 4 and 5
    printed = capsys.readouterr().out
    assert f"ceiling:    macro-F1 {res['gate_ceiling']['macro_f1']:.3f}" in printed
    md = (out.parent / "e.md").read_text()
    assert (
        f"| ceiling: a perfect model behind this gate | {res['gate_ceiling']['macro_f1']:.3f} |"
        in md
    )
    pngs = sorted(out.parent.glob("e_*.png"))
    assert {p.name for p in pngs} == {
        f"e_{k}_{s}.png" for k in ("confusion", "pr", "roc") for s in ("node", "classifier")
    }
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 2000
        assert f"({p.name})" in md
    for c in res["classes"]:
        assert f"| {c} |" in md
    # the report regenerates from the JSON alone
    for p in pngs:
        p.unlink()
    assert report.main([str(out)]) == 0
    assert len(list(out.parent.glob("e_*.png"))) == 6


def _run_cli(argv, capsys):
    rc = evaluate.main(argv)
    err = capsys.readouterr().err
    return rc, err


def test_cli_bad_input(tiny_model, tmp_path, capsys):
    base = ["--json-out", str(tmp_path / "o.json"), "-q"]
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("path,fold\na.wav,1\n")
    cases = [
        (["--csv", str(tmp_path / "none.csv"), "--model", str(tiny_model)], "no such file"),
        (["--csv", str(nolabel), "--model", str(tiny_model)], "no label column"),
        (
            ["--csv", str(AUDIO / "manifest.csv"), "--model", str(tmp_path / "nomodel")],
            "no such file",
        ),
        (
            ["--csv", str(AUDIO / "manifest.csv"), "--model", str(tiny_model), "--fold", "9"],
            "no row in fold 9",
        ),
        (
            [
                "--csv",
                str(AUDIO / "manifest.csv"),
                "--model",
                str(tiny_model),
                "--classes",
                "helicopter",
            ],
            "not a target class",
        ),
    ]
    for argv, reason in cases:
        rc, err = _run_cli(argv + base, capsys)
        assert rc == 2, argv
        assert reason in err and "Traceback" not in err
        assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("hash_value", ["0" * 64, None])
def test_cli_model_feature_mismatch(tiny_model, tmp_path, capsys, hash_value):
    m = tmp_path / "model"
    shutil.copytree(tiny_model, m)
    man = json.loads((m / "manifest.json").read_text())
    if hash_value is None:
        del man["feature_config_hash"]
    else:
        man["feature_config_hash"] = hash_value
    (m / "manifest.json").write_text(json.dumps(man))
    rc, err = _run_cli(
        [
            "--csv",
            str(AUDIO / "manifest.csv"),
            "--model",
            str(m),
            "--json-out",
            str(tmp_path / "o.json"),
            "-q",
        ],
        capsys,
    )
    assert rc == 2 and "feature" in err and "Traceback" not in err


def test_read_csv_ignores_extra_columns_and_blank_rows(tmp_path):
    p = tmp_path / "m.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["corpus", "path", "label", "whatever"])
        w.writerow(["x", "a.wav", "gunshot", "1"])
        w.writerow(["x", "", "", ""])
    assert evaluate.read_csv(p) == [
        {"corpus": "x", "path": "a.wav", "label": "gunshot", "whatever": "1"}
    ]


def test_pooled_adds_confusions():
    a = metrics.summary(["a", "n"], ["a", "a"], ["a", "b"], "n")
    b = metrics.summary(["b", "a", "n"], ["b", "n", "n"], ["a", "b"], "n")
    p = metrics.pooled([a, b])
    assert p["confusion"]["matrix"] == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert p["n_clips"] == 5 and p["accuracy"] == pytest.approx(3 / 5)
    assert p["per_class"]["a"]["precision"] == pytest.approx(0.5)
    assert p["per_class"]["a"]["recall"] == pytest.approx(0.5)
    assert p["macro_f1"] == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError):
        metrics.pooled([a, metrics.summary(["a"], ["a"], ["a"], "n")])


def test_run_clip_room_below_peak_opens_the_gate_on_a_chunk(tiny_model):
    """A 1-s chunk cut from inside a loud event: at its own floor the node hears no onset; with
    the room 20 dB below its peak it does.  Steady playback scores one clip length only."""
    from tools.node import model

    m = model.load(tiny_model)
    rng = np.random.default_rng(3)
    chunk = np.clip(rng.normal(0, 6000, 16000), -32768, 32767).astype(np.int16)
    kw = dict(classes=LABELS[:-1], negative="other")
    own = evaluate.run_clip(m, chunk, **kw)
    room = evaluate.run_clip(m, chunk, room_below_peak_db=20, **kw)
    assert own.windows["gated"] == 0 and own.node == "other" and not own.events
    assert room.windows["gated"] >= 1
    steady = evaluate.run_clip(m, chunk, steady=True, **kw)
    assert steady.seconds == pytest.approx(1.0)
    assert steady.windows["continuous"] == own.windows["continuous"]


def test_evaluate_accepts_row_objects(tiny_model, rows):
    """training.data.Row-like objects (attributes instead of keys) give the same result."""
    from types import SimpleNamespace

    sub = rows[:3]
    objs = [SimpleNamespace(path=r["path"], label=r["label"], fold=int(r["fold"])) for r in sub]
    a = evaluate.evaluate(tiny_model, sub, AUDIO, progress=False, include_clips=False)
    b = evaluate.evaluate(tiny_model, objs, AUDIO, progress=False, include_clips=False)
    assert a == b


def test_report_with_baselines(result, tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text(json.dumps(result))
    cls = result["classes"]
    truth = [c["truth"] for c in result["clips"]]
    fake = metrics.summary(truth, truth, cls, "other")  # a perfect "baseline"
    base = tmp_path / "b.json"
    base.write_text(
        json.dumps(
            {"folds": {"4": {"svm": fake, "logreg": fake, "n_train": 1, "n_test": len(truth)}}}
        )
    )
    assert report.main([str(out), "--baselines", str(base)]) == 0
    md = (tmp_path / "r.md").read_text()
    assert "| MFCC + SVM |" in md and "| node (int8, gated) |" in md
    assert report.main([str(out), "--baselines", str(base), "--fold", "2"]) == 2
    assert "no fold 2" in capsys.readouterr().err


def test_classifier_window_is_the_nodes_front_end(tiny_model):
    """The peak-aligned classifier window comes from tools.node.core.features of the stream: the
    node's continuous-mode windows are the same int8 numbers."""
    from tools.node import audio, core

    x = audio.load(AUDIO / "gunshot_1.wav")
    stream, pre = audio.with_lead_in(x)
    node = core.Node(mode="continuous", continuous_stride=7, keep_features=True)
    node.process(stream)
    node.flush()
    feats = core.features(stream)
    assert len(node.windows) > 10
    for w, f in zip(node.windows, node.features):
        j = w.start_sample // core.HOP
        assert np.array_equal(feats[j : j + core.FRAMES_PER_WINDOW], f)


def test_threshold_override(tiny_model, rows):
    sub = rows[:4]
    off = evaluate.evaluate(
        tiny_model, sub, AUDIO, progress=False, thresholds={lab: None for lab in LABELS}
    )
    assert off["node"]["diagnostics"]["events"] == 0
    assert all(c["node"] == "other" for c in off["clips"])
    assert off["thresholds"]["gunshot"] is None and off["model"]["thresholds"]["gunshot"] == 0.1
    low = evaluate.evaluate(tiny_model, sub, AUDIO, progress=False, thresholds={"gunshot": 0.0})
    assert low["thresholds"]["gunshot"] == 0.0
    with pytest.raises(evaluate.EvalError, match="not a model label"):
        evaluate.evaluate(tiny_model, sub, AUDIO, progress=False, thresholds={"helicopter": 0.5})
    with pytest.raises(evaluate.EvalError, match="not a score"):
        evaluate.evaluate(tiny_model, sub, AUDIO, progress=False, thresholds={"gunshot": 2})


def test_cli_threshold_syntax(tiny_model, tmp_path, capsys):
    rc, err = _run_cli(
        [
            "--csv",
            str(AUDIO / "manifest.csv"),
            "--model",
            str(tiny_model),
            "--json-out",
            str(tmp_path / "o.json"),
            "--threshold",
            "gunshot:0.5",
            "-q",
        ],
        capsys,
    )
    assert rc == 2 and "LABEL=SCORE" in err


def test_core_config_difference_is_a_warning(tiny_model, tmp_path, capsys):
    m = tmp_path / "model"
    shutil.copytree(tiny_model, m)
    man = json.loads((m / "manifest.json").read_text())
    man["core_config_hash"] = "f" * 64
    (m / "manifest.json").write_text(json.dumps(man))
    out = tmp_path / "w.json"
    rc = evaluate.main(
        [
            "--csv",
            str(AUDIO / "manifest.csv"),
            "--model",
            str(m),
            "--json-out",
            str(out),
            "--limit",
            "2",
            "-q",
        ]
    )
    assert rc == 0
    assert "warning:" in capsys.readouterr().err
    res = json.loads(out.read_text())
    assert len(res["warnings"]) == 1 and "ffffffffffffffff" in res["warnings"][0]
    assert "**Warning:**" in (tmp_path / "w.md").read_text()


def test_crossval_report(tmp_path, capsys):
    """Markdown + pooled confusion PNG from a crossval JSON as training.crossval writes it."""
    crossval = pytest.importorskip("training.crossval")
    cls = ["a", "b"]
    folds = []
    for truth, pred in ((["a", "b", "n"], ["a", "n", "n"]), (["a", "a", "n"], ["a", "b", "b"])):
        s = metrics.summary(truth, pred, cls, "n")
        ceil = metrics.summary(
            truth, [t if t == "n" or i else "n" for i, t in enumerate(truth)], cls, "n"
        )
        folds.append(
            {
                "node": s,
                "classifier": s,
                "gate_ceiling": ceil,
                "false_alarms_per_hour": 3.0,
                "false_alarms_per_hour_background": 0.0,
                "model_bytes": 1000,
                "arena_bytes": 2000,
                "macs": 3000,
                "int8_macro_f1_drop": 0.01,
                "parity_mismatches": 0,
            }
        )
    cv = {
        "design": "toy",
        "folds": [1, 2],
        "classes": cls,
        "archs": {"ds_cnn": {"folds": folds, "summary": crossval.summarize(folds, cls)}},
    }
    (tmp_path / "cv.json").write_text(json.dumps(cv))
    base = metrics.summary(["a", "b", "n"], ["a", "b", "n"], cls, "n")
    (tmp_path / "b.json").write_text(
        json.dumps(
            {
                "folds": {"1": {"svm": base}},
                "pooled": {"svm": base},
                "mean_std": {
                    "svm": {
                        "macro_f1": metrics.mean_std([1.0]),
                        "accuracy": metrics.mean_std([1.0]),
                        "per_class": {c: {"f1": metrics.mean_std([1.0])} for c in cls},
                    }
                },
            }
        )
    )
    out = tmp_path / "docs" / "cv.md"
    assert (
        report.main(
            [
                "--crossval",
                str(tmp_path / "cv.json"),
                "--baselines",
                str(tmp_path / "b.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    md = out.read_text()
    png = out.parent / "cv_confusion_ds_cnn.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and f"({png.name})" in md
    assert "| ds_cnn node (int8) |" in md and "| MFCC + SVM |" in md
    # a: F1 1 in fold 1 and 2/3 in fold 2 -> 0.83 ± 0.17; pooled: 2 of 3 found, none false -> 0.80
    assert "| a | 3 | 0.83 ± 0.17 (0.80)" in md
    # the toy ceiling misses the first clip of each fold (an a both times): per fold a missed, b
    # found (0.5) / one a of two found, no b (0.667), accuracy 2/3 twice; pooled a 1 of 3 found,
    # none false (F1 0.5), b 1 of 1 (F1 1) -> 0.75
    # precision | recall of a through the node | clips of a with a window (the ceiling's recall)
    assert "| a | 1.00 ± 0.00 (1.00) | 0.75 ± 0.25 (0.67) | 0.25 ± 0.25 (0.33) |" in md
    assert (
        "| ds_cnn gate ceiling (a perfect model behind the gate) | 0.583 ± 0.083 | 0.583 ± 0.083 "
        "| 0.667 ± 0.000 | 0.750 | 0.667 |"
    ) in md  # b: no clips in fold 2, never called there
    assert "ds_cnn node (int8), room" not in md and "gate ceiling, room" not in md  # not evaluated
    assert report.main([]) == 2 and "one of them" in capsys.readouterr().err


def test_committed_crossval_report_matches_its_json(tmp_path):
    """firmware/model/crossval.md is the report of firmware/model/crossval.json as the crossval
    command (and `python -m training.report --crossval`) writes it: regenerate and compare."""
    model = Path(__file__).resolve().parents[1] / "firmware" / "model"
    cv = json.loads((model / "crossval.json").read_text())
    report.write_crossval(cv, tmp_path / "crossval.md")
    assert (tmp_path / "crossval.md").read_text() == (model / "crossval.md").read_text(), (
        "stale firmware/model/crossval.md: python -m training.report --crossval firmware/model/crossval.json"
    )


def test_cli_refuses_unreadable_clips_unless_skip_bad(tiny_model, tmp_path, capsys):
    """One rule with tools/hil.py: a listed clip that cannot be read refuses the run before any
    work (first file + count, exit 2); --skip-bad goes on and every summary counts the skipped."""
    shutil.copy(AUDIO / "gunshot_1.wav", tmp_path / "g.wav")
    shutil.copy(AUDIO / "background_rain_1.wav", tmp_path / "r.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    (tmp_path / "m.csv").write_text(
        "path,label\ng.wav,gunshot\nbad.wav,gunshot\nmissing.wav,other\nr.wav,background\n"
    )
    out = tmp_path / "o" / "e.json"
    argv = [
        "--csv",
        str(tmp_path / "m.csv"),
        "--model",
        str(tiny_model),
        "--json-out",
        str(out),
        "-q",
        "--no-report",
    ]
    rc, err = _run_cli(argv, capsys)
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "bad.wav: not a readable audio file" in err and "(2 of 4 listed clips unreadable" in err
    assert "--skip-bad" in err and not out.exists()
    assert evaluate.main(argv + ["--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert "2 clips (2 unreadable skipped (--skip-bad))" in printed
    res = json.loads(out.read_text())
    assert res["skipped"] == res["n_unreadable"] == 2 and res["n_clips"] == 2


def test_cli_output_checked_first_and_no_negative_clips(tiny_model, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    argv = ["--csv", str(AUDIO / "manifest.csv"), "--model", str(tiny_model), "-q", "--no-report"]
    rc, err = _run_cli(argv + ["--json-out", str(tmp_path / "f" / "e.json")], capsys)
    assert rc == 2 and "is not a folder" in err and err.count("\n") == 1
    rc, err = _run_cli(argv + ["--json-out", str(tmp_path)], capsys)
    assert rc == 2 and "is a folder" in err
    # only target clips: no false-alarm rate, and the summary says why
    (tmp_path / "t.csv").write_text("path,label\ngunshot_1.wav,gunshot\n")
    rc = evaluate.main(
        [
            "--csv",
            str(tmp_path / "t.csv"),
            "--root",
            str(AUDIO),
            "--model",
            str(tiny_model),
            "-q",
            "--no-report",
            "--json",
            str(tmp_path / "e.json"),
        ]
    )
    cap = capsys.readouterr()
    assert rc == 0 and "warning: --json FILE is deprecated, use --json-out FILE" in cap.err
    assert "false alarms n/a (no negative clip: nothing to count them on)" in cap.out
    assert "n/a/h" not in cap.out
    assert json.loads((tmp_path / "e.json").read_text())["false_alarms_per_hour"] is None
