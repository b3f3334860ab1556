"""Hardware-in-the-loop validation: stream audio files into a node with INJECT, collect its
detections, score them against ground truth and against the host reference pipeline.

    python tools/hil.py --sim --root tests/audio/scenes --scenes tests/audio/scenes/scenes.csv \\
        --json-out build/hil.json --max-reference-mismatches 0
    python tools/hil.py --port /dev/ttyUSB0 --root field/ --scenes truth.csv --json-out hil.json \\
        --min-event-f1 0.7 --max-false-alarms-per-hour 2

Every argument is checked before any work (output creatable, collar > 0, thresholds in range,
root with audio, ground truth readable, every file readable): one line, exit 2.  (--json FILE
is the deprecated name of --json-out FILE.)

Streaming.  Every audio file under --root (WAV/FLAC/OGG, recursive, sorted; loaded as the node
hears it: mono, resampled to 16 kHz with soxr if needed -- noted in the details) is one stream:
CMD START_STREAM 1 (the node resets its detector; sample indices restart at 0), INJECT frames
as fast as the node's credits allow (tools.link.InjectStream, docs/protocol.md section 6),
then CMD STOP_STREAM, whose ACK comes after the node has processed every sample, flushed its
detector (pending windows completed with silence) and sent every EVENT.  Event onsets are
therefore sample indices in the file.  An unreadable file is refused with its reason (exit 2)
unless --skip-bad.

Ground truth (--scenes).  A CSV with at least scene,onset_s,offset_s,label (scene relative to
--root; extra columns ignored; a row with empty onset lists a scene without events), or
DCASE-style tab-separated text: `scene onset offset label` in one file, or `onset offset
label` in a `<audio stem>.txt` next to each audio file (used when --scenes is not given).
Files without rows contain no target events.  With neither, the run is refused (every
detection would be a false alarm) unless --no-truth says that is meant.  Scored classes are
the model's labels except its negative label; ground-truth labels outside them are not scored
(listed in the details).

Scores (the JSON, keys exactly as below; null where undefined, e.g. F1 without events):
  event_f1, event_error_rate, per_class {label: {precision, recall, f1, support}}
      sed_eval event-based metrics, onset collar 200 ms (--collar), offsets NOT evaluated
      (a node reports onsets at once; END durations are merged hits, not annotated offsets).
      Estimated events are the node's EVENT ONSET frames (offset from the matching END).
  false_alarms_per_hour   node events matching no ground-truth event of their class, per hour
                          of audio
  gate_recall             fraction of scored ground-truth events during which the gate was
                          open in at least one 16 ms block -- from the reference pipeline's
                          per-block trace (the same C detector; the node's STATUS only has a
                          duty figure per period), valid because node and reference are
                          checked to agree (reference_mismatches)
  inference_duty_cycle    audio time covered by analysis windows / audio time (what the
                          classifier looks at; as tools.gate_eval), from the reference windows
  onset_latency_ms        median over detected ground-truth events of (audio position of the
                          node when its EVENT ONSET frame arrived - ground-truth onset), in
                          audio time: the node's position is the samples it has consumed,
                          known from its credit grants (granted - initial buffer), exact to
                          one credit step (512 samples = 32 ms)
  realtime_factor         audio seconds streamed / wall seconds, START_STREAM to the STOP ACK
  reference_mismatches    node ONSET events without a reference event of the same class within
                          one hop (16 ms) and vice versa: node defects, listed in the details
  audio_seconds           total audio streamed
  complete                false if interrupted (Ctrl-C, SIGTERM): figures over files_streamed
  files_streamed, files_not_reached   (the latter [] when complete)
  skipped                 unreadable files skipped with --skip-bad
  ground_truth            what was scored against, in words
The details (per file: events, mismatches, resampling, node STATUS, link counters) go to
OUT_details.json; a report with one timeline plot per file (waveform and level, gate state,
detections vs ground truth) to OUT.md / OUT.html and OUT_plots/*.png.

Exit codes: 0 all given thresholds met; 1 a threshold missed (listed on stderr) or the link
failed; 2 bad input (no files, unreadable file, bad --scenes, model mismatch); 130 / 143
interrupted by SIGINT / SIGTERM (what was measured is written, marked complete: false).
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools import cli
from tools.errors import EXIT_INTERRUPTED, BadInput, NodeFailure
from tools.node import coverage, params
from tools.wire import link as lk
from tools.wire import protocol as pr

AUDIO_EXT = (".wav", ".flac", ".ogg")
SR = params.default().sample_rate_hz
EXIT_TERMINATED = 128 + 15  # SIGTERM, as a shell reports it
KEYS = (
    "event_f1",
    "event_error_rate",
    "per_class",
    "false_alarms_per_hour",
    "gate_recall",
    "inference_duty_cycle",
    "onset_latency_ms",
    "realtime_factor",
    "reference_mismatches",
    "audio_seconds",
    "complete",
    "files_streamed",
    "files_not_reached",
    "skipped",
    "ground_truth",
)
# the report's figures table: key -> (format, what it is)
FIGURES = {
    "event_f1": ("{:.3f}", "event-based F1 (onset within the collar)"),
    "event_error_rate": ("{:.3f}", "event-based error rate"),
    "false_alarms_per_hour": ("{:.1f} /h", "node events matching no ground truth, per hour"),
    "gate_recall": ("{:.3f}", "ground-truth events during which the gate opened"),
    "inference_duty_cycle": ("{:.3f}", "audio time under analysis windows"),
    "onset_latency_ms": ("{:.0f} ms", "median ground-truth onset -> EVENT frame"),
    "realtime_factor": ("{:.1f}x", "audio seconds per wall second"),
    "reference_mismatches": ("{}", "node events unlike the host reference (node defects)"),
    "audio_seconds": ("{:.1f} s", "audio streamed"),
    "files_streamed": ("{}", "audio files streamed"),
    "skipped": ("{}", "unreadable files skipped (--skip-bad)"),
}


class HilError(BadInput):
    """Bad input: one line, exit 2."""


# --------------------------------------------------------------------------------------------
# inputs


@dataclass
class Truth:
    onset_s: float
    offset_s: float
    label: str


@dataclass
class Clip:
    rel: str  # path relative to --root (posix)
    path: Path
    pcm: np.ndarray | None = None
    file_sr: int | None = None
    note: str = ""


def find_audio(root: Path) -> list[Clip]:
    if not root.is_dir():
        raise HilError(f"{root}: not a folder")
    out = [
        Clip(p.relative_to(root).as_posix(), p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix.lower() in AUDIO_EXT
    ]
    if not out:
        raise HilError(f"{root}: no audio files ({', '.join(AUDIO_EXT)})")
    return out


def load_clip(clip: Clip) -> None:
    """Load as the node hears it; raises HilError with the reason for a bad file."""
    import soundfile as sf

    from tools.node import audio

    try:
        info = sf.info(str(clip.path))
        clip.file_sr = info.samplerate
    except (RuntimeError, sf.LibsndfileError) as e:
        raise HilError(f"{clip.rel}: not a readable audio file ({e})") from None
    try:
        clip.pcm = audio.load(clip.path, SR)
    except audio.AudioError as e:
        raise HilError(str(e)) from None
    notes = []
    if clip.file_sr != SR:
        notes.append(f"resampled {clip.file_sr} Hz -> {SR} Hz (soxr VHQ)")
    if info.channels != 1:
        notes.append(f"{info.channels} channels averaged to mono")
    clip.note = "; ".join(notes)


def _num(v: str, what: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise HilError(f"{what}: {v!r} is not a number") from None
    if not math.isfinite(x) or x < 0:
        raise HilError(f"{what}: {v!r} is not a time in seconds")
    return x


def load_scenes(path: Path | None, clips: list[Clip], root: Path) -> dict[str, list[Truth]]:
    """Ground truth per clip (rel path) from --scenes or per-file .txt annotations."""
    truth: dict[str, list[Truth]] = {c.rel: [] for c in clips}
    known = set(truth)

    def add(scene: str, on: str, off: str, label: str, where: str) -> None:
        scene = Path(scene.strip()).as_posix()
        if scene.startswith("./"):
            scene = scene[2:]
        if scene not in known:
            raise HilError(f"{where}: scene {scene!r} is not an audio file under {root}")
        if str(on).strip() == "" and str(off).strip() == "" and not label.strip():
            return
        a, b = _num(on, where + " onset"), _num(off, where + " offset")
        if b < a:
            raise HilError(f"{where}: offset {b} before onset {a}")
        truth[scene].append(Truth(a, b, label.strip()))

    if path is not None:
        if not path.is_file():
            raise HilError(f"{path}: no such file")
        text = path.read_text(errors="replace")
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
            cols = set(rows[0].keys()) if rows else set(next(csv.reader(text.splitlines()), []))
            need = {"scene", "onset_s", "offset_s", "label"}
            if not need <= cols:
                raise HilError(
                    f"{path}: needs columns scene,onset_s,offset_s,label "
                    f"(has {','.join(sorted(c for c in cols if c))})"
                )
            for i, r in enumerate(rows, 2):
                add(
                    r["scene"] or "",
                    r["onset_s"] or "",
                    r["offset_s"] or "",
                    r["label"] or "",
                    f"{path}:{i}",
                )
        else:  # DCASE: scene<TAB>onset<TAB>offset<TAB>label
            for i, line in enumerate(text.splitlines(), 1):
                if not line.strip() or line.startswith("#"):
                    continue
                f = line.rstrip("\r\n").split("\t")
                if len(f) < 4:
                    raise HilError(
                        f"{path}:{i}: expected scene, onset, offset, label "
                        f"(tab separated), got {len(f)} fields"
                    )
                add(f[0], f[1], f[2], f[3], f"{path}:{i}")
        return truth
    for c in clips:  # per-file DCASE annotations
        ann = c.path.with_suffix(".txt")
        if not ann.exists():
            continue
        for i, line in enumerate(ann.read_text(errors="replace").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            f = line.split("\t") if "\t" in line else line.split()
            if len(f) < 3:
                raise HilError(f"{ann}:{i}: expected onset, offset, label")
            add(c.rel, f[-3], f[-2], f[-1], f"{ann}:{i}")
    return truth


# --------------------------------------------------------------------------------------------
# the reference pipeline


@dataclass
class Reference:
    """The host pipeline the node must agree with: tools.node.core.Node with a classifier.
    `make_node()` -> a fresh core.Node(trace=True)."""

    labels: list[str]
    negative_index: int | None
    hash8: bytes | None
    make_node: Callable

    @classmethod
    def from_model(cls, m) -> Reference:
        return cls(m.labels, m.negative_index, m.hash8, lambda: m.node(trace=True))

    def run(self, pcm: np.ndarray):
        node = self.make_node()
        node.process(pcm)
        node.flush()
        return node


# --------------------------------------------------------------------------------------------
# streaming one file


@dataclass
class NodeEvent:
    label: str
    class_index: int
    onset_sample: int
    score: float
    arrival_sample: int  # node's consumed-sample position when the frame arrived
    end_duration: int | None = None
    hits: int = 1


@dataclass
class StreamResult:
    events: list[NodeEvent] = field(default_factory=list)
    wall_s: float = 0.0
    samples: int = 0
    status: dict | None = None
    inject: dict = field(default_factory=dict)
    node_errors: list[str] = field(default_factory=list)
    link_events: dict = field(default_factory=dict)


def stream_file(link: lk.NodeLink, pcm: np.ndarray, labels: list[str]) -> StreamResult:
    """One stream: START_STREAM 1, INJECT everything, STOP_STREAM (its ACK = all events sent)."""
    res = StreamResult(samples=int(pcm.size))
    t0 = time.monotonic()
    st0 = link.stats
    counters0 = (
        st0.seq_gaps,
        st0.err_crc + st0.err_cobs + st0.err_short + st0.err_magic + st0.err_oversize,
        st0.resets,
    )
    inj = lk.InjectStream(link)
    acc = {"granted": 0, "initial": None, "resets": 0}
    ends: dict[tuple[int, int], tuple[int, int, int]] = {}

    def on_item(it) -> None:
        if isinstance(it, pr.NodeReset) and it.got != it.expected:
            acc["resets"] += 1
        if not isinstance(it, pr.Frame) or it.msg is None:
            return
        m = it.msg
        if isinstance(m, pr.Credit):
            if acc["initial"] is None:
                acc["initial"] = m.credits_samples
            else:
                acc["granted"] += m.credits_samples
        elif isinstance(m, pr.Event):
            lab = labels[m.class_index] if m.class_index < len(labels) else f"class{m.class_index}"
            if m.kind == pr.EVENT_ONSET:
                res.events.append(
                    NodeEvent(
                        lab,
                        m.class_index,
                        m.onset_sample,
                        m.score / 256,
                        min(acc["granted"], res.samples),
                    )
                )
            else:
                ends[(m.class_index, m.onset_sample)] = (m.duration_samples, m.hits, m.score)
        elif isinstance(m, pr.Status):
            res.status = {
                "sample_index": m.sample_index,
                "inference_count": m.inference_count,
                "inference_ms_max": m.inference_us_max / 1000,
                "dropped_samples": m.dropped_samples,
                "gate_duty": m.gate_duty_q16 / 65535,
                "credits": m.credits,
            }
        elif isinstance(m, pr.Error):
            res.node_errors.append(f"{lk.ERROR_NAMES.get(m.code, m.code)}: {m.message}")

    # START_STREAM: items that arrive with the ACK (the initial CREDIT) are not lost
    link.command(pr.CMD_START_STREAM, 1, drop_before=True)
    for it in link.poll():
        inj.handle(it)
        on_item(it)
    inj.run(pcm, on_item=on_item)
    refused_before = sum(e.code == pr.ERRC_NO_CREDIT for e in inj.errors)
    # STOP_STREAM: everything that arrives before its ACK belongs to this stream
    seq = link.send(pr.Cmd(pr.CMD_STOP_STREAM, 0))
    deadline = time.monotonic() + link.timeouts.reply_s + 4.0 * pcm.size / SR / 20.0
    done = False
    while not done:
        if time.monotonic() > deadline:
            raise lk.LinkError(
                f"{link.port_name}: no ACK to STOP_STREAM (node did not finish the stream)", 1
            )
        for it in link.poll():
            if isinstance(it, pr.Frame) and isinstance(it.msg, pr.Ack) and it.msg.acked_seq == seq:
                done = True
                continue
            if isinstance(it, pr.Frame) and isinstance(it.msg, pr.Error) and it.msg.ref_seq == seq:
                raise lk.LinkError(f"node refused STOP_STREAM: {it.msg.message}", 1)
            inj.handle(it)
            on_item(it)
    res.wall_s = time.monotonic() - t0
    if sum(e.code == pr.ERRC_NO_CREDIT for e in inj.errors) > refused_before:
        raise lk.LinkError(
            f"{link.port_name}: the node refused INJECT samples at the end of the "
            f"stream (NO_CREDIT): the stream is incomplete",
            1,
        )
    try:
        on_item(pr.Frame(pr.STATUS, 0, b"", link.status()))
    except lk.LinkError:
        pass
    for e in res.events:
        d = ends.get((e.class_index, e.onset_sample))
        if d is not None:
            e.end_duration, e.hits = d[0], d[1]
    st = link.stats
    res.link_events = {
        "seq_gaps": st.seq_gaps - counters0[0],
        "decode_errors": st.err_crc
        + st.err_cobs
        + st.err_short
        + st.err_magic
        + st.err_oversize
        - counters0[1],
        "node_resets": acc["resets"],
    }
    res.inject = {
        "frames": inj.sent_frames,
        "samples": inj.sent_samples,
        "rewinds": inj.rewinds,
        "resyncs": inj.resyncs,
        "initial_credit": acc["initial"],
    }
    if acc["resets"]:
        raise lk.LinkError(f"{link.port_name}: the node reset during the stream", 1)
    return res


# --------------------------------------------------------------------------------------------
# scoring


def _nan_none(v):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else round(v, 6)


def compare_reference(node_events: list[NodeEvent], ref_events, labels, hop: int) -> list[dict]:
    """ONSET events that differ between node and reference (class + onset within one hop)."""
    ref = [(e.class_index, e.onset_sample) for e in ref_events if e.kind == "onset"]
    used = [False] * len(ref)
    out = []
    for e in node_events:
        best = None
        for i, (c, s) in enumerate(ref):
            if not used[i] and c == e.class_index and abs(s - e.onset_sample) <= hop:
                best = i
                break
        if best is None:
            out.append(
                {
                    "side": "node_only",
                    "label": e.label,
                    "onset_s": round(e.onset_sample / SR, 4),
                    "score": round(e.score, 4),
                }
            )
        else:
            used[best] = True
    for i, (c, s) in enumerate(ref):
        if not used[i]:
            out.append(
                {
                    "side": "reference_only",
                    "label": labels[c] if c < len(labels) else f"class{c}",
                    "onset_s": round(s / SR, 4),
                }
            )
    return out


def score(files: list[dict], scored: list[str], collar: float) -> dict:
    """sed_eval event-based metrics over all files + false alarms and latencies."""
    import sed_eval

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=scored, t_collar=collar, evaluate_onset=True, evaluate_offset=False
    )
    n_ref = 0
    latencies = []
    for f in files:
        ref = [
            {
                "event_label": t["label"],
                "onset": t["onset_s"],
                "offset": t["offset_s"],
                "filename": f["file"],
            }
            for t in f["truth"]
            if t["label"] in scored
        ]
        est = [
            {
                "event_label": e["label"],
                "onset": e["onset_s"],
                "offset": e["offset_s"],
                "filename": f["file"],
            }
            for e in f["node_events"]
            if e["label"] in scored
        ]
        n_ref += len(ref)
        metrics.evaluate(ref, est)
        for t in ref:  # latency: first same-class onset within the collar
            cands = [
                e
                for e in f["node_events"]
                if e["label"] == t["event_label"] and abs(e["onset_s"] - t["onset"]) <= collar
            ]
            if cands:
                e = min(cands, key=lambda e: e["arrival_s"])
                latencies.append(1000.0 * (e["arrival_s"] - t["onset"]))
    overall = metrics.results_overall_metrics()
    cw = metrics.results_class_wise_metrics()
    per_class = {}
    false_alarms = 0.0
    for lab in scored:
        r = cw.get(lab, {})
        fm, cnt = r.get("f_measure", {}), r.get("count", {})
        nref, nsys = cnt.get("Nref", 0.0), cnt.get("Nsys", 0.0)
        rec = fm.get("recall")
        tp = 0.0 if not nref or rec is None or math.isnan(rec) else rec * nref
        false_alarms += nsys - tp
        per_class[lab] = {
            "precision": _nan_none(fm.get("precision")),
            "recall": _nan_none(rec),
            "f1": _nan_none(fm.get("f_measure")),
            "support": int(nref),
        }
    f1 = overall["f_measure"]["f_measure"] if n_ref else float("nan")
    er = overall["error_rate"]["error_rate"] if n_ref else float("nan")
    return {
        "event_f1": _nan_none(f1),
        "event_error_rate": _nan_none(er),
        "per_class": per_class,
        "false_alarms": int(round(false_alarms)),
        "onset_latency_ms": _nan_none(statistics.median(latencies)) if latencies else None,
        "latencies_ms": [round(x, 1) for x in latencies],
    }


def gate_recall_of(trace, truth: list[Truth], hop: int) -> list[bool]:
    return coverage.gate_open_in(trace, [(t.onset_s, t.offset_s) for t in truth], hop)


def window_coverage_s(windows, n: int, window_samples: int) -> float:
    return float(coverage.window_coverage(windows, 0, n, window_samples).sum()) / SR


# --------------------------------------------------------------------------------------------
# what happened, event by event


def outcomes(f: dict, scored: list[str], collar: float) -> dict:
    """One file's events in words.  Each scored ground-truth event is 'hit', 'missed',
    'wrong_class' (the node named another class during it) or 'mistimed' (the node named its
    class, but with an onset outside the collar); each node event of a scored class 'correct',
    'false_alarm', 'wrong_class' or 'mistimed'; anything else 'unscored'.  A node event matches
    a ground-truth event of its class whose onset is within the collar (nearest first: the onset
    rule of the event-based scores); an unmatched node event that starts inside a missed event
    (onset - collar .. offset) is mistimed (same class) or a wrong class (another class); any
    other is a false alarm.  Mistimed and wrong-class events count as a miss and a false alarm
    in the scores.
    Returns {"truth": [kind per f["truth"]], "node": [kind per f["node_events"]], "words":
    [sentence per event, in time order], "ok": bool}."""
    tr, ev = f["truth"], f["node_events"]
    t_kind: dict[int, tuple[str, str | None]] = {}
    e_kind: dict[int, tuple[str, str | None]] = {}
    pairs = sorted(
        (abs(e["onset_s"] - t["onset_s"]), ti, ei)
        for ti, t in enumerate(tr)
        if t["label"] in scored
        for ei, e in enumerate(ev)
        if e["label"] == t["label"] and abs(e["onset_s"] - t["onset_s"]) <= collar
    )
    for _, ti, ei in pairs:
        if ti not in t_kind and ei not in e_kind:
            t_kind[ti], e_kind[ei] = ("hit", None), ("correct", None)
    for ei, e in enumerate(ev):
        if ei in e_kind or e["label"] not in scored:
            continue
        for ti, t in enumerate(tr):
            if ti in t_kind or t["label"] not in scored:
                continue
            if t["onset_s"] - collar <= e["onset_s"] <= max(t["offset_s"], t["onset_s"] + collar):
                k = "mistimed" if t["label"] == e["label"] else "wrong_class"
                t_kind[ti], e_kind[ei] = (k, e["label"]), (k, f"{t['label']}\0{t['onset_s']}")
                break
        else:
            e_kind[ei] = ("false_alarm", None)
    for ti, t in enumerate(tr):
        if ti not in t_kind and t["label"] in scored:
            t_kind[ti] = ("missed", None)
    words: list[tuple[float, str]] = []
    for ti, t in enumerate(tr):
        k = t_kind.get(ti, ("unscored", None))[0]
        if k == "hit":
            words.append((t["onset_s"], f"correct ({t['label']} at {t['onset_s']:.2f} s)"))
        elif k == "missed":
            words.append((t["onset_s"], f"missed ({t['label']} at {t['onset_s']:.2f} s)"))
    for ei, e in enumerate(ev):
        k, other = e_kind.get(ei, ("unscored", None))
        if k in ("wrong_class", "mistimed"):
            lab, t_on = other.split("\0")
            if k == "wrong_class":
                words.append(
                    (e["onset_s"], f"wrong class ({e['label']} for {lab} at {e['onset_s']:.2f} s)")
                )
            else:
                words.append(
                    (
                        e["onset_s"],
                        f"mistimed ({lab} at {e['onset_s']:.2f} s, "
                        f"{1000 * (e['onset_s'] - float(t_on)):+.0f} ms from "
                        f"the annotated onset, collar "
                        f"{1000 * collar:.0f} ms)",
                    )
                )
        elif k == "false_alarm":
            words.append((e["onset_s"], f"false alarm ({e['label']} at {e['onset_s']:.2f} s)"))
    words.sort(key=lambda w: w[0])
    out = [w for _, w in words]
    if not any(t["label"] in scored for t in tr) and not out:
        out = ["quiet on a negative clip — correct"]
    bad = {"missed", "wrong_class", "mistimed", "false_alarm"}
    return {
        "truth": [t_kind.get(i, ("unscored", None))[0] for i in range(len(tr))],
        "node": [e_kind.get(i, ("unscored", None))[0] for i in range(len(ev))],
        "words": out,
        "ok": not any(k in bad for k, _ in list(t_kind.values()) + list(e_kind.values())),
    }


# --------------------------------------------------------------------------------------------
# report

GREEN, ORANGE, RED, GREY = "#2e7d32", "#ef6c00", "#c62828", "#9e9e9e"
TRUTH_COLOUR = {
    "hit": GREEN,
    "missed": ORANGE,
    "wrong_class": ORANGE,
    "mistimed": ORANGE,
    "unscored": GREY,
}
NODE_COLOUR = {
    "correct": GREEN,
    "false_alarm": RED,
    "wrong_class": RED,
    "mistimed": RED,
    "unscored": GREY,
}
OUTCOME_NAMES = (
    ("hit", "correct"),
    ("missed", "missed"),
    ("wrong_class", "wrong class"),
    ("mistimed", "mistimed"),
    ("false_alarm", "false alarm"),
)


def outcome_counts(oc: dict) -> str:
    """'2 correct, 1 missed, 1 false alarm' from outcomes(); wrong-class and mistimed events
    are counted once (on the ground-truth side)."""
    kinds = oc["truth"] + [k for k in oc["node"] if k == "false_alarm"]
    parts = [f"{kinds.count(k)} {name}" for k, name in OUTCOME_NAMES if kinds.count(k)]
    return ", ".join(parts) or (oc["words"][0] if oc["words"] else "")


def plot_file(path: Path, f: dict, pcm: np.ndarray, trace, hop: int) -> None:
    """Waveform + level, gate, and the timeline: ground truth (top row: green hit, orange
    missed or named wrongly, grey not scored) and node events (bottom row: green correct, red
    false alarm or wrong class), with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from tools.node import params

    oc = f.get("outcomes") or {
        "truth": ["unscored"] * len(f["truth"]),
        "node": ["unscored"] * len(f["node_events"]),
    }
    t_end = pcm.size / SR
    fig, axes = plt.subplots(
        3, 1, figsize=(11, 5.6), sharex=True, gridspec_kw={"height_ratios": [2.2, 0.7, 1.6]}
    )
    ax = axes[0]
    nb = pcm.size // hop
    if nb:
        blk = pcm[: nb * hop].reshape(nb, hop).astype(np.float32) / 32768
        tb = (np.arange(nb) + 0.5) * hop / SR
        ax.fill_between(tb, blk.min(1), blk.max(1), color="0.6", lw=0)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("waveform")
    if trace is not None and len(trace):
        db = params.DB_PER_LOG2 / 256
        lv = trace["level_q8"] * db - 30 * params.DB_PER_LOG2
        nf = trace["nf_q8"] * db - 30 * params.DB_PER_LOG2
        tt = (trace["block"] + 1) * hop / SR
        ax2 = ax.twinx()
        ax2.plot(tt, lv, color="tab:blue", lw=0.8, label="level")
        ax2.plot(tt, nf, color="tab:purple", lw=0.8, ls="--", label="noise floor")
        ax2.set_ylabel("dBFS")
        ax2.set_ylim(-100, 0)
        ax2.legend(loc="upper right", fontsize=7)
        axes[1].fill_between(tt, 0, trace["gate_open"], step="pre", color="tab:blue", alpha=0.5)
    axes[1].set_ylim(0, 1.1)
    axes[1].set_yticks([])
    axes[1].set_ylabel("gate")
    ax = axes[2]
    for t, k in zip(f["truth"], oc["truth"]):
        ax.axvspan(
            t["onset_s"],
            t["offset_s"],
            ymin=0.55,
            ymax=0.9,
            color=TRUTH_COLOUR[k],
            alpha=0.55,
            lw=0,
        )
        ax.text(t["onset_s"], 1.0, t["label"], fontsize=7, va="top")
    for e, k in zip(f["node_events"], oc["node"]):
        ax.plot([e["onset_s"]] * 2, [0.05, 0.45], color=NODE_COLOUR[k], lw=2.5)
        why = {
            "false_alarm": " (false alarm)",
            "wrong_class": " (wrong class)",
            "mistimed": " (mistimed)",
        }.get(k, "")
        ax.text(
            e["onset_s"],
            0.47,
            f" {e['label']} {e['score']:.2f}{why}",
            fontsize=7,
            color=NODE_COLOUR[k],
        )
    for m in f["mismatches"]:
        ax.plot(m["onset_s"], 0.5, marker="x", color="black")
    ax.set_ylim(0, 1.1)
    ax.set_yticks([0.25, 0.72])
    ax.set_yticklabels(["node", "truth"])
    ax.set_xlim(0, t_end)
    ax.set_xlabel("s")
    handles = [
        Patch(color=GREEN, alpha=0.55, label="truth: detected"),
        Patch(color=ORANGE, alpha=0.55, label="truth: missed / wrong class"),
        Patch(color=GREY, alpha=0.55, label="truth: not scored"),
        Line2D([], [], color=GREEN, lw=2.5, label="node: correct"),
        Line2D([], [], color=RED, lw=2.5, label="node: false alarm / wrong class / mistimed"),
    ]
    if f["mismatches"]:
        handles.append(Line2D([], [], color="black", marker="x", lw=0, label="node ≠ reference"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    counts = outcome_counts(f["outcomes"]) if f.get("outcomes") else ""
    fig.suptitle(f["file"] + (f"  —  {counts}" if counts else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def verdict_of(details: dict) -> str:
    """INCOMPLETE (interrupted), FAIL (a threshold missed), PASS (thresholds given and met) or
    NO THRESHOLDS (nothing to pass or fail)."""
    if not details.get("complete", True):
        return "INCOMPLETE"
    if details.get("thresholds_missed"):
        return "FAIL"
    return "PASS" if details.get("thresholds") else "NO THRESHOLDS"


def _fmt(v) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _notes(metrics: dict, details: dict) -> list[str]:
    """The sentences a reader must see before the figures."""
    out = []
    if not details.get("complete", True):
        n_all = len(details["files"]) + len(details.get("files_not_reached", []))
        why = (
            f"the node or link failed ({details['failure']})"
            if details.get("failure")
            else "interrupted"
        )
        out.append(
            f"INCOMPLETE: {why} after {len(details['files'])} of {n_all} files; "
            f"the figures cover the streamed files only; not reached: "
            f"{', '.join(details.get('files_not_reached', [])) or 'none'}"
        )
    gt = details.get("ground_truth")
    if gt and gt.startswith("none"):
        out.append(f"No ground truth: {gt}")
    if details.get("refused"):
        out.append(
            f"{len(details['refused'])} unreadable file(s) skipped (--skip-bad): "
            + "; ".join(details["refused"])
        )
    if details.get("unscored_labels"):
        out.append(
            "Ground-truth labels not scored (not a target class of the node): "
            + ", ".join(details["unscored_labels"])
        )
    return out


def write_report(md_path: Path, metrics: dict, details: dict, plots: dict[str, str]) -> None:
    """OUT.md and OUT.html: the verdict, the figures against their thresholds, the per-class and
    per-file tables with each file's outcome in words, then one timeline plot per file."""
    import html as h

    verdict = verdict_of(details)
    ths = details.get("thresholds", {})
    node = details["node"]
    who = (
        f"node {node.get('board')} firmware {node.get('firmware')} model "
        f"{node.get('model_hash')} on {details['port']}"
    )
    n_files = len(details["files"])
    gt = details.get("ground_truth", "")
    notes = _notes(metrics, details)
    fig_rows = []
    for k in KEYS:
        if k not in FIGURES or k not in metrics:
            continue
        t = ths.get(k)
        fmt, what = FIGURES[k]
        v = "n/a" if metrics[k] is None else fmt.format(metrics[k])
        fig_rows.append(
            (
                k,
                v,
                t["threshold"] if t else "—",
                ("PASS" if t["pass"] else "FAIL") if t else "—",
                what,
            )
        )
    file_rows = []
    for f in details["files"]:
        oc = f.get("outcomes") or {"words": [], "ok": True}
        n_tr = sum(t["scored"] for t in f["truth"])
        file_rows.append(
            (
                f["file"],
                f"{f['seconds']:.1f}",
                ", ".join(t["label"] for t in f["truth"]) or "none",
                ", ".join(e["label"] for e in f["node_events"]) or "none",
                oc["words"],
                oc["ok"],
                len(f["mismatches"]),
                n_tr,
            )
        )

    # Markdown
    lines = [
        f"# HIL report: {verdict}",
        "",
        f"{details['root']}: {n_files} files, {metrics['audio_seconds']:.1f} s of audio; {who}",
        "",
        f"ground truth: {gt}",
        "",
    ]
    lines += [f"**{n}**" for n in notes] + ([""] if notes else [])
    if details.get("thresholds_missed"):
        lines += ["**Thresholds missed:** " + "; ".join(details["thresholds_missed"]), ""]
    lines += ["| figure | value | threshold | result | meaning |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {w} |" for a, b, c, d, w in fig_rows]
    lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for lab, r in metrics["per_class"].items():
        lines.append(
            f"| {lab} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | "
            f"{_fmt(r['f1'])} | {r['support']} |"
        )
    lines += [
        "",
        "| file | s | ground truth | node events | outcome | ref. mismatches |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {a} | {b} | {c} | {d} | {'; '.join(w)} | {m} |" for a, b, c, d, w, _, m, _ in file_rows
    ]
    for f in details["files"]:
        lines += [
            "",
            f"## {f['file']}",
            "",
            f"{f['seconds']:.1f} s: "
            + "; ".join((f.get("outcomes") or {}).get("words", []))
            + (f"; {f['note']}" if f["note"] else ""),
            "",
        ]
        if f["file"] in plots:
            lines.append(f"![{f['file']}]({plots[f['file']]})")
        for m in f["mismatches"]:
            lines.append(f"- node defect: {m['side']} {m['label']} at {m['onset_s']} s")
    md_path.write_text("\n".join(lines) + "\n")

    # HTML: the same content, laid out
    e = h.escape
    css = (
        "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;"
        "color:#212121;background:#fff}"
        "header{padding:14px 24px;color:#fff}header h1{margin:0;font-size:24px}"
        "header p{margin:4px 0 0;opacity:.9}"
        ".v-PASS{background:#2e7d32}.v-FAIL{background:#c62828}"
        ".v-INCOMPLETE{background:#6a1b9a}.v-NO-THRESHOLDS{background:#455a64}"
        "main{padding:8px 24px 32px;max-width:1180px}h2{font-size:18px;margin:22px 0 6px}"
        "table{border-collapse:collapse;margin:4px 0 12px}"
        "th,td{border:1px solid #d0d0d0;padding:4px 10px;text-align:left;vertical-align:top}"
        "th{background:#f2f2f2}.m{color:#616161}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}"
        ".PASS{color:#1b5e20;font-weight:600}.FAIL{color:#b71c1c;font-weight:600}"
        "ul.o{margin:0;padding-left:16px}li.hit{color:#1b5e20}li.miss{color:#e65100}"
        "li.bad{color:#b71c1c}tr.bad td:first-child{border-left:4px solid #c62828}"
        "tr.ok td:first-child{border-left:4px solid #2e7d32}"
        ".note{background:#fff3e0;border-left:4px solid #ef6c00;padding:6px 12px;margin:8px 0}"
        ".note.fail{background:#ffebee;border-color:#c62828}"
        ".key span{display:inline-block;margin-right:14px}"
        ".sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}"
        "figure{margin:6px 0 22px}figcaption{font-weight:600;margin-bottom:4px}"
        "img{max-width:100%;border:1px solid #e0e0e0}"
    )

    def word_class(w: str) -> str:
        if w.startswith("missed"):
            return "miss"
        if w.startswith(("false alarm", "wrong class", "mistimed")):
            return "bad"
        return "hit"

    def table(
        head: list[str],
        rows: list[list[str]],
        numeric: set[int] = frozenset(),
        row_cls: list[str] | None = None,
    ) -> str:
        out = ["<table><tr>" + "".join(f"<th>{e(x)}</th>" for x in head) + "</tr>"]
        for i, r in enumerate(rows):
            cls = f' class="{row_cls[i]}"' if row_cls else ""
            out.append(
                f"<tr{cls}>"
                + "".join(
                    f'<td class="n">{c}</td>' if j in numeric else f"<td>{c}</td>"
                    for j, c in enumerate(r)
                )
                + "</tr>"
            )
        return "\n".join(out) + "</table>"

    body = [
        f'<header class="v-{verdict.replace(" ", "-")}"><h1>HIL report: {e(verdict)}</h1>'
        f"<p>{e(details['root'])}: {n_files} files, {metrics['audio_seconds']:.1f} s of audio"
        f" · {e(who)}</p><p>ground truth: {e(gt)}</p></header><main>"
    ]
    body += [f'<p class="note">{e(n)}</p>' for n in notes]
    if details.get("thresholds_missed"):
        body.append(
            '<p class="note fail">Thresholds missed: '
            + e("; ".join(details["thresholds_missed"]))
            + "</p>"
        )
    body.append("<h2>Figures</h2>")
    body.append(
        table(
            ["figure", "value", "threshold", "result", "meaning"],
            [
                [
                    e(a),
                    e(b),
                    e(c),
                    f'<span class="{d}">{d}</span>' if d != "—" else d,
                    f'<span class="m">{e(w)}</span>',
                ]
                for a, b, c, d, w in fig_rows
            ],
            {1},
        )
    )
    body.append("<h2>Per class</h2>")
    body.append(
        table(
            ["class", "precision", "recall", "F1", "support"],
            [
                [e(lab), _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1"]), str(r["support"])]
                for lab, r in metrics["per_class"].items()
            ],
            {1, 2, 3, 4},
        )
    )
    body.append("<h2>Per file</h2>")
    body.append(
        table(
            ["file", "s", "ground truth", "node events", "outcome", "ref. mismatches"],
            [
                [
                    e(a),
                    b,
                    e(c),
                    e(d),
                    '<ul class="o">'
                    + "".join(f'<li class="{word_class(x)}">{e(x)}</li>' for x in w)
                    + "</ul>",
                    str(m),
                ]
                for a, b, c, d, w, _, m, _ in file_rows
            ],
            {1, 5},
            ["ok" if ok else "bad" for *_, ok, _, _ in file_rows],
        )
    )
    if plots:
        body.append("<h2>Timelines</h2>")
        body.append(
            '<p class="key">'
            + "".join(
                f'<span><i class="sw" style="background:{c}"></i>{e(t)}</span>'
                for c, t in (
                    (GREEN, "detected / correct"),
                    (ORANGE, "missed (ground truth)"),
                    (RED, "false alarm / wrong class / mistimed (node)"),
                    (GREY, "not scored"),
                )
            )
            + "</p>"
        )
        for f in details["files"]:
            if f["file"] in plots:
                body.append(
                    f"<figure><figcaption>{e(f['file'])}</figcaption>"
                    f'<img src="{e(plots[f["file"]])}" alt="{e(f["file"])}"></figure>'
                )
    body.append("</main>")
    md_path.with_suffix(".html").write_text(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>HIL report: {e(verdict)}</title><style>{css}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class Thresholds:
    min_event_f1: float | None = None
    max_event_error_rate: float | None = None
    max_false_alarms_per_hour: float | None = None
    min_gate_recall: float | None = None
    max_onset_latency_ms: float | None = None
    min_realtime_factor: float | None = None
    max_reference_mismatches: int | None = None

    # the range each threshold must lie in (checked before a run starts)
    RANGES = {
        "min_event_f1": (0.0, 1.0),
        "max_event_error_rate": (0.0, None),
        "max_false_alarms_per_hour": (0.0, None),
        "min_gate_recall": (0.0, 1.0),
        "max_onset_latency_ms": (0.0, None),
        "min_realtime_factor": (0.0, None),
        "max_reference_mismatches": (0, None),
    }

    def validate(self) -> None:
        for name, v in self.__dict__.items():
            if v is None:
                continue
            lo, hi = self.RANGES[name]
            opt = "--" + name.replace("_", "-")
            if not math.isfinite(v) or v < lo or (hi is not None and v > hi):
                rng = f"{lo:g}..{hi:g}" if hi is not None else f">= {lo:g}"
                raise HilError(f"{opt} {v:g}: out of range ({rng})")

    def verdicts(self, m: dict) -> dict[str, dict]:
        """{metric key: {option, threshold ('>= 0.7'), value, pass}} for each given threshold;
        an undefined figure fails."""
        out = {}
        for name, v in self.__dict__.items():
            if v is None:
                continue
            kind, key = name.split("_", 1)
            got = m.get(key)
            ok = got is not None and (got >= v if kind == "min" else got <= v)
            out[key] = {
                "option": "--" + name.replace("_", "-"),
                "threshold": f"{'≥' if kind == 'min' else '≤'} {v:g}",
                "value": got,
                "pass": bool(ok),
            }
        return out

    def check(self, m: dict) -> list[str]:
        out = []
        for name, v in self.__dict__.items():
            if v is None:
                continue
            kind, key = name.split("_", 1)
            got = m.get(key)
            if got is None:
                out.append(f"{key} undefined (needed {kind} {v})")
            elif kind == "min" and got < v:
                out.append(f"{key} {got:.4g} < {v:g}")
            elif kind == "max" and got > v:
                out.append(f"{key} {got:.4g} > {v:g}")
        return out


def run(
    link: lk.NodeLink,
    clips: list[Clip],
    truth: dict[str, list[Truth]],
    reference: Reference | None,
    collar: float = 0.2,
    plot_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict, dict]:
    """Stream every clip, score.  Returns (metrics with exactly KEYS, details).  Ctrl-C (or a
    SIGTERM the command turns into KeyboardInterrupt) stops streaming: the files streamed so
    far are scored and the result says complete: false with the files not reached.  A link
    failure (LinkError) is raised as before, carrying those partial results as `.partial`."""
    from tools.node import core

    hello = link.hello()
    labels = list(hello.labels)
    neg = None
    if reference is not None:
        if reference.labels != labels:
            raise HilError(
                f"node classes {labels} differ from the reference model's "
                f"{reference.labels}: pass the node's model with --model"
            )
        if reference.hash8 is not None and reference.hash8 != hello.model_hash:
            raise HilError(
                f"node runs model {hello.model_hash.hex()}, the reference is "
                f"{reference.hash8.hex()}: pass the node's model with --model"
            )
        neg = reference.negative_index
    elif "other" in labels:
        neg = labels.index("other")
    scored = [lab for i, lab in enumerate(labels) if i != neg]
    hop = core.HOP
    files, plots = [], {}
    total_samples = total_wall = 0.0
    covered_s = 0.0
    gate_hits: list[bool] = []
    mismatches = 0
    interrupted = False
    failure: lk.LinkError | None = None
    try:
        for clip in clips:
            if progress:
                progress(clip.rel)
            pcm = clip.pcm
            sr = stream_file(link, pcm, labels)
            node_ev = [
                {
                    "label": e.label,
                    "class_index": e.class_index,
                    "onset_s": round(e.onset_sample / SR, 4),
                    "offset_s": round((e.onset_sample + (e.end_duration or hop)) / SR, 4),
                    "score": round(e.score, 4),
                    "hits": e.hits,
                    "arrival_s": round(e.arrival_sample / SR, 4),
                }
                for e in sr.events
            ]
            tr = [
                {
                    "onset_s": t.onset_s,
                    "offset_s": t.offset_s,
                    "label": t.label,
                    "scored": t.label in scored,
                }
                for t in truth.get(clip.rel, [])
            ]
            f = {
                "file": clip.rel,
                "seconds": round(pcm.size / SR, 3),
                "note": clip.note,
                "node_events": node_ev,
                "truth": tr,
                "mismatches": [],
                "wall_s": round(sr.wall_s, 3),
                "node_status": sr.status,
                "inject": sr.inject,
                "link": sr.link_events,
                "node_errors": sr.node_errors,
            }
            f["outcomes"] = outcomes(f, scored, collar)
            trace, cov, gr = None, 0.0, []
            if reference is not None:
                rn = reference.run(pcm)
                trace = rn.trace
                f["reference_events"] = [
                    {
                        "label": labels[e.class_index],
                        "onset_s": round(e.onset_sample / SR, 4),
                        "kind": e.kind,
                        "score": round(e.score / 256, 4),
                    }
                    for e in rn.events
                ]
                f["mismatches"] = compare_reference(sr.events, rn.events, labels, hop)
                cov = window_coverage_s(rn.windows, pcm.size, core.P.window_samples)
                scored_truth = [t for t in truth.get(clip.rel, []) if t.label in scored]
                gr = gate_recall_of(trace, scored_truth, hop)
                f["gate_open_on_truth"] = gr
            if plot_dir is not None:
                plot_dir.mkdir(parents=True, exist_ok=True)
                name = clip.rel.replace("/", "__").rsplit(".", 1)[0] + ".png"
                plot_file(plot_dir / name, f, pcm, trace, hop)
                plots[clip.rel] = f"{plot_dir.name}/{name}"
            # the file counts once everything about it is known
            files.append(f)
            mismatches += len(f["mismatches"])
            covered_s += cov
            gate_hits += gr
            total_samples += pcm.size
            total_wall += sr.wall_s
    except KeyboardInterrupt:
        interrupted = True
    except lk.LinkError as e:  # the node or link failed: keep what was measured
        interrupted = True
        failure = e
    done = {f["file"] for f in files}
    sc = score(files, scored, collar)
    audio_s = total_samples / SR
    metrics = {
        "event_f1": sc["event_f1"],
        "event_error_rate": sc["event_error_rate"],
        "per_class": sc["per_class"],
        "false_alarms_per_hour": _nan_none(sc["false_alarms"] / (audio_s / 3600.0))
        if audio_s
        else None,
        "gate_recall": _nan_none(sum(gate_hits) / len(gate_hits)) if gate_hits else None,
        "inference_duty_cycle": _nan_none(covered_s / audio_s)
        if reference is not None and audio_s
        else None,
        "onset_latency_ms": sc["onset_latency_ms"],
        "realtime_factor": _nan_none(audio_s / total_wall) if total_wall else None,
        "reference_mismatches": mismatches if reference is not None else None,
        "audio_seconds": round(audio_s, 3),
        "complete": not interrupted,
        "files_streamed": len(files),
        "files_not_reached": [c.rel for c in clips if c.rel not in done],
        "skipped": 0,
        "ground_truth": "",
    }
    details = {
        "port": link.port_name,
        "node": {
            "board": hello.board,
            "firmware": hello.fw_version,
            "model_hash": hello.model_hash.hex(),
            "config_hash": hello.config_hash.hex(),
            "node_id": hello.node_id.hex(":"),
            "labels": labels,
        },
        "scored_labels": scored,
        "collar_s": collar,
        "unscored_labels": sorted(
            {t.label for ts in truth.values() for t in ts if t.label not in scored}
        ),
        "false_alarms": sc["false_alarms"],
        "latencies_ms": sc["latencies_ms"],
        "reference": reference is not None,
        "files": files,
        "plots": plots,
        "complete": not interrupted,
        "files_not_reached": metrics["files_not_reached"],
    }
    if failure is not None:
        details["failure"] = str(failure)
        failure.partial = (metrics, details)
        raise failure
    return metrics, details


def summary_text(metrics: dict, details: dict, out: Path) -> str:
    """The scores as a few lines for people (the JSON has the same numbers)."""

    def f(v, fmt="{:.3f}"):
        return "n/a" if v is None else fmt.format(v)

    n_ev = sum(len(x["node_events"]) for x in details["files"])
    n_tr = sum(sum(t["scored"] for t in x["truth"]) for x in details["files"])
    lines = []
    if not metrics.get("complete", True):
        n_all = metrics["files_streamed"] + len(metrics["files_not_reached"])
        lines.append(
            f"HIL INCOMPLETE: interrupted after {metrics['files_streamed']} of {n_all} "
            f"files; the figures cover those only"
        )
    lines += [
        f"HIL: {len(details['files'])} files, {metrics['audio_seconds']:.1f} s of audio at "
        f"{f(metrics['realtime_factor'], '{:.1f}')}x real time through "
        f"{details['port']} (model {details['node']['model_hash']}), "
        f"{metrics.get('skipped', 0)} skipped",
        f"  ground truth: {metrics.get('ground_truth') or 'n/a'}",
        f"  event F1 {f(metrics['event_f1'])}   error rate "
        f"{f(metrics['event_error_rate'])}   ({n_ev} node events, {n_tr} ground-truth "
        f"events, collar {details['collar_s'] * 1000:.0f} ms)",
        f"  false alarms/h {f(metrics['false_alarms_per_hour'], '{:.1f}')}   gate recall "
        f"{f(metrics['gate_recall'])}   inference duty {f(metrics['inference_duty_cycle'])}"
        f"   onset latency {f(metrics['onset_latency_ms'], '{:.0f}')} ms (median)",
        f"  reference mismatches {f(metrics['reference_mismatches'], '{}')}",
        f"  {'class':22} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>4}",
    ]
    for lab, r in metrics["per_class"].items():
        lines.append(
            f"  {lab:22} {f(r['precision'], '{:6.2f}'):>6} "
            f"{f(r['recall'], '{:6.2f}'):>6} {f(r['f1'], '{:6.2f}'):>6} "
            f"{r['support']:4d}"
        )
    for key, v in (details.get("thresholds") or {}).items():
        lines.append(
            f"  {'PASS' if v['pass'] else 'FAIL'}  {key} {f(v['value'], '{:.4g}')} "
            f"(needed {v['threshold']}, {v['option']})"
        )
    lines.append(f"  scores: {out}   report: {out.with_suffix('.md')} (.html)")
    return "\n".join(lines)


def check_output(out: Path) -> None:
    """The scores file and everything written next to it can be created (refused before any
    work starts, not after the files have been streamed)."""
    parent = out.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise HilError(f"{out}: cannot write here ({probe} is not a folder)")
    if out.is_dir():
        raise HilError(f"{out}: is a folder; give a file name such as {out / 'hil.json'}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HilError(f"{out}: cannot write here ({probe} is not writable)")
    for p in (
        out.with_name(out.stem + "_details.json"),
        out.with_suffix(".md"),
        out.with_suffix(".html"),
    ):
        if p.is_dir():
            raise HilError(f"{p}: is a folder (the report goes there)")
    plots = out.with_name(out.stem + "_plots")
    if plots.exists() and not plots.is_dir():
        raise HilError(f"{plots}: not a folder (the plots go there)")


def ground_truth_of(scenes: Path | None, no_truth: bool, root: Path, clips: list[Clip]) -> str:
    """What the scores are measured against, in words; refuses a run that has none unless
    --no-truth (then every node event counts as a false alarm)."""
    if scenes is not None:
        if no_truth:
            raise HilError("--scenes and --no-truth contradict each other")
        return f"{scenes} (--scenes)"
    n = sum(c.path.with_suffix(".txt").exists() for c in clips)
    if n:
        if no_truth:
            raise HilError(f"--no-truth given but {n} audio file(s) have a .txt annotation")
        return (
            f"per-file .txt annotations ({n} of {len(clips)} files; files without one "
            f"are scored as containing no target event)"
        )
    if not no_truth:
        manifest = root / "manifest.csv"
        hint = (
            f" ({manifest} lists clip labels, not event times: write a --scenes CSV with "
            f"scene,onset_s,offset_s,label)"
            if manifest.exists()
            else ""
        )
        raise HilError(
            f"no ground truth for {root}: give --scenes CSV or .txt "
            f"annotations next to the audio files{hint}, or --no-truth to score "
            f"every file as containing no target event"
        )
    return (
        "none (--no-truth): every file is scored as containing no target event, so every "
        "node event is a false alarm and F1/recall are undefined"
    )


def command(
    link_opts,
    root: Path,
    json_out: Path | None,
    thresholds: Thresholds,
    scenes: Path | None = None,
    no_truth: bool = False,
    json_old: Path | None = None,
    collar: float = 0.2,
    no_reference: bool = False,
    no_plots: bool = False,
    skip_bad: bool = False,
    print_json: bool = False,
    quiet: bool = False,
) -> int:
    """The command's work (python tools/hil.py): stream the audio under `root` into the node of
    `link_opts` (the parsed tools.cli link options, opened with cli.link_from_args; its .model
    is also the reference's model), score it and write the results next to `json_out`.
    `json_old`: the deprecated --json.  An interrupted run writes its partial results and
    returns EXIT_INTERRUPTED (the command maps it to EXIT_TERMINATED under SIGTERM: see
    sigterm_as_interrupt)."""
    th = thresholds

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)

    def prepare():
        """Every check that can fail before the node is touched."""
        nonlocal json_out
        if json_old is not None:
            if json_out is not None:
                raise HilError("give --json-out only (--json is its deprecated name)")
            print("hil: warning: --json FILE is deprecated, use --json-out FILE", file=sys.stderr)
            json_out = json_old
        if json_out is None:
            raise HilError("--json-out FILE is required (where the scores are written)")
        if not math.isfinite(collar) or collar <= 0:
            raise HilError(f"--collar {collar:g}: the onset collar is seconds > 0")
        th.validate()
        check_output(json_out)
        clips = find_audio(root)
        if scenes is not None and not scenes.is_file():
            raise HilError(
                f"{scenes}: no such file" if not scenes.exists() else f"{scenes}: not a file"
            )
        good, refused = [], []
        for c in clips:
            try:
                load_clip(c)
                good.append(c)
            except HilError as e:
                refused.append(str(e))
        if refused and not skip_bad:
            raise HilError(
                f"{refused[0]}"
                + (f" (and {len(refused) - 1} more unreadable file(s))" if len(refused) > 1 else "")
                + "; fix or remove it, or pass --skip-bad"
            )
        for r in refused:
            say(f"hil: skipped {r}")
        if not good:
            raise HilError(f"{root}: no usable audio file")
        gt = ground_truth_of(scenes, no_truth, root, good)
        if gt.startswith("none"):
            print(f"hil: warning: no ground truth: {gt}", file=sys.stderr)
        try:
            truth = load_scenes(scenes, good, root)
        except OSError as e:
            raise HilError(f"{scenes}: cannot read ({e.strerror})") from None
        reference = None
        if not no_reference:
            from tools.node import model as mdl

            try:
                reference = Reference.from_model(mdl.load(link_opts.model))
            except mdl.ModelError as e:
                raise HilError(f"reference model: {e} (or --no-reference)") from None
        return good, refused, truth, reference, gt

    def body() -> int:
        try:
            good, refused, truth, reference, gt = prepare()
        except KeyboardInterrupt:
            print(
                "hil: interrupted while checking the inputs; nothing streamed, nothing written",
                file=sys.stderr,
            )
            raise
        out = json_out
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HilError(f"{out}: cannot create its folder ({e.strerror})") from None
        plot_dir = None if no_plots else out.with_name(out.stem + "_plots")
        failure = None
        try:
            with cli.link_from_args(link_opts) as link:
                metrics, details = run(
                    link,
                    good,
                    truth,
                    reference,
                    collar,
                    plot_dir,
                    progress=(lambda f: say(f"hil: {f}")) if sys.stderr.isatty() else None,
                )
        except KeyboardInterrupt:  # before the first stream (run() keeps what it measured)
            print("hil: interrupted before any file was streamed; nothing written", file=sys.stderr)
            raise
        except lk.LinkError as e:
            if getattr(e, "partial", None) is None:
                raise
            failure, (metrics, details) = e, e.partial
        metrics["skipped"] = len(refused)
        metrics["ground_truth"] = gt
        details["root"] = str(root)
        details["refused"] = refused
        details["ground_truth"] = gt
        missed = th.check(metrics)
        details["thresholds_missed"] = missed
        details["thresholds"] = th.verdicts(metrics)
        try:
            out.write_text(json.dumps(metrics, indent=1) + "\n")
            out.with_name(out.stem + "_details.json").write_text(
                json.dumps(details, indent=1) + "\n"
            )
            write_report(out.with_suffix(".md"), metrics, details, details["plots"])
        except OSError as e:
            raise NodeFailure(f"{out}: cannot write the results ({e.strerror})") from None
        if print_json:
            print(json.dumps(metrics, indent=1))
        elif not quiet:
            print(summary_text(metrics, details, out))
        if failure is not None:
            print(
                f"hil: the run stopped after {metrics['files_streamed']} files; partial "
                f"results (complete: false) in {out}",
                file=sys.stderr,
            )
            raise failure
        if not metrics["complete"]:
            print(
                f"hil: interrupted after {metrics['files_streamed']} of "
                f"{metrics['files_streamed'] + len(metrics['files_not_reached'])} files; "
                f"partial results (complete: false) in {out}",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        if missed:
            print("hil: thresholds missed: " + "; ".join(missed), file=sys.stderr)
            return 1
        return 0

    return body()


class sigterm_as_interrupt:
    """`with sigterm_as_interrupt() as term:` SIGTERM raises KeyboardInterrupt (stop as on
    Ctrl-C) and `term.got` becomes true; outside the main thread SIGTERM stays as it is."""

    def __init__(self):
        self.got = False
        self._old = None

    def _on_term(self, signum, frame):
        self.got = True
        raise KeyboardInterrupt

    def __enter__(self) -> sigterm_as_interrupt:
        import signal

        try:
            self._old = signal.signal(signal.SIGTERM, self._on_term)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
