"""tools.link end to end through pyserial on a pty: HELLO, errors (unknown protocol version,
wrong baud, silent node, missing/busy/vanishing port), INJECT credit flow control, and the
fault-injecting proxy (garbage, truncation, CRC errors, drops, node reset, sequence wrap)."""

import os
import time
import tty

import numpy as np
import pytest
from helpers.fakenode import FakeNode

from tools import cli
from tools import link as link_cmd
from tools.sim.faultproxy import FaultProxy
from tools.wire import link as lk
from tools.wire import protocol as pr

FAST = lk.Timeouts(hello_s=1.0, hello_tries=2, reply_s=2.0, credit_s=0.2, stall_s=5.0)
SHORT = lk.Timeouts(hello_s=0.3, hello_tries=2)  # for nodes that never answer


def audio_frames(items):
    return [it.msg for it in items if isinstance(it, pr.Frame) and isinstance(it.msg, pr.Audio)]


def test_hello_and_requests():
    with FakeNode() as node, lk.NodeLink(node.port, timeouts=FAST) as link:
        h = link.hello()
        assert h.board == "fake" and h.labels[0] == "gunshot" and h.fw_version == "0.2.0"
        assert link.hello_info == h
        assert link.config_set(pr.CFG_AUDIO_STREAM, 0) == 0
        assert link.config_get(pr.CFG_MODE) == 0
        with pytest.raises(lk.LinkError, match="BAD_CONFIG_KEY"):
            link.config_get(0x7777)
        st = link.status()
        assert isinstance(st, pr.Status) and st.level_dbfs_q8 == -40 * 256
        assert link.command(pr.CMD_STOP_STREAM).msg.acked_type == pr.CMD


def test_items_arriving_during_a_request_are_kept():
    x = np.arange(5000, dtype=np.int16)
    with FakeNode(x, record=True) as node, lk.NodeLink(node.port, timeouts=FAST) as link:
        link.hello()
        node.audio_done.wait(5)  # 10 frames: they fit in the pty's buffer
        link.status()  # AUDIO frames arrive before the STATUS answer
        frames = audio_frames(link.items(timeout=0.3))
    got = np.concatenate([np.frombuffer(a.samples.tobytes(), np.int16) for a in frames])
    assert np.array_equal(got, x)


def test_unknown_protocol_version_exit_2(capsys):
    with FakeNode(proto_version=7) as node:
        with lk.NodeLink(node.port, timeouts=FAST) as link:
            with pytest.raises(lk.LinkError) as e:
                link.hello()
        assert e.value.exit_code == 2
        assert "protocol v7, this tool v1" in str(e.value)
        rc = link_cmd.main(["--port", node.port, "--timeout", "hello_s=0.3"])
    err = capsys.readouterr().err
    assert rc == 2 and "protocol v7" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_wrong_baud_garbage_only():
    with FakeNode(garbage_only=True) as node, lk.NodeLink(node.port, timeouts=SHORT) as link:
        with pytest.raises(lk.LinkError) as e:
            link.hello()
    assert e.value.exit_code == 1
    assert "wrong baud? try --baud 115200" in str(e.value)


def test_silent_node():
    m, s = os.openpty()
    tty.setraw(m)
    tty.setraw(s)
    try:
        with lk.NodeLink(os.ttyname(s), timeouts=SHORT) as link:
            with pytest.raises(lk.LinkError, match="not answering"):
                link.hello()
    finally:
        os.close(m)
        os.close(s)


def test_missing_and_busy_port(capsys):
    with pytest.raises(lk.LinkError) as e:
        lk.NodeLink("/dev/earwitness-no-such-port").open()
    assert e.value.exit_code == 2 and "no such serial port" in str(e.value)
    assert link_cmd.main(["--port", "/dev/earwitness-no-such-port"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    with FakeNode() as node, lk.NodeLink(node.port):
        with pytest.raises(lk.LinkError) as e:
            lk.NodeLink(node.port, timeouts=lk.Timeouts(open_s=0.2)).open()
        assert e.value.exit_code == 1 and "busy" in str(e.value)


def test_port_vanishes_while_reading():
    x = np.zeros(16000 * 60, np.int16)
    with FakeNode(x, record=True, pace=4.0) as node, lk.NodeLink(node.port, timeouts=FAST) as link:
        link.hello()
        n = 0
        with pytest.raises(lk.LinkError) as e:
            for it in link.items(timeout=10):
                n += isinstance(it, pr.Frame)
                if n == 20:
                    node.vanish()
        assert e.value.exit_code == 1 and "vanished" in str(e.value)


def test_timeouts_override():
    t = lk.Timeouts()
    t.override("hello=0.5")
    t.override("stall_s=2")
    t.override("hello_tries=5")
    assert (t.hello_s, t.stall_s, t.hello_tries) == (0.5, 2.0, 5)
    for bad in ("nope=1", "hello_s", "hello_s=x", "hello_s=-1"):
        with pytest.raises(lk.LinkError) as e:
            t.override(bad)
        assert e.value.exit_code == 2
    assert link_cmd.main(["--port", "/dev/null", "--timeout", "bogus=1"]) == 2


def test_port_and_sim_exclusive():
    with pytest.raises(lk.LinkError) as e:
        cli.open_node(port="/dev/ttyUSB0", sim=True)
    assert e.value.exit_code == 2


def _stream(node, x, timeouts=FAST, via=None):
    with lk.NodeLink(via or node.port, timeouts=timeouts) as link:
        link.hello()
        link.command(pr.CMD_START_STREAM, 1)
        inj = lk.InjectStream(link)
        inj.run(x)
        link.command(pr.CMD_STOP_STREAM)
    time.sleep(0.05)
    return inj


def _check_received(node, x):
    firsts = [f for f, _ in node.received]
    got = np.concatenate([a for _, a in node.received])
    assert np.array_equal(got, x)
    sizes = [a.size for _, a in node.received]
    assert firsts == list(np.cumsum([0] + sizes[:-1]))
    assert all(s <= pr.MAX_PCM for s in sizes)


def test_inject_respects_credit_and_delivers_every_sample():
    x = np.random.default_rng(0).integers(-20000, 20000, 16000 * 8).astype(np.int16)
    with FakeNode(buffer=4096, grant_step=700) as node:
        inj = _stream(node, x)
        errors = [it for it in node.host_items if isinstance(it, pr.DecodeError)]
        assert not errors
    assert inj.rewinds == 0 and inj.resyncs == 0
    _check_received(node, x)
    assert inj.sent_samples == x.size


def test_inject_resyncs_after_lost_credit():
    """CREDIT frames dropped by the proxy: the host stalls, asks for STATUS, resyncs."""
    x = np.random.default_rng(1).integers(-20000, 20000, 16000 * 4).astype(np.int16)
    with (
        FakeNode(buffer=4096, grant_step=512) as node,
        FaultProxy(node.port, seed=5, drop=0.15, start_after=2) as px,
    ):
        inj = _stream(node, x, via=px.port)
        assert px.counts["drop"] > 0
    assert inj.resyncs > 0
    _check_received(node, x)


def test_inject_no_credit_rewinds():
    """A node that refuses one INJECT with NO_CREDIT (and, strictly, ignores the misaligned
    frames already in flight after it): the host rewinds, resyncs and completes the stream."""

    class Strict(FakeNode):
        n_inject = 0

        def _handle(self, fr):
            m = fr.msg
            if isinstance(m, pr.Inject):
                self.n_inject += 1
                n = len(m.samples)
                if self.n_inject == 3:
                    self.send(pr.Error(pr.ERRC_NO_CREDIT, fr.seq, "no credit"))
                    return
                if m.first_sample != self.inject_pos:  # in flight after the refusal
                    self.outstanding -= n
                    self.outstanding += n
                    self.send(pr.Credit(n))
                    return
            super()._handle(fr)

    x = np.arange(16000, dtype=np.int16)
    with Strict(buffer=4096, grant_step=512) as node:
        inj = _stream(node, x)
    assert inj.rewinds == 1 and inj.resyncs >= 1
    _check_received(node, x)


def test_faults_reported_and_survived():
    """Garbage, truncated frames, CRC errors, drops, dropped bytes, log lines and node resets:
    every intact frame arrives, every damaged one is reported, the rest is accounted for."""
    x = (np.arange(16000 * 20) % 4000 - 2000).astype(np.int16)
    with (
        FakeNode(x, record=True) as node,
        FaultProxy(
            node.port,
            seed=11,
            garbage=0.02,
            truncate=0.02,
            crc=0.02,
            drop=0.02,
            drop_bytes=0.02,
            log=0.02,
            reset_every=150,
        ) as px,
    ):
        with lk.NodeLink(px.port, timeouts=FAST) as link:
            link.hello()
            items = []
            for it in link.items(timeout=10):
                items.append(it)
                if (
                    isinstance(it, pr.Frame)
                    and isinstance(it.msg, pr.Audio)
                    and it.msg.first_sample + len(it.msg.samples) >= x.size
                ):
                    break
            st = link.stats
        c = dict(px.counts)
    frames = audio_frames(items)
    for a in frames:  # every frame that arrived is intact
        assert np.array_equal(
            np.frombuffer(a.samples.tobytes(), np.int16),
            x[a.first_sample : a.first_sample + len(a.samples)],
        )
    lost = c["truncate"] + c["crc"] + c["drop"] + c["drop_bytes"]
    assert len(frames) == x.size // 512 - lost
    assert c["garbage"] and c["truncate"] and c["crc"] and c["drop"] and c["reset"]
    errors = [it for it in items if isinstance(it, pr.DecodeError)]
    assert len(errors) >= c["garbage"] + c["crc"]
    assert st.err_crc >= c["crc"]
    assert st.resets == c["reset"]
    assert st.frames_missed >= lost - c["reset"]
    assert sum(isinstance(it, pr.LogLine) for it in items) == c["log"]


def test_faultproxy_is_deterministic():
    x = (np.arange(16000 * 4) % 300).astype(np.int16)
    logs = []
    for _ in range(2):
        with (
            FakeNode(x, record=True) as node,
            FaultProxy(node.port, seed=3, crc=0.05, drop=0.05, garbage=0.05) as px,
        ):
            with lk.NodeLink(px.port, timeouts=FAST) as link:
                link.hello()
                t_end = time.monotonic() + 10
                while not node.audio_done.is_set() and time.monotonic() < t_end:
                    link.poll()
                list(link.items(timeout=0.3))
            logs.append(list(px.log))
    assert logs[0] == logs[1] and logs[0]


def test_sequence_wrap():
    x = (np.arange(16000 * 25) % 1000).astype(np.int16)  # 782 frames
    with FakeNode(x, record=True) as node, FaultProxy(node.port, seq_offset=65300) as px:
        with lk.NodeLink(px.port, timeouts=FAST) as link:
            link.hello()
            seqs, n = [], 0
            for it in link.items(timeout=10):
                if isinstance(it, pr.Frame) and isinstance(it.msg, pr.Audio):
                    seqs.append(it.seq)
                    n += len(it.msg.samples)
                    if n >= x.size:
                        break
            st = link.stats
    assert 65535 in seqs and 0 in seqs and seqs.index(0) == seqs.index(65535) + 1
    assert st.seq_gaps == 0 and st.seq_backward == 0 and n == x.size


def test_faultproxy_cli_errors(capsys):
    from tools import faultproxy

    assert faultproxy.main(["--port", "/dev/earwitness-no-such-port", "--duration", "0.1"]) == 2
    assert faultproxy.main([]) == 2
    err = capsys.readouterr().err
    assert "no such serial port" in err and "Traceback" not in err
