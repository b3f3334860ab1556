"""Score a model on a scene set (training.scenes) through the node exactly as deployed.

    res = evaluate_fold("firmware/model", scene_set)       # or a tools.node.model.Model; JSON-ready
    res = evaluate_fold(m, scene_set, node_kw={"mode": "continuous"})   # other node settings
    events = node_events(m, scene_set)                      # {file: [ONSET events]}, as scored
    pooled = summarise([res_fold1, res_fold2, ...])         # the same figures over all folds

Each scene and stream file is one stream into a fresh node, `tools.node.model.load(dir).node(trace=True)`
(the C core: gate with habituation -> windows -> int8 model in the TFLM interpreter ->
thresholds and decision logic -> events), fed in CHUNK-sample pieces so that the audio position
at which each event was reported is known (as tools/hil.py's credit steps), then flushed.
Estimated events are the node's ONSET events.

Figures (keys of the result; null where undefined):
  collars {"200ms"|"500ms": {event_f1, event_error_rate, precision, recall, counts
      {Nref, Nsys, Ntp, Nfp, Nfn, Nsubs}, per_class {label: {precision, recall, f1, Nref, Nsys,
      Ntp}}}}     sed_eval event-based, onset collar, offsets not evaluated; ground truth = the
      audible onsets of the target events (hard negatives are not in it)
  recall_per_ebr {"200ms"|"500ms": {ebr: {recall, Nref, per_class {label: recall},
      Nref_per_class {label: events}}}}
  gate_recall, gate_recall_per_ebr      tools.node.coverage.gate_open_in: the gate open in at least
      one 16-ms block of the event's audible span (from the node's block trace)
  window_recall                         an analysis window overlapping the audible span
  onset_latency_ms {median, p90, n}     report position (audio the node had consumed when the
      ONSET event came out, to CHUNK) - audible onset, for ground-truth events hit at the 500-ms
      collar (earliest-reported same-class event within the collar)
  negatives_in_scenes {events, triggered}   scene ONSET events of target classes overlapping a
      pasted hard negative (they count as insertions above)
  streams {seconds, background_seconds, false_alarms, false_alarms_per_hour,
      false_alarms_per_hour_background, per_class {label: per hour}, by_source
      {"label:source_label": count}, events [...]}
      every target-class ONSET event on the negative streams is a false alarm; attributed to
      the segment playing at the event's onset; `background` = segments labelled background
      (the crossval JSON leaves `events` out of `raw.streams`)
  timeline {scene, seconds, bed_dbfs, events [events.csv spans; targets with `hit`],
      detections [{label, onset_s, score, match: hit|false}]}   the set's first scene, for the
      report's timeline plot (hit: a same-class target within the 200-ms collar)
  node_kw                               the Node keyword arguments the node ran with ({}: the
      model's own settings, as deployed)
  inference_duty {scenes, streams, streams_background}   audio covered by analysis windows /
      audio (tools.node.coverage.window_coverage)
"""

from __future__ import annotations

import statistics
import sys

import numpy as np

from training import scenes as sc

CHUNK = 512
COLLARS = {"200ms": 0.2, "500ms": 0.5}
SCHEMA_VERSION = 1


def run_stream(m, pcm: np.ndarray, node_kw: dict | None = None):
    """(node after flush, [report sample per event]) -- the deployed node on one stream
    (node_kw: tools.node.core.Node's keyword arguments, e.g. mode='continuous')."""
    node = m.node(trace=True, **(node_kw or {}))
    arrival = []
    for a in range(0, pcm.size, CHUNK):
        node.process(pcm[a : a + CHUNK])
        arrival += [min(a + CHUNK, pcm.size)] * (len(node.events) - len(arrival))
    node.flush()
    arrival += [pcm.size] * (len(node.events) - len(arrival))
    return node, arrival


def _onsets(m, node, arrival, labels) -> list[dict]:
    out = []
    for e, t in zip(node.events, arrival):
        lab = m.labels[e.class_index]
        if e.kind == "onset" and lab in labels:
            out.append(
                {
                    "label": lab,
                    "onset_s": e.onset_sample / sc.SR,
                    "arrival_s": t / sc.SR,
                    "score": e.score / 256,
                }
            )
    return out


def _sed_counts(files, labels, collar):
    """sed_eval event-based counts (overall and per class) over [(name, truth, est)]."""
    import sed_eval

    met = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(labels), t_collar=collar, evaluate_onset=True, evaluate_offset=False
    )
    for name, truth, est in files:
        ref = [
            {
                "event_label": t["label"],
                "onset": t["onset_s"],
                "offset": t["offset_s"],
                "filename": name,
            }
            for t in truth
        ]
        es = [
            {
                "event_label": e["label"],
                "onset": e["onset_s"],
                "offset": e["onset_s"] + 0.1,
                "filename": name,
            }
            for e in est
        ]
        met.evaluate(ref, es)
    overall = {k: int(round(v)) for k, v in met.overall.items()}
    per = {
        c: {k: int(round(met.class_wise[c][k])) for k in ("Nref", "Nsys", "Ntp")} for c in labels
    }
    return {"counts": overall, "per_class": per}


def _ratio(a, b):
    return None if not b else round(a / b, 4)


def _from_counts(d: dict) -> dict:
    """F1, error rate, precision, recall from sed_eval counts (per fold or pooled)."""
    c = d["counts"]
    out = {
        "event_f1": _ratio(2 * c["Ntp"], c["Nref"] + c["Nsys"]),
        "event_error_rate": _ratio(c["Nsubs"] + c["Nfn"] + c["Nfp"], c["Nref"]),
        "precision": _ratio(c["Ntp"], c["Nsys"]),
        "recall": _ratio(c["Ntp"], c["Nref"]),
        "counts": c,
        "per_class": {},
    }
    for lab, k in d["per_class"].items():
        out["per_class"][lab] = {
            "precision": _ratio(k["Ntp"], k["Nsys"]),
            "recall": _ratio(k["Ntp"], k["Nref"]),
            "f1": _ratio(2 * k["Ntp"], k["Nref"] + k["Nsys"]),
            **k,
        }
    return out


def _ebr_key(v) -> str:
    return f"{float(v):g}"


def _load(model, scene_set):
    from tools.node import model as tmodel

    m = model if isinstance(model, tmodel.Model) else tmodel.load(model)
    ss = scene_set if isinstance(scene_set, sc.SceneSet) else sc.load(scene_set)
    return m, ss


def node_events(model, scene_set, node_kw: dict | None = None) -> dict[str, list[dict]]:
    """{file name (relative to the set): the node's ONSET events of target classes [{label,
    onset_s, arrival_s, score}]} for every scene and stream: what evaluate_fold scores."""
    m, ss = _load(model, scene_set)
    labels = [c for c in m.labels if c != m.manifest.get("negative_label")]
    out = {}
    for item in ss.scenes + ss.streams:
        node, arrival = run_stream(m, item.pcm, node_kw)
        out[item.name] = _onsets(m, node, arrival, labels)
    return out


def _timeline(scene, est) -> dict:
    """One scene's events and the node's detections, marked for the report's timeline plot:
    a detection is a hit when a same-class target's audible onset lies within the 200-ms
    collar (each target matched once), else false; a target without one is missed."""
    truth = scene.targets
    free = list(range(len(truth)))
    dets = []
    for x in sorted(est, key=lambda x: x["onset_s"]):
        j = next(
            (
                j
                for j in free
                if truth[j]["label"] == x["label"]
                and abs(truth[j]["onset_s"] - x["onset_s"]) <= COLLARS["200ms"]
            ),
            None,
        )
        if j is not None:
            free.remove(j)
        dets.append(
            {
                "label": x["label"],
                "onset_s": round(x["onset_s"], 3),
                "score": round(x["score"], 4),
                "match": "false" if j is None else "hit",
            }
        )
    keys = (
        "label",
        "kind",
        "ebr_db",
        "onset_s",
        "offset_s",
        "pasted_onset_s",
        "pasted_offset_s",
        "audible_onset_s",
        "audible_offset_s",
    )
    evs = []
    for e in scene.events:
        d = {k: e[k] for k in keys if k in e}
        if e["kind"] == "target":
            d["hit"] = truth.index(e) not in free
        evs.append(d)
    return {
        "scene": scene.name,
        "seconds": round(scene.seconds, 3),
        "bed_dbfs": round(float(scene.bed_dbfs), 2),
        "events": evs,
        "detections": dets,
    }


def evaluate_fold(model, scene_set, progress: bool = False, node_kw: dict | None = None) -> dict:
    """Run the node on every scene and stream of a set (SceneSet or its folder) -> JSON dict.
    node_kw: tools.node.core.Node's keyword arguments (mode, continuous_stride, gate,
    holdoff_ms, ...) for every stream; recorded under `node_kw`."""
    from tools.node import core, coverage

    m, ss = _load(model, scene_set)
    node_kw = dict(node_kw or {})
    labels = [c for c in m.labels if c != m.manifest.get("negative_label")]
    missing = [c for c in ss.classes if c not in labels]
    files, gate_hits, win_hits, per_event = [], [], [], []
    cov_scene, n_scene = 0.0, 0
    neg_events = neg_trig = 0
    items = ss.scenes + ss.streams
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc=f"fold {ss.fold} node", unit="file", file=sys.stderr, leave=False)
    stream_res = []
    timeline = None
    for item in it:
        node, arrival = run_stream(m, item.pcm, node_kw)
        est = _onsets(m, node, arrival, labels)
        covered = coverage.window_coverage(node.windows, 0, item.pcm.size)
        if isinstance(item, sc.Stream):
            stream_res.append((item, est, covered))
            continue
        cov_scene += covered.sum()
        n_scene += item.pcm.size
        truth = [e for e in item.targets if e["label"] in labels]
        files.append((item.name, truth, est))
        if timeline is None:
            timeline = _timeline(item, est)
        gate_hits += coverage.gate_open_in(
            node.trace, [(e["onset_s"], e["offset_s"]) for e in truth], core.HOP
        )
        for e in truth:
            a, b = int(e["onset_s"] * sc.SR), int(e["offset_s"] * sc.SR)
            win_hits.append(bool(covered[a : max(b, a + 1)].any()))
            per_event.append(e)
        for n in item.events:
            if n["kind"] != "negative":
                continue
            neg_events += 1
            neg_trig += any(
                n["pasted_onset_s"] <= x["onset_s"] <= n["pasted_offset_s"] for x in est
            )
    res = {
        "schema_version": SCHEMA_VERSION,
        "fold": ss.fold,
        "seed": ss.seed,
        "scene_set": str(ss.path) if ss.path else None,
        "model": str(m.path),
        "model_sha256": m.sha256,
        "node_kw": node_kw,
        "labels": labels,
        "classes_not_in_model": missing,
        "n_scenes": len(ss.scenes),
        "scene_seconds": round(n_scene / sc.SR, 3),
        "n_target_events": len(per_event),
        "ebrs_db": [_ebr_key(e) for e in ss.ebrs],
    }
    res["raw"] = {
        "collars": {k: _sed_counts(files, labels, c) for k, c in COLLARS.items()},
        "per_ebr": {},
    }
    for e in ss.ebrs:
        sub = [
            (n, [t for t in tr if _ebr_key(t["ebr_db"]) == _ebr_key(e)], est)
            for n, tr, est in files
        ]
        res["raw"]["per_ebr"][_ebr_key(e)] = {
            k: _sed_counts(sub, labels, c)["per_class"] for k, c in COLLARS.items()
        }
    # latency: earliest-reported same-class estimate within the 500-ms collar
    lat = []
    for _name, truth, est in files:
        for t in truth:
            c = [
                x
                for x in est
                if x["label"] == t["label"] and abs(x["onset_s"] - t["onset_s"]) <= 0.5
            ]
            if c:
                lat.append(1000 * (min(x["arrival_s"] for x in c) - t["onset_s"]))
    res["raw"]["latencies_ms"] = [round(v, 1) for v in lat]
    res["raw"]["gate"] = {
        "hits": int(sum(gate_hits)),
        "window_hits": int(sum(win_hits)),
        "n": len(gate_hits),
        "per_ebr": {
            _ebr_key(e): [
                int(
                    sum(
                        h
                        for h, t in zip(gate_hits, per_event)
                        if _ebr_key(t["ebr_db"]) == _ebr_key(e)
                    )
                ),
                sum(1 for t in per_event if _ebr_key(t["ebr_db"]) == _ebr_key(e)),
            ]
            for e in ss.ebrs
        },
    }
    res["raw"]["negatives_in_scenes"] = {"events": neg_events, "triggered": int(neg_trig)}
    # streams
    st = {
        "seconds": 0.0,
        "background_seconds": 0.0,
        "false_alarms": 0,
        "background_false_alarms": 0,
        "per_class": {c: 0 for c in labels},
        "by_source": {},
        "events": [],
        "window_seconds": 0.0,
        "background_window_seconds": 0.0,
    }
    for item, est, covered in stream_res:
        st["seconds"] += item.seconds
        st["window_seconds"] += covered.sum() / sc.SR
        for g in item.segments:
            if g["label"] in sc.data.BACKGROUND_LABELS:
                a, b = int(g["start_s"] * sc.SR), int(g["end_s"] * sc.SR)
                st["background_seconds"] += (b - a) / sc.SR
                st["background_window_seconds"] += covered[a:b].sum() / sc.SR
        for x in est:
            g = next(
                (g for g in item.segments if g["start_s"] <= x["onset_s"] < g["end_s"]),
                item.segments[-1]
                if item.segments
                else {"label": "", "source_label": "", "source": ""},
            )
            st["false_alarms"] += 1
            st["per_class"][x["label"]] += 1
            key = f"{g['label']}:{g['source_label']}"
            st["by_source"][key] = st["by_source"].get(key, 0) + 1
            if g["label"] in sc.data.BACKGROUND_LABELS:
                st["background_false_alarms"] += 1
            st["events"].append(
                {
                    "stream": item.name,
                    "onset_s": round(x["onset_s"], 3),
                    "label": x["label"],
                    "score": x["score"],
                    "playing": g["label"],
                    "playing_source_label": g["source_label"],
                    "source": g["source"],
                }
            )
    res["raw"]["streams"] = st
    res["raw"]["duty"] = {"scene_window_seconds": round(cov_scene / sc.SR, 3)}
    res["timeline"] = timeline
    res.update(_figures(res["raw"], labels, [_ebr_key(e) for e in ss.ebrs], res["scene_seconds"]))
    return res


def _figures(raw: dict, labels, ebrs, scene_seconds) -> dict:
    """The headline figures from raw counts (one fold, or pooled by summarise)."""
    out = {"collars": {k: _from_counts(v) for k, v in raw["collars"].items()}}
    out["recall_per_ebr"] = {}
    for k in COLLARS:
        out["recall_per_ebr"][k] = {}
        for e in ebrs:
            pc = raw["per_ebr"][e][k]
            tp, nref = sum(v["Ntp"] for v in pc.values()), sum(v["Nref"] for v in pc.values())
            out["recall_per_ebr"][k][e] = {
                "recall": _ratio(tp, nref),
                "Nref": nref,
                "per_class": {c: _ratio(v["Ntp"], v["Nref"]) for c, v in pc.items()},
                "Nref_per_class": {c: v["Nref"] for c, v in pc.items()},
            }
    g = raw["gate"]
    out["gate_recall"] = _ratio(g["hits"], g["n"])
    out["window_recall"] = _ratio(g["window_hits"], g["n"])
    out["gate_recall_per_ebr"] = {e: _ratio(*g["per_ebr"][e]) for e in ebrs}
    lat = raw["latencies_ms"]
    out["onset_latency_ms"] = {
        "median": round(statistics.median(lat), 1) if lat else None,
        "p90": round(float(np.percentile(lat, 90)), 1) if lat else None,
        "n": len(lat),
    }
    out["negatives_in_scenes"] = raw["negatives_in_scenes"]
    st = raw["streams"]
    h, hb = st["seconds"] / 3600, st["background_seconds"] / 3600
    out["streams"] = {
        "seconds": round(st["seconds"], 3),
        "background_seconds": round(st["background_seconds"], 3),
        "false_alarms": st["false_alarms"],
        "false_alarms_per_hour": _ratio(st["false_alarms"], h),
        "false_alarms_per_hour_background": _ratio(st["background_false_alarms"], hb),
        "per_class": {c: _ratio(v, h) for c, v in st["per_class"].items()},
        "by_source": dict(sorted(st["by_source"].items(), key=lambda kv: -kv[1])),
    }
    out["inference_duty"] = {
        "scenes": _ratio(raw["duty"]["scene_window_seconds"], scene_seconds),
        "streams": _ratio(st["window_seconds"], st["seconds"]),
        "streams_background": _ratio(st["background_window_seconds"], st["background_seconds"]),
    }
    # headline copies
    out["event_f1"] = out["collars"]["200ms"]["event_f1"]
    out["event_error_rate"] = out["collars"]["200ms"]["event_error_rate"]
    out["false_alarms_per_hour"] = out["streams"]["false_alarms_per_hour"]
    return out


def summarise(per_fold: list[dict]) -> dict:
    """Pool the raw counts of several folds' results (same model labels and EBRs) and recompute
    every figure; per-fold event F1 (200 ms) listed as well."""
    if not per_fold:
        return {}
    labels, ebrs = per_fold[0]["labels"], per_fold[0]["ebrs_db"]
    R = [r["raw"] for r in per_fold]

    def add(ds):
        """Sum numbers, concatenate lists, merge dicts key by key (missing = 0) over folds."""
        if isinstance(ds[0], dict):
            keys = [k for d in ds for k in d if not (k == "events" and isinstance(d[k], list))]
            return {k: add([d[k] for d in ds if k in d]) for k in dict.fromkeys(keys)}
        if isinstance(ds[0], list):
            return [x for d in ds for x in d]
        return sum(ds)

    raw = {
        "collars": add([r["collars"] for r in R]),
        "per_ebr": add([r["per_ebr"] for r in R]),
        "latencies_ms": [x for r in R for x in r["latencies_ms"]],
        "gate": {
            "hits": sum(r["gate"]["hits"] for r in R),
            "window_hits": sum(r["gate"]["window_hits"] for r in R),
            "n": sum(r["gate"]["n"] for r in R),
            "per_ebr": {
                e: [
                    sum(r["gate"]["per_ebr"][e][0] for r in R),
                    sum(r["gate"]["per_ebr"][e][1] for r in R),
                ]
                for e in ebrs
            },
        },
        "negatives_in_scenes": add([r["negatives_in_scenes"] for r in R]),
        "streams": add([r["streams"] for r in R]),
        "duty": add([r["duty"] for r in R]),
    }
    scene_seconds = sum(r["scene_seconds"] for r in per_fold)
    out = {
        "folds": [r["fold"] for r in per_fold],
        "labels": labels,
        "ebrs_db": ebrs,
        "scene_seconds": round(scene_seconds, 3),
        "n_target_events": sum(r["n_target_events"] for r in per_fold),
        "event_f1_per_fold": [r["event_f1"] for r in per_fold],
    }
    out.update(_figures(raw, labels, ebrs, scene_seconds))
    return out


def summary_text(res: dict) -> str:
    def f(v, spec=".3f"):
        return "-" if v is None else format(v, spec)

    lines = [
        f"fold {res.get('fold', res.get('folds'))}: {res['n_target_events']} target events in "
        f"{res['scene_seconds'] / 60:.1f} min of scenes, {res['streams']['seconds'] / 60:.1f} min "
        f"of negative streams"
    ]
    for k, c in res["collars"].items():
        lines.append(
            f"  event F1 {f(c['event_f1'])}  ER {f(c['event_error_rate'])}  "
            f"P {f(c['precision'])}  R {f(c['recall'])}  (onset collar {k})"
        )
    lines.append(
        "  recall per EBR (500 ms): "
        + ", ".join(
            f"{e:>3} dB {f(v['recall'])} (n={v['Nref']})"
            for e, v in res["recall_per_ebr"]["500ms"].items()
        )
    )
    lines.append(
        f"  gate recall {f(res['gate_recall'])}  window recall {f(res['window_recall'])}  "
        "per EBR " + ", ".join(f"{e} dB {f(v)}" for e, v in res["gate_recall_per_ebr"].items())
    )
    lat = res["onset_latency_ms"]
    lines.append(
        f"  onset latency median {f(lat['median'], '.0f')} ms, p90 {f(lat['p90'], '.0f')} ms "
        f"(n={lat['n']})"
    )
    s = res["streams"]
    lines.append(
        f"  false alarms/h on streams {f(s['false_alarms_per_hour'], '.1f')} "
        f"(background only {f(s['false_alarms_per_hour_background'], '.1f')}); "
        f"hard negatives in scenes triggering: {res['negatives_in_scenes']['triggered']}/"
        f"{res['negatives_in_scenes']['events']}"
    )
    d = res["inference_duty"]
    lines.append(
        f"  inference duty: scenes {f(d['scenes'])}, streams {f(d['streams'])}, "
        f"background {f(d['streams_background'])}"
    )
    lines.append(
        "  per class (200 ms): "
        + ", ".join(
            f"{c} F1 {f(v['f1'], '.2f')} R {f(v['recall'], '.2f')} (n={v['Nref']})"
            for c, v in res["collars"]["200ms"]["per_class"].items()
        )
    )
    return "\n".join(lines)
