"""tools/hil.py end to end: the twin (shipped model, and a stub classifier) and the scripted
detector node through pyserial; scoring against ground truth and the reference pipeline;
ground-truth formats; bad audio (malformed, wrong sample rate); thresholds and exit codes."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from helpers import fakenode as fk

from tools import cli
from tools import hil as hil_cmd
from tools.bench import link_bench as bench_link
from tools.node import params
from tools.validate import hil
from tools.wire import link as lk

ROOT = params.ROOT
SCENES = ROOT / "tests" / "audio" / "scenes"
HAVE_MODEL = (ROOT / "firmware" / "model" / "manifest.json").exists()


def toy_reference():
    return hil.Reference(fk.LABELS, len(fk.LABELS) - 1, bytes(range(8)), fk.toy_core_node)


def clips_of(root, scenes=None):
    clips = hil.find_audio(root)
    for c in clips:
        hil.load_clip(c)
    return clips, hil.load_scenes(scenes, clips, root)


def test_scenes_with_the_twin_match_the_reference(tmp_path):
    """Twin (stub classifier) vs the host pipeline: same events; every key; the report."""
    clips, truth = clips_of(SCENES, SCENES / "scenes.csv")
    with cli.open_node(sim=True, stub_scores=bench_link.STUB_SCORES) as link:
        metrics, details = hil.run(
            link, clips, truth, bench_link.stub_reference(), plot_dir=tmp_path / "hil_plots"
        )
    assert tuple(metrics) == hil.KEYS
    assert metrics["reference_mismatches"] == 0
    assert metrics["audio_seconds"] == 48.0 and metrics["realtime_factor"] > 1
    assert metrics["gate_recall"] == 1.0
    assert 0 < metrics["inference_duty_cycle"] < 1
    # the stub calls every window 'gunshot': perfect gunshot recall, nothing else found
    assert metrics["per_class"]["gunshot"] == {
        "precision": pytest.approx(0.3),
        "recall": 1.0,
        "f1": pytest.approx(0.461538, abs=1e-5),
        "support": 3,
    }
    assert metrics["per_class"]["siren"]["recall"] == 0.0
    assert set(metrics["per_class"]) == set(fk.LABELS[:-1])  # 'other' is not scored
    assert details["unscored_labels"] == ["other"]
    assert 0 < metrics["onset_latency_ms"] < 1500
    details["root"], details["thresholds_missed"] = str(SCENES), []
    hil.write_report(tmp_path / "hil.md", metrics, details, details["plots"])
    md = (tmp_path / "hil.md").read_text()
    assert "hil_plots/street.png" in md and (tmp_path / "hil_plots" / "street.png").stat().st_size
    assert "<table" in (tmp_path / "hil.html").read_text()


@pytest.mark.skipif(not HAVE_MODEL, reason="needs the exported model in firmware/model")
def test_demo_with_the_shipped_model(tmp_path, capsys):
    """`make demo`: twin + shipped model over every shipped recording, node == reference."""
    from tools import demo_hil

    rc = demo_hil.main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "hil.json").read_text())
    assert rc == 0 and m["reference_mismatches"] == 0
    assert m["audio_seconds"] == 90.0 and "event F1" in out
    assert (tmp_path / "hil.md").exists() and (tmp_path / "hil_details.json").exists()
    assert len(list((tmp_path / "hil_plots").glob("*.png"))) == 14
    assert "PASS  reference_mismatches 0 (needed ≤ 0, --max-reference-mismatches)" in out
    assert m["complete"] is True and m["skipped"] == 0 and m["files_not_reached"] == []
    # a missed threshold is the demo's exit code
    assert demo_hil.main(["--out", str(tmp_path / "b"), "--min-event-f1", "0.99", "-q"]) == 1
    assert "thresholds missed: event_f1" in capsys.readouterr().err


def test_node_defect_is_reported(tmp_path):
    """A node whose onsets are 3 hops late disagrees with the reference: listed, counted."""

    class Late(fk.DetectorHooks):
        def _drain(self):
            out = super()._drain()
            for e in out:
                e.onset_sample += 3 * 256
            return out

    h = Late()
    clips, truth = clips_of(SCENES, SCENES / "scenes.csv")
    with (
        fk.FakeNode(on_start=h.on_start, on_inject=h.on_inject, on_stop=h.on_stop) as node,
        lk.NodeLink(node.port) as link,
    ):
        metrics, details = hil.run(link, clips, truth, toy_reference())
    n_node = sum(len(f["node_events"]) for f in details["files"])
    assert n_node > 0 and metrics["reference_mismatches"] == 2 * n_node
    sides = {m["side"] for f in details["files"] for m in f["mismatches"]}
    assert sides == {"node_only", "reference_only"}
    assert hil.Thresholds(max_reference_mismatches=0).check(metrics)


def test_cli_thresholds_and_exit_codes(tmp_path, capsys):
    root = tmp_path / "audio"
    shutil.copytree(SCENES, root)
    with fk.detector_node() as node:
        base = [
            "--port",
            node.port,
            "--root",
            str(root),
            "--scenes",
            str(root / "scenes.csv"),
            "--no-reference",
            "--no-plots",
            "-q",
        ]
        rc = hil_cmd.main(base + ["--json-out", str(tmp_path / "a.json"), "--min-event-f1", "0.1"])
        assert rc == 0
        m = json.loads((tmp_path / "a.json").read_text())
        assert tuple(m) == hil.KEYS and m["reference_mismatches"] is None
        rc = hil_cmd.main(
            base
            + [
                "--json-out",
                str(tmp_path / "b.json"),
                "--min-event-f1",
                "0.99",
                "--max-false-alarms-per-hour",
                "1",
            ]
        )
    err = capsys.readouterr().err
    assert rc == 1 and "thresholds missed: event_f1" in err and "false_alarms_per_hour" in err
    assert (tmp_path / "b.md").exists()


def test_malformed_and_resampled_audio(tmp_path, capsys):
    root = tmp_path / "audio"
    root.mkdir()
    x, sr = sf.read(str(ROOT / "tests" / "audio" / "gunshot_1.wav"), dtype="float64")
    import soxr

    sf.write(str(root / "gunshot_44k.wav"), soxr.resample(x, 16000, 44100), 44100)
    sf.write(str(root / "gunshot.flac"), x, 16000)
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (root / "empty.flac").write_bytes(b"")
    with fk.detector_node() as node:
        argv = [
            "--port",
            node.port,
            "--root",
            str(root),
            "--json-out",
            str(tmp_path / "h.json"),
            "--no-reference",
            "--no-plots",
            "-q",
            "--no-truth",
        ]
        rc = hil_cmd.main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and "broken.wav: not a readable audio file" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        rc = hil_cmd.main(argv + ["--skip-bad"])
    assert rc == 0
    d = json.loads((tmp_path / "h_details.json").read_text())
    assert len(d["refused"]) == 2
    assert json.loads((tmp_path / "h.json").read_text())["skipped"] == 2
    notes = {f["file"]: f["note"] for f in d["files"]}
    assert notes["gunshot_44k.wav"] == "resampled 44100 Hz -> 16000 Hz (soxr VHQ)"
    ev = {f["file"]: [e["onset_s"] for e in f["node_events"]] for f in d["files"]}
    assert ev["gunshot.flac"] and ev["gunshot_44k.wav"]
    assert abs(ev["gunshot.flac"][0] - ev["gunshot_44k.wav"][0]) <= 0.032


def test_ground_truth_formats(tmp_path):
    root = tmp_path / "r"
    (root / "sub").mkdir(parents=True)
    for name in ("a.wav", "sub/b.wav", "c.wav"):
        sf.write(str(root / name), np.zeros(1600, np.int16), 16000, subtype="PCM_16")
    clips = hil.find_audio(root)
    csv_path = tmp_path / "t.csv"
    csv_path.write_text(
        "scene,onset_s,offset_s,label,extra\na.wav,1.0,2.0,gunshot,x\n"
        "./sub/b.wav,0.5,0.7,dog_bark,y\nc.wav,,,,\n"
    )
    t = hil.load_scenes(csv_path, clips, root)
    assert t == {
        "a.wav": [hil.Truth(1.0, 2.0, "gunshot")],
        "sub/b.wav": [hil.Truth(0.5, 0.7, "dog_bark")],
        "c.wav": [],
    }
    txt = tmp_path / "t.txt"
    txt.write_text("a.wav\t1.0\t2.0\tgunshot\nsub/b.wav\t0.5\t0.7\tcar_horn\n")
    t = hil.load_scenes(txt, clips, root)
    assert t["sub/b.wav"] == [hil.Truth(0.5, 0.7, "car_horn")]
    (root / "a.txt").write_text("1.0\t2.0\tgunshot\n3.0\t3.5\tsiren\n")  # per-file DCASE
    t = hil.load_scenes(None, clips, root)
    assert t["a.wav"] == [hil.Truth(1.0, 2.0, "gunshot"), hil.Truth(3.0, 3.5, "siren")]
    assert t["c.wav"] == []
    bad = {
        "scene,onset,offset,label\na.wav,1,2,x\n": "needs columns",
        "scene,onset_s,offset_s,label\nnope.wav,1,2,x\n": "not an audio file",
        "scene,onset_s,offset_s,label\na.wav,2,1,x\n": "before onset",
        "scene,onset_s,offset_s,label\na.wav,one,2,x\n": "not a number",
    }
    for text, why in bad.items():
        csv_path.write_text(text)
        with pytest.raises(hil.HilError, match=why):
            hil.load_scenes(csv_path, clips, root)


def test_scoring_by_hand():
    """sed_eval event-based, 200 ms onset collar, offsets ignored; labels outside the
    scored classes ignored; latency from the arrival position."""
    files = [
        {
            "file": "a.wav",
            "truth": [
                {"onset_s": 1.0, "offset_s": 2.0, "label": "gunshot", "scored": True},
                {"onset_s": 5.0, "offset_s": 6.0, "label": "siren", "scored": True},
                {"onset_s": 8.0, "offset_s": 9.0, "label": "car_horn", "scored": False},
            ],
            "node_events": [
                {"label": "gunshot", "onset_s": 1.15, "offset_s": 1.2, "arrival_s": 1.9},
                {"label": "gunshot", "onset_s": 3.0, "offset_s": 3.1, "arrival_s": 3.9},
                {"label": "siren", "onset_s": 5.3, "offset_s": 9.0, "arrival_s": 6.0},
            ],
        },
        {
            "file": "b.wav",
            "truth": [],
            "node_events": [
                {"label": "dog_bark", "onset_s": 0.5, "offset_s": 0.6, "arrival_s": 1.5}
            ],
        },
    ]
    sc = hil.score(files, ["gunshot", "siren", "dog_bark"], 0.2)
    # tp 1 (gunshot), fp 3, fn 1 (siren 300 ms late is outside the collar)
    assert sc["event_f1"] == pytest.approx(2 * 1 / (2 * 1 + 3 + 1))
    assert sc["false_alarms"] == 3
    assert sc["per_class"]["gunshot"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3, abs=1e-6),
        "support": 1,
    }
    assert sc["per_class"]["siren"]["recall"] == 0.0
    assert sc["onset_latency_ms"] == pytest.approx(900.0)
    assert hil.Thresholds(min_event_f1=0.4, max_onset_latency_ms=1000).check(
        {"event_f1": sc["event_f1"], "onset_latency_ms": sc["onset_latency_ms"]}
    ) == ["event_f1 0.3333 < 0.4"]


def test_model_mismatch_refused():
    clips, truth = clips_of(SCENES, SCENES / "scenes.csv")
    ref = hil.Reference(fk.LABELS, 7, b"\x11" * 8, fk.toy_core_node)
    with fk.detector_node() as node, lk.NodeLink(node.port) as link:
        with pytest.raises(hil.HilError, match="node runs model 0001020304050607"):
            hil.run(link, clips, truth, ref)


def test_bad_root(tmp_path, capsys):
    assert (
        hil_cmd.main(
            [
                "--port",
                "x",
                "--root",
                str(tmp_path / "none"),
                "--json-out",
                str(tmp_path / "o.json"),
            ]
        )
        == 2
    )
    assert "not a folder" in capsys.readouterr().err


def test_shipped_scenes_are_reproducible():
    """tests/audio/scenes is exactly what tools/make_scenes.py builds from the shipped clips."""
    from tools import make_scenes

    assert make_scenes.main(["--check"]) == 0
    rows = (SCENES / "scenes.csv").read_text().splitlines()
    assert rows[0] == "scene,onset_s,offset_s,label,source" and len(rows) == 11
