"""Live view of a node: detections as they happen, level meter, gate duty cycle, inference
latency, dropped samples, link errors and the node's log lines (text outside frames).

    python -m tools.monitor --port /dev/ttyUSB0
    python -m tools.monitor --sim-audio tests/audio/gunshot_2.wav --count 2
    python -m tools.monitor --port P --json | jq .          # one JSON object per line

Human output (one line per item; STATUS redraws one meter line in place on a terminal):

    16:20:01.532  EVENT  gunshot              onset  12.480 s  score 0.87
    16:20:02.410  END    gunshot              onset  12.480 s  dur 0.96 s  best 0.91  hits 3
    level  -31.2 dBFS |########............| floor -58.0  gate  12.5 %  infer 14.2 ms (max 15.0)  dropped 0
    16:20:03.001  log    W (1234) earwitness: ...
    16:20:03.100  link   crc error (57 bytes)

JSON lines (`--json`): every object has "t" (UTC, host clock) and "type": hello, event, status,
log, link_error, seq_gap, seq_backward, reset, error (node ERROR frames), end (last line, with
the counts).  Event fields: label, class_index, kind (onset/end), onset_sample, onset_s,
duration_s, score (0..1), hits.  Status fields: sample_index, level_dbfs, noise_floor_dbfs,
gate_duty, inference_count, inference_ms_last, inference_ms_max, dropped_samples,
dropped_delta, mode, credits.

Statistics come from the node's STATUS frames: the node's STATUS_PERIOD_MS setting is used; if
it is 0 (no periodic STATUS), the monitor asks for one every --status-every seconds.  Stops
after --duration seconds or --count events (ONSET), on Ctrl-C (exit 0), or when the port fails
(exit 1).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools import cli
from tools.errors import BadInput, check_positive
from tools.node import params
from tools.wire import link as lk
from tools.wire import protocol as pr

METER_WIDTH = 20
METER_FLOOR_DB = -90.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clock() -> str:
    return dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]


def meter(db: float, width: int = METER_WIDTH, floor: float = METER_FLOOR_DB) -> str:
    """|####......| for a level in dBFS (floor..0 dB)."""
    frac = min(1.0, max(0.0, (db - floor) / -floor))
    n = int(round(frac * width))
    return "|" + "#" * n + "." * (width - n) + "|"


class Monitor:
    """Turns link items into records (dicts) and, optionally, lines on a stream.

    `handle(item) -> dict | None`; `counts` totals; `records` (if keep=True) every record."""

    def __init__(
        self,
        labels: list[str] | None = None,
        sample_rate: int | None = None,
        out: TextIO | None = None,
        as_json: bool = False,
        keep: bool = False,
        tty: bool | None = None,
    ):
        self.labels = labels or []
        self.sr = sample_rate or params.default().sample_rate_hz
        self.out = out
        self.as_json = as_json
        self.keep = keep
        self.records: list[dict] = []
        self.tty = (
            (out.isatty() if out is not None and hasattr(out, "isatty") else False)
            if tty is None
            else tty
        )
        self.counts = {
            "events": 0,
            "event_ends": 0,
            "status": 0,
            "log_lines": 0,
            "link_errors": 0,
            "seq_gaps": 0,
            "frames_missed": 0,
            "resets": 0,
            "node_errors": 0,
        }
        self._last_dropped: int | None = None
        self._meter_shown = False
        self.last_status: dict | None = None
        self._last_hello: pr.Hello | None = None
        self._reset_seen = False

    def label(self, i: int) -> str:
        return self.labels[i] if 0 <= i < len(self.labels) else f"class{i}"

    # ---- items -> records ---------------------------------------------------------------------
    def record(self, item) -> dict | None:
        if isinstance(item, pr.LogLine):
            self.counts["log_lines"] += 1
            return {"type": "log", "text": item.text}
        if isinstance(item, pr.DecodeError):
            self.counts["link_errors"] += 1
            return {
                "type": "link_error",
                "kind": item.kind,
                "bytes": item.raw_len,
                "detail": item.detail,
            }
        if isinstance(item, pr.SeqGap):
            self.counts["seq_gaps"] += 1
            self.counts["frames_missed"] += item.missing
            return {
                "type": "seq_gap",
                "expected": item.expected,
                "got": item.got,
                "missing": item.missing,
            }
        if isinstance(item, pr.SeqBackward):
            return {
                "type": "seq_backward",
                "expected": item.expected,
                "got": item.got,
                "behind": item.behind,
            }
        if isinstance(item, pr.NodeReset) and item.got != item.expected:
            # (a HELLO continuing the sequence answers a HELLO request: not a reset)
            self.counts["resets"] += 1
            self._reset_seen = True
            self._last_dropped = None
            return {"type": "reset", "expected": item.expected, "got": item.got}
        if not isinstance(item, pr.Frame):
            return None
        if item.msg is None:
            if item.error:
                self.counts["link_errors"] += 1
                return {
                    "type": "link_error",
                    "kind": "payload",
                    "bytes": len(item.payload),
                    "detail": f"{item.type_name}: {item.error}",
                }
            return None
        m = item.msg
        if isinstance(m, pr.Hello):
            if m == self._last_hello and not self._reset_seen:
                return None  # the same node announcing itself again
            self._last_hello, self._reset_seen = m, False
            self.labels = list(m.labels)
            self.sr = m.sample_rate_hz or self.sr
            return {
                "type": "hello",
                "proto_version": m.proto_version,
                "firmware_version": m.fw_version,
                "board": m.board,
                "node_id": m.node_id.hex(":"),
                "model_hash": m.model_hash.hex(),
                "config_hash": m.config_hash.hex(),
                "sample_rate_hz": m.sample_rate_hz,
                "reset_reason": pr.RESET_REASONS.get(m.reset_reason, str(m.reset_reason)),
                "labels": list(m.labels),
            }
        if isinstance(m, pr.Event):
            if m.kind == pr.EVENT_ONSET:
                self.counts["events"] += 1
            else:
                self.counts["event_ends"] += 1
            return {
                "type": "event",
                "label": self.label(m.class_index),
                "class_index": m.class_index,
                "kind": "onset" if m.kind == pr.EVENT_ONSET else "end",
                "onset_sample": m.onset_sample,
                "onset_s": round(m.onset_sample / self.sr, 4),
                "duration_s": round(m.duration_samples / self.sr, 4),
                "score": round(m.score / 256, 4),
                "hits": m.hits,
            }
        if isinstance(m, pr.Status):
            self.counts["status"] += 1
            delta = (
                0 if self._last_dropped is None else max(0, m.dropped_samples - self._last_dropped)
            )
            self._last_dropped = m.dropped_samples
            rec = {
                "type": "status",
                "sample_index": m.sample_index,
                "level_dbfs": round(m.level_dbfs_q8 / 256, 2),
                "noise_floor_dbfs": round(m.noise_floor_dbfs_q8 / 256, 2),
                "gate_duty": round(m.gate_duty_q16 / 65535, 4),
                "inference_count": m.inference_count,
                "inference_ms_last": round(m.inference_us_last / 1000, 3),
                "inference_ms_max": round(m.inference_us_max / 1000, 3),
                "dropped_samples": m.dropped_samples,
                "dropped_delta": delta,
                "mode": m.mode,
                "credits": m.credits,
            }
            self.last_status = rec
            return rec
        if isinstance(m, pr.Error):
            self.counts["node_errors"] += 1
            return {
                "type": "error",
                "code": m.code,
                "name": lk.ERROR_NAMES.get(m.code, str(m.code)),
                "ref_seq": m.ref_seq,
                "message": m.message,
            }
        return None  # AUDIO, CREDIT, ACK, CONFIG: not shown

    def handle(self, item) -> dict | None:
        rec = self.record(item)
        if rec is None:
            return None
        rec = {"t": _now(), **rec}
        if self.keep:
            self.records.append(rec)
        if self.out is not None:
            self.show(rec)
        return rec

    # ---- records -> text ----------------------------------------------------------------------
    def format(self, r: dict) -> str:
        t = r["type"]
        c = _clock()
        if t == "event":
            if r["kind"] == "onset":
                return (
                    f"{c}  EVENT  {r['label']:<20} onset {r['onset_s']:8.3f} s  "
                    f"score {r['score']:.2f}"
                )
            return (
                f"{c}  END    {r['label']:<20} onset {r['onset_s']:8.3f} s  dur "
                f"{r['duration_s']:.2f} s  best {r['score']:.2f}  hits {r['hits']}"
            )
        if t == "status":
            return (
                f"level {r['level_dbfs']:6.1f} dBFS {meter(r['level_dbfs'])} floor "
                f"{r['noise_floor_dbfs']:6.1f}  gate {100 * r['gate_duty']:5.1f} %  infer "
                f"{r['inference_ms_last']:5.1f} ms (max {r['inference_ms_max']:.1f})  "
                f"dropped {r['dropped_samples']}"
                + (f" (+{r['dropped_delta']})" if r["dropped_delta"] else "")
            )
        if t == "log":
            return f"{c}  log    {r['text']}"
        if t == "hello":
            return (
                f"{c}  HELLO  node {r['node_id']} board {r['board'] or '?'} firmware "
                f"{r['firmware_version']} protocol v{r['proto_version']} model "
                f"{r['model_hash']} reset {r['reset_reason']}; classes "
                f"{', '.join(r['labels'])}"
            )
        if t == "link_error":
            return f"{c}  link   {r['kind']} error ({r['bytes']} bytes)"
        if t == "seq_gap":
            return f"{c}  link   {r['missing']} frame(s) lost (seq {r['expected']} -> {r['got']})"
        if t == "seq_backward":
            return (
                f"{c}  link   frame repeated/out of order (seq {r['got']}, expected "
                f"{r['expected']})"
            )
        if t == "reset":
            return f"{c}  RESET  node restarted (new HELLO)"
        if t == "error":
            return f"{c}  ERROR  {r['name']} {r['message']}"
        return f"{c}  {json.dumps(r)}"

    def show(self, r: dict) -> None:
        if self.as_json:
            self.out.write(json.dumps(r) + "\n")
            self.out.flush()
            return
        line = self.format(r)
        if r["type"] == "status" and self.tty:
            self.out.write("\r\x1b[K" + line)
            self._meter_shown = True
        else:
            if self._meter_shown:
                self.out.write("\r\x1b[K")
                self._meter_shown = False
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.out is None:
            return
        if self.as_json:
            self.out.write(json.dumps({"t": _now(), "type": "end", **self.counts}) + "\n")
        else:
            if self._meter_shown:
                self.out.write("\n")
            self.out.write(
                ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts.items()) + "\n"
            )
        self.out.flush()


def monitor(
    link: lk.NodeLink,
    mon: Monitor,
    duration: float | None = None,
    count: int | None = None,
    status_every: float = 1.0,
    status_period_ms: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Run the monitor on an open link until duration (wall s), count events, or stop()."""
    mon.handle(pr.Frame(pr.HELLO, 0, b"", link.hello()))
    poll_status = False
    if status_period_ms is not None:
        link.config_set(pr.CFG_STATUS_PERIOD_MS, status_period_ms)
        poll_status = status_period_ms == 0 and status_every > 0
    else:
        try:
            poll_status = link.config_get(pr.CFG_STATUS_PERIOD_MS) == 0 and status_every > 0
        except lk.LinkError:
            poll_status = status_every > 0
    t0 = time.monotonic()
    next_status = t0
    while True:
        now = time.monotonic()
        if duration is not None and now - t0 >= duration:
            return
        if stop is not None and stop():
            return
        if poll_status and now >= next_status:
            link.send(pr.Cmd(pr.CMD_STATUS, 0))
            next_status = now + status_every
        for it in link.poll():
            rec = mon.handle(it)
            if (
                count is not None
                and rec is not None
                and rec["type"] == "event"
                and rec["kind"] == "onset"
                and mon.counts["events"] >= count
            ):
                return


def run(
    link_opts,
    duration: float | None = None,
    count: int | None = None,
    json_lines: bool = False,
    status_every: float = 1.0,
    status_period_ms: int | None = None,
) -> int:
    """The command's work (python -m tools.monitor): monitor the node of `link_opts` (the
    parsed tools.cli link options, opened with cli.link_from_args) on stdout.  Ctrl-C while
    monitoring is the normal stop: the counts line is printed, exit 0 (run_cli's 130 is only
    for a Ctrl-C before the node answered)."""
    check_positive(duration, "--duration")
    check_positive(count, "--count")
    if status_every < 0:
        raise BadInput("--status-every must be >= 0 (0: never ask)")
    if status_period_ms is not None and status_period_ms < 0:
        raise BadInput("--status-period-ms must be >= 0")
    mon = Monitor(out=sys.stdout, as_json=json_lines)
    with cli.link_from_args(link_opts) as link:
        try:
            monitor(link, mon, duration, count, status_every, status_period_ms)
        except KeyboardInterrupt:
            pass
        finally:
            try:
                mon.finish()
            except (BrokenPipeError, ValueError):
                pass
    return 0
