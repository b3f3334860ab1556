"""The scene benchmark inside cross-validation (training.crossval, the report, the bench keys) on
the shipped clips of tests/audio, with tiny int8 models standing in for the trained fold models
(training itself is replaced; everything after it is real: scene sets, C node, TFLM)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.tinymodel import build_tiny_model

from tools.node import params
from training import data

AUDIO = params.ROOT / "tests" / "audio"
MODEL = params.ROOT / "firmware" / "model"
SMALL = ["--scene-per-ebr", "1", "--scene-stream-minutes", "0.2", "--quiet"]


def folds_csv(path: Path, folds=(1, 2), drop: dict | None = None) -> Path:
    """Every shipped clip once per fold (drop: {fold: labels left out of that fold})."""
    with open(AUDIO / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source_label", "fold"])
        for k in folds:
            for r in rows:
                if r["label"] not in (drop or {}).get(k, ()):
                    w.writerow([r["path"], r["label"], r["source_label"], k])
    return path


def _fake_training(monkeypatch, tiny):
    """pipeline.fit_and_export copies the tiny model; evaluate.evaluate returns fixed figures."""
    from training import evaluate, pipeline

    trained = []

    def fit(rows, root, out, recipe, **kw):
        trained.append(recipe.test_fold)
        shutil.copytree(tiny, out, dirs_exist_ok=True)
        man = json.loads((Path(out) / "manifest.json").read_text())
        man["training"] = {
            "int8": {"macro_f1_drop": 0.0},
            "parity": {"mismatches": 0},
            "train": {"epochs_run": 1, "train_seconds": 1.0},
        }
        man.setdefault("arena_bytes", 1)
        man.setdefault("macs", 1)
        return {"manifest": man}

    part = {"macro_f1": 0.5, "accuracy": 0.5, "per_class": {}, "confusion": None}
    monkeypatch.setattr(pipeline, "fit_and_export", fit)
    monkeypatch.setattr(
        evaluate, "evaluate", lambda *a, **kw: {"node": part, "classifier": part, "n_clips": 1}
    )
    return trained


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", threshold=0.2)


@pytest.fixture(scope="module")
def crossval_run(tmp_path_factory, tiny):
    """`python -m training crossval` over folds 1, 2 with the scene benchmark on (training faked)."""
    from training.__main__ import main

    d = tmp_path_factory.mktemp("cv")
    mp = pytest.MonkeyPatch()
    trained = _fake_training(mp, tiny)
    try:
        rc = main(
            [
                "crossval",
                "--csv",
                str(folds_csv(d / "t.csv")),
                "--root",
                str(AUDIO),
                "--json",
                str(d / "cv.json"),
                "--work",
                str(d / "work"),
                "--archs",
                "ds_cnn",
                "--room-below-peak",
                "-1",
                "--no-cache",
            ]
            + SMALL
        )
    finally:
        mp.undo()
    assert rc == 0 and trained == [1, 2]
    return d


def test_crossval_scores_every_fold_on_its_scene_set(crossval_run):
    from training import bench

    d = crossval_run
    cv = json.loads((d / "cv.json").read_text())
    assert cv["scenes"]["ebrs"] == [-6.0, 0.0, 6.0] and cv["scenes"]["per_ebr"] == 1
    a = cv["archs"]["ds_cnn"]
    n = 0
    for f in a["folds"]:
        s = f["scenes"]
        assert s["fold"] == f["test_fold"] and s["node_kw"] == {}
        assert s["scene_set"] == str(d / "work" / "scenes" / f"fold{f['test_fold']}")
        assert "events" not in s["raw"]["streams"]  # no per-event list in the crossval JSON
        assert s["timeline"]["scene"] == "scenes/scene_000.wav"
        n += s["n_target_events"]
    sm = a["summary"]["scenes"]
    assert sm["folds"] == [1, 2] and sm["n_target_events"] == n > 0
    assert sm["collars"]["200ms"]["counts"]["Nref"] == n
    assert sum(v["Nref"] for v in sm["recall_per_ebr"]["200ms"].values()) == n
    # the report: the scene section, one timeline PNG per fold next to it
    md = (d / "cv.md").read_text()
    assert "## Scene benchmark" in md and "recall per class and EBR" in md
    for k in (1, 2):
        png = d / f"cv_scene_ds_cnn_fold{k}.png"
        assert png.stat().st_size > 10_000 and f"]({png.name})" in md
    # the bench keys
    b = bench.scene_figures(a["summary"])
    assert b["crossval_scene_event_f1"] == sm["collars"]["200ms"]["event_f1"]
    assert set(b["crossval_scene_recall_by_ebr"]) == {"-6", "0", "6"}
    assert b["crossval_stream_fa_per_hour"] == sm["streams"]["false_alarms_per_hour"]
    assert 0 < b["crossval_stream_inference_duty"] <= 1 and b["_skipped"] == {
        "crossval_scene": None
    }
    none = bench.scene_figures({})
    assert all(none[k] is None for k in bench.SCENE_KEYS) and none["_skipped"]["crossval_scene"]


def test_scenes_only_rescores_the_fold_models_without_training(
    crossval_run, capsys, monkeypatch, tiny
):
    from training.__main__ import main

    d = crossval_run
    trained = _fake_training(monkeypatch, tiny)
    before = json.loads((d / "cv.json").read_text())
    out = d / "again.json"
    shutil.copy(d / "cv.json", out)
    argv = [
        "crossval",
        "--scenes-only",
        "--csv",
        str(d / "t.csv"),
        "--root",
        str(AUDIO),
        "--json",
        str(out),
        "--work",
        str(d / "work"),
        "--archs",
        "ds_cnn",
    ] + SMALL
    assert main(argv) == 0 and trained == []
    assert capsys.readouterr().err.count("reusing") == 2  # the cached scene sets
    cv = json.loads(out.read_text())
    for a, b in zip(cv["archs"]["ds_cnn"]["folds"], before["archs"]["ds_cnn"]["folds"]):
        assert (
            a["node"] == b["node"] and a["scenes"]["raw"] == b["scenes"]["raw"]
        )  # same node: same counts
    # other node settings: recorded, and they change what the node does
    assert main(argv + ["--node-mode", "continuous", "--continuous-stride", "4"]) == 0
    cv = json.loads(out.read_text())
    s = cv["archs"]["ds_cnn"]["folds"][0]["scenes"]
    assert s["node_kw"] == {"mode": "continuous", "continuous_stride": 4}
    assert (
        cv["scenes"]["node_kw"] == s["node_kw"]
        and "mode=continuous" in (d / "again.md").read_text()
    )
    assert (
        s["inference_duty"]["streams"]
        > before["archs"]["ds_cnn"]["folds"][0]["scenes"]["inference_duty"]["streams"]
    )
    # the JSON's fold figures belong to other models: one line, exit 2, the JSON untouched
    capsys.readouterr()
    cv["archs"]["ds_cnn"]["folds"][1]["model_sha256"] = "0" * 64
    out.write_text(json.dumps(cv))
    assert main(argv) == 2 and json.loads(out.read_text()) == cv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another model than" in err[0] and "fold 2" in err[0]
    # no fold models in the work dir: one line, exit 2
    assert main(argv[: -len(SMALL)] + ["--work", str(d / "empty")] + SMALL) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no fold models" in err[0]


@pytest.mark.parametrize(
    "drop,args,msg",
    [
        ({2: ("background",)}, [], "fold 2: no background clips"),
        (
            {
                2: (
                    "gunshot",
                    "fireworks_explosion",
                    "glass_breaking",
                    "siren",
                    "baby_cry",
                    "dog_bark",
                )
            },
            [],
            "fold 2: no target clips",
        ),
        ({}, ["--scene-ebr", "0,40"], "EBR 40 dB cannot be met"),
    ],
)
def test_crossval_checks_every_scene_set_before_training(
    tmp_path, capsys, monkeypatch, tiny, drop, args, msg
):
    from training.__main__ import main

    trained = _fake_training(monkeypatch, tiny)
    rc = main(
        [
            "crossval",
            "--csv",
            str(folds_csv(tmp_path / "t.csv", drop=drop)),
            "--root",
            str(AUDIO),
            "--json",
            str(tmp_path / "out" / "cv.json"),
            "--work",
            str(tmp_path / "work"),
            "--archs",
            "ds_cnn",
        ]
        + SMALL
        + args
    )
    assert rc == 2 and trained == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[-1] and "error:" in err[-1], err
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "work" / "ds_cnn").exists()


def test_report_without_a_scene_section():
    """An old crossval JSON (no scene section) reads as before: no scene heading, nothing empty."""
    from training import report

    cv = (
        json.loads((MODEL / "crossval.json").read_text())
        if (MODEL / "crossval.json").exists()
        else {"classes": ["gunshot"], "archs": {"ds_cnn": {"folds": [], "summary": {}}}}
    )
    md = report.crossval_markdown(cv)
    assert "Scene benchmark" not in md and report.scenes_markdown(cv) == []


def test_in_process_scorer_reports_what_the_twin_reports(tmp_path):
    """The same audio and model through tools/hil.py --sim (the twin, over the protocol) and
    through scene_eval's in-process node: the same ONSET events (label, onset within one hop)."""
    from tools.node import core
    from training import scene_eval, scenes

    rows = data.read_csv(folds_csv(tmp_path / "t.csv", folds=(1,)))
    ss = scenes.build_fold(
        rows, AUDIO, 1, 0, out=tmp_path / "set", per_ebr=1, n_scenes=2, stream_minutes=0.2
    )
    mine = scene_eval.node_events(MODEL, ss)
    assert set(mine) == {"scenes/scene_000.wav", "scenes/scene_001.wav", "streams/stream_00.wav"}
    out = tmp_path / "hil" / "hil.json"
    r = subprocess.run(
        [
            sys.executable,
            str(params.ROOT / "tools" / "hil.py"),
            "--sim",
            "--root",
            str(ss.path),
            "--scenes",
            str(ss.path / "truth.csv"),
            "--json-out",
            str(out),
            "--no-plots",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode in (0, 1), r.stderr
    twin = {
        f["file"]: f["node_events"]
        for f in json.loads(out.with_name("hil_details.json").read_text())["files"]
    }
    assert set(twin) == set(mine)
    from tools.node import model as tmodel

    m = tmodel.load(MODEL)
    scored = [c for c in m.labels if c != m.manifest.get("negative_label")]
    n = 0
    for name, ev in mine.items():
        theirs = [e for e in twin[name] if e["label"] in scored]
        assert [e["label"] for e in theirs] == [e["label"] for e in ev], name
        for a, b in zip(ev, theirs):
            assert abs(a["onset_s"] - b["onset_s"]) <= core.HOP / scenes.SR, (name, a, b)
        n += len(ev)
    assert n > 0  # the comparison compared something


def test_make_bench_reports_the_missing_scene_section(tmp_path, monkeypatch, capsys):
    """python -m tools.bench --only model: the scene keys are null with a reason while the
    committed crossval.json has no scene section, and the reason goes once they are there."""
    from tools.bench import __main__ as bench_cmd
    from training import bench as model_bench

    out = tmp_path / "bench.json"
    real = model_bench.bench
    monkeypatch.setattr(model_bench, "bench", lambda: {**real(), **model_bench.scene_figures({})})
    assert bench_cmd.main(["--only", "model", "--out", str(out)]) == 0
    b = json.loads(out.read_text())
    assert (
        b["crossval_scene_event_f1"] is None
        and "no scene section" in b["_skipped"]["crossval_scene"]
    )
    assert set(model_bench.SCENE_KEYS) <= set(b)
    sm = {
        "collars": {"200ms": {"event_f1": 0.5}, "500ms": {"event_f1": 0.6}},
        "recall_per_ebr": {"200ms": {e: {"recall": 0.1} for e in ("-6", "0", "6")}},
        "gate_recall": 0.9,
        "onset_latency_ms": {"p90": 300.0},
        "streams": {"false_alarms_per_hour": 2.0, "false_alarms_per_hour_background": 1.0},
        "inference_duty": {"streams": 0.2},
    }
    monkeypatch.setattr(model_bench, "bench", lambda: model_bench.scene_figures({"scenes": sm}))
    assert bench_cmd.main(["--only", "model", "--out", str(out)]) == 0
    b = json.loads(out.read_text())
    assert "crossval_scene" not in b["_skipped"] and b["crossval_scene_event_f1_500ms"] == 0.6
    assert b["crossval_scene_recall_by_ebr"] == {"-6": 0.1, "0": 0.1, "6": 0.1}
