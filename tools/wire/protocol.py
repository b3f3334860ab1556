"""The earwitness node's serial protocol, in pure Python (stdlib only).

Wire format (docs/protocol.md is the specification; firmware/lib/ewcore/src/ew_proto_*.c are the
C twin and tests/golden/proto_frames.json keeps the two in agreement):

    body = magic 0xE7 | type u8 | seq u16 LE | payload (0..1280 bytes) | crc32 u32 LE
    wire = 0x00 | COBS(body) | 0x00

Typical use with pyserial::

    dec = FrameDecoder()
    enc = Encoder()
    port.write(enc.encode(Cmd(CMD_HELLO, 0)))
    for item in dec.feed(port.read(port.in_waiting or 1)):
        if isinstance(item, Frame) and isinstance(item.msg, Event): ...
        elif isinstance(item, LogLine): print(item.text)

or as a `serial.threaded.ReaderThread` protocol: subclass `NodeProtocol` and override
`handle_item`.
"""

from __future__ import annotations

import array
import struct
import sys
import zlib
from dataclasses import dataclass, field, fields
from typing import ClassVar

from tools.node import params as _params

PROTO_VERSION = 1
MAGIC = 0xE7
MAX_PAYLOAD = 1280
HEADER = 4
OVERHEAD = 8
MAX_BODY = MAX_PAYLOAD + OVERHEAD  # 1288


def cobs_max_encoded(n: int) -> int:
    """Worst-case COBS-encoded size of n bytes (no delimiter)."""
    return n + n // 254 + 1


MAX_ENCODED = cobs_max_encoded(MAX_BODY)  # 1294: the decoder's chunk limit
MAX_WIRE = MAX_ENCODED + 2  # 1296: any frame, both delimiters
MAX_NAME = 32
MAX_LABELS = 32
MAX_ERROR_TEXT = 96
MAX_PCM = 512
HASH_BYTES = 8
NODE_ID_BYTES = 6

# message types
HELLO, EVENT, STATUS, AUDIO, INJECT, CREDIT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
CONFIG_GET, CONFIG_SET, CONFIG, ACK, ERROR, CMD = 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C
TYPE_NAMES = {
    HELLO: "HELLO",
    EVENT: "EVENT",
    STATUS: "STATUS",
    AUDIO: "AUDIO",
    INJECT: "INJECT",
    CREDIT: "CREDIT",
    CONFIG_GET: "CONFIG_GET",
    CONFIG_SET: "CONFIG_SET",
    CONFIG: "CONFIG",
    ACK: "ACK",
    ERROR: "ERROR",
    CMD: "CMD",
}

# HELLO.reset_reason (ESP-IDF esp_reset_reason_t numbering)
RESET_REASONS = {
    0: "unknown",
    1: "poweron",
    2: "ext",
    3: "sw",
    4: "panic",
    5: "int_wdt",
    6: "task_wdt",
    7: "wdt",
    8: "deepsleep",
    9: "brownout",
    10: "sdio",
}
# EVENT.kind
EVENT_ONSET, EVENT_END = 0, 1
# CONFIG keys: CFG_<id> = key of every ewcore.toml [[setting]] (CFG_MODE, CFG_GAIN_DB_Q8, ...,
# CFG_HABITUATE_MAX_SCORE_Q8: the table in docs/protocol.md), and the class threshold keys
SETTINGS, THRESHOLDS = _params.settings()
globals().update({f"CFG_{_s.id}": _s.key for _s in SETTINGS})
CFG_THRESHOLD_BASE = THRESHOLDS.key_base  # + class index, 0x0100..0x01FF
CFG_THRESHOLD_LAST = THRESHOLDS.key_last
THRESHOLD_OFF = _params.THRESHOLD_OFF  # THRESHOLD value: class disabled


def cfg_threshold(class_index: int) -> int:
    """CONFIG key of the score threshold of class `class_index` (0..255)."""
    if not 0 <= class_index <= CFG_THRESHOLD_LAST - CFG_THRESHOLD_BASE:
        raise ValueError(f"class index {class_index} outside 0..255")
    return CFG_THRESHOLD_BASE + class_index


# ERROR.code
ERRC_BAD_FRAME, ERRC_UNKNOWN_TYPE, ERRC_BAD_PAYLOAD, ERRC_BAD_CONFIG_KEY = 1, 2, 3, 4
ERRC_BAD_VALUE, ERRC_NO_CREDIT, ERRC_OVERRUN, ERRC_MODEL_MISMATCH = 5, 6, 7, 8
ERRC_BUSY, ERRC_UNSUPPORTED, ERRC_SEQ_GAP, ERRC_INTERNAL = 9, 10, 11, 12
# CMD.command
CMD_HELLO, CMD_REBOOT, CMD_STATUS, CMD_START_STREAM, CMD_STOP_STREAM = 0, 1, 2, 3, 4
CMD_FACTORY_RESET = 5
# CONFIG AUDIO_STREAM values; CMD START_STREAM arguments
AUDIO_STREAM_OFF, AUDIO_STREAM_CONTINUOUS, AUDIO_STREAM_EVENTS = 0, 1, 2
STREAM_MIC, STREAM_INJECT = 0, 1


class ProtocolError(ValueError):
    """A malformed payload or a field out of range.

    `code` is "short" (payload ends before the message does), "range" (a length or count
    above its limit, or an odd PCM byte count) or "value" (a field that cannot be packed);
    the first two match EW_PROTO_ERR_SHORT / EW_PROTO_ERR_RANGE of the C codec.
    """

    def __init__(self, message: str, code: str = "value"):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# COBS, CRC, frames


def crc32(data: bytes) -> int:
    """IEEE 802.3 CRC-32 (zlib.crc32)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """Canonical COBS encoding (no delimiter); a final 0xFF piece is followed by 0x01."""
    out = bytearray()
    for piece in bytes(data).split(b"\0"):  # n zeros -> n + 1 pieces
        while len(piece) >= 254:
            out.append(0xFF)
            out += piece[:254]
            piece = piece[254:]
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def cobs_decode(block: bytes) -> bytes:
    """Decode a COBS block (no 0x00 inside).  Raises ProtocolError on a bad code byte."""
    out = bytearray()
    i, n = 0, len(block)
    while i < n:
        code = block[i]
        i += 1
        if code == 0 or code - 1 > n - i:
            raise ProtocolError(
                f"COBS code 0x{code:02x} at offset {i - 1} runs past the {n}-byte block", "cobs"
            )
        out += block[i : i + code - 1]
        i += code - 1
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(type: int, seq: int, payload: bytes = b"") -> bytes:
    """Wire bytes of one frame: 0x00 + COBS(body) + 0x00."""
    if not 0 <= type <= 0xFF:
        raise ProtocolError(f"frame type {type} outside 0..255")
    if not 0 <= seq <= 0xFFFF:
        raise ProtocolError(f"seq {seq} outside 0..65535")
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", "range")
    body = struct.pack("<BBH", MAGIC, type, seq) + payload
    body += struct.pack("<I", crc32(body))
    return b"\0" + cobs_encode(body) + b"\0"


# --------------------------------------------------------------------------------------------
# Typed messages


def _pack(fmt: str, *values) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except struct.error as e:
        raise ProtocolError(f"field out of range ({e})") from None


def _need(payload: bytes, n: int, what: str) -> None:
    if len(payload) < n:
        raise ProtocolError(f"{what} payload of {len(payload)} bytes is shorter than {n}", "short")


def _string(b: bytes, pos: int, limit: int, what: str) -> tuple[bytes, int]:
    if pos >= len(b):
        raise ProtocolError(f"{what}: length byte missing at offset {pos}", "short")
    n = b[pos]
    if n > limit:
        raise ProtocolError(f"{what}: length {n} exceeds {limit}", "range")
    if len(b) - pos - 1 < n:
        raise ProtocolError(f"{what}: {n} bytes announced, {len(b) - pos - 1} present", "short")
    return b[pos + 1 : pos + 1 + n], pos + 1 + n


def _put_string(s: str | bytes, limit: int, what: str) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if len(b) > limit:
        raise ProtocolError(f"{what} is {len(b)} bytes, longer than {limit}", "range")
    return bytes([len(b)]) + b


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def _fixed_bytes(v, n: int, what: str) -> bytes:
    b = bytes.fromhex(v) if isinstance(v, str) else bytes(v)
    if len(b) != n:
        raise ProtocolError(f"{what} must be {n} bytes, got {len(b)}")
    return b


class Message:
    """Base of the typed payloads: `TYPE`, `pack() -> bytes`, `unpack(payload)` classmethod."""

    TYPE: ClassVar[int]

    def pack(self) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def unpack(cls, payload: bytes):  # pragma: no cover - overridden
        raise NotImplementedError


class _Fixed(Message):
    """Messages with a fixed struct layout: FORMAT + the dataclass fields in order."""

    FORMAT: ClassVar[str]

    def pack(self) -> bytes:
        return _pack(self.FORMAT, *(getattr(self, f.name) for f in fields(self)))

    @classmethod
    def unpack(cls, payload: bytes):
        payload = bytes(payload)
        _need(payload, struct.calcsize(cls.FORMAT), cls.__name__.upper())
        return cls(*struct.unpack_from(cls.FORMAT, payload))


@dataclass
class HelloRequest(Message):
    """HELLO with an empty payload (host->node): "send HELLO"."""

    TYPE: ClassVar[int] = HELLO

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes):
        return cls()


@dataclass
class Hello(Message):
    """HELLO (0x01), node->host: identity, sent at boot and on request."""

    TYPE: ClassVar[int] = HELLO
    proto_version: int = PROTO_VERSION
    fw_major: int = 0
    fw_minor: int = 0
    fw_patch: int = 0
    reset_reason: int = 0
    sample_rate_hz: int = 16000
    model_hash: bytes = bytes(HASH_BYTES)
    config_hash: bytes = bytes(HASH_BYTES)
    node_id: bytes = bytes(NODE_ID_BYTES)
    board: str = ""
    labels: list = field(default_factory=list)

    FIXED: ClassVar[str] = "<BBBBBI8s8s6s"  # 31 bytes

    @property
    def fw_version(self) -> str:
        return f"{self.fw_major}.{self.fw_minor}.{self.fw_patch}"

    def pack(self) -> bytes:
        model_hash = _fixed_bytes(self.model_hash, HASH_BYTES, "model_hash")
        config_hash = _fixed_bytes(self.config_hash, HASH_BYTES, "config_hash")
        node_id = _fixed_bytes(self.node_id, NODE_ID_BYTES, "node_id")
        if len(self.labels) > MAX_LABELS:
            raise ProtocolError(f"{len(self.labels)} labels, more than {MAX_LABELS}", "range")
        out = _pack(
            self.FIXED,
            self.proto_version,
            self.fw_major,
            self.fw_minor,
            self.fw_patch,
            self.reset_reason,
            self.sample_rate_hz,
            model_hash,
            config_hash,
            node_id,
        )
        out += _put_string(self.board, MAX_NAME, "board")
        out += bytes([len(self.labels)])
        for i, lab in enumerate(self.labels):
            out += _put_string(lab, MAX_NAME, f"label {i}")
        return out

    @classmethod
    def unpack(cls, payload: bytes):
        payload = bytes(payload)
        fixed = struct.calcsize(cls.FIXED)
        _need(payload, fixed, "HELLO")
        head = struct.unpack_from(cls.FIXED, payload)
        board, pos = _string(payload, fixed, MAX_NAME, "HELLO board")
        if pos >= len(payload):
            raise ProtocolError("HELLO: label count missing", "short")
        count = payload[pos]
        pos += 1
        if count > MAX_LABELS:
            raise ProtocolError(f"HELLO: {count} labels, more than {MAX_LABELS}", "range")
        labels = []
        for i in range(count):
            lab, pos = _string(payload, pos, MAX_NAME, f"HELLO label {i}")
            labels.append(_text(lab))
        return cls(*head, board=_text(board), labels=labels)


@dataclass
class Event(_Fixed):
    """EVENT (0x02): a detection (kind EVENT_ONSET at once, EVENT_END when it closes)."""

    TYPE: ClassVar[int] = EVENT
    FORMAT: ClassVar[str] = "<QIBBBH"
    onset_sample: int = 0
    duration_samples: int = 0
    class_index: int = 0
    score: int = 0  # Q0.8 probability
    kind: int = EVENT_ONSET
    hits: int = 1


@dataclass
class Status(_Fixed):
    """STATUS (0x03): levels, gate duty, inference timing, drops, flow-control credit."""

    TYPE: ClassVar[int] = STATUS
    FORMAT: ClassVar[str] = "<QhhHIIIIBI"
    sample_index: int = 0
    level_dbfs_q8: int = 0
    noise_floor_dbfs_q8: int = 0
    gate_duty_q16: int = 0
    inference_count: int = 0
    inference_us_last: int = 0
    inference_us_max: int = 0
    dropped_samples: int = 0
    mode: int = 0
    credits: int = 0


def _pcm_bytes(samples) -> bytes:
    a = array.array("h", samples) if not isinstance(samples, array.array) else samples
    if a.typecode != "h":
        a = array.array("h", a)
    if sys.byteorder == "big":
        a = array.array("h", a)
        a.byteswap()
    return a.tobytes()


class _Pcm(Message):
    def __post_init__(self):
        try:
            if not (isinstance(self.samples, array.array) and self.samples.typecode == "h"):
                self.samples = array.array("h", [int(s) for s in self.samples])
        except OverflowError as e:
            raise ProtocolError(f"sample out of int16 range ({e})") from None

    def pack(self) -> bytes:
        if len(self.samples) > MAX_PCM:
            raise ProtocolError(f"{len(self.samples)} samples, more than {MAX_PCM}", "range")
        return _pack("<Q", self.first_sample) + _pcm_bytes(self.samples)

    @classmethod
    def unpack(cls, payload: bytes):
        payload = bytes(payload)
        name = cls.__name__.upper()
        _need(payload, 8, name)
        rest = len(payload) - 8
        if rest % 2:
            raise ProtocolError(f"{name}: odd number of sample bytes ({rest})", "range")
        if rest // 2 > MAX_PCM:
            raise ProtocolError(f"{name}: {rest // 2} samples, more than {MAX_PCM}", "range")
        a = array.array("h")
        a.frombytes(payload[8:])
        if sys.byteorder == "big":
            a.byteswap()
        return cls(struct.unpack_from("<Q", payload)[0], a)


@dataclass
class Audio(_Pcm):
    """AUDIO (0x04), node->host: int16 PCM from sample index first_sample (<= 512 samples)."""

    TYPE: ClassVar[int] = AUDIO
    first_sample: int = 0
    samples: array.array = field(default_factory=lambda: array.array("h"))


@dataclass
class Inject(_Pcm):
    """INJECT (0x05), host->node: int16 PCM at host stream position first_sample."""

    TYPE: ClassVar[int] = INJECT
    first_sample: int = 0
    samples: array.array = field(default_factory=lambda: array.array("h"))


@dataclass
class Credit(_Fixed):
    """CREDIT (0x06), node->host: grant of INJECT samples."""

    TYPE: ClassVar[int] = CREDIT
    FORMAT: ClassVar[str] = "<I"
    credits_samples: int = 0


@dataclass
class ConfigGet(_Fixed):
    TYPE: ClassVar[int] = CONFIG_GET
    FORMAT: ClassVar[str] = "<H"
    key: int = 0


@dataclass
class ConfigSet(_Fixed):
    TYPE: ClassVar[int] = CONFIG_SET
    FORMAT: ClassVar[str] = "<Hi"
    key: int = 0
    value: int = 0


@dataclass
class Config(_Fixed):
    """CONFIG (0x09), node->host: current value of a key (answer to CONFIG_GET / CONFIG_SET)."""

    TYPE: ClassVar[int] = CONFIG
    FORMAT: ClassVar[str] = "<Hi"
    key: int = 0
    value: int = 0


@dataclass
class Ack(_Fixed):
    TYPE: ClassVar[int] = ACK
    FORMAT: ClassVar[str] = "<HB"
    acked_seq: int = 0
    acked_type: int = 0


@dataclass
class Error(Message):
    """ERROR (0x0B): code (ERRC_*), seq of the frame it refers to, short text."""

    TYPE: ClassVar[int] = ERROR
    code: int = 0
    ref_seq: int = 0
    message: str = ""

    def pack(self) -> bytes:
        return _pack("<HH", self.code, self.ref_seq) + _put_string(
            self.message, MAX_ERROR_TEXT, "ERROR message"
        )

    @classmethod
    def unpack(cls, payload: bytes):
        payload = bytes(payload)
        _need(payload, 4, "ERROR")
        code, ref = struct.unpack_from("<HH", payload)
        text, _ = _string(payload, 4, MAX_ERROR_TEXT, "ERROR message")
        return cls(code, ref, _text(text))


@dataclass
class Cmd(_Fixed):
    """CMD (0x0C), host->node: command (CMD_*) with a u32 argument."""

    TYPE: ClassVar[int] = CMD
    FORMAT: ClassVar[str] = "<BI"
    command: int = 0
    arg: int = 0


MESSAGE_TYPES: dict[int, type] = {
    c.TYPE: c
    for c in (
        Hello,
        Event,
        Status,
        Audio,
        Inject,
        Credit,
        ConfigGet,
        ConfigSet,
        Config,
        Ack,
        Error,
        Cmd,
    )
}


def unpack_payload(type: int, payload: bytes) -> Message:
    """Typed message for a known type (an empty HELLO is a HelloRequest).

    Raises ProtocolError for a malformed payload and KeyError for an unknown type.
    """
    if type == HELLO and len(payload) == 0:
        return HelloRequest()
    return MESSAGE_TYPES[type].unpack(payload)


class Encoder:
    """Frames messages with a wrapping u16 sequence counter (one per sender)."""

    def __init__(self, seq: int = 0):
        self.seq = seq & 0xFFFF

    def encode(self, msg: Message | int, payload: bytes | None = None) -> bytes:
        """encode(Message) or encode(type, payload): wire bytes; the counter advances."""
        if isinstance(msg, Message):
            if payload is not None:
                raise TypeError("encode(message) takes no payload")
            type_, payload = msg.TYPE, msg.pack()
        else:
            type_, payload = int(msg), b"" if payload is None else bytes(payload)
        wire = encode_frame(type_, self.seq, payload)
        self.seq = (self.seq + 1) & 0xFFFF
        return wire


# --------------------------------------------------------------------------------------------
# Decoder


@dataclass
class Frame:
    """A valid frame.  `msg` is the typed message for a known type whose payload parses;
    otherwise None with the reason in `error`."""

    type: int
    seq: int
    payload: bytes
    msg: Message | None = None
    error: str | None = None

    @property
    def unknown(self) -> bool:
        return self.type not in MESSAGE_TYPES

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"0x{self.type:02X}")


@dataclass
class LogLine:
    """A plain-text line (printable ASCII, TAB, CR, ESC only), trailing CR/LF removed."""

    text: str


@dataclass
class DecodeError:
    """A rejected chunk: kind is "cobs", "short", "oversize", "magic" or "crc"."""

    kind: str
    detail: str
    raw_len: int


@dataclass
class SeqGap:
    """`missing` frames were lost before the frame with seq `got` (precedes that Frame)."""

    expected: int
    got: int
    missing: int


@dataclass
class SeqBackward:
    """The frame with seq `got` is `behind` frames before the expected one (1 = duplicate)."""

    expected: int
    got: int
    behind: int


@dataclass
class NodeReset:
    """A HELLO arrived after other frames: the sender restarted, sequence tracking restarts."""

    expected: int
    got: int


Item = Frame | LogLine | DecodeError | SeqGap | SeqBackward | NodeReset


@dataclass
class DecoderStats:
    """Same counters as the C decoder's ew_proto_stats_t (unbounded here, mod 2^32 in C)."""

    bytes_in: int = 0
    delim_bytes: int = 0
    frame_bytes: int = 0
    text_bytes: int = 0
    garbage_bytes: int = 0
    frames: int = 0
    unknown_types: int = 0
    log_lines: int = 0
    err_cobs: int = 0
    err_short: int = 0
    err_oversize: int = 0
    err_magic: int = 0
    err_crc: int = 0
    seq_gaps: int = 0
    frames_missed: int = 0
    seq_backward: int = 0
    resets: int = 0
    bad_payloads: int = 0  # Python only: valid frames of a known type whose payload fails


def _is_text_byte(b: int) -> bool:
    """Log text: printable ASCII, TAB, CR, LF and ESC (ANSI colours in ESP-IDF logs)."""
    return 0x20 <= b <= 0x7E or b in (9, 10, 13, 27)


class FrameDecoder:
    """Streaming decoder: `feed(bytes) -> list[Item]`; counters in `stats`.

    Byte-for-byte the same rules as the C decoder (ew_proto_decoder_feed, docs/protocol.md):
    chunks end at 0x00; a chunk of text is a log line (emitted early at LF); anything else is
    decoded as a frame or reported as a DecodeError; chunks longer than MAX_ENCODED are
    split (text) or discarded up to the next 0x00 (other bytes).  Items never depend on how
    the input is split across feed() calls.
    """

    def __init__(self, typed: bool = True):
        self.typed = typed
        self.reset()

    def reset(self) -> None:
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._all_text = True
        self._discarding = False
        self._discard_len = 0
        self._expected: int | None = None

    @property
    def pending(self) -> int:
        """Bytes received but not yet accounted for (the current chunk)."""
        return self._discard_len if self._discarding else len(self._buf)

    def feed(self, data: bytes) -> list:
        out: list = []
        data = bytes(data)
        n = len(data)
        self.stats.bytes_in += n
        i = 0
        while i < n:
            z = data.find(b"\0", i)
            end = n if z < 0 else z
            if i < end:
                self._segment(data, i, end, out)
            if z < 0:
                break
            self.stats.delim_bytes += 1
            self._end_chunk(out)
            i = z + 1
        return out

    # bytes data[i:end] contain no 0x00
    def _segment(self, data: bytes, i: int, end: int, out: list) -> None:
        buf = self._buf
        while i < end:
            if self._discarding:
                self._discard_len += end - i
                return
            if self._all_text:
                b = data[i]
                text = _is_text_byte(b)
                if len(buf) == 1 and buf[0] == 0x0A and text:
                    self._emit_text(out)  # held LF was a line of its own
                if len(buf) == MAX_ENCODED:
                    self._emit_text(out)  # over-long text line: split
                buf.append(b)
                i += 1
                if not text:
                    self._all_text = False
                elif b == 0x0A and len(buf) > 1:
                    self._emit_text(out)
                continue
            # non-text chunk: bulk copy up to the capacity, no per-byte rules apply
            room = MAX_ENCODED - len(buf)
            if room == 0:
                self._discarding = True
                self._discard_len = len(buf)
                buf.clear()
                continue
            take = min(room, end - i)
            buf += data[i : i + take]
            i += take

    def _clear(self) -> None:
        self._buf.clear()
        self._all_text = True
        self._discarding = False
        self._discard_len = 0

    def _emit_text(self, out: list) -> None:
        raw = bytes(self._buf)
        self.stats.text_bytes += len(raw)
        self.stats.log_lines += 1
        out.append(LogLine(raw.rstrip(b"\r\n").decode("ascii")))
        self._clear()

    def _error(self, out: list, kind: str, detail: str, raw_len: int) -> None:
        self.stats.garbage_bytes += raw_len
        setattr(self.stats, "err_" + kind, getattr(self.stats, "err_" + kind) + 1)
        out.append(DecodeError(kind, detail, raw_len))
        self._clear()

    def _end_chunk(self, out: list) -> None:
        if self._discarding:
            self._error(
                out,
                "oversize",
                f"chunk of {self._discard_len} bytes exceeds {MAX_ENCODED} without a 0x00",
                self._discard_len,
            )
            return
        raw = len(self._buf)
        if raw == 0:
            return
        if self._all_text:
            self._emit_text(out)
            return
        try:
            body = cobs_decode(self._buf)
        except ProtocolError as e:
            self._error(out, "cobs", str(e), raw)
            return
        if len(body) < OVERHEAD:
            self._error(
                out, "short", f"{len(body)}-byte body, a frame has at least {OVERHEAD}", raw
            )
            return
        if len(body) > MAX_BODY:
            self._error(out, "oversize", f"{len(body)}-byte body exceeds {MAX_BODY}", raw)
            return
        if body[0] != MAGIC:
            self._error(out, "magic", f"first byte 0x{body[0]:02x}, not 0x{MAGIC:02x}", raw)
            return
        got, want = struct.unpack_from("<I", body, len(body) - 4)[0], crc32(body[:-4])
        if got != want:
            self._error(
                out,
                "crc",
                f"type 0x{body[1]:02x} seq {body[2] | body[3] << 8}: "
                f"crc 0x{got:08x}, computed 0x{want:08x}",
                raw,
            )
            return
        type_, seq = body[1], body[2] | body[3] << 8
        self._track(type_, seq, out)
        frame = Frame(type_, seq, body[HEADER:-4])
        self.stats.frames += 1
        self.stats.frame_bytes += raw
        if frame.unknown:
            self.stats.unknown_types += 1
        elif self.typed:
            try:
                frame.msg = unpack_payload(type_, frame.payload)
            except ProtocolError as e:
                frame.error = str(e)
                self.stats.bad_payloads += 1
        out.append(frame)
        self._clear()

    def _track(self, type_: int, seq: int, out: list) -> None:
        exp = self._expected
        if exp is not None:
            d = (seq - exp) & 0xFFFF
            if type_ == HELLO:
                self.stats.resets += 1
                out.append(NodeReset(exp, seq))
            elif 0 < d < 0x8000:
                self.stats.seq_gaps += 1
                self.stats.frames_missed += d
                out.append(SeqGap(exp, seq, d))
            elif d:
                self.stats.seq_backward += 1
                out.append(SeqBackward(exp, seq, 0x10000 - d))
        self._expected = (seq + 1) & 0xFFFF


class NodeProtocol:
    """A `serial.threaded.Protocol`-compatible object: pass the class to
    `serial.threaded.ReaderThread(port, NodeProtocol)` and override `handle_item`."""

    def __init__(self):
        self.decoder = FrameDecoder()
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            self.handle_item(item)

    def connection_lost(self, exc) -> None:
        self.transport = None

    def handle_item(self, item) -> None:  # pragma: no cover - meant to be overridden
        pass
