"""A fault-injecting serial proxy: sits between a host tool and a node (a board or the twin's
pty) and damages the node's byte stream on purpose, deterministically (seeded), so that the
reliability tests can check that every tool reports and survives what a real cable does.

    python -m tools.faultproxy --port /dev/pts/5 --seed 1 --garbage 0.01 --crc 0.01 \\
        --truncate 0.01 --drop 0.01 --reset-every 5000
    # prints "earwitness faultproxy on /dev/pts/7"; point the tool at that

    with FaultProxy(twin.port, seed=1, crc=0.01) as px:
        record(px.port, ...)
        px.counts     # {"frames": N, "garbage": k, "crc": k, "truncate": k, "drop": k, ...}

Faults (node -> host direction, decided per frame with one seeded RNG; frames are counted
without the spared types (HELLO answers to the tool's requests come at timing-dependent
places), so the same node stream gets the same faults whatever the read timing):
  garbage      random non-text bytes (1..64, no 0x00) inserted before a frame: one DecodeError
  truncate     the frame cut to a random shorter length: a COBS/short/CRC error, frame lost
  crc          one payload byte flipped (CRC not updated): a CRC error, frame lost
  drop         the whole frame removed: the receiver sees a sequence gap
  drop_bytes   one random byte of the frame removed (like a UART overrun): frame lost
  reset        a HELLO (the node's own, replayed) inserted with seq 0 and the node's sequence
               renumbered from 1 after it, as after a node reboot; also on demand (`reset_now`)
  seq_offset   every node frame's seq shifted by this (re-encoded): start near 65535 to test
               the sequence wrap
  log          a plain-text log line inserted between frames
The host -> node direction is passed through unchanged.  `cut()` closes the tool's side (a
pulled cable).  HELLO frames are never damaged (spare_types) and nothing is damaged in the
first `start_after` frames, so tools can connect.
"""

from __future__ import annotations

import os
import random
import select
import struct
import sys
import threading
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.errors import BadInput
from tools.sim.pty import open_raw_pty, write_all
from tools.wire import protocol as pr

FAULTS = ("garbage", "truncate", "crc", "drop", "drop_bytes", "log")


def _decode_body(chunk: bytes) -> bytes | None:
    """The frame body of a chunk if it is a valid frame, else None."""
    try:
        body = pr.cobs_decode(chunk)
    except pr.ProtocolError:
        return None
    if len(body) < pr.OVERHEAD or len(body) > pr.MAX_BODY or body[0] != pr.MAGIC:
        return None
    if struct.unpack_from("<I", body, len(body) - 4)[0] != pr.crc32(body[:-4]):
        return None
    return body


def _reseq(body: bytes, seq: int) -> bytes:
    b = bytearray(body[:-4])
    struct.pack_into("<H", b, 2, seq & 0xFFFF)
    return bytes(b) + struct.pack("<I", pr.crc32(b))


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        garbage: float = 0.0,
        truncate: float = 0.0,
        crc: float = 0.0,
        drop: float = 0.0,
        drop_bytes: float = 0.0,
        log: float = 0.0,
        reset_every: int = 0,
        seq_offset: int = 0,
        start_after: int = 1,
        max_faults: int | None = None,
        spare_types=(pr.HELLO,),
        baud: int = 921600,
    ):
        self.upstream_name = upstream
        self.rates = {
            "garbage": garbage,
            "truncate": truncate,
            "crc": crc,
            "drop": drop,
            "drop_bytes": drop_bytes,
            "log": log,
        }
        self.reset_every = reset_every
        self.seq_offset = seq_offset
        self.start_after = start_after
        self.max_faults = max_faults
        self.spare_types = set(spare_types)
        self.baud = baud
        self.rng = random.Random(seed)
        self.counts = {
            "frames": 0,
            "bytes_up": 0,
            "bytes_down": 0,
            "reset": 0,
            **{k: 0 for k in FAULTS},
        }
        #: (index among non-spared frames, fault) in order: the same for the same node stream
        self.log: list[tuple[int, str]] = []
        self._hello_body: bytes | None = None
        self._reset_pending = False
        self._eligible = 0
        self._renumber: int | None = None  # after a simulated reset: next seq to give
        self._buf = bytearray()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._up = None
        self.master, self.slave = open_raw_pty()
        self.port = os.ttyname(self.slave)
        self._cut = False

    # ---- lifetime -------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        import serial

        self._up = serial.serial_for_url(self.upstream_name, baudrate=self.baud, timeout=0.02)
        for fn in (self._node_to_host, self._host_to_node):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2.0)
        if self._up is not None:
            try:
                self._up.close()
            except Exception:
                pass
        self.cut()
        try:
            os.close(self.slave)
        except OSError:
            pass

    def cut(self) -> None:
        """Close the tool's side of the pty, as if the cable were pulled."""
        if not self._cut:
            self._cut = True
            try:
                os.close(self.master)
            except OSError:
                pass

    def reset_now(self) -> None:
        """Simulate a node reset before the next frame (HELLO with seq 0, then seq 1, 2...)."""
        self._reset_pending = True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def faults(self) -> int:
        return sum(self.counts[k] for k in FAULTS if k != "log") + self.counts["reset"]

    # ---- data paths -----------------------------------------------------------------------
    def _write_down(self, data: bytes) -> None:
        self.counts["bytes_down"] += write_all(
            self.master, data, stop=lambda: self._stop.is_set() or self._cut
        )

    def _host_to_node(self) -> None:
        while not self._stop.is_set() and not self._cut:
            try:
                r, _, _ = select.select([self.master], [], [], 0.05)
                if not r:
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                continue
            try:
                self._up.write(data)
            except Exception:
                return
            self.counts["bytes_up"] += len(data)

    def _node_to_host(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._up.read(max(1, self._up.in_waiting))
            except Exception:  # the node's side vanished: so does ours
                self.cut()
                return
            if data:
                out = self._process(data)
                if out:
                    self._write_down(out)

    def _process(self, data: bytes) -> bytes:
        """Cut the stream at 0x00 delimiters and pass each chunk through the fault logic."""
        self._buf += data
        out = bytearray()
        while True:
            z = self._buf.find(0)
            if z < 0:
                break
            chunk = bytes(self._buf[:z])
            del self._buf[: z + 1]
            out += self._chunk(chunk)
            out.append(0)
        # plain log text without a following delimiter: pass it through now
        if (
            self._buf
            and self._buf.endswith(b"\n")
            and all(0x20 <= b <= 0x7E or b in (9, 10, 13, 27) for b in self._buf)
        ):
            out += self._buf
            self._buf.clear()
        return bytes(out)

    def _chunk(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        body = _decode_body(chunk)
        if body is None:  # text or the node's own garbage: unchanged
            return chunk
        typ, seq = body[1], struct.unpack_from("<H", body, 2)[0]
        self.counts["frames"] += 1
        spared = typ in self.spare_types
        idx = self._eligible  # index among the frames that may be damaged
        if not spared:
            self._eligible += 1
        prefix = b""
        if typ == pr.HELLO and len(body) > pr.OVERHEAD:
            self._hello_body = body
            self._renumber = None  # a real reset: follow the node's own numbering
        if self.reset_every and not spared and idx and idx % self.reset_every == 0:
            self._reset_pending = True
        if self._reset_pending and self._hello_body is not None and typ != pr.HELLO:
            self._reset_pending = False
            self.counts["reset"] += 1
            self.log.append((idx, "reset"))
            prefix = pr.cobs_encode(_reseq(self._hello_body, 0)) + b"\0"
            self._renumber = 1
        if self._renumber is not None:
            new = self._renumber
            self._renumber = (self._renumber + 1) & 0xFFFF
        else:
            new = (seq + self.seq_offset) & 0xFFFF
        if new != seq:
            body = _reseq(body, new)
        enc = pr.cobs_encode(body)
        if (
            spared
            or idx < self.start_after
            or (self.max_faults is not None and self.faults >= self.max_faults)
        ):
            return prefix + enc
        # one draw per fault kind, in a fixed order: deterministic for a given stream
        draws = {k: self.rng.random() for k in FAULTS}
        pick = [k for k in FAULTS if self.rates[k] and draws[k] < self.rates[k]]
        if not pick:
            return prefix + enc
        kind = pick[0]
        self.counts[kind] += 1
        self.log.append((idx, kind))
        if kind == "garbage":
            n = self.rng.randint(1, 64)
            junk = bytes(
                self.rng.choice(range(0x80, 0x100)) if i == 0 else self.rng.randint(1, 255)
                for i in range(n)
            )
            return prefix + junk + b"\0" + enc
        if kind == "log":
            return prefix + b"W (1234) earwitness: injected log line\r\n\0" + enc
        if kind == "drop":
            return prefix
        if kind == "truncate":
            return prefix + enc[: self.rng.randint(1, len(enc) - 1)]
        if kind == "drop_bytes":
            i = self.rng.randrange(len(enc))
            return prefix + enc[:i] + enc[i + 1 :]
        # crc: flip one byte of type/seq/payload, keep the stored CRC
        b = bytearray(body)
        i = self.rng.randrange(1, len(b) - 4)
        b[i] ^= self.rng.randint(1, 255)
        return prefix + pr.cobs_encode(bytes(b))


def serve(
    port: str | None = None,
    sim=None,
    seed: int = 0,
    reset_every: int = 0,
    seq_offset: int = 0,
    duration: float | None = None,
    faults: dict[str, float] | None = None,
) -> int:
    """The command's work (python -m tools.faultproxy): a proxy in front of `port` or of a
    simulated node (sim: True or an audio path) until `duration` seconds or Ctrl-C (the normal
    stop: exit 0, counts printed).  `faults`: probability per frame of each FAULTS name."""
    from tools.wire import link as lk

    if bool(port) == bool(sim):
        raise BadInput("give --port or --sim (or --sim-audio PATH)")
    if duration is not None and duration <= 0:
        raise BadInput("--duration must be > 0")
    twin = None
    if port:
        lk.check_serial_path(port)
    if sim:
        from tools.sim import twin as twin_mod

        if sim is not True:
            twin_mod.audio_files([sim])
        try:
            twin = twin_mod.start(audio=None if sim is True else sim)
        except twin_mod.TwinError as e:
            raise BadInput(f"cannot start the simulated node: {e}") from None
        port = twin.port
    try:
        px = FaultProxy(
            port,
            seed=seed,
            reset_every=reset_every,
            seq_offset=seq_offset,
            **(faults or {}),
        )
        px.start()
    except Exception as e:  # serial.SerialException, OSError
        if twin is not None:
            twin.stop()
        raise lk._serial_error(port, e, "open") from None
    print(f"earwitness faultproxy on {px.port}", flush=True)
    t0 = time.monotonic()
    try:
        while duration is None or time.monotonic() - t0 < duration:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass  # Ctrl-C: the normal way to stop the proxy
    finally:
        px.stop()
        if twin is not None:
            twin.stop()
        print(" ".join(f"{k}={v}" for k, v in px.counts.items()), file=sys.stderr)
    return 0
