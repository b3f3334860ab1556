"""tools.monitor end to end through pyserial: JSON lines and human output from the fake node and
the twin, log lines outside frames, link errors, --count/--duration, Ctrl-C, a vanished port."""

import json
import threading

import numpy as np
from helpers.fakenode import FakeNode

from tools import monitor as monitor_cmd
from tools.bench import link_bench as bench_link
from tools.hostio import monitor
from tools.sim.faultproxy import FaultProxy
from tools.wire import link as lk
from tools.wire import protocol as pr


def run_main(capsys, argv):
    rc = monitor_cmd.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_lines(capsys):
    x = np.zeros(16000 * 6, np.int16)
    evs = [
        pr.Event(16000, 8000, 0, 200, pr.EVENT_ONSET, 1),
        pr.Event(16000, 12000, 0, 230, pr.EVENT_END, 4),
        pr.Event(16000 * 4, 8000, 6, 210, pr.EVENT_ONSET, 1),
    ]
    with (
        FakeNode(x, record=True, events=evs, status_every=20) as node,
        FaultProxy(
            node.port,
            seed=2,
            log=0.05,
            crc=0.03,
            start_after=3,
            spare_types=(pr.HELLO, pr.EVENT, pr.CONFIG),
        ) as px,
    ):
        # which frame a fault hits depends on how STATUS answers interleave (timing): the
        # EVENTs this test counts are spared; --duration bounds the test if one is lost anyway
        rc, out, err = run_main(
            capsys, ["--port", px.port, "--json", "--count", "2", "--duration", "120"]
        )
        n_log = px.counts["log"]
    assert rc == 0 and err == ""
    recs = [json.loads(line) for line in out.splitlines()]
    assert recs[0]["type"] == "hello" and recs[0]["labels"][0] == "gunshot"
    assert recs[-1]["type"] == "end" and recs[-1]["events"] == 2
    ev = [r for r in recs if r["type"] == "event"]
    assert [(e["label"], e["kind"], e["onset_s"]) for e in ev] == [
        ("gunshot", "onset", 1.0),
        ("gunshot", "end", 1.0),
        ("dog_bark", "onset", 4.0),
    ]
    assert ev[1]["duration_s"] == 0.75 and ev[1]["hits"] == 4 and ev[1]["score"] == 0.8984
    st = [r for r in recs if r["type"] == "status"]
    assert st and st[0]["level_dbfs"] == -40.0 and st[0]["noise_floor_dbfs"] == -60.0
    assert st[0]["gate_duty"] == 0.1 and st[0]["inference_ms_last"] == 12.0
    assert st[0]["dropped_samples"] == 0
    logs = [r for r in recs if r["type"] == "log"]
    assert 0 < len(logs) <= n_log and "injected log line" in logs[0]["text"]
    assert any(r["type"] == "link_error" and r["kind"] == "crc" for r in recs)
    assert all(r["t"].endswith("Z") for r in recs)


def test_human_output_with_the_twin(capsys):
    from tools.sim import twin

    with twin.start("tests/audio/gunshot_2.wav", stub_scores=bench_link.STUB_SCORES) as t:
        rc, out, err = run_main(
            capsys,
            ["--port", t.port, "--count", "1", "--duration", "120", "--status-period-ms", "100"],
        )
    assert rc == 0
    lines = out.splitlines()
    assert "HELLO" in lines[0] and "board twin" in lines[0]
    assert any("EVENT  gunshot" in ln and "score 0.78" in ln for ln in lines)
    assert lines[-1].startswith("events 1,")


def test_meter():
    assert monitor.meter(0.0, 10) == "|##########|"
    assert monitor.meter(-90.0, 10) == "|..........|"
    assert monitor.meter(-45.0, 10) == "|#####.....|"


def test_duration_and_status_polling(capsys):
    with FakeNode() as node:  # no periodic STATUS: the monitor asks
        node.config[pr.CFG_STATUS_PERIOD_MS] = 0
        rc, out, err = run_main(
            capsys, ["--port", node.port, "--json", "--duration", "0.6", "--status-every", "0.1"]
        )
    recs = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and sum(r["type"] == "status" for r in recs) >= 3


def test_ctrl_c_exits_0(capsys, monkeypatch):
    calls = {"n": 0}
    real_poll = lk.NodeLink.poll

    def poll(self):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_poll(self)

    monkeypatch.setattr(lk.NodeLink, "poll", poll)
    with FakeNode() as node:
        rc, out, err = run_main(capsys, ["--port", node.port])
    assert rc == 0 and "Traceback" not in err and out.splitlines()[-1].startswith("events 0")


def test_vanished_port_exit_1(capsys):
    x = np.zeros(16000 * 60, np.int16)
    with FakeNode(x, record=True, pace=5.0) as node:
        threading.Timer(0.5, node.vanish).start()
        rc, out, err = run_main(capsys, ["--port", node.port, "--json"])
    assert rc == 1 and "vanished" in err and len(err.strip().splitlines()) == 1


def test_bad_arguments(capsys):
    rc, out, err = run_main(capsys, ["--port", "/dev/earwitness-none"])
    assert rc == 2 and "no such serial port" in err
    rc, out, err = run_main(capsys, ["--port", "x", "--count", "0"])
    assert rc == 2
