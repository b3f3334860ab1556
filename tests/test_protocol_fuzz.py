"""Fuzzing the protocol codec: hypothesis on the Python codec, libFuzzer + ASan/UBSan on the C one.

The libFuzzer harness is tests/fuzz/fuzz_proto.c; its regression corpus is
tests/fuzz/corpus/proto/ (hand-made seeds from `seed_corpus()` plus inputs that libFuzzer found
to add coverage).  To refresh the seeds: `EW_REGEN_CORPUS=1 pytest tests/test_protocol_fuzz.py`;
to grow the corpus: build the harness as described in fuzz_proto.c, run it for a while on a
scratch directory, then `./fuzz -merge=1 tests/fuzz/corpus/proto scratch/`.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_protocol import _bad_payloads, _frame_cases, _stream_cases, item_line

from tools.bench.cbuild import ROOT, build
from tools.wire import protocol as P

CORPUS = ROOT / "tests" / "fuzz" / "corpus" / "proto"
HARNESS = ROOT / "tests" / "fuzz" / "fuzz_proto.c"
FUZZ_FLAGS = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"]

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# Python codec under hypothesis

ITEM_TYPES = (P.Frame, P.LogLine, P.DecodeError, P.SeqGap, P.SeqBackward, P.NodeReset)
TEXT = set(range(0x20, 0x7F)) | {9, 13, 27}

# byte streams that are likely to contain frame-like structure: pieces of real frames,
# delimiters, text and noise
_frames = [P.encode_frame(t, s, p) for _, t, s, p, _ in _frame_cases()[:12]]
_piece = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(_frames),
    st.sampled_from(_frames).flatmap(lambda f: st.integers(1, len(f) - 1).map(lambda k: f[:k])),
    st.sampled_from([b"\0", b"\n", b"\r\n", b"boot: ok\n", b"\x1b[0m", b"\n\xe7", b"\xff" * 1300]),
)
streams = st.lists(_piece, max_size=12).map(b"".join)


def _check_items(items, dec: P.FrameDecoder):
    s = dec.stats
    assert all(isinstance(i, ITEM_TYPES) for i in items)
    for i, it in enumerate(items):
        if isinstance(it, P.Frame):
            assert (
                len(it.payload) <= P.MAX_PAYLOAD and 0 <= it.type <= 255 and 0 <= it.seq <= 0xFFFF
            )
        elif isinstance(it, P.LogLine):
            assert set(it.text.encode("ascii")) <= TEXT
        elif isinstance(it, P.DecodeError):
            assert it.kind in ("cobs", "short", "oversize", "magic", "crc") and it.raw_len > 0
        else:  # a sequence diagnostic is followed by its frame
            assert isinstance(items[i + 1], P.Frame)
    assert (
        s.bytes_in == s.delim_bytes + s.frame_bytes + s.text_bytes + s.garbage_bytes + dec.pending
    )
    assert s.frames == sum(isinstance(i, P.Frame) for i in items)
    assert s.log_lines == sum(isinstance(i, P.LogLine) for i in items)
    assert s.err_cobs + s.err_short + s.err_oversize + s.err_magic + s.err_crc == sum(
        isinstance(i, P.DecodeError) for i in items
    )


@SETTINGS
@given(st.one_of(st.binary(max_size=4000), streams), st.lists(st.integers(0, 4000), max_size=8))
def test_arbitrary_bytes_never_raise(data, cuts):
    dec = P.FrameDecoder()
    items = dec.feed(data)
    _check_items(items, dec)
    # any split of the input gives the same items and counters
    dec2, items2, prev = P.FrameDecoder(), [], 0
    for c in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        items2 += dec2.feed(data[prev:c])
        prev = c
    assert [item_line(i) for i in items2] == [item_line(i) for i in items]
    assert dec2.stats == dec.stats


@SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=300)),
        min_size=1,
        max_size=8,
    ),
    st.lists(
        st.tuples(
            st.integers(0, 10_000), st.integers(0, 255), st.sampled_from(["set", "ins", "del"])
        ),
        max_size=6,
    ),
    st.binary(max_size=100),
)
def test_mutated_frames_invent_nothing(frames, mutations, noise):
    """Corrupted, truncated, shifted frames in noise: every decoded frame is one that was sent
    (CRC-protected), and frames not touched by a mutation all come out."""
    wires = [P.encode_frame(t, s, p) for t, s, p in frames]
    data = bytearray(noise + b"".join(wires))
    touched = set()
    for pos, val, op in mutations:
        pos %= len(data) + 1
        if op == "set" and pos < len(data):
            data[pos] = val
        elif op == "ins":
            data[pos:pos] = bytes([val])
        elif op == "del" and pos < len(data):
            del data[pos]
        touched.add(pos)
    dec = P.FrameDecoder()
    items = dec.feed(bytes(data))
    _check_items(items, dec)
    sent = {(t, s, bytes(p)) for t, s, p in frames}
    got = [(f.type, f.seq, f.payload) for f in items if isinstance(f, P.Frame)]
    assert set(got) <= sent
    if not mutations:
        assert got == [(t, s, bytes(p)) for t, s, p in frames]


# typed messages: strategies for every dataclass
u8, u16, u32, u64 = (st.integers(0, 2**b - 1) for b in (8, 16, 32, 64))
i16, i32 = st.integers(-(2**15), 2**15 - 1), st.integers(-(2**31), 2**31 - 1)
name = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=P.MAX_NAME)
pcm = st.lists(i16, max_size=P.MAX_PCM)
messages = st.one_of(
    st.builds(
        P.Hello,
        u8,
        u8,
        u8,
        u8,
        u8,
        u32,
        st.binary(min_size=8, max_size=8),
        st.binary(min_size=8, max_size=8),
        st.binary(min_size=6, max_size=6),
        name,
        st.lists(name, max_size=P.MAX_LABELS),
    ),
    st.builds(P.HelloRequest),
    st.builds(P.Event, u64, u32, u8, u8, u8, u16),
    st.builds(P.Status, u64, i16, i16, u16, u32, u32, u32, u32, u8, u32),
    st.builds(P.Audio, u64, pcm),
    st.builds(P.Inject, u64, pcm),
    st.builds(P.Credit, u32),
    st.builds(P.ConfigGet, u16),
    st.builds(P.ConfigSet, u16, i32),
    st.builds(P.Config, u16, i32),
    st.builds(P.Ack, u16, u8),
    st.builds(
        P.Error,
        u16,
        u16,
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=P.MAX_ERROR_TEXT),
    ),
    st.builds(P.Cmd, u8, u32),
)


@SETTINGS
@given(messages, u16, st.binary(max_size=8))
def test_typed_round_trip(msg, seq, extra):
    payload = msg.pack()
    assert len(payload) <= P.MAX_PAYLOAD
    assert P.unpack_payload(msg.TYPE, payload) == msg
    if not isinstance(msg, (P.Audio, P.Inject, P.HelloRequest)):  # forward compatibility
        assert P.unpack_payload(msg.TYPE, payload + extra) == msg
    items = P.FrameDecoder().feed(P.encode_frame(msg.TYPE, seq, payload))
    assert len(items) == 1 and items[0].msg == msg and items[0].seq == seq


@SETTINGS
@given(st.sampled_from(sorted(P.MESSAGE_TYPES)), st.binary(max_size=1300))
def test_unpack_arbitrary_payloads(type_, payload):
    try:
        msg = P.unpack_payload(type_, payload)
    except P.ProtocolError as e:
        assert e.code in ("short", "range") and str(e)
        return
    packed = msg.pack()
    if "\ufffd" not in repr(msg):  # strings that were not valid UTF-8
        assert packed == payload[: len(packed)]


# ---------------------------------------------------------------------------------------------
# seed corpus and the C harness under libFuzzer


def seed_corpus() -> dict[str, bytes]:
    """Hand-made seeds: each golden frame, decoder stream and (bad) payload.  For harness
    step 3 / 4 the first byte is the message type."""
    seeds, types = {}, set()
    for name, t, s, p, _ in _frame_cases():
        if t in types and not name.startswith("cobs"):
            continue  # one frame per type, plus COBS edges
        types.add(t)
        seeds[f"frame_{name}"] = P.encode_frame(t, s, p)
        if t in P.MESSAGE_TYPES:
            seeds[f"payload_{name}"] = bytes([t]) + p[:300]
    for name, data in _stream_cases():
        seeds[f"stream_{name}"] = data
    for name, t, p, _ in _bad_payloads():
        seeds[f"bad_{name}"] = bytes([t]) + p
    return seeds


def test_corpus_is_committed_and_small():
    if os.environ.get("EW_REGEN_CORPUS") == "1":
        CORPUS.mkdir(parents=True, exist_ok=True)
        for name, data in seed_corpus().items():
            (CORPUS / name).write_bytes(data)
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    assert len(files) >= 24
    assert sum(p.stat().st_size for p in files) < 200_000
    names = {p.name for p in files}
    assert {n for n in seed_corpus()} <= names, "seed corpus out of date: EW_REGEN_CORPUS=1"


def _have_libfuzzer() -> bool:
    if shutil.which("clang") is None:
        return False
    probe = ROOT / "build" / "ctests" / "libfuzzer_probe.c"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n"
    )
    res = subprocess.run(
        ["clang", *FUZZ_FLAGS, str(probe), "-o", str(probe.with_suffix(""))], capture_output=True
    )
    return res.returncode == 0


@pytest.fixture(scope="module")
def harness() -> Path:
    if not _have_libfuzzer():
        pytest.skip("clang with libFuzzer (-fsanitize=fuzzer) not available")
    return build("fuzz_proto", [HARNESS], cc="clang", extra_flags=FUZZ_FLAGS)


def _run_fuzzer(exe: Path, args, timeout: float) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
    )
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, timeout=timeout, env=env
    )


def test_libfuzzer_regression_corpus(harness):
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    res = _run_fuzzer(harness, files, timeout=120)  # each file executed once
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-4000:]
    assert f"Executed {files[-1]}".encode() in res.stderr


def test_libfuzzer_short_run(harness, tmp_path):
    work = tmp_path / "new"
    work.mkdir()
    res = _run_fuzzer(
        harness,
        [
            "-runs=20000",
            "-max_total_time=20",
            "-seed=1",
            "-max_len=4096",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            work,
            CORPUS,
        ],
        timeout=120,
    )
    log = res.stderr.decode(errors="replace")
    assert res.returncode == 0, log[-4000:]
    assert "Done" in log and "runs" in log


def test_harness_catches_a_broken_decoder(harness, tmp_path):
    """The harness's invariant checks can fail: built against a copy of the frame codec
    (ew_proto_frame.c) whose decoder skips the CRC check, it aborts on a frame with a bad CRC."""
    broken = tmp_path / "ew_proto_frame_broken.c"
    core_src = ROOT / "firmware" / "lib" / "ewcore" / "src"
    src = (core_src / "ew_proto_frame.c").read_text()
    bug = "else if (ew_crc32(d->buf, n - 4u) != get_u32(d->buf + n - 4u)) why = EW_PROTO_BAD_CRC;"
    assert bug in src
    broken.write_text(src.replace(bug, ""))
    exe = tmp_path / "fuzz_broken"
    inc = ROOT / "firmware" / "lib" / "ewcore" / "include"
    others = [
        p
        for p in core_src.glob("ew_*.c")
        if p.name in ("ew_proto_msg.c", "ew_cobs.c", "ew_crc32.c")
    ]
    res = subprocess.run(
        [
            "clang",
            *FUZZ_FLAGS,
            "-std=c99",
            f"-I{inc}",
            f"-I{core_src}",
            str(HARNESS),
            str(broken),
            *map(str, others),
            "-o",
            str(exe),
        ],
        capture_output=True,
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    body = struct.pack("<BBH", P.MAGIC, P.EVENT, 1) + b"\x01\x02\x03"
    bad = tmp_path / "bad_crc"
    bad.write_bytes(b"\0" + P.cobs_encode(body + b"\0\0\0\1") + b"\0")
    res = _run_fuzzer(exe, [bad], timeout=60)
    assert res.returncode != 0
