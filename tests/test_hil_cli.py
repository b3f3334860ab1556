"""tools/hil.py through its command line: arguments refused before any work, an interrupted run
(exit 130/143, partial results marked incomplete), missing ground truth, the deprecated --json
name, and the report (outcome words, PASS/FAIL, the verdict; rendered by chromium when it is
installed)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import fakenode as fk

from tools import hil as hil_cmd
from tools.node import params
from tools.validate import hil

ROOT = params.ROOT
AUDIO = ROOT / "tests" / "audio"
HAVE_MODEL = (ROOT / "firmware" / "model" / "manifest.json").exists()
PY = sys.executable


def hil_cli(*args, timeout=120):
    return subprocess.run(
        [PY, str(ROOT / "tools" / "hil.py"), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(err: str, what: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hil: error: ") and what in lines[0], err


def test_json_under_a_regular_file_is_refused_at_once(tmp_path):
    (tmp_path / "f").write_text("x")
    r = hil_cli(
        "--sim",
        "--root",
        AUDIO,
        "--scenes",
        AUDIO / "scenes" / "truth.csv",
        "--json-out",
        tmp_path / "f" / "h.json",
    )
    assert r.returncode == 2
    one_error_line(r.stderr, "is not a folder")


@pytest.mark.parametrize(
    "extra, what",
    [
        (["--collar", "0"], "--collar 0: the onset collar is seconds > 0"),
        (["--collar", "-0.1"], "seconds > 0"),
        (["--min-event-f1", "1.5"], "--min-event-f1 1.5: out of range (0..1)"),
        (["--min-gate-recall", "-1"], "--min-gate-recall -1: out of range"),
        (["--max-false-alarms-per-hour", "-2"], "out of range (>= 0)"),
        (["--max-reference-mismatches", "-1"], "out of range"),
        (["--scenes", "missing.csv"], "missing.csv: no such file"),
    ],
)
def test_bad_arguments_refused_before_any_work(tmp_path, capsys, extra, what):
    """Each refused in one line before the node is touched: --port names nothing, so any work
    would end in a link error instead."""
    argv = [
        "--port",
        str(tmp_path / "no-such-port"),
        "--root",
        str(AUDIO),
        "--json-out",
        str(tmp_path / "o" / "h.json"),
        "--no-reference",
    ]
    if "--scenes" not in extra:
        argv += ["--scenes", str(AUDIO / "scenes" / "truth.csv")]
    assert hil_cmd.main(argv + extra) == 2
    one_error_line(capsys.readouterr().err, what)
    assert not (tmp_path / "o" / "h.json").exists()


def test_bad_root_and_output(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--root", str(empty), "--json-out", str(tmp_path / "h.json")], "no audio files"),
        (["--root", str(AUDIO), "--json-out", str(tmp_path)], "is a folder"),
        (["--root", str(AUDIO)], "--json-out FILE is required"),
        (
            [
                "--root",
                str(AUDIO),
                "--json-out",
                str(tmp_path / "a.json"),
                "--json",
                str(tmp_path / "b.json"),
            ],
            "give --json-out only",
        ),
    ]
    (tmp_path / "p_plots").write_text("")
    cases.append(
        (["--root", str(AUDIO), "--json-out", str(tmp_path / "p.json")], "p_plots: not a folder")
    )
    for argv, what in cases:
        assert hil_cmd.main(["--port", "nowhere", "--no-reference", "--no-truth"] + argv) == 2, argv
        one_error_line(capsys.readouterr().err, what)


@pytest.mark.skipif(not HAVE_MODEL, reason="needs the exported model in firmware/model")
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_is_not_a_success(tmp_path, sig, code):
    """Ctrl-C (SIGINT) or SIGTERM during streaming: exit 130 / 143, the files streamed so far
    scored and written with complete: false, the report says INCOMPLETE at the top."""
    root = tmp_path / "a"
    root.mkdir()
    names = ["a_gunshot.wav", "b_long_room.wav", "c_siren.wav"]
    shutil.copy(AUDIO / "gunshot_1.wav", root / names[0])
    rng = np.random.default_rng(1)  # 10 minutes of quiet room: seconds to stream
    sf.write(
        str(root / names[1]),
        (rng.normal(0, 30, 600 * 16000)).astype(np.int16),
        16000,
        subtype="PCM_16",
    )
    shutil.copy(AUDIO / "siren_1.wav", root / names[2])
    truth = root / "t.csv"
    truth.write_text(
        "scene,onset_s,offset_s,label\na_gunshot.wav,0.5,0.78,gunshot\n"
        "b_long_room.wav,,,\nc_siren.wav,0.5,4.0,siren\n"
    )
    out = tmp_path / "o" / "hil.json"
    p = subprocess.Popen(
        [
            PY,
            str(ROOT / "tools" / "hil.py"),
            "--sim",
            "--root",
            str(root),
            "--scenes",
            str(truth),
            "--json-out",
            str(out),
            "--min-event-f1",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    plots = out.parent / "hil_plots"
    t0 = time.monotonic()
    while not (plots.is_dir() and any(plots.glob("*.png"))):  # the first file is done
        assert p.poll() is None, p.communicate()
        assert time.monotonic() - t0 < 120
        time.sleep(0.05)
    time.sleep(0.3)  # its plot is written just before it counts
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == code, stderr
    assert "Traceback" not in stderr and "interrupted after" in stderr
    m = json.loads(out.read_text())
    assert m["complete"] is False
    assert m["files_streamed"] == 1 and m["files_not_reached"] == names[1:]
    assert m["audio_seconds"] == 3.0 and m["event_f1"] == 1.0  # the gunshot clip alone
    d = json.loads((out.parent / "hil_details.json").read_text())
    assert [f["file"] for f in d["files"]] == names[:1]
    assert (out.parent / "hil.md").read_text().startswith("# HIL report: INCOMPLETE")
    assert "HIL report: INCOMPLETE" in (out.parent / "hil.html").read_text()
    assert stdout.startswith("HIL INCOMPLETE")


def test_no_ground_truth_is_refused_or_said(tmp_path, capsys):
    root = tmp_path / "a"
    root.mkdir()
    shutil.copy(AUDIO / "gunshot_1.wav", root / "gunshot_1.wav")
    shutil.copy(AUDIO / "manifest.csv", root / "manifest.csv")
    with fk.detector_node() as node:
        base = [
            "--port",
            node.port,
            "--root",
            str(root),
            "--no-reference",
            "--no-plots",
            "--json-out",
            str(tmp_path / "h.json"),
        ]
        assert hil_cmd.main(base) == 2
        err = capsys.readouterr().err
        one_error_line(err, "no ground truth for")
        assert "manifest.csv lists clip labels, not event times" in err and "--no-truth" in err
        assert hil_cmd.main(base + ["--no-truth"]) == 0
    cap = capsys.readouterr()
    assert (
        "hil: warning: no ground truth" in cap.err
        and "every node event is a false alarm" in cap.err
    )
    m = json.loads((tmp_path / "h.json").read_text())
    assert m["ground_truth"].startswith("none (--no-truth)") and m["event_f1"] is None
    assert "ground truth: none (--no-truth)" in cap.out
    md = (tmp_path / "h.md").read_text()
    assert "**No ground truth: none (--no-truth)" in md
    assert "false alarm (gunshot at 0.51 s)" in md


def test_deprecated_json_name_still_works(tmp_path, capsys):
    with fk.detector_node() as node:
        rc = hil_cmd.main(
            [
                "--port",
                node.port,
                "--root",
                str(AUDIO / "scenes"),
                "--scenes",
                str(AUDIO / "scenes" / "scenes.csv"),
                "--no-reference",
                "--no-plots",
                "-q",
                "--json",
                str(tmp_path / "h.json"),
            ]
        )
    err = capsys.readouterr().err
    assert rc == 0 and err.strip() == "hil: warning: --json FILE is deprecated, use --json-out FILE"
    assert json.loads((tmp_path / "h.json").read_text())["complete"] is True


def known_outcomes_run(tmp_path, capsys) -> Path:
    """The toy detector calls every loud onset 'gunshot' (at 0.5 s in these clips): one
    correct gunshot, one missed gunshot, a siren named gunshot, a false alarm on a door knock
    (unscored 'other'), a quiet negative clip, a gunshot found 499 ms after its annotated
    onset (outside the 200 ms collar)."""
    root = tmp_path / "a"
    root.mkdir()
    for n in (
        "gunshot_1.wav",
        "siren_1.wav",
        "other_door_wood_knock_1.wav",
        "background_rain_1.wav",
        "dog_bark_1.wav",
    ):
        shutil.copy(AUDIO / n, root / n)
    truth = tmp_path / "t.csv"
    truth.write_text(
        "scene,onset_s,offset_s,label\ngunshot_1.wav,0.5,0.78,gunshot\n"
        "gunshot_1.wav,2.0,2.2,gunshot\nsiren_1.wav,0.5,4.0,siren\n"
        "other_door_wood_knock_1.wav,0.5,1.5,other\nbackground_rain_1.wav,,,\n"
        "dog_bark_1.wav,0.0,1.0,gunshot\n"
    )
    out = tmp_path / "o" / "hil.json"
    with fk.detector_node() as node:
        rc = hil_cmd.main(
            [
                "--port",
                node.port,
                "--root",
                str(root),
                "--scenes",
                str(truth),
                "--json-out",
                str(out),
                "--no-reference",
                "-q",
                "--min-event-f1",
                "0.1",
                "--max-false-alarms-per-hour",
                "1",
            ]
        )
    err = capsys.readouterr().err
    assert rc == 1 and "thresholds missed: false_alarms_per_hour" in err
    return out


def test_report_shows_what_went_wrong(tmp_path, capsys):
    out = known_outcomes_run(tmp_path, capsys)
    d = json.loads(out.with_name("hil_details.json").read_text())
    words = {f["file"]: f["outcomes"]["words"] for f in d["files"]}
    assert words == {
        "background_rain_1.wav": ["quiet on a negative clip — correct"],
        "dog_bark_1.wav": [
            "mistimed (gunshot at 0.50 s, +499 ms from the annotated onset, collar 200 ms)"
        ],
        "gunshot_1.wav": ["correct (gunshot at 0.50 s)", "missed (gunshot at 2.00 s)"],
        "other_door_wood_knock_1.wav": ["false alarm (gunshot at 0.51 s)"],
        "siren_1.wav": ["wrong class (gunshot for siren at 0.48 s)"],
    }
    html = out.with_suffix(".html").read_text()
    assert "<h1>HIL report: FAIL</h1>" in html and '<header class="v-FAIL">' in html
    for w in sum(words.values(), []):
        assert w in html
    assert '<li class="miss">missed (gunshot at 2.00 s)</li>' in html
    assert '<li class="bad">wrong class (gunshot for siren at 0.48 s)</li>' in html
    assert '<li class="bad">mistimed (gunshot at 0.50 s, +499 ms' in html
    # each threshold next to its figure: 1 hit, 3 false alarms, 3 misses: F1 2/8 passes 0.1;
    # 3 false alarms in 17 s fail
    assert (
        '<tr><td>event_f1</td><td class="n">0.250</td><td>≥ 0.1</td>'
        '<td><span class="PASS">PASS</span></td>'
    ) in html
    assert (
        '<tr><td>false_alarms_per_hour</td><td class="n">635.3 /h</td><td>≤ 1</td>'
        '<td><span class="FAIL">FAIL</span></td>'
    ) in html
    assert "<style>" in html and "http" not in html.replace("http-equiv", "")
    assert len(list(out.with_name("hil_plots").glob("*.png"))) == 5
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# HIL report: FAIL")
    assert "| event_f1 | 0.250 | ≥ 0.1 | PASS |" in md
    assert "| gate_recall | n/a | — | — |" in md


def test_outcomes_by_hand():
    f = {
        "truth": [
            {"onset_s": 1.0, "offset_s": 2.0, "label": "gunshot", "scored": True},
            {"onset_s": 5.0, "offset_s": 6.0, "label": "siren", "scored": True},
            {"onset_s": 8.0, "offset_s": 8.5, "label": "dog_bark", "scored": True},
        ],
        "node_events": [
            {"label": "gunshot", "onset_s": 1.1},
            {"label": "gunshot", "onset_s": 1.15},
            {"label": "gunshot", "onset_s": 5.5},
        ],
    }
    o = hil.outcomes(f, ["gunshot", "siren", "dog_bark"], 0.2)
    assert o["truth"] == ["hit", "wrong_class", "missed"]
    assert o["node"] == ["correct", "false_alarm", "wrong_class"]
    assert o["words"] == [
        "correct (gunshot at 1.00 s)",
        "false alarm (gunshot at 1.15 s)",
        "wrong class (gunshot for siren at 5.50 s)",
        "missed (dog_bark at 8.00 s)",
    ]
    assert not o["ok"]
    quiet = hil.outcomes({"truth": [], "node_events": []}, ["gunshot"], 0.2)
    assert quiet["words"] == ["quiet on a negative clip — correct"] and quiet["ok"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    chromium() is None,
    reason="chromium is not installed (apt-get install chromium) to render the HTML report",
)
def test_report_renders_in_a_browser(tmp_path, capsys):
    """Headless chromium renders the report: the screenshot is not blank and its top carries
    the verdict's colour (the red header of a FAIL)."""
    out = known_outcomes_run(tmp_path, capsys)
    png = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    r = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1280,1600",
            out.with_suffix(".html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert png.exists() and png.stat().st_size > 0, r.stderr[-2000:]
    from matplotlib import image

    img = np.asarray(image.imread(str(png)))[..., :3]
    assert img.shape[:2] == (1600, 1280)
    assert img.std() > 0.05  # not one flat colour
    top = np.median(img[2:10, 600:1200].reshape(-1, 3), 0)  # the header's padding: #c62828
    assert top[0] > 0.6 and top[1] < 0.3 and top[2] < 0.3, top
    assert (img[:1600].reshape(-1, 3) < 0.5).all(1).mean() > 0.005  # text and tables drawn


def test_node_failure_keeps_what_was_measured(tmp_path, capsys):
    """A node that stops answering during the second file: exit 1 with the link's reason, the
    first file's figures written, complete: false, the report says INCOMPLETE and why."""
    root = tmp_path / "a"
    root.mkdir()
    for n in ("gunshot_1.wav", "siren_1.wav"):
        shutil.copy(AUDIO / n, root / n)
    truth = tmp_path / "t.csv"
    truth.write_text(
        "scene,onset_s,offset_s,label\ngunshot_1.wav,0.5,0.78,gunshot\nsiren_1.wav,0.5,4.0,siren\n"
    )

    class SilentInTheSecondFile(fk.DetectorHooks):
        starts = 0
        fake = None

        def on_start(self, arg):
            self.starts += 1
            if self.starts == 2:
                self.fake.grant_step = 1 << 40  # no credit after the first buffer
            return super().on_start(arg)

    h = SilentInTheSecondFile()
    out = tmp_path / "o" / "hil.json"
    with fk.FakeNode(on_start=h.on_start, on_inject=h.on_inject, on_stop=h.on_stop) as node:
        h.fake = node
        rc = hil_cmd.main(
            [
                "--port",
                node.port,
                "--root",
                str(root),
                "--scenes",
                str(truth),
                "--json-out",
                str(out),
                "--no-reference",
                "--no-plots",
                "-q",
                "--timeout",
                "stall_s=2",
                "--timeout",
                "credit_s=0.5",
            ]
        )
    err = capsys.readouterr().err
    assert rc == 1 and "partial results (complete: false)" in err and "Traceback" not in err
    m = json.loads(out.read_text())
    assert m["complete"] is False and m["files_streamed"] == 1
    assert m["files_not_reached"] == ["siren_1.wav"] and m["event_f1"] == 1.0
    assert "INCOMPLETE: the node or link failed" in out.with_suffix(".md").read_text()
