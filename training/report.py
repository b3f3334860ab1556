"""Human report of an evaluation (training.evaluate): Markdown + PNG figures next to the JSON.

    python -m training.report build/eval/fold5.json      # (re)writes fold5.md and fold5_*.png
    python -m training.report build/eval/fold5.json --baselines build/eval/baselines_cv.json --fold 5
    python -m training.report --crossval build/crossval/crossval.json \
        --baselines build/eval/baselines_cv.json --out docs/crossval.md   # per class, mean ± std

    from training import report
    report.write(result_dict, "build/eval/fold5.json") -> [paths written]

Figures (matplotlib, Agg backend; curves from scikit-learn on the per-clip scores in the JSON):
  <stem>_confusion_node.png, <stem>_confusion_classifier.png   counts, colour = row fraction
  <stem>_pr_node.png, <stem>_pr_classifier.png                 per-class precision-recall
  <stem>_roc_node.png, <stem>_roc_classifier.png               per-class ROC
The per-class table lists precision, recall, F1, support, average precision and ROC AUC of the
node pipeline and of the pure classifier side by side; then false alarms by negative label.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SYSTEMS = ("node", "classifier")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _f(v, spec=".3f") -> str:
    return "–" if v is None else format(v, spec)


def _supported_f1(summary: dict) -> float | None:
    """Mean F1 over the classes with support (older JSONs lack `macro_f1_supported`)."""
    f1 = [v["f1"] for v in summary["per_class"].values() if v["support"] and v["f1"] is not None]
    return float(np.mean(f1)) if f1 else None


def confusion_png(conf: dict, title: str, path: Path) -> Path:
    plt = _plt()
    labels = conf["labels"]
    m = np.array(conf["matrix"], float)
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 0.8 + 0.65 * n), dpi=110)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(m[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if frac[i, j] > 0.6 else "black",
                )
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def curves_png(
    clips: list[dict], key: str, classes: list[str], kind: str, title: str, path: Path
) -> Path:
    """One line per class (one-vs-rest on the clips' truth), kind 'pr' or 'roc'."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    for c in classes:
        y = np.array([r["truth"] == c for r in clips])
        s = np.array([r[key][c] for r in clips], float)
        if y.sum() == 0 or y.sum() == y.size:
            continue
        if kind == "pr":
            p, r, _ = precision_recall_curve(y, s)
            ax.step(r, p, where="post", label=f"{c} (AP {average_precision_score(y, s):.2f})")
        else:
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{c} (AUC {roc_auc_score(y, s):.2f})")
    if kind == "pr":
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    else:
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left" if kind == "pr" else "lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def baselines_table(res: dict, base: dict) -> list[str]:
    """Per-class F1 of the node, the classifier and the baselines (one fold of
    training.baselines' JSON, i.e. the same test clips) side by side."""
    names = [n for n in ("logreg", "svm") if n in base]
    classes = res["classes"]
    L = [
        "## Against the MFCC baselines (same test clips)",
        "",
        "| | " + " | ".join(classes) + " | macro-F1 | accuracy |",
        "|---" * (len(classes) + 3) + "|",
    ]
    rows = [("node (int8, gated)", res["node"]), ("classifier (int8)", res["classifier"])]
    rows += [
        (f"MFCC + {'logistic regression' if n == 'logreg' else 'SVM'}", base[n]) for n in names
    ]
    for title, s in rows:
        f1 = [_f(s["per_class"].get(c, {}).get("f1"), ".2f") for c in classes]
        L.append(
            f"| {title} | " + " | ".join(f1) + f" | {_f(s['macro_f1'])} | {_f(s['accuracy'])} |"
        )
    L += [
        "",
        f"Baselines: {base.get('features', '')}; trained on {base.get('n_train', '?')} clips, "
        f"tested on {base.get('n_test', '?')}.",
        "",
    ]
    return L


def markdown(res: dict, figures: dict[str, Path], baselines: dict | None = None) -> str:
    classes = res["classes"]
    node, clf = res["node"], res["classifier"]
    fa = res.get("false_alarms", {})
    L = [
        f"# Evaluation: {res['model'].get('name') or 'model'} `{res['model_sha256'][:12]}`",
        "",
        f"{res['n_clips']} clips, {res['audio_seconds'] / 60:.1f} min of audio"
        f" ({res['n_unreadable']} unreadable, skipped). Target classes: {', '.join(classes)};"
        f" everything else counts as `{res['negative_label']}` (no target event).",
        "",
        f"- node: {res['settings']['node']}",
        f"- classifier: {res['settings']['classifier']}",
        f"- classifier (most target-like window): continuous windows every "
        f"{res['settings']['classifier_stride_hops']} hops",
        f"- each clip is preceded by {res['settings']['lead_in_s']} s and followed by "
        f"{res['settings']['tail_s']} s of noise at its own floor"
        + (
            f", at least {res['settings']['room_below_peak_db']:g} dB below its peak"
            if res["settings"].get("room_below_peak_db") is not None
            else ""
        )
        + (
            "; background clips are played twice and scored on the second pass"
            if res["settings"].get("steady_background")
            else ""
        ),
        "",
        "| | macro-F1 | accuracy | false alarms / h (negatives) | false alarms / h (background) |",
        "|---|---|---|---|---|",
        f"| node | {_f(node['macro_f1'])} | {_f(node['accuracy'])} | "
        f"{_f(res['false_alarms_per_hour'], '.1f')} | {_f(res['false_alarms_per_hour_background'], '.1f')} |",
        f"| classifier (window on the clip's peak) | {_f(clf['macro_f1'])} | {_f(clf['accuracy'])} | | |",
    ]
    if "classifier_any_window" in res:
        anyw = res["classifier_any_window"]
        L.append(
            f"| classifier (most target-like window) | {_f(anyw['macro_f1'])} | "
            f"{_f(anyw['accuracy'])} | | |"
        )
    if "gate_ceiling" in res:
        ceil = res["gate_ceiling"]
        L.append(
            f"| ceiling: a perfect model behind this gate | {_f(ceil['macro_f1'])} | "
            f"{_f(ceil['accuracy'])} | 0 | 0 |"
        )
    L += [
        "",
        f"Negative audio: {fa.get('seconds', 0) / 60:.1f} min in {fa.get('clips', 0)} clips, "
        f"{fa.get('events', 0)} node events.",
        "",
    ]
    for w in res.get("warnings", []):
        L += [f"**Warning:** {w}", ""]
    d = node.get("diagnostics", {})
    if d:
        L += [
            f"Gate: an analysis window overlapped {_f(d.get('target_clips_with_window'))} of the "
            f"target clips; an event was reported in {_f(d.get('target_clips_with_event'))}.",
            "",
        ]
    L += [
        "## Per class",
        "",
        "| class | support | node P | node R | node F1 | node AP | classifier P | classifier R "
        "| classifier F1 | classifier AP | classifier ROC AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in classes:
        a, b = node["per_class"][c], clf["per_class"][c]
        L.append(
            f"| {c} | {a['support']} | {_f(a['precision'])} | {_f(a['recall'])} | "
            f"{_f(a['f1'])} | {_f(a.get('average_precision'))} | {_f(b['precision'])} | "
            f"{_f(b['recall'])} | {_f(b['f1'])} | {_f(b.get('average_precision'))} | "
            f"{_f(b.get('roc_auc'))} |"
        )
    ng, cg = node["negative"], clf["negative"]
    L += [
        f"| *{res['negative_label']}* (negative) | {ng['support']} | {_f(ng['precision'])} | "
        f"{_f(ng['recall'])} | {_f(ng['f1'])} | | {_f(cg['precision'])} | {_f(cg['recall'])} | "
        f"{_f(cg['f1'])} | | |",
        "",
        "Macro-F1 averages the classes with clips or predictions in this set "
        f"(node: {', '.join(node['macro_f1_classes'])}); over the classes with clips only it is "
        f"{_f(_supported_f1(node))} (node) and {_f(_supported_f1(clf))} "
        "(classifier). `–`: undefined (nothing to divide by).",
        "",
    ]
    if baselines:
        L += baselines_table(res, baselines)
    if fa.get("by_label"):
        L += [
            "## False alarms on negative clips (node)",
            "",
            "| dataset label | clips | minutes | events | per hour |",
            "|---|---|---|---|---|",
        ]
        for lab, v in fa["by_label"].items():
            L.append(
                f"| {lab} | {v['clips']} | {v['seconds'] / 60:.1f} | {v['events']} | "
                f"{_f(v['per_hour'], '.1f')} |"
            )
        L.append("")
    if figures:
        L += ["## Figures", ""]
        for name, p in figures.items():
            L += [f"![{name}]({p.name})", ""]
    if res.get("unreadable"):
        L += (
            ["## Unreadable clips", ""]
            + [f"- `{u['path']}`: {u['reason']}" for u in res["unreadable"]]
            + [""]
        )
    return "\n".join(L)


def write(res: dict, json_path, baselines: dict | None = None) -> list[Path]:
    """Write <stem>.md and the PNG figures next to `json_path`; return the paths written.
    baselines: one fold's result of training.baselines.run() on the same clips (optional)."""
    json_path = Path(json_path)
    out = json_path.parent
    stem = json_path.stem
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    for sys_ in SYSTEMS:
        figures[f"confusion, {sys_}"] = confusion_png(
            res[sys_]["confusion"],
            f"{sys_}: confusion (clips)",
            out / f"{stem}_confusion_{sys_}.png",
        )
    clips = res.get("clips")
    if clips:
        for sys_ in SYSTEMS:
            for kind in ("pr", "roc"):
                figures[f"{kind.upper()}, {sys_}"] = curves_png(
                    clips,
                    f"{sys_}_scores",
                    res["classes"],
                    kind,
                    f"{sys_}: per-class {'precision-recall' if kind == 'pr' else 'ROC'} (clip scores)",
                    out / f"{stem}_{kind}_{sys_}.png",
                )
    md = out / f"{stem}.md"
    md.write_text(markdown(res, figures, baselines) + "\n")
    return [md, *figures.values()]


def _ms(d, spec=".3f") -> str:
    if not d or d.get("mean") is None:
        return "–"
    return f"{d['mean']:{spec}} ± {d['std']:{spec}}"


def crossval_markdown(cv: dict, baselines: dict | None = None, figures: dict | None = None) -> str:
    """Cross-validation (python -m training crossval JSON) per class, next to the MFCC baselines
    on the same folds (python -m training.baselines JSON)."""
    classes = cv.get("classes", [])
    L = [
        "# Cross-validation through the node pipeline",
        "",
        f"Design: {cv.get('design', '')}. Folds: {', '.join(str(f) for f in cv.get('folds', []))}. "
        "Mean ± std over the test folds (per class only over the folds where the class has clips); "
        "`pooled`: one confusion matrix over all test clips.",
        "",
    ]
    base_pooled = (baselines or {}).get("pooled", {})
    base_ms = (baselines or {}).get("mean_std", {})
    room = cv.get("room_below_peak_db")
    room_txt = f"room {room:g} dB below the peak" if room is not None else "room below the peak"
    L += [
        "## Overall",
        "",
        "`node`: the int8 model behind the node's gate and thresholds, with the room at each "
        "clip's own floor (the headline protocol); `room`: the same with the room further below "
        "the event (`gate_eval`'s protocol); `gate ceiling`: a perfect model behind the gate (a "
        "target clip is right iff the gate opened an analysis window on it, negatives never fire); "
        "`classifier`: the best window of each clip, no gate, no thresholds. `classes with clips`: "
        "the macro-F1 over the target classes that have clips in the test fold.",
        "",
        "| system | macro-F1 (mean ± std) | macro-F1, classes with clips | accuracy (mean ± std) "
        "| macro-F1 pooled | accuracy pooled | false alarms / h (negatives) | false alarms / h (background) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "node": "node (int8)",
        "node_room": f"node (int8), {room_txt}",
        "gate_ceiling": "gate ceiling (a perfect model behind the gate)",
        "gate_ceiling_room": f"gate ceiling, {room_txt}",
        "classifier": "classifier (int8)",
    }
    for arch, a in cv.get("archs", {}).items():
        sm = a.get("summary", {})
        for sysn, title in names.items():
            if sysn not in sm:
                continue
            x = sm[sysn]
            pooled = x.get("pooled", {})
            fa = (
                (
                    f"| {_ms(sm.get('false_alarms_per_hour'), '.1f')} | "
                    f"{_ms(sm.get('false_alarms_per_hour_background'), '.1f')} |"
                )
                if sysn == "node"
                else "| | |"
            )
            L.append(
                f"| {arch} {title} | {_ms(x.get('macro_f1'))} | {_ms(x.get('macro_f1_supported'))} | "
                f"{_ms(x.get('accuracy'))} | {_f(pooled.get('macro_f1'))} | {_f(pooled.get('accuracy'))} {fa}"
            )
    for n, title in (("logreg", "MFCC + logistic regression"), ("svm", "MFCC + SVM")):
        if n in base_ms:
            L.append(
                f"| {title} | {_ms(base_ms[n]['macro_f1'])} | | {_ms(base_ms[n]['accuracy'])} | "
                f"{_f(base_pooled.get(n, {}).get('macro_f1'))} | "
                f"{_f(base_pooled.get(n, {}).get('accuracy'))} | | |"
            )
    L += [
        "",
        "## Per class: F1 (mean ± std over folds; pooled in brackets)",
        "",
        "| class | clips | "
        + " | ".join(
            [f"{arch} node | {arch} classifier" for arch in cv.get("archs", {})]
            + [t for n, t in (("logreg", "MFCC + LR"), ("svm", "MFCC + SVM")) if n in base_ms]
        )
        + " |",
        "|---|---"
        + "|---" * (2 * len(cv.get("archs", {})) + sum(n in base_ms for n in ("logreg", "svm")))
        + "|",
    ]
    for c in classes:
        cells, support = [], None
        for a in cv.get("archs", {}).values():
            sm = a.get("summary", {})
            for sysn in ("node", "classifier"):
                x = sm.get(sysn, {})
                pc = x.get("per_class", {}).get(c, {})
                support = support if support is not None else pc.get("support")
                pooled = x.get("pooled", {}).get("per_class", {}).get(c, {})
                cells.append(f"{_ms(pc.get('f1'), '.2f')} ({_f(pooled.get('f1'), '.2f')})")
        for n in ("logreg", "svm"):
            if n in base_ms:
                pc = base_ms[n]["per_class"].get(c, {})
                pooled = base_pooled.get(n, {}).get("per_class", {}).get(c, {})
                cells.append(f"{_ms(pc.get('f1'), '.2f')} ({_f(pooled.get('f1'), '.2f')})")
        L.append(f"| {c} | {support if support is not None else '–'} | " + " | ".join(cells) + " |")
    # precision and recall through the node, and (where evaluated) the gate's share: the
    # ceiling's recall is the fraction of the class's clips that got an analysis window at all
    heads = {
        ("node", "precision"): "node precision",
        ("node", "recall"): "node recall",
        ("node_room", "recall"): f"node recall, {room_txt}",
        ("gate_ceiling", "recall"): "clips with a window (gate ceiling's recall)",
    }
    cols = [
        (arch, sysn, k)
        for arch, a in cv.get("archs", {}).items()
        for (sysn, k) in heads
        if sysn in a.get("summary", {})
    ]
    L += [
        "",
        "## Precision and recall through the node (mean ± std; pooled)",
        "",
        "| class | " + " | ".join(f"{arch} {heads[sysn, k]}" for arch, sysn, k in cols) + " |",
        "|---" * (1 + len(cols)) + "|",
    ]
    for c in classes:
        cells = []
        for arch, sysn, k in cols:
            x = cv["archs"][arch]["summary"][sysn]
            pc = x.get("per_class", {}).get(c, {})
            pooled = x.get("pooled", {}).get("per_class", {}).get(c, {})
            cells.append(f"{_ms(pc.get(k), '.2f')} ({_f(pooled.get(k), '.2f')})")
        L.append(f"| {c} | " + " | ".join(cells) + " |")
    L += [
        "",
        "## Model cost per fold (mean ± std)",
        "",
        "| arch | flatbuffer bytes | arena bytes | MACs | int8 macro-F1 drop | TFLM parity mismatches |",
        "|---|---|---|---|---|---|",
    ]
    for arch, a in cv.get("archs", {}).items():
        sm = a.get("summary", {})
        L.append(
            f"| {arch} | {_ms(sm.get('model_bytes'), '.0f')} | {_ms(sm.get('arena_bytes'), '.0f')} | "
            f"{_ms(sm.get('macs'), '.0f')} | {_ms(sm.get('int8_macro_f1_drop'), '.4f')} | "
            f"{_ms(sm.get('parity_mismatches'), '.1f')} |"
        )
    L.append("")
    figures = dict(figures or {})
    timelines = {n: p for n, p in figures.items() if n.startswith("scene timeline")}
    confusions = {n: p for n, p in figures.items() if n not in timelines}
    if confusions:
        L += ["## Pooled confusion matrices (node)", ""]
        for name, p in confusions.items():
            L += [f"![{name}]({p.name})", ""]
    L += scenes_markdown(cv, timelines)
    return "\n".join(L)


def scenes_markdown(cv: dict, timelines: dict | None = None) -> list[str]:
    """The scene benchmark section (summary["scenes"] per architecture, training.scene_eval's
    figures pooled over the test folds); nothing when the JSON has none."""
    archs = {
        a: x["summary"]["scenes"]
        for a, x in cv.get("archs", {}).items()
        if (x.get("summary") or {}).get("scenes")
    }
    if not archs:
        return []
    st = cv.get("scenes") or {}
    ebrs = next(iter(archs.values()))["ebrs_db"]
    L = [
        "## Scene benchmark (held-out folds, through the node)",
        "",
        "Each test fold's model as deployed (int8 model on the C features, the node's gate, "
        "thresholds and decision logic; one fresh node per file) on that fold's scenes: target "
        "events pasted into real background recordings at event-to-background ratios of "
        + ", ".join(f"{e} dB" for e in ebrs)
        + (
            f" ({st['per_ebr']} per class and EBR per fold where the fold has the clips)"
            if "per_ebr" in st
            else ""
        )
        + ", with hard negatives between them; and on negative streams of the fold's everyday "
        "sounds"
        + (f" ({st['stream_minutes']:g} min per fold)" if "stream_minutes" in st else "")
        + ", where every target event is a false alarm. Event-based scores (sed_eval, onsets only) "
        "against the audible onsets, pooled over the folds (training.scenes, training.scene_eval)."
        + (
            f" Node settings: {', '.join(f'{k}={v}' for k, v in st['node_kw'].items())}."
            if st.get("node_kw")
            else ""
        ),
        "",
        "| arch | event F1 200 ms | error rate 200 ms | event F1 500 ms | error rate 500 ms | events "
        "| gate recall | window recall | onset latency median / p90 (ms) | false alarms / h (streams) "
        "| false alarms / h (background) | inference duty scenes / streams / background |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a, sm in archs.items():
        c2, c5, lat, strm, d = (
            sm["collars"]["200ms"],
            sm["collars"]["500ms"],
            sm["onset_latency_ms"],
            sm["streams"],
            sm["inference_duty"],
        )
        L.append(
            f"| {a} | {_f(c2['event_f1'])} | {_f(c2['event_error_rate'])} | {_f(c5['event_f1'])} | "
            f"{_f(c5['event_error_rate'])} | {sm['n_target_events']} | {_f(sm['gate_recall'])} | "
            f"{_f(sm['window_recall'])} | {_f(lat['median'], '.0f')} / {_f(lat['p90'], '.0f')} | "
            f"{_f(strm['false_alarms_per_hour'], '.1f')} | "
            f"{_f(strm['false_alarms_per_hour_background'], '.1f')} | "
            f"{_f(d['scenes'], '.2f')} / {_f(d['streams'], '.2f')} / {_f(d['streams_background'], '.2f')} |"
        )
    L += [
        "",
        "Event F1 (200 ms) per fold: "
        + "; ".join(
            f"{a} "
            + ", ".join(f"fold {k} {_f(v)}" for k, v in zip(sm["folds"], sm["event_f1_per_fold"]))
            for a, sm in archs.items()
        )
        + ".",
        "",
    ]
    for a, sm in archs.items():
        r = sm["recall_per_ebr"]["200ms"]
        pc2, pc5 = sm["collars"]["200ms"]["per_class"], sm["collars"]["500ms"]["per_class"]
        L += [
            f"### {a}: recall per class and EBR (200-ms collar), per-class scores, false alarms",
            "",
            "| class | "
            + " | ".join(f"recall {e} dB" for e in ebrs)
            + " | F1 200 ms | recall 200 ms "
            "| F1 500 ms | events | false alarms / h (streams) |",
            "|---" * (6 + len(ebrs)) + "|",
        ]
        for c in sm["labels"]:
            L.append(
                f"| {c} | "
                + " | ".join(
                    f"{_f(r[e]['per_class'].get(c), '.2f')} (n={sm_n(sm, e, c)})" for e in ebrs
                )
                + f" | {_f(pc2[c]['f1'], '.2f')} | {_f(pc2[c]['recall'], '.2f')} | {_f(pc5[c]['f1'], '.2f')} "
                f"| {pc2[c]['Nref']} | {_f(sm['streams']['per_class'].get(c), '.1f')} |"
            )
        L.append(
            "| all | "
            + " | ".join(f"{_f(r[e]['recall'], '.2f')} (n={r[e]['Nref']})" for e in ebrs)
            + f" | {_f(sm['collars']['200ms']['event_f1'], '.2f')} | "
            f"{_f(sm['collars']['200ms']['recall'], '.2f')} | {_f(sm['collars']['500ms']['event_f1'], '.2f')} "
            f"| {sm['n_target_events']} | {_f(sm['streams']['false_alarms_per_hour'], '.1f')} |"
        )
        L.append(
            "| gate open | "
            + " | ".join(_f(sm["gate_recall_per_ebr"].get(e), ".2f") for e in ebrs)
            + " | | | | | |"
        )
        neg = sm.get("negatives_in_scenes") or {}
        src = list((sm["streams"].get("by_source") or {}).items())[:5]
        L += [
            "",
            f"Streams: {sm['streams']['seconds'] / 3600:.2f} h ({sm['streams']['background_seconds'] / 3600:.2f} h "
            f"of background), {sm['streams']['false_alarms']} false alarms"
            + (" (most under " + ", ".join(f"{k} {v}" for k, v in src) + ")" if src else "")
            + f". Hard negatives in the scenes that triggered a target event: {neg.get('triggered', 0)} of "
            f"{neg.get('events', 0)}.",
            "",
        ]
    if timelines:
        L += [
            "### One scene per fold",
            "",
            "Waveform and spectrogram; events as spans coloured by class (light: pasted, dark: audible; "
            "hatched: missed; grey: hard negatives); the node's detections as lines (solid: hit at the "
            "200-ms collar, dashed red: false).",
            "",
        ]
        for name, p in timelines.items():
            L += [f"![{name}]({p.name})", ""]
    return L


def sm_n(sm: dict, ebr: str, label: str) -> int:
    """Ground-truth events of a class at an EBR (from the pooled raw counts)."""
    return sm["recall_per_ebr"]["200ms"][ebr].get("Nref_per_class", {}).get(label, 0)


def scene_timelines(cv: dict, out_dir: Path, stem: str) -> dict:
    """One timeline PNG per architecture and fold (training.scenes.plot_timeline) from the
    fold's `timeline` entry and its scene WAV.  The report names the PNG whenever the JSON has a
    timeline, so the Markdown depends on the JSON alone; the PNG is drawn only where the fold's
    scene set is on disk (a clone without build/ keeps the committed PNG)."""
    from tools.node import audio
    from training import scenes

    figs = {}
    for arch, a in cv.get("archs", {}).items():
        for f in a.get("folds", []):
            t = (f.get("scenes") or {}).get("timeline")
            if not t:
                continue
            k = f.get("test_fold", f["scenes"].get("fold"))
            png = out_dir / f"{stem}_scene_{arch}_fold{k}.png"
            figs[f"scene timeline {arch} fold {k}"] = png
            sset = f["scenes"].get("scene_set")
            try:
                pcm = audio.load(Path(sset) / t["scene"]) if sset else None
            except (audio.AudioError, OSError):
                pcm = None
            if pcm is not None:
                scenes.plot_timeline(
                    pcm,
                    t["events"],
                    f["scenes"]["labels"],
                    png,
                    f"{arch}, fold {k}: {t['scene']} (bed {t['bed_dbfs']:.1f} dBFS)",
                    t["detections"],
                )
    return figs


def write_crossval(cv: dict, md_path, baselines: dict | None = None) -> list[Path]:
    """<md_path> plus one pooled node confusion PNG per architecture next to it, and one scene
    timeline PNG per architecture and fold where the JSON has a scene section and the fold's
    scene set is on disk."""
    md_path = Path(md_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    figures = {}
    for arch, a in cv.get("archs", {}).items():
        conf = a.get("summary", {}).get("node", {}).get("pooled", {}).get("confusion")
        if conf:
            figures[f"{arch}, node, pooled"] = confusion_png(
                conf,
                f"{arch} node: confusion over all test folds (clips)",
                md_path.parent / f"{md_path.stem}_confusion_{arch}.png",
            )
    figures.update(scene_timelines(cv, md_path.parent, md_path.stem))
    md_path.write_text(crossval_markdown(cv, baselines, figures) + "\n")
    return [md_path, *figures.values()]


def _read_json(path: Path, *keys) -> dict:
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"not readable JSON ({e})") from None
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"no '{missing[0]}' key: not the expected result file")
    return d


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m training.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "json",
        type=Path,
        nargs="?",
        help="an evaluation JSON (python -m training.evaluate --json-out)",
    )
    ap.add_argument(
        "--crossval",
        type=Path,
        metavar="JSON",
        help="instead: a `python -m training crossval` JSON -> Markdown (see --out)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        metavar="MD",
        help="with --crossval: the Markdown to write (default: next to the JSON)",
    )
    ap.add_argument(
        "--baselines",
        type=Path,
        metavar="JSON",
        help="python -m training.baselines output on the same clips/folds",
    )
    ap.add_argument("--fold", metavar="K", help="which fold of --baselines (default: its only one)")
    args = ap.parse_args(argv)
    if (args.json is None) == (args.crossval is None):
        print("error: give an evaluation JSON or --crossval JSON (one of them)", file=sys.stderr)
        return 2
    b = None
    if args.baselines:
        try:
            b = _read_json(args.baselines, "folds")
        except ValueError as e:
            print(f"error: {args.baselines}: {e}", file=sys.stderr)
            return 2
    if args.crossval:
        try:
            cv = _read_json(args.crossval, "archs")
        except ValueError as e:
            print(f"error: {args.crossval}: {e}", file=sys.stderr)
            return 2
        for p in write_crossval(cv, args.out or args.crossval.with_suffix(".md"), b):
            print(f"wrote {p}")
        return 0
    base = None
    if b is not None:
        folds = b["folds"]
        if args.fold is None and len(folds) != 1:
            print(
                f"error: {args.baselines}: holds folds {', '.join(folds)}: choose one with --fold",
                file=sys.stderr,
            )
            return 2
        key = args.fold if args.fold is not None else next(iter(folds))
        if key not in folds:
            print(
                f"error: {args.baselines}: no fold {key} (has {', '.join(folds)})", file=sys.stderr
            )
            return 2
        base = folds[key]
    try:
        res = _read_json(args.json, "node", "classifier", "classes", "model_sha256")
    except ValueError as e:
        print(f"error: {args.json}: {e}", file=sys.stderr)
        return 2
    for p in write(res, args.json, base):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
