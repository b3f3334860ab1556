"""A small scripted node on a pty, for link tests that the real twin cannot stage
(unknown protocol version, a node that only sends garbage, exact AUDIO streams with events).

    with FakeNode(pcm=x, record=True) as node:
        link = NodeLink(node.port) ...

It speaks protocol v1 through tools.wire.protocol: HELLO at start and on request, CMD
(HELLO/STATUS/START_STREAM/STOP_STREAM/REBOOT), CONFIG_GET/SET, INJECT with credits (buffer of
`buffer` samples, grants every `grant_step` consumed samples), AUDIO frames of `pcm` in record
mode (512 samples each, as fast as the pty takes them), EVENT frames at given sample indices.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from tools.node import params
from tools.sim.pty import open_raw_pty, write_all
from tools.wire import protocol as pr

LABELS = list(params.DEFAULT_LABELS)


class FakeNode:
    def __init__(
        self,
        pcm=None,
        *,
        record=False,
        events=(),
        proto_version=1,
        garbage_only=False,
        buffer=4096,
        grant_step=1024,
        labels=LABELS,
        seq0=0,
        status_every=0,
        on_inject=None,
        audio_frame=512,
        hello_at_start=True,
        pace=None,
        on_start=None,
        on_stop=None,
        autostart=True,
    ):
        self.pcm = None if pcm is None else np.asarray(pcm, np.int16)
        self.record = record
        self.events = sorted(events, key=lambda e: e.onset_sample)
        self.proto_version = proto_version
        self.garbage_only = garbage_only
        self.buffer = buffer
        self.grant_step = grant_step
        self.labels = labels
        self.enc = pr.Encoder(seq0)
        self.status_every = status_every
        self.on_inject = on_inject
        self.on_start = on_start
        self.on_stop = on_stop
        self.autostart = autostart  # record mode: stream before any START_STREAM 0
        self.started = threading.Event()
        self.audio_frame = audio_frame
        self.hello_at_start = hello_at_start
        self.pace = pace
        self.received = []  # (first_sample, np.int16 array) of accepted INJECTs
        self.host_items = []
        self.outstanding = 0  # G
        self.consumed_since_grant = 0
        self.inject_pos = 0
        self.audio_done = threading.Event()
        self.host_seen = threading.Event()
        self.config = {
            pr.CFG_MODE: 0,
            pr.CFG_AUDIO_STREAM: 1 if record else 0,
            pr.CFG_STATUS_PERIOD_MS: 0,
        }
        self._lock = threading.RLock()  # one frame's encode + write is atomic (seq order)
        self._stream_lock = threading.RLock()
        self._restart = False
        self._pos = 0
        self._stop = threading.Event()
        self._threads = []
        self.master, self.slave = open_raw_pty(nonblocking=True)  # write() polls _stop
        self.port = os.ttyname(self.slave)

    # ---- output ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        with self._lock:
            if self.master is not None:
                write_all(
                    self.master, data, stop=lambda: self._stop.is_set() or self.master is None
                )

    def send(self, msg) -> None:
        # encode and write under one lock: otherwise the reader's reply (HELLO, CONFIG, ACK)
        # could take a seq number after an AUDIO frame and reach the wire before it
        with self._lock:
            self.write(self.enc.encode(msg))

    def hello(self) -> pr.Hello:
        return pr.Hello(
            proto_version=self.proto_version,
            fw_major=0,
            fw_minor=2,
            fw_patch=0,
            reset_reason=1,
            sample_rate_hz=16000,
            model_hash=bytes(range(8)),
            config_hash=bytes(range(8, 16)),
            node_id=bytes.fromhex("24a1b2c3d4e5"),
            board="fake",
            labels=self.labels,
        )

    def status(self) -> pr.Status:
        return pr.Status(
            sample_index=self.inject_pos,
            level_dbfs_q8=-40 * 256,
            noise_floor_dbfs_q8=-60 * 256,
            gate_duty_q16=6553,
            inference_count=3,
            inference_us_last=12000,
            inference_us_max=15000,
            dropped_samples=0,
            mode=0,
            credits=self.outstanding,
        )

    # ---- lifetime -------------------------------------------------------------------------
    def start(self) -> FakeNode:
        for fn in (self._reader, self._talker):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _join(self) -> None:
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(2.0)

    def stop(self) -> None:
        self._stop.set()
        self._join()
        self._close("master")
        self._close("slave")

    def _close(self, which: str) -> None:
        """Close one pty end once (a second close could hit a reused descriptor)."""
        fd = getattr(self, which)
        if fd is not None:
            setattr(self, which, None)
            try:
                os.close(fd)
            except OSError:
                pass

    def vanish(self) -> None:
        """Close the pty's master: the host's port fails like a pulled cable."""
        self._stop.set()
        self._join()  # no thread of ours may still use the descriptor number once closed
        self._close("master")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- threads --------------------------------------------------------------------------
    def _talker(self) -> None:
        if self.garbage_only:
            rng = np.random.default_rng(1)
            while not self._stop.is_set():
                self.write(rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
                time.sleep(0.01)
            return
        if self.hello_at_start:
            self.send(self.hello())
        if not (self.record and self.pcm is not None):
            return
        ready = self.host_seen if self.autostart else self.started
        while not ready.wait(0.05):  # stream once the host is listening
            if self._stop.is_set():
                return
        n = self.audio_frame
        t0 = time.monotonic()
        self._pos = 0
        ev = list(self.events)
        while not self._stop.is_set():
            while self.config.get(pr.CFG_AUDIO_STREAM, 1) == 0 and not self._stop.is_set():
                time.sleep(0.01)
            with self._stream_lock:  # START_STREAM restarts the stream atomically
                if self._restart:
                    self._restart = False
                    self._pos, ev, t0 = 0, list(self.events), time.monotonic()
                i = self._pos
                at_end = i >= self.pcm.size
                if not at_end:
                    chunk = self.pcm[i : i + n]
                    self.send(pr.Audio(i, chunk))
                    while ev and ev[0].onset_sample < i + chunk.size:
                        self.send(ev.pop(0))
                    if self.status_every and (i // n) % self.status_every == 0:
                        st = self.status()
                        st.sample_index = i + chunk.size
                        self.send(st)
                    self._pos = i + chunk.size
            if at_end:
                # the whole source went out (e.g. while the host was still in its HELLO /
                # CONFIG handshake): the node stays up, and a START_STREAM that comes now
                # restarts the stream from sample 0 as it does mid-stream
                self.audio_done.set()
                while not self._restart and not self._stop.is_set():
                    time.sleep(0.01)
                continue
            if self.pace:
                ahead = (i + chunk.size) / 16000 / self.pace - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    def _reader(self) -> None:
        dec = pr.FrameDecoder()
        import select

        while not self._stop.is_set():
            try:
                fd = self.master
                if fd is None:
                    return
                r, _, _ = select.select([fd], [], [], 0.05)
                if not r:
                    continue
                data = os.read(fd, 65536)
            except (OSError, ValueError, TypeError):
                return
            for it in dec.feed(data):
                self.host_items.append(it)
                self.host_seen.set()
                if isinstance(it, pr.Frame) and it.msg is not None:
                    self._handle(it)

    def _handle(self, fr: pr.Frame) -> None:
        m = fr.msg
        if self.garbage_only:
            return
        if isinstance(m, pr.HelloRequest):
            self.send(self.hello())
        elif isinstance(m, pr.Cmd):
            if m.command == pr.CMD_HELLO:
                self.send(self.hello())
            elif m.command == pr.CMD_STATUS:
                self.send(self.status())
            elif m.command == pr.CMD_START_STREAM:
                if self.on_start is not None:
                    self.on_start(m.arg)
                with self._stream_lock:
                    if m.arg == 0:
                        self._restart = True  # record mode: a new stream from sample 0
                        self.started.set()
                    self.send(pr.Ack(fr.seq, pr.CMD))
                if m.arg == 1:
                    self.inject_pos = 0  # a new stream: G = B, all granted
                    self.consumed_since_grant = 0
                    self.outstanding = self.buffer
                    self.send(pr.Credit(self.buffer))
            elif m.command == pr.CMD_STOP_STREAM:
                for out in (self.on_stop() if self.on_stop is not None else None) or ():
                    self.send(out)
                self.send(pr.Ack(fr.seq, pr.CMD))
            elif m.command == pr.CMD_REBOOT:
                self.send(pr.Ack(fr.seq, pr.CMD))
        elif isinstance(m, pr.ConfigSet):
            self.config[m.key] = m.value
            self.send(pr.Config(m.key, m.value))
        elif isinstance(m, pr.ConfigGet):
            if m.key in self.config:
                self.send(pr.Config(m.key, self.config[m.key]))
            else:
                self.send(pr.Error(pr.ERRC_BAD_CONFIG_KEY, fr.seq, "no such key"))
        elif isinstance(m, pr.Inject):
            n = len(m.samples)
            if n > self.outstanding:
                self.send(pr.Error(pr.ERRC_NO_CREDIT, fr.seq, "no credit"))
                return
            self.outstanding -= n
            x = np.frombuffer(m.samples.tobytes(), np.int16).copy()
            self.received.append((m.first_sample, x))
            self.inject_pos = m.first_sample + n
            if self.on_inject is not None:
                for out in self.on_inject(m.first_sample, x) or ():
                    self.send(out)
            self.consumed_since_grant += n
            while self.consumed_since_grant >= self.grant_step:
                self.consumed_since_grant -= self.grant_step
                self.outstanding += self.grant_step
                self.send(pr.Credit(self.grant_step))


# ---- a detector node: the real C detector with a toy classifier, on both sides of a HIL run


def toy_classify(window, feats):
    """Deterministic stand-in for the model: loud, broadband windows are 'gunshot'."""
    m = float(np.asarray(feats, np.float64).mean())
    s = np.zeros(len(LABELS), np.int64)
    if m > -60:
        s[0] = 230
        s[-1] = 25
    else:
        s[-1] = 255
    return s


TOY_THRESHOLDS = [0.5] + [None] * (len(LABELS) - 1)


def toy_core_node():
    from tools.node import core

    return core.Node(toy_classify, len(LABELS), thresholds=TOY_THRESHOLDS, trace=True)


class DetectorHooks:
    """on_start/on_inject/on_stop for FakeNode: runs toy_core_node on the injected audio and
    sends its events as EVENT frames (what the real node does with its model)."""

    def __init__(self):
        self.node = None
        self.sent = 0

    def on_start(self, arg):
        self.node = toy_core_node()
        self.sent = 0

    def _drain(self):
        out = []
        for e in self.node.events[self.sent :]:
            out.append(
                pr.Event(
                    e.onset_sample,
                    e.duration_samples,
                    e.class_index,
                    e.score,
                    pr.EVENT_ONSET if e.kind == "onset" else pr.EVENT_END,
                    e.hits,
                )
            )
        self.sent = len(self.node.events)
        return out

    def on_inject(self, first, x):
        self.node.process(x)
        return self._drain()

    def on_stop(self):
        if self.node is None:
            return []
        self.node.flush()
        return self._drain()


def detector_node(**kw) -> FakeNode:
    h = DetectorHooks()
    return FakeNode(on_start=h.on_start, on_inject=h.on_inject, on_stop=h.on_stop, **kw)
