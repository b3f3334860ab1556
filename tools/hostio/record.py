"""Field recordings over serial: the node's AUDIO stream into rolling WAV files, each with a
JSON sidecar, and a `metadata.csv` in the training corpus format.

    python -m tools.record --port /dev/ttyUSB0 --out recordings/          # 10-minute files
    python -m tools.record --sim-audio tests/audio/siren_1.wav --out /tmp/rec --duration 4
    python -m tools.record --port P --out rec/ --on-event --pre-roll 3 --post-roll 2

Every file `NODE_YYYYmmddTHHMMSSZ_SAMPLE.wav` (16 kHz mono PCM-16) has `*.json` next to it:
node id, board, firmware version, protocol version, model hash, config hash, labels, sample rate,
gain, start time (UTC, host clock at the first sample's arrival), `first_sample` (the node's
sample index of the file's first sample), events seen (EVENT frames, with sample index and offset
in the file), gaps, link errors, and why the file was closed.

Gaps are never stitched.  Each AUDIO frame carries the sample index of its first sample; when it
does not continue the previous frame (frames lost to CRC errors, drops, node overruns), the
missing samples are written as silence of exactly that length and listed in `gaps` (sample
index, offset in the file, length, reason: the protocol's sequence gap if one was seen).
Overlapping/duplicate samples are dropped and counted.  A gap longer than one roll period, a
sample index going backwards, or a node reset (new HELLO) closes the file and starts a new one.

The WAV header and the sidecar are brought up to date every `--flush-s` seconds (and at every
event, gap and close), so Ctrl-C, a pulled cable or a killed process loses at most that much;
Ctrl-C and a vanished port close the file cleanly (exit 0 and 1).  Disk full stops the
recording, keeps what was written, and exits 1.

`--on-event` keeps only windows around detections.  If the node supports detect +
record-on-event (CONFIG AUDIO_STREAM 2: it sends AUDIO only from its pre-roll before an EVENT
onset to its post-roll after the last hit, 0.5 s each in the firmware), each segment it sends
becomes one file (a jump in sample index without a sequence gap is the end of a segment, not a
loss).  Otherwise (or with --host-buffer) the node streams continuously and the host keeps a
pre-roll ring buffer: for each EVENT (ONSET) it writes [onset - pre-roll, onset + post-roll]
(overlapping windows merged) to its own file.  Either way the file is labelled in metadata.csv
with the detected class (best score), unless --label is given.

At start the recorder asks the node for a new stream from its microphone (CMD START_STREAM 0:
sample indices restart at 0, and a node left in INJECT mode listens again).

metadata.csv (in --out; appended, created with its header): path (relative to --out), label
(--label, or the detected class in --on-event mode), source_label, fold (--fold, default one per
node: 1 + node id mod 5, so one node's recordings never span folds), duration_s, source, licence
-- the columns of ../shared/data/*/metadata.csv, so `--out` can be added to the corpus as is.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools import cli
from tools.errors import BadInput, check_output, check_positive
from tools.node import audio, params
from tools.wire import link as lk
from tools.wire import protocol as pr

SIDECAR_SCHEMA = 1
META_COLUMNS = audio.CORPUS_COLUMNS


class DiskFull(Exception):
    pass


def _utc(t: float | None = None) -> str:
    return (
        dt.datetime.fromtimestamp(time.time() if t is None else t, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _check_os_error(e: OSError, what: str):
    if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFull(f"disk full while writing {what}") from None
    raise e


@dataclass
class NodeInfo:
    """What every sidecar says about the node (from HELLO and CONFIG)."""

    node_id: str = ""
    board: str = ""
    firmware_version: str = ""
    proto_version: int = pr.PROTO_VERSION
    model_hash: str = ""
    config_hash: str = ""
    labels: list = field(default_factory=list)
    sample_rate_hz: int = field(default_factory=lambda: params.default().sample_rate_hz)
    gain_db: float | None = None

    @classmethod
    def from_hello(cls, h: pr.Hello, gain_db: float | None = None) -> NodeInfo:
        return cls(
            h.node_id.hex(":"),
            h.board,
            h.fw_version,
            h.proto_version,
            h.model_hash.hex(),
            h.config_hash.hex(),
            list(h.labels),
            h.sample_rate_hz,
            gain_db,
        )

    def label(self, i: int) -> str:
        return self.labels[i] if 0 <= i < len(self.labels) else f"class{i}"


class AudioFile:
    """One WAV file + its sidecar, written incrementally."""

    def __init__(
        self,
        path: Path,
        first_sample: int,
        info: NodeInfo,
        mode: str,
        start_time: float,
        extra: dict | None = None,
        fmt: str = "WAV",
    ):
        import soundfile as sf

        self.path = path
        self.sidecar_path = path.with_suffix(".json")
        self.first_sample = first_sample
        self.samples = 0
        self.info = info
        self.meta = {
            "schema_version": SIDECAR_SCHEMA,
            "file": path.name,
            "tool": "tools.record",
            "mode": mode,
            **info.__dict__,
            "start_time_utc": _utc(start_time),
            "first_sample": first_sample,
            "samples": 0,
            "duration_s": 0.0,
            "events": [],
            "gaps": [],
            "duplicate_samples_dropped": 0,
            "link": {},
            "closed": False,
            "close_reason": None,
            **(extra or {}),
        }
        try:
            self.sf = sf.SoundFile(str(path), "w", info.sample_rate_hz, 1, "PCM_16", format=fmt)
        except OSError as e:
            _check_os_error(e, str(path))
        except RuntimeError as e:  # libsndfile: "System error" on ENOSPC
            raise DiskFull(f"cannot create {path}: {e}") from None
        self.write_sidecar()

    @property
    def end_sample(self) -> int:
        return self.first_sample + self.samples

    def write(self, x: np.ndarray) -> None:
        if not x.size:
            return
        try:
            self.sf.write(x)
        except OSError as e:
            _check_os_error(e, str(self.path))
        except RuntimeError as e:
            raise DiskFull(f"write to {self.path} failed: {e}") from None
        self.samples += x.size

    def add_event(self, ev: pr.Event) -> None:
        sr = self.info.sample_rate_hz
        self.meta["events"].append(
            {
                "label": self.info.label(ev.class_index),
                "class_index": ev.class_index,
                "kind": "onset" if ev.kind == pr.EVENT_ONSET else "end",
                "onset_sample": ev.onset_sample,
                "offset_s": round((ev.onset_sample - self.first_sample) / sr, 6),
                "duration_s": round(ev.duration_samples / sr, 6),
                "score": round(ev.score / 256, 4),
                "hits": ev.hits,
                "received_utc": _utc(),
            }
        )

    def add_gap(self, at_sample: int, n: int, reason: str, filled: str = "silence") -> None:
        self.meta["gaps"].append(
            {
                "sample_index": at_sample,
                "offset_samples": at_sample - self.first_sample,
                "offset_s": round((at_sample - self.first_sample) / self.info.sample_rate_hz, 6),
                "samples": n,
                "filled": filled,
                "reason": reason,
            }
        )

    def flush(self, link_stats: dict | None = None) -> None:
        try:
            self.sf.flush()
        except OSError as e:
            _check_os_error(e, str(self.path))
        except RuntimeError as e:
            raise DiskFull(f"flush of {self.path} failed: {e}") from None
        if link_stats is not None:
            self.meta["link"] = link_stats
        self.write_sidecar()

    def write_sidecar(self) -> None:
        self.meta["samples"] = self.samples
        self.meta["duration_s"] = round(self.samples / self.info.sample_rate_hz, 6)
        tmp = self.sidecar_path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(self.meta, indent=1) + "\n")
            os.replace(tmp, self.sidecar_path)
        except OSError as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            _check_os_error(e, str(self.sidecar_path))

    def close(self, reason: str, link_stats: dict | None = None) -> None:
        """Close the WAV and write the final sidecar.  Best effort on a full disk: whatever
        can be written is, and DiskFull is raised afterwards."""
        failure = None
        try:
            self.sf.close()
        except (OSError, RuntimeError) as e:
            failure = e
        self.meta["closed"] = True
        self.meta["close_reason"] = reason
        if link_stats is not None:
            self.meta["link"] = link_stats
        try:
            self.write_sidecar()
        except (OSError, DiskFull) as e:
            failure = failure or e
        if failure is not None:
            raise DiskFull(f"closing {self.path}: {failure}")


class MetadataCsv:
    """Appends rows to OUT/metadata.csv (header written when the file is new)."""

    def __init__(self, path: Path):
        self.path = path

    def check(self) -> bool:
        """True if the file is new (or empty); BadInput if it exists with other columns."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            try:
                with open(self.path, newline="") as f:
                    head = next(csv.reader(f), [])
            except (OSError, UnicodeDecodeError, csv.Error) as e:
                raise BadInput(f"{self.path}: cannot read it ({e})") from None
            if head[: len(META_COLUMNS)] != META_COLUMNS:
                raise BadInput(
                    f"{self.path}: existing file has columns {head}, expected {META_COLUMNS}"
                )
        return new

    def append(self, row: dict) -> None:
        new = self.check()
        try:
            with open(self.path, "a", newline="") as f:
                w = csv.DictWriter(f, META_COLUMNS, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
        except OSError as e:
            _check_os_error(e, str(self.path))


@dataclass
class RecordOptions:
    out: Path
    roll_minutes: float = 10.0
    on_event: bool = False
    pre_roll_s: float = 3.0
    post_roll_s: float = 2.0
    flush_s: float = 1.0
    label: str | None = None
    fold: int | None = None
    licence: str = "unspecified (own field recording)"
    fmt: str = "WAV"
    #: --on-event served by the node (AUDIO_STREAM 2): AUDIO comes in segments around events;
    #: a jump in first_sample without a sequence gap is the end of a segment, not a loss
    node_segments: bool = False


class Recorder:
    """Turns the node's items into files.  Feed every link item to `handle`; call `close`.

    Continuous mode: rolling files of `roll_minutes`.  On-event mode: one file per detection
    window (pre-roll from a ring buffer of the stream)."""

    def __init__(self, opts: RecordOptions, info: NodeInfo, link_stats=None):
        self.o = opts
        self.info = info
        self.sr = info.sample_rate_hz
        self.roll = max(1, int(round(opts.roll_minutes * 60 * self.sr)))
        self.link_stats = link_stats or (lambda: {})
        self.meta_csv = MetadataCsv(opts.out / "metadata.csv")
        self.file: AudioFile | None = None
        self.files: list[AudioFile] = []
        self.expected: int | None = None  # next sample index of the stream
        self.pending_seq_gap: pr.SeqGap | None = None
        self.samples_received = 0
        self.samples_filled = 0
        self.duplicates = 0
        self.gaps: list[dict] = []
        self.events: list[dict] = []
        self._last_flush = time.monotonic()
        # on-event mode
        self._ring = np.zeros(0, np.int16)
        self._ring_start = 0  # sample index of _ring[0]
        self._ring_gaps: list[tuple[int, int, str]] = []
        self._clip_end: int | None = None
        self._clip_label: str | None = None
        self._clip_score = 0.0
        self._pending_events: list[pr.Event] = []
        self.host_windows = opts.on_event and not opts.node_segments
        opts.out.mkdir(parents=True, exist_ok=True)

    # ---- files ------------------------------------------------------------------------------
    def _fold(self) -> int:
        if self.o.fold is not None:
            return self.o.fold
        nid = int(self.info.node_id.replace(":", "") or "0", 16)
        return 1 + nid % 5

    def _open(self, first_sample: int, extra: dict | None = None) -> AudioFile:
        t = time.time()
        nid = self.info.node_id.replace(":", "") or "node"
        ext = ".flac" if self.o.fmt == "FLAC" else ".wav"
        stem = f"{nid}_{_stamp(t)}_{first_sample}"
        path = self.o.out / (stem + ext)
        k = 1
        while path.exists() or path.with_suffix(".json").exists():
            path = self.o.out / f"{stem}-{k}{ext}"
            k += 1
        mode = (
            "on-event (node segments)"
            if self.o.node_segments
            else "on-event"
            if self.host_windows
            else "continuous"
        )
        f = AudioFile(path, first_sample, self.info, mode, t, extra, self.o.fmt)
        self.files.append(f)
        return f

    def _close(
        self, f: AudioFile, reason: str, label: str | None = None, source_label: str | None = None
    ) -> None:
        if self.o.node_segments and label is None:
            evs = [e for e in f.meta["events"] if e["kind"] == "onset"] or f.meta["events"]
            if evs:
                best = max(evs, key=lambda e: e["score"])
                label = self.o.label or best["label"]
                source_label = f"detected {best['label']} (score {best['score']:.2f})"
        f.close(reason, self.link_stats())
        if f.samples:
            self.meta_csv.append(
                {
                    "path": f.path.relative_to(self.o.out).as_posix(),
                    "label": label or self.o.label or "unlabelled",
                    "source_label": source_label or "field recording",
                    "fold": self._fold(),
                    "duration_s": round(f.samples / self.sr, 3),
                    "source": f"earwitness node {self.info.node_id} ({self.info.board}, firmware "
                    f"{self.info.firmware_version}, model {self.info.model_hash}) via "
                    f"tools/record.py",
                    "licence": self.o.licence,
                }
            )

    def close(self, reason: str) -> None:
        if self.file is not None:
            f, self.file = self.file, None
            self._close(f, reason)
        if self.host_windows and self._clip_file is not None:
            self._finish_clip(reason)

    # ---- items ------------------------------------------------------------------------------
    def handle(self, item) -> None:
        if isinstance(item, pr.SeqGap):
            self.pending_seq_gap = item
            return
        if isinstance(item, pr.NodeReset) and item.got != item.expected:
            # (a HELLO that continues the sequence answers a HELLO request: no reset)
            self._boundary("node reset (new HELLO)")
            self.expected = None
            return
        if not isinstance(item, pr.Frame) or item.msg is None:
            return
        m = item.msg
        if isinstance(m, pr.Hello):
            self.info = NodeInfo.from_hello(m, self.info.gain_db)
        elif isinstance(m, pr.Audio):
            self._audio(m.first_sample, np.frombuffer(m.samples.tobytes(), "<i2"))
            self.pending_seq_gap = None
        elif isinstance(m, pr.Event):
            self._event(m)
        if time.monotonic() - self._last_flush >= self.o.flush_s:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        for f in (self.file, getattr(self, "_clip_file", None)):
            if f is not None:
                f.flush(self.link_stats())

    def _boundary(self, reason: str) -> None:
        if self.host_windows:
            if self._clip_file is not None:
                self._finish_clip(reason)
            self._ring = np.zeros(0, np.int16)
            self._ring_gaps.clear()
        elif self.file is not None:
            f, self.file = self.file, None
            self._close(f, reason)

    def _audio(self, first: int, x: np.ndarray) -> None:
        n = x.size
        if self.expected is not None and first != self.expected:
            if first < self.expected:
                overlap = self.expected - first
                if first + n <= self.expected and overlap < 4 * self.roll:
                    self.duplicates += n  # a frame received twice
                    self._count_dups(n)
                    return
                if overlap < n:  # partial overlap: keep the new part
                    self.duplicates += overlap
                    self._count_dups(overlap)
                    x, first = x[overlap:], self.expected
                else:  # index went back: node restarted
                    self._boundary(f"sample index went back from {self.expected} to {first}")
                    self.expected = None
            elif self.o.node_segments and self.pending_seq_gap is None:
                self._boundary("end of event segment")  # not a loss: between segments
                self.expected = None
            else:
                gap = first - self.expected
                sg = self.pending_seq_gap
                reason = (
                    f"sequence gap: {sg.missing} frame(s) lost (expected seq {sg.expected}"
                    f", got {sg.got})"
                    if sg
                    else "sample index jump (node overrun or frames lost without a sequence gap)"
                )
                rec = {"sample_index": self.expected, "samples": gap, "reason": reason}
                self.gaps.append(rec)
                if gap > self.roll:
                    rec["filled"] = "none (longer than a roll period: file split)"
                    self._gap_note(self.expected, gap, reason + "; file split, not filled")
                    self._boundary(f"gap of {gap} samples")
                    self.expected = None
                else:
                    rec["filled"] = "silence"
                    self.samples_filled += gap
                    self._emit(self.expected, np.zeros(gap, np.int16), gap_reason=reason)
        if self.expected is None:
            self.expected = first
        self.samples_received += x.size
        self._emit(first, x)
        self.expected = first + x.size

    def _count_dups(self, n: int) -> None:
        f = self.file if not self.host_windows else self._clip_file
        if f is not None:
            f.meta["duplicate_samples_dropped"] += n

    def _gap_note(self, at: int, n: int, reason: str) -> None:
        f = self.file if not self.host_windows else self._clip_file
        if f is not None:
            f.add_gap(at, n, reason, filled="none")
            f.write_sidecar()

    # continuous stream of samples (gaps already filled) from sample index `first`
    def _emit(self, first: int, x: np.ndarray, gap_reason: str | None = None) -> None:
        if self.host_windows:
            self._emit_event_mode(first, x, gap_reason)
            return
        pos = 0
        while pos < x.size:
            if self.file is None:
                self.file = self._open(first + pos)
                for ev in self._pending_events:
                    self.file.add_event(ev)
                self._pending_events.clear()
            if gap_reason is not None and pos == 0:
                self.file.add_gap(first, x.size, gap_reason)
            room = self.roll - self.file.samples
            take = min(room, x.size - pos)
            self.file.write(x[pos : pos + take])
            pos += take
            if gap_reason is not None:
                self.file.write_sidecar()
            if self.file.samples >= self.roll:
                f, self.file = self.file, None
                self._close(f, "roll")

    def _event(self, ev: pr.Event) -> None:
        rec = {
            "label": self.info.label(ev.class_index),
            "onset_sample": ev.onset_sample,
            "score": ev.score / 256,
            "kind": "onset" if ev.kind == pr.EVENT_ONSET else "end",
        }
        self.events.append(rec)
        if self.host_windows:
            self._event_mode_event(ev)
            return
        # the file whose audio holds the onset (an END may refer to a closed file; in node
        # segment mode an ONSET often arrives before its segment's first AUDIO frame)
        cur = self.file
        slack = 0 if self.o.node_segments else self.sr
        if cur is not None and cur.first_sample <= ev.onset_sample < cur.end_sample + slack:
            target = cur
        elif self.o.node_segments and (cur is None or ev.onset_sample >= cur.end_sample):
            self._pending_events.append(ev)
            return
        else:
            target = next(
                (
                    f
                    for f in reversed(self.files)
                    if f.first_sample <= ev.onset_sample < f.end_sample
                ),
                None,
            )
            target = target or cur or (self.files[-1] if self.files else None)
        if target is None:
            self._pending_events.append(ev)
            return
        target.add_event(ev)
        try:
            target.write_sidecar()
        except DiskFull:
            raise
        except OSError:
            pass

    # ---- on-event mode ------------------------------------------------------------------------
    _clip_file: AudioFile | None = None

    def _emit_event_mode(self, first: int, x: np.ndarray, gap_reason: str | None) -> None:
        keep = int((self.o.pre_roll_s + 1.0) * self.sr)
        if self._clip_file is not None:
            end = self._clip_end
            take = max(0, min(x.size, end - first))
            if take:
                if gap_reason is not None:
                    self._clip_file.add_gap(first, take, gap_reason)
                self._clip_file.write(x[:take])
            if first + x.size >= end:
                self._finish_clip("end of post-roll")
        if not self._ring.size:
            self._ring_start = first
        self._ring = np.concatenate([self._ring, x])
        if gap_reason is not None:
            self._ring_gaps.append((first, x.size, gap_reason))
        if self._ring.size > keep:
            cut = self._ring.size - keep
            self._ring = self._ring[cut:]
            self._ring_start += cut
            self._ring_gaps = [g for g in self._ring_gaps if g[0] + g[1] > self._ring_start]

    def _event_mode_event(self, ev: pr.Event) -> None:
        label = self.info.label(ev.class_index)
        pre = int(self.o.pre_roll_s * self.sr)
        post = int(self.o.post_roll_s * self.sr)
        end = ev.onset_sample + max(post, ev.duration_samples if ev.kind == pr.EVENT_END else 0)
        if self._clip_file is not None:
            self._clip_file.add_event(ev)
            self._clip_end = max(self._clip_end, end)
            if ev.score / 256 > self._clip_score:
                self._clip_label, self._clip_score = label, ev.score / 256
            self._clip_file.write_sidecar()
            return
        if ev.kind != pr.EVENT_ONSET:
            return
        ring_end = self._ring_start + self._ring.size
        start = max(self._ring_start, ev.onset_sample - pre)
        if start > ring_end:
            start = ring_end
        f = self._open(start, {"pre_roll_s": self.o.pre_roll_s, "post_roll_s": self.o.post_roll_s})
        self._clip_file = f
        self._clip_end = end
        self._clip_label, self._clip_score = label, ev.score / 256
        f.add_event(ev)
        for g0, gn, why in self._ring_gaps:
            if g0 + gn > start:
                f.add_gap(max(g0, start), g0 + gn - max(g0, start), why)
        upto = min(ring_end, end)
        f.write(self._ring[start - self._ring_start : upto - self._ring_start])
        f.write_sidecar()
        if ring_end >= end:
            self._finish_clip("end of post-roll")

    def _finish_clip(self, reason: str) -> None:
        f, self._clip_file = self._clip_file, None
        self._close(
            f,
            reason,
            label=self.o.label or self._clip_label,
            source_label=f"detected {self._clip_label} (score {self._clip_score:.2f})",
        )

    # ---- summary ----------------------------------------------------------------------------
    def summary(self) -> dict:
        return {
            "files": [str(f.path) for f in self.files],
            "samples_received": self.samples_received,
            "samples_filled": self.samples_filled,
            "duplicate_samples_dropped": self.duplicates,
            "audio_seconds": round(self.samples_received / self.sr, 3),
            "gaps": self.gaps,
            # detections: EVENT onsets (an END closes a detection already counted), as
            # tools.monitor counts them; every EVENT frame is in the sidecars
            "events": sum(1 for e in self.events if e["kind"] == "onset"),
        }


def _link_stats(link: lk.NodeLink) -> dict:
    s = link.stats
    return {
        "frames": s.frames,
        "seq_gaps": s.seq_gaps,
        "frames_missed": s.frames_missed,
        "seq_backward": s.seq_backward,
        "resets": s.resets,
        "decode_errors": {
            k: getattr(s, "err_" + k) for k in ("cobs", "short", "oversize", "magic", "crc")
        },
        "garbage_bytes": s.garbage_bytes,
        "log_lines": s.log_lines,
        "bad_payloads": s.bad_payloads,
    }


def record(
    link: lk.NodeLink,
    opts: RecordOptions,
    duration_s: float | None = None,
    progress=None,
    stop_on_idle: bool = True,
    restart_stream: bool = True,
    node_events: bool = True,
) -> tuple[dict, str | None, int]:
    """Record from an open link until duration_s of audio, Ctrl-C, a link failure, a full disk
    or (stop_on_idle) no AUDIO for Timeouts.idle_s.

    Returns (summary, reason it stopped, exit code): 0 duration reached / Ctrl-C / idle at the
    end of a simulated node's audio, 1 link failure or disk full."""
    hello = link.hello()
    gain = None
    try:
        gain = link.config_get(pr.CFG_GAIN_DB_Q8) / 256
    except lk.LinkError:
        pass  # a node without the key: recorded as null
    info = NodeInfo.from_hello(hello, gain)
    stream = 1
    if opts.on_event and not opts.node_segments and node_events:
        try:  # detect + record-on-event on the node itself
            link.config_set(pr.CFG_AUDIO_STREAM, 2)
            stream = 2
        except lk.LinkError:
            stream = 1  # an older node: host-side pre-roll buffer
    opts.node_segments = stream == 2
    rec = Recorder(opts, info, lambda: _link_stats(link))
    try:
        if stream == 1:
            link.config_set(pr.CFG_AUDIO_STREAM, 1)
    except lk.LinkError as e:
        raise lk.LinkError(f"node refused to stream audio: {e}", 1) from None
    pos0 = None  # stream index where the recording started
    if restart_stream:
        try:  # a new stream from the microphone: indices from 0
            link.command(pr.CMD_START_STREAM, 0, drop_before=True)
            pos0 = 0
        except lk.LinkError:
            pass  # a node without streams: record what comes
    limit = None if duration_s is None else int(round(duration_s * info.sample_rate_hz))
    reason, code = "stopped", 0
    last_audio = time.monotonic()
    try:
        for it in _idle_items(link):
            if it is None:  # nothing arrived in one poll
                if time.monotonic() - rec._last_flush >= opts.flush_s:
                    rec.flush()
                if (
                    stop_on_idle
                    and not opts.node_segments
                    and time.monotonic() - last_audio > link.timeouts.idle_s
                ):
                    reason = f"no audio for {link.timeouts.idle_s:g} s"
                    code = 0 if link.twin is not None else 1
                    break
                continue
            rec.handle(it)
            if opts.node_segments and limit is not None and isinstance(it, pr.Frame):
                # segments: --duration is stream time (AUDIO and STATUS sample indices)
                m = it.msg
                idx = (
                    m.first_sample + len(m.samples)
                    if isinstance(m, pr.Audio)
                    else m.sample_index
                    if isinstance(m, pr.Status)
                    else None
                )
                if idx is not None:
                    if pos0 is None:
                        pos0 = idx - (len(m.samples) if isinstance(m, pr.Audio) else 0)
                    if idx - pos0 >= limit:
                        reason = f"{duration_s:g} s of stream time"
                        break
            if isinstance(it, pr.Frame) and isinstance(it.msg, pr.Audio):
                last_audio = time.monotonic()
                if progress is not None:
                    progress(rec)
                if limit is not None and rec.samples_received + rec.samples_filled >= limit:
                    reason = f"{duration_s:g} s recorded"
                    break
            elif isinstance(it, pr.NodeReset) and it.got != it.expected:
                try:  # a rebooted node forgets the stream setting
                    link.send(pr.ConfigSet(pr.CFG_AUDIO_STREAM, stream))
                except lk.LinkError:
                    pass
    except KeyboardInterrupt:
        reason = "interrupted (Ctrl-C)"
    except lk.LinkError as e:
        reason, code = str(e), 1
    except (DiskFull, OSError) as e:
        if isinstance(e, OSError) and getattr(e, "errno", None) not in (errno.ENOSPC, errno.EDQUOT):
            why, closing = f"cannot write the recording ({e})", "write error"
        else:
            why = str(e) if isinstance(e, DiskFull) else f"disk full ({e.strerror})"
            closing = "disk full"
        try:
            rec.close(closing)
        except (DiskFull, OSError):
            pass
        return rec.summary(), f"{why}: recording stopped, what was written is kept", 1
    try:
        rec.close(reason)
    except (DiskFull, OSError) as e:
        return rec.summary(), f"{e}: recording stopped, what was written is kept", 1
    if code == 0 and link.serial is not None:
        try:
            link.send(pr.ConfigSet(pr.CFG_AUDIO_STREAM, 0))
        except lk.LinkError:
            pass
    return rec.summary(), reason, code


def _idle_items(link):
    """link.items() that also yields None every poll so that idle time can be checked."""
    while True:
        items = link.poll()
        if not items:
            yield None
        yield from items


def check_options(opts: RecordOptions, duration: float | None = None) -> None:
    """Every option checked before any work starts (BadInput: one line, exit 2)."""
    check_output(opts.out, "--out", folder=True)
    check_positive(duration, "--duration")
    check_positive(opts.roll_minutes, "--roll-minutes")
    check_positive(opts.flush_s, "--flush-s")
    if opts.pre_roll_s < 0 or opts.post_roll_s < 0:
        raise BadInput("--pre-roll and --post-roll must be >= 0")
    if opts.fold is not None and opts.fold < 1:
        raise BadInput("--fold must be >= 1")
    MetadataCsv(opts.out / "metadata.csv").check()


def run(
    link_opts,
    opts: RecordOptions,
    duration: float | None = None,
    restart_stream: bool = True,
    node_events: bool = True,
    json_summary: bool = False,
    quiet: bool = False,
) -> int:
    """The command's work (python -m tools.record): record the node of `link_opts` (the parsed
    tools.cli link options, opened with cli.link_from_args) into opts.out; the summary on
    stderr, or (json_summary) as one JSON line on stdout.  Ctrl-C while recording is the normal
    stop (record() catches it: the files are closed, exit 0); before the recording starts it is
    run_cli's exit 130."""
    check_options(opts, duration)
    with cli.link_from_args(link_opts) as link:
        last = [0.0]

        def progress(rec):
            now = time.monotonic()
            if not quiet and not json_summary and now - last[0] > 1.0 and sys.stderr.isatty():
                last[0] = now
                print(
                    f"\r{rec.samples_received / rec.sr:9.1f} s  files {len(rec.files)}  "
                    f"gaps {len(rec.gaps)}  events "
                    f"{sum(1 for e in rec.events if e['kind'] == 'onset')}",
                    end="",
                    file=sys.stderr,
                )

        try:
            summary, reason, code = record(
                link,
                opts,
                duration,
                progress,
                restart_stream=restart_stream,
                node_events=node_events,
            )
        except DiskFull as e:
            raise lk.LinkError(str(e), 1) from None
    if json_summary:
        print(json.dumps({**summary, "stopped": reason, "exit_code": code}))
    elif not quiet:
        print(
            f"\n{summary['audio_seconds']:.1f} s in {len(summary['files'])} file(s) under "
            f"{opts.out}; gaps {len(summary['gaps'])} ({summary['samples_filled']} samples "
            f"filled), events {summary['events']}; stopped: {reason}",
            file=sys.stderr,
        )
    if code:
        print(f"record: error: {reason}", file=sys.stderr)
    return code
