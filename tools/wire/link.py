"""Host side of the serial link to an earwitness node (a board or the simulated node's pty).

Library first: every host tool (monitor, record, hil, flash) talks to the node through
`NodeLink`, and turns a `LinkError` into a one-line message and its exit code.

    from tools.wire.link import NodeLink, Timeouts
    from tools.cli import open_node                  # --port/--sim handling of the commands
    with NodeLink("/dev/ttyUSB0") as link:          # 921600 baud, 8N1
        hello = link.hello()                         # request + wait; checks proto_version
        link.send(protocol.Cmd(protocol.CMD_STATUS, 0))
        for item in link.items(timeout=5.0):         # Frame / LogLine / DecodeError / SeqGap...
            ...
    with open_node(sim="tests/audio/gunshot_1.wav") as link:   # starts the twin on a pty
        ...

Errors (`LinkError.exit_code`): 2 = bad usage or input that the user must change (no such port,
permission denied, unknown protocol version, both --port and --sim); 1 = the link failed at run
time (port busy, node not answering, wrong baud, port vanished, write stalled).

Every wait is a named field of `Timeouts` (seconds), overridable from the command line of every
tool (`--timeout NAME=SECONDS`, see `add_link_args`).

INJECT flow control (docs/protocol.md section 6) lives in `InjectStream`.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

if __package__ in (None, ""):  # `python tools/link.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.errors import ToolError
from tools.wire import protocol as pr
from tools.wire.ports import USB_IDS, Port, find_ports  # noqa: F401  (re-exported)

DEFAULT_BAUD = 921600
#: baud rates tried by `probe_baud` (and suggested in wrong-baud hints), most likely first
BAUD_CANDIDATES = (921600, 115200, 460800, 230400, 1500000, 2000000, 57600)


class LinkError(ToolError):
    """An expected failure of the link, with a one-line reason and the CLI exit code."""

    def __init__(self, msg: str, exit_code: int = 1):
        super().__init__(msg, exit_code)


class NodeRefused(LinkError):
    """The node answered a request with an ERROR frame (`code`, `detail`: its message)."""

    def __init__(self, msg: str, code: int, detail: str = "", exit_code: int = 1):
        super().__init__(msg, exit_code)
        self.code = code
        self.detail = detail


@dataclass
class Timeouts:
    """Every wait of the host tools, in seconds.  Override with `--timeout NAME=SECONDS`.

    open_s       opening the port (a USB-serial adapter can take a moment after plugging in)
    poll_s       one serial read blocks at most this long (granularity of every other wait)
    hello_s      waiting for HELLO after one request
    hello_tries  HELLO requests before giving up (a board may still be printing its boot log)
    boot_s       passive wait for the HELLO a node sends after reset / flashing
    reply_s      waiting for the ACK / CONFIG / STATUS answering one command
    write_s      one write may block this long (node not reading, or flow control stuck)
    credit_s     INJECT: no CREDIT for this long -> ask for STATUS and resync the balance
    stall_s      INJECT: no credit at all for this long -> give up (node stalled)
    idle_s       monitor/record: no frame at all for this long -> report the node as silent
    retries      requests (CONFIG, CMD) re-sent this many times when their answer is lost
    """

    open_s: float = 2.0
    poll_s: float = 0.05
    hello_s: float = 1.0
    hello_tries: int = 3
    boot_s: float = 5.0
    reply_s: float = 2.0
    write_s: float = 5.0
    credit_s: float = 1.0
    stall_s: float = 10.0
    idle_s: float = 10.0
    retries: int = 2

    def override(self, spec: str) -> None:
        """Apply one `NAME=SECONDS` override (raises LinkError exit 2 on a bad spec)."""
        name, sep, value = spec.partition("=")
        names = [f.name for f in dataclasses.fields(self)]
        key = name.strip()
        ints = ("hello_tries", "retries")
        if not key.endswith("_s") and key not in ints and key + "_s" in names:
            key += "_s"
        if not sep or key not in names:
            raise LinkError(
                f"bad timeout {spec!r}: use NAME=SECONDS with NAME one of {', '.join(names)}", 2
            )
        try:
            v = int(value) if key in ints else float(value)
        except ValueError:
            raise LinkError(f"bad timeout {spec!r}: {value!r} is not a number", 2) from None
        if v < 0:
            raise LinkError(f"bad timeout {spec!r}: negative", 2)
        setattr(self, key, v)


def check_hello(hello: pr.Hello) -> pr.Hello:
    """Refuse a node whose protocol version this tool does not speak (LinkError, exit 2)."""
    v = hello.proto_version
    if v != pr.PROTO_VERSION:
        what = "the host tools (git pull)" if v > pr.PROTO_VERSION else "the node's firmware"
        raise LinkError(
            f"node speaks protocol v{v}, this tool v{pr.PROTO_VERSION}: update {what}", 2
        )
    return hello


def _serial_error(port: str, e: BaseException, when: str) -> LinkError:
    """A SerialException/OSError as a LinkError with a reason a person can act on."""
    en = getattr(e, "errno", None)
    text = str(e)
    if (
        en == errno.ENOENT
        or "No such file" in text
        or "could not open port" in text
        and "No such" in text
    ):
        return LinkError(
            f"{port}: no such serial port (is the node plugged in? see "
            f"`python -m serial.tools.list_ports`)",
            2,
        )
    if en in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return LinkError(
            f"{port}: permission denied (add yourself to the 'dialout' group, then log in again)", 2
        )
    if en in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text or "busy" in text.lower():
        return LinkError(
            f"{port}: port busy (another program has it open: a monitor, "
            f"a second tool, ModemManager?)",
            1,
        )
    if when == "open":
        return LinkError(f"{port}: cannot open ({text})", 1)
    return LinkError(f"{port}: port vanished while {when} (cable pulled or node reset?): {text}", 1)


def check_serial_path(port: str) -> None:
    """A path that exists but is no serial device (a regular file, a folder): bad input, exit 2
    (pyserial would fail with "Inappropriate ioctl for device")."""
    if "://" in port:
        return  # a pyserial URL (socket://, loop://, ...)
    try:
        st = os.stat(port)
    except OSError:
        return  # missing / no permission: _serial_error says
    if not stat.S_ISCHR(st.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(st.st_mode)
            else "a regular file"
            if stat.S_ISREG(st.st_mode)
            else "not a character device"
        )
        raise LinkError(
            f"{port}: not a serial port ({kind}); give the node's serial device, e.g. /dev/ttyUSB0",
            2,
        )


class NodeLink:
    """One node on one serial port: framing, sequence numbers, log lines, HELLO handling.

    `items()` yields everything the decoder produces, in order (protocol.Frame, LogLine,
    DecodeError, SeqGap, SeqBackward, NodeReset).  Items that arrive while `hello()` or
    `request()` waits for its answer are kept and yielded by the next `items()` call: nothing
    the node sends is dropped by the link.  `hello_info` is the last HELLO seen; `stats` the
    decoder counters.
    """

    def __init__(
        self,
        port: str,
        baud: int = DEFAULT_BAUD,
        timeouts: Timeouts | None = None,
        serial_factory: Callable | None = None,
    ):
        self.port_name = port
        self.baud = baud
        self.timeouts = timeouts or Timeouts()
        self.decoder = pr.FrameDecoder()
        self.encoder = pr.Encoder()
        self.hello_info: pr.Hello | None = None
        self.serial = None
        self._factory = serial_factory
        self._backlog: collections.deque = collections.deque()
        self._twin = None
        self.frames_in = 0
        self.bytes_out = 0

    # ---- lifetime ---------------------------------------------------------------------------
    def open(self) -> NodeLink:
        import serial

        if self._factory is None:
            check_serial_path(self.port_name)
        t0 = time.monotonic()
        while True:
            try:
                if self._factory is not None:
                    self.serial = self._factory(self.port_name, self.baud, self.timeouts)
                else:
                    self.serial = serial.serial_for_url(
                        self.port_name,
                        baudrate=self.baud,
                        timeout=self.timeouts.poll_s,
                        write_timeout=self.timeouts.write_s,
                        exclusive=True,
                    )
                return self
            except (serial.SerialException, OSError, ValueError) as e:
                err = _serial_error(self.port_name, e, "open")
                # a port that just appeared (USB enumeration) can fail for a moment
                if err.exit_code == 2 or time.monotonic() - t0 >= self.timeouts.open_s:
                    if isinstance(e, ValueError):
                        raise LinkError(f"{self.port_name}: {e}", 2) from None
                    raise err from None
                time.sleep(0.1)

    def close(self) -> None:
        s, self.serial = self.serial, None
        if s is not None:
            try:
                s.close()
            except Exception:  # closing a vanished port: nothing to save
                pass
        if self._twin is not None:
            t, self._twin = self._twin, None
            t.stop()

    def __enter__(self) -> NodeLink:
        if self.serial is None:
            self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def twin(self):
        """The simulated node started by open_node(sim=...), else None."""
        return self._twin

    # ---- bytes ------------------------------------------------------------------------------
    def _need_open(self):
        if self.serial is None:
            raise LinkError(f"{self.port_name}: link is not open", 1)
        return self.serial

    def write(self, data: bytes) -> None:
        import serial

        s = self._need_open()
        try:
            s.write(data)
        except serial.SerialTimeoutException:
            raise LinkError(
                f"{self.port_name}: write stalled for {self.timeouts.write_s} s "
                f"(node not reading?)",
                1,
            ) from None
        except (serial.SerialException, OSError) as e:
            raise _serial_error(self.port_name, e, "writing") from None
        self.bytes_out += len(data)

    def send(self, msg: pr.Message) -> int:
        """Frame and write one message; returns the sequence number it was sent with."""
        seq = self.encoder.seq
        self.write(self.encoder.encode(msg))
        return seq

    def read_raw(self) -> bytes:
        """Whatever the port has (waits at most Timeouts.poll_s for the first byte)."""
        import serial

        s = self._need_open()
        try:
            n = s.in_waiting
            data = s.read(n if n else 1)
            if data and not n:
                more = s.in_waiting
                if more:
                    data += s.read(more)
            return data
        except (serial.SerialException, OSError) as e:
            raise _serial_error(self.port_name, e, "reading") from None
        except TypeError as e:  # pyserial on a closed fd mid-read
            raise LinkError(f"{self.port_name}: port vanished while reading ({e})", 1) from None

    def _poll(self) -> list:
        data = self.read_raw()
        if not data:
            return []
        items = self.decoder.feed(data)
        for it in items:
            if isinstance(it, pr.Frame):
                self.frames_in += 1
                if isinstance(it.msg, pr.Hello):
                    self.hello_info = it.msg
        return items

    @property
    def stats(self) -> pr.DecoderStats:
        return self.decoder.stats

    # ---- items ------------------------------------------------------------------------------
    def items(self, timeout: float | None = None) -> Iterator:
        """Yield decoder items as they arrive, for `timeout` seconds (None: until the port
        fails or the caller stops iterating).  Raises LinkError when the port vanishes."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._backlog:
                yield self._backlog.popleft()
            if end is not None and time.monotonic() >= end:
                return
            yield from self._poll()

    def poll(self) -> list:
        """Items available now (backlog first, then one read of at most Timeouts.poll_s)."""
        out = list(self._backlog)
        self._backlog.clear()
        out += self._poll()
        return out

    def _wait(self, match: Callable, timeout: float, drop_before: bool = False):
        """Read until match(item) is true; non-matching items go to the backlog (with
        drop_before, the items that arrived before the match, backlog included, are dropped:
        e.g. the old stream's frames before the ACK of START_STREAM)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            items = self._poll()
            for i, it in enumerate(items):
                if match(it):
                    if drop_before:
                        self._backlog.clear()
                    self._backlog.extend(items[i + 1 :])
                    return it
                self._backlog.append(it)
        return None

    # ---- HELLO ------------------------------------------------------------------------------
    def _no_hello(self, waited: float, stats_before: pr.DecoderStats) -> LinkError:
        st = self.decoder.stats
        got = st.bytes_in - stats_before.bytes_in
        frames = st.frames - stats_before.frames
        garbage = st.garbage_bytes - stats_before.garbage_bytes
        lines = st.log_lines - stats_before.log_lines
        if got == 0:
            return LinkError(
                f"{self.port_name}: node not answering (no bytes in {waited:.1f} s "
                f"at {self.baud} baud; is it powered and running the earwitness "
                f"firmware?)",
                1,
            )
        text = st.text_bytes - stats_before.text_bytes
        delim = st.delim_bytes - stats_before.delim_bytes
        if frames == 0 and (garbage > 0 or got - text - delim > got // 10):
            other = next(b for b in BAUD_CANDIDATES if b != self.baud)
            return LinkError(
                f"{self.port_name}: {got} bytes but no valid frame in {waited:.1f} s "
                f"at {self.baud} baud: wrong baud? try --baud {other}",
                1,
            )
        if frames == 0:
            return LinkError(
                f"{self.port_name}: only log text ({lines} lines), no HELLO in "
                f"{waited:.1f} s: is the earwitness firmware flashed?",
                1,
            )
        return LinkError(
            f"{self.port_name}: {frames} frames but no HELLO in {waited:.1f} s "
            f"(node ignoring HELLO requests?)",
            1,
        )

    def hello(
        self, timeout: float | None = None, tries: int | None = None, check: bool = True
    ) -> pr.Hello:
        """Request HELLO and wait for it (Timeouts.hello_s per try, hello_tries tries).

        Raises LinkError: node silent, wrong baud (only garbage), no HELLO, or (check=True) an
        unknown protocol version (exit 2)."""
        per_try = self.timeouts.hello_s if timeout is None else timeout
        tries = self.timeouts.hello_tries if tries is None else tries
        before = dataclasses.replace(self.decoder.stats)
        t0 = time.monotonic()
        for _ in range(max(1, tries)):
            self.send(pr.HelloRequest())
            it = self._wait(
                lambda x: isinstance(x, pr.Frame) and isinstance(x.msg, pr.Hello), per_try
            )
            if it is not None:
                return check_hello(it.msg) if check else it.msg
        raise self._no_hello(time.monotonic() - t0, before)

    def wait_hello(self, timeout: float | None = None, check: bool = True) -> pr.Hello:
        """Wait passively for the HELLO a node sends after boot (Timeouts.boot_s)."""
        timeout = self.timeouts.boot_s if timeout is None else timeout
        before = dataclasses.replace(self.decoder.stats)
        t0 = time.monotonic()
        it = self._wait(lambda x: isinstance(x, pr.Frame) and isinstance(x.msg, pr.Hello), timeout)
        if it is None:
            raise self._no_hello(time.monotonic() - t0, before)
        return check_hello(it.msg) if check else it.msg

    # ---- requests ---------------------------------------------------------------------------
    def request(
        self,
        msg: pr.Message,
        answer: Callable[[pr.Frame, int], bool] | None = None,
        timeout: float | None = None,
        drop_before: bool = False,
    ) -> pr.Frame:
        """Send msg and wait for its answer: an ERROR with ref_seq = its seq raises LinkError;
        `answer(frame, seq)` decides what else answers it (default: an ACK of that seq)."""
        timeout = self.timeouts.reply_s if timeout is None else timeout
        seqs: set[int] = set()

        def match(it) -> bool:
            if not isinstance(it, pr.Frame) or it.msg is None:
                return False
            if isinstance(it.msg, pr.Error) and it.msg.ref_seq in seqs:
                return True
            if answer is not None:
                return any(answer(it, s) for s in seqs)
            return isinstance(it.msg, pr.Ack) and it.msg.acked_seq in seqs

        fr = None
        for _ in range(1 + max(0, self.timeouts.retries)):
            seqs.add(self.send(msg))
            fr = self._wait(match, timeout, drop_before)
            if fr is not None:
                break
        name = pr.TYPE_NAMES.get(msg.TYPE, hex(msg.TYPE))
        if fr is None:
            raise LinkError(f"{self.port_name}: no answer to {name} in {timeout:.1f} s", 1)
        if isinstance(fr.msg, pr.Error):
            raise NodeRefused(
                f"node refused {name}: error {fr.msg.code} "
                f"{ERROR_NAMES.get(fr.msg.code, '')} {fr.msg.message}".rstrip(),
                fr.msg.code,
                fr.msg.message,
            )
        return fr

    def command(
        self, command: int, arg: int = 0, timeout: float | None = None, drop_before: bool = False
    ) -> pr.Frame:
        """CMD answered by ACK (START_STREAM, STOP_STREAM, REBOOT) or STATUS / HELLO."""
        want = {pr.CMD_STATUS: pr.Status, pr.CMD_HELLO: pr.Hello}.get(command)
        if want is not None:
            return self.request(
                pr.Cmd(command, arg), lambda f, s: isinstance(f.msg, want), timeout, drop_before
            )
        return self.request(pr.Cmd(command, arg), None, timeout, drop_before)

    def config_get(self, key: int, timeout: float | None = None) -> int:
        fr = self.request(
            pr.ConfigGet(key),
            lambda f, s: isinstance(f.msg, pr.Config) and f.msg.key == key,
            timeout,
        )
        return fr.msg.value

    def config_set(self, key: int, value: int, timeout: float | None = None) -> int:
        """Set a CONFIG key; returns the value now in effect (the node may round it)."""
        fr = self.request(
            pr.ConfigSet(key, value),
            lambda f, s: isinstance(f.msg, pr.Config) and f.msg.key == key,
            timeout,
        )
        return fr.msg.value

    def status(self, timeout: float | None = None) -> pr.Status:
        return self.command(pr.CMD_STATUS, 0, timeout).msg


ERROR_NAMES = {
    pr.ERRC_BAD_FRAME: "BAD_FRAME",
    pr.ERRC_UNKNOWN_TYPE: "UNKNOWN_TYPE",
    pr.ERRC_BAD_PAYLOAD: "BAD_PAYLOAD",
    pr.ERRC_BAD_CONFIG_KEY: "BAD_CONFIG_KEY",
    pr.ERRC_BAD_VALUE: "BAD_VALUE",
    pr.ERRC_NO_CREDIT: "NO_CREDIT",
    pr.ERRC_OVERRUN: "OVERRUN",
    pr.ERRC_MODEL_MISMATCH: "MODEL_MISMATCH",
    pr.ERRC_BUSY: "BUSY",
    pr.ERRC_UNSUPPORTED: "UNSUPPORTED",
    pr.ERRC_SEQ_GAP: "SEQ_GAP",
    pr.ERRC_INTERNAL: "INTERNAL",
}


# --------------------------------------------------------------------------------------------
# INJECT with credit-based flow control (docs/protocol.md section 6)


class InjectStream:
    """Host side of INJECT flow control.

    Balance C (samples): 0 at start and after every HELLO; each CREDIT adds; an INJECT of n
    samples (n <= 512) is sent only while n <= C and subtracts n.  NO_CREDIT (the node dropped
    an INJECT) rewinds the position to that INJECT and resynchronises.  Resynchronisation
    (after NO_CREDIT, or when no CREDIT came for Timeouts.credit_s while samples are waiting,
    e.g. a CREDIT frame was lost): send nothing more, request STATUS, and set C = STATUS.credits
    from the first STATUS that arrives after the request (the node answers in order, after
    every INJECT already sent).  No credit at all for Timeouts.stall_s: LinkError.

        inj = InjectStream(link)
        link.command(CMD_START_STREAM, 1)
        inj.run(pcm, on_item=collect)          # returns when every sample was accepted
    """

    def __init__(self, link: NodeLink, first_sample: int = 0, max_chunk: int = pr.MAX_PCM):
        self.link = link
        self.base = first_sample  # stream position of pcm[0]
        self.position = first_sample  # next sample to send
        self.credit = 0
        self.max_chunk = min(max_chunk, pr.MAX_PCM)
        self.sent_frames = 0
        self.sent_samples = 0
        self.rewinds = 0
        self.resyncs = 0
        self.node_resets = 0
        self.errors: list[pr.Error] = []
        self._inflight: collections.OrderedDict[int, tuple[int, int]] = collections.OrderedDict()
        self._resync_pending = False
        self._last_credit = time.monotonic()

    # called for every item the link yields while streaming
    def handle(self, item) -> None:
        if isinstance(item, pr.NodeReset):
            self.node_resets += 1
        if not isinstance(item, pr.Frame) or item.msg is None:
            return
        m = item.msg
        if isinstance(m, pr.Credit):
            if not self._resync_pending:
                self.credit += m.credits_samples
            self._last_credit = time.monotonic()
        elif isinstance(m, pr.Hello):
            self.credit = 0
            self._inflight.clear()
        elif isinstance(m, pr.Status):
            if self._resync_pending:
                self.credit = m.credits
                self._resync_pending = False
                self._last_credit = time.monotonic()
        elif isinstance(m, pr.Error):
            self.errors.append(m)
            if m.code == pr.ERRC_NO_CREDIT:
                rej = self._inflight.get(m.ref_seq)
                if rej is not None and rej[0] < self.position:
                    self.position = rej[0]
                    self.rewinds += 1
                self.resync()

    def resync(self) -> None:
        """Stop sending and ask for STATUS; its `credits` becomes the balance."""
        if not self._resync_pending:
            self._resync_pending = True
            self.resyncs += 1
            self.credit = 0
            self._inflight.clear()
            self.link.send(pr.Cmd(pr.CMD_STATUS, 0))

    def send_ready(self, pcm, end: int | None = None) -> int:
        """Send INJECT frames from pcm (indexed from self.base) while credit allows; returns
        the number of samples sent now."""
        import numpy as np

        if self._resync_pending:
            return 0
        end = self.base + len(pcm) if end is None else end
        sent = 0
        while self.position < end:
            n = min(self.max_chunk, end - self.position, self.credit)
            if n <= 0 or (n < self.max_chunk and self.position + n < end and n < 256):
                break  # wait for more credit rather than send crumbs
            i = self.position - self.base
            chunk = np.ascontiguousarray(pcm[i : i + n], dtype=np.int16)
            seq = self.link.send(pr.Inject(self.position, _as_array(chunk)))
            self._inflight[seq] = (self.position, n)
            while len(self._inflight) > 256:
                self._inflight.popitem(last=False)
            self.position += n
            self.credit -= n
            sent += n
            self.sent_frames += 1
            self.sent_samples += n
        return sent

    def run(self, pcm, on_item: Callable | None = None) -> None:
        """Send all of pcm, handing every item the link yields to on_item (after handle())."""
        end = self.base + len(pcm)
        t_wait = time.monotonic()
        while self.position < end:
            if self.send_ready(pcm, end):
                t_wait = time.monotonic()
            for it in self.link.poll():
                self.handle(it)
                if on_item is not None:
                    on_item(it)
            now = time.monotonic()
            if self.position >= end:
                break
            if now - t_wait > self.link.timeouts.stall_s:
                raise LinkError(
                    f"{self.link.port_name}: node granted no INJECT credit for "
                    f"{self.link.timeouts.stall_s:.0f} s (stream at sample "
                    f"{self.position}; is it in INJECT mode?)",
                    1,
                )
            if now - self._last_credit > self.link.timeouts.credit_s and self.credit < min(
                self.max_chunk, end - self.position
            ):
                self._resync_pending = False  # a lost STATUS answer: ask again
                self.resync()


def _as_array(x):
    import array

    a = array.array("h")
    a.frombytes(x.astype("<i2").tobytes())
    if sys.byteorder == "big":
        a.byteswap()
    return a
