"""The scene benchmark (training.scenes / training.scene_eval) on the shipped clips of tests/audio."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tools.node import params
from training import data
from training import scenes as sc

AUDIO = params.ROOT / "tests" / "audio"
MODEL = params.ROOT / "firmware" / "model"


def tiny_csv(path: Path, drop_labels=()) -> Path:
    """Every shipped clip in fold 1 (targets, the knock as hard negative, three backgrounds)."""
    with open(AUDIO / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source_label", "fold"])
        for r in rows:
            if r["label"] not in drop_labels:
                w.writerow([r["path"], r["label"], r["source_label"], 1])
    return path


def build(tmp_path, **kw):
    rows = data.read_csv(tiny_csv(tmp_path / "tiny.csv"))
    kw.setdefault("per_ebr", 1)
    kw.setdefault("stream_minutes", 0.3)
    return sc.build_fold(rows, AUDIO, 1, kw.pop("seed", 0), **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    return build(d, out=d / "set")


def _tree_hashes(d: Path) -> dict:
    return {
        p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path, built):
    again = build(tmp_path, out=tmp_path / "again")
    a, b = _tree_hashes(built.path), _tree_hashes(again.path)
    assert a == b and any(k.endswith(".wav") for k in a) and "events.csv" in a
    other = build(tmp_path, seed=1)
    assert not np.array_equal(other.scenes[0].pcm[:16000], again.scenes[0].pcm[:16000])


def test_scenes_events_and_ebrs(built):
    ix = built.index
    assert [s.seconds >= sc.MIN_SCENE_S for s in built.scenes] == [True] * len(built.scenes)
    assert ix["missing_classes"] == ["scream"]  # no scream clip ships
    n = 0
    for s in built.scenes:
        assert 1 <= len(s.events) - len(s.targets) <= 3
        assert len(s.targets) <= 5
        for e in s.targets:
            n += 1
            a, b = int(round(e["active_onset_s"] * sc.SR)), int(round(e["active_offset_s"] * sc.SR))
            ev = s.pcm[a:b].astype(np.float64) - s.bed[a:b]  # the event as placed
            ebr = 10 * math.log10(np.mean(ev**2) / np.mean(s.bed[a:b] ** 2))
            assert abs(ebr - e["ebr_db"]) <= 0.5, (e, ebr)
    # every EBR cycled over the classes present, one clip per class and EBR
    for c, d in ix["counts"].items():
        if c != "scream":
            assert sum(d.values()) + sum(1 for x in ix["dropped_inaudible"] if x["label"] == c) == 3
    assert n == sum(sum(d.values()) for d in ix["counts"].values())


def test_no_overlap_and_gaps(built):
    for s in built.scenes:
        ev = sorted(s.events, key=lambda e: e["pasted_onset_s"])
        assert ev[0]["pasted_onset_s"] >= 2.0 - 1e-3
        for p, q in zip(ev, ev[1:]):
            gap = q["pasted_onset_s"] - p["pasted_offset_s"]
            assert 2.0 - 1e-3 <= gap <= 6.0 + 1e-3, (p, q)
        assert ev[-1]["pasted_offset_s"] <= s.seconds


def test_audible_onset(built):
    # by hand: a bed of constant power 1; an event silent for 2 frames, one loud frame (a blip:
    # not 2 frames, not audible), silent again, then loud from frame 5 to the end of frame 8
    F = sc.FRAME
    bed = np.full(10 * F, 1000.0)
    ev = np.zeros(10 * F)
    ev[2 * F : 3 * F] = 5000.0
    ev[5 * F : 9 * F] = 2000.0
    assert sc.audible_span(ev, bed) == (5 * F, 9 * F)
    assert sc.audible_span(np.full(10 * F, 900.0), bed) is None
    # every placed event: audible span inside the pasted segment, recomputed from the stems
    for s in built.scenes:
        for e in s.events:
            assert (
                e["pasted_onset_s"]
                <= e["audible_onset_s"]
                < e["audible_offset_s"]
                <= e["pasted_offset_s"]
            )
            assert (e["onset_s"], e["offset_s"]) == (e["audible_onset_s"], e["audible_offset_s"])
            a, b = int(round(e["pasted_onset_s"] * sc.SR)), int(round(e["pasted_offset_s"] * sc.SR))
            got = sc.audible_span(s.pcm[a:b] - s.bed[a:b], s.bed[a:b])
            assert got is not None
            assert abs(a + got[0] - e["audible_onset_s"] * sc.SR) <= sc.FRAME
    # a two-shot clip at -6 dB: the first shot is the audible onset or later, never earlier
    # than the pasted start (gunshot_2 has shots at 0.5 and 3.51 s of the clip)
    g2 = [e for s in built.scenes for e in s.targets if e["source"] == "gunshot_2.wav"]
    assert g2 and all(e["audible_onset_s"] - e["pasted_onset_s"] >= 0.5 - 0.04 for e in g2)


def test_files_and_negatives_never_scored(built):
    d = built.path
    neg_sources = {e["source"] for s in built.scenes for e in s.events if e["kind"] == "negative"}
    assert neg_sources == {"other_door_wood_knock_1.wav"}
    for s in built.scenes:
        lines = (d / s.name).with_suffix(".txt").read_text().splitlines()
        labs = [ln.split("\t")[2] for ln in lines]
        assert labs == [e["label"] for e in s.targets] and set(labs) <= set(built.classes)
    truth = list(csv.DictReader((d / "truth.csv").read_text().splitlines()))
    assert {r["source"] for r in truth} & neg_sources == set()
    ev = list(csv.DictReader((d / "events.csv").read_text().splitlines()))
    assert list(ev[0]) == sc.EVENT_COLUMNS and {r["kind"] for r in ev} == {"target", "negative"}
    import soundfile as sf

    info = sf.info(str(d / built.scenes[0].name))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    # tools/hil.py reads the truth as it is
    from tools.validate import hil

    clips = hil.find_audio(d)
    t = hil.load_scenes(d / "truth.csv", clips, d)
    assert sum(len(v) for v in t.values()) == sum(len(s.targets) for s in built.scenes)
    assert all(not t[s.name] for s in built.streams)
    # streams: every segment non-target, the shuffled list repeated to reach the minutes
    ix = json.loads((d / "index.json").read_text())
    assert ix["streams"]["repeated"] >= 1 and ix["streams"]["seconds"] >= 0.3 * 60
    segs = [g for s in built.streams for g in s.segments]
    assert {g["label"] for g in segs} == {"other", "background"}
    loaded = sc.load(d)
    assert [s.name for s in loaded.scenes] == [s.name for s in built.scenes]
    assert np.array_equal(loaded.scenes[1].pcm, built.scenes[1].pcm)
    assert loaded.scenes[1].events[0]["ebr_db"] == built.scenes[1].events[0]["ebr_db"]


@pytest.mark.parametrize(
    "drop,fold,args,msg",
    [
        (("background",), 1, [], "fold 1: no background clips"),
        (
            ("gunshot", "fireworks_explosion", "glass_breaking", "siren", "baby_cry", "dog_bark"),
            1,
            [],
            "fold 1: no target clips",
        ),
        ((), 1, ["--ebr", "-6,x"], "not a comma-separated list"),
        ((), 1, ["--ebr", "0,40"], "EBR 40 dB cannot be met"),
        ((), 7, [], "fold 7: no clips"),
    ],
)
def test_bad_input(tmp_path, capsys, drop, fold, args, msg):
    from training.__main__ import main

    csvp = tiny_csv(tmp_path / "t.csv", drop)
    out = tmp_path / "out" / "set"
    argv = [
        "scenes",
        "build",
        "--csv",
        str(csvp),
        "--root",
        str(AUDIO),
        "--fold",
        str(fold),
        "--out",
        str(out),
        "--stream-minutes",
        "0.2",
        "--quiet",
    ] + args
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0] and "error:" in err[0], err
    assert not out.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_eval_shipped_model(built):
    from training import scene_eval

    res = scene_eval.evaluate_fold(MODEL, built)
    json.dumps(res)  # JSON-ready
    n = sum(len(s.targets) for s in built.scenes)
    assert res["n_target_events"] == n > 0
    for k in ("200ms", "500ms"):
        c = res["collars"][k]
        assert c["counts"]["Nref"] == n
        for key in ("event_f1", "precision", "recall"):
            assert 0.0 <= c[key] <= 1.0
        assert c["event_error_rate"] >= 0.0
        assert set(c["per_class"]) == set(res["labels"])
        assert sum(r["Nref"] for r in res["recall_per_ebr"][k].values()) == n
    # a wider collar never finds fewer
    assert res["collars"]["500ms"]["counts"]["Ntp"] >= res["collars"]["200ms"]["counts"]["Ntp"]
    assert 0.0 <= res["window_recall"] <= res["gate_recall"] <= 1.0
    assert set(res["gate_recall_per_ebr"]) == {"-6", "0", "6"}
    lat = res["onset_latency_ms"]
    assert lat["n"] == 0 or -500 <= lat["median"] <= lat["p90"] <= 5000
    st = res["streams"]
    assert st["seconds"] >= 18 and 0 < st["background_seconds"] <= st["seconds"]
    assert st["false_alarms_per_hour"] >= 0 and st["false_alarms_per_hour_background"] >= 0
    for v in res["inference_duty"].values():
        assert 0.0 < v <= 1.0
    assert 0 <= res["negatives_in_scenes"]["triggered"] <= res["negatives_in_scenes"]["events"]
    pooled = scene_eval.summarise([res, res])
    assert pooled["collars"]["200ms"]["counts"]["Nref"] == 2 * n
    assert pooled["event_f1"] == res["event_f1"] and pooled["gate_recall"] == res["gate_recall"]
    assert pooled["streams"]["false_alarms_per_hour"] == st["false_alarms_per_hour"]
    assert "event F1" in scene_eval.summary_text(pooled)


def test_cli_build_inspect_plot(tmp_path, capsys):
    from training.__main__ import main

    out = tmp_path / "set"
    assert (
        main(
            [
                "scenes",
                "build",
                "--csv",
                str(tiny_csv(tmp_path / "t.csv")),
                "--root",
                str(AUDIO),
                "--fold",
                "1",
                "--out",
                str(out),
                "--ebr",
                "-6,0,6",
                "--scenes",
                "1",
                "--stream-minutes",
                "0.1",
                "--quiet",
            ]
        )
        == 0
    )
    ix = json.loads((out / "index.json").read_text())
    assert len(ix["scenes"]) == 1 and ix["ebrs_db"] == [-6.0, 0.0, 6.0]
    capsys.readouterr()
    assert (
        main(
            ["scenes", "inspect", str(out), "--plot", "scene_000", "--png", str(tmp_path / "p.png")]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "events per class per EBR" in text and "gunshot" in text
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["scenes", "inspect", str(tmp_path)]) == 2
    assert "no index.json" in capsys.readouterr().err


def test_impulsive_background_is_not_a_bed(tmp_path):
    # a gunshot labelled background: its loudest frame is far above its median, refused as a bed
    rows = [r for r in data.read_csv(tiny_csv(tmp_path / "t.csv")) if r.label != "background"]
    rows.append(data.Row("gunshot_1.wav", "background", 1, None, "", "", "mislabelled"))
    with pytest.raises(sc.SceneError, match="no usable background clip"):
        sc.build_fold(rows, AUDIO, 1, 0, per_ebr=1, stream_minutes=0)
