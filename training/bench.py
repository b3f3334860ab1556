"""Benchmark figures of the shipped model, read from the committed artefacts (no training):
firmware/model/manifest.json (size, arena, MACs, int8 drop, parity) and
firmware/model/crossval.json (node macro-F1 over held-out folds; the gate ceiling: what a
perfect model behind the node's gate would score on them).

    from training import bench
    bench.bench() -> {"model_flash_bytes": ..., "model_arena_bytes": ..., "model_macs": ...,
                      "int8_macro_f1_drop": ..., "tflm_parity_mismatches": ...,
                      "crossval_node_macro_f1": ...}
Missing artefacts give None for the keys they would provide.  The scene benchmark over the
held-out folds (crossval.json's summary["scenes"]): crossval_scene_event_f1 (200-ms onset
collar), crossval_scene_event_f1_500ms, crossval_scene_recall_by_ebr {"-6", "0", "6": recall,
200 ms}, crossval_scene_gate_recall, crossval_scene_onset_latency_ms_p90,
crossval_stream_fa_per_hour (negative streams), crossval_background_fa_per_hour (their
background segments), crossval_stream_inference_duty; null with the reason under
_skipped["crossval_scene"] when the JSON has none.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.node import params

MODEL_DIR = params.MODEL_DIR


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bench(model_dir=None) -> dict:
    d = Path(model_dir) if model_dir else MODEL_DIR
    m = _read(d / "manifest.json") or {}
    cv = _read(d / "crossval.json") or {}
    tr = m.get("training", {})
    out = {
        "model_flash_bytes": m.get("model_bytes"),
        "model_arena_bytes": m.get("arena_bytes"),
        "model_macs": m.get("macs"),
        "int8_macro_f1_drop": tr.get("int8", {}).get("macro_f1_drop"),
        "tflm_parity_mismatches": tr.get("parity", {}).get("mismatches"),
        "crossval_node_macro_f1": None,
    }
    arch = (tr.get("train") or {}).get("arch", "ds_cnn")
    s = cv.get("archs", {}).get(arch, {}).get("summary", {})
    f1 = s.get("node", {}).get("macro_f1", {})
    if f1.get("mean") is not None:
        out["crossval_node_macro_f1"] = f1["mean"]
        out["crossval_node_macro_f1_std"] = f1.get("std")
        g = s.get("gunshot_recall_node") or {}
        out["crossval_node_gunshot_recall"] = g.get("mean")
    room = s.get("node_room", {}).get("macro_f1", {})
    if room.get("mean") is not None:  # the room >= 20 dB below each clip's peak
        out["crossval_node_macro_f1_room"] = room["mean"]
        out["crossval_node_macro_f1_room_std"] = room.get("std")
        out["crossval_node_gunshot_recall_room"] = (s.get("gunshot_recall_node_room") or {}).get(
            "mean"
        )
    ceil = s.get("gate_ceiling", {})
    if (ceil.get("macro_f1") or {}).get("mean") is not None:  # a perfect model behind the gate
        out["crossval_gate_ceiling_macro_f1"] = ceil["macro_f1"]["mean"]
        out["crossval_gate_ceiling_macro_f1_pooled"] = (ceil.get("pooled") or {}).get("macro_f1")
    out.update(scene_figures(s))
    return out


SCENE_KEYS = (
    "crossval_scene_event_f1",
    "crossval_scene_event_f1_500ms",
    "crossval_scene_recall_by_ebr",
    "crossval_scene_gate_recall",
    "crossval_scene_onset_latency_ms_p90",
    "crossval_stream_fa_per_hour",
    "crossval_background_fa_per_hour",
    "crossval_stream_inference_duty",
)


def scene_figures(summary: dict) -> dict:
    """The scene benchmark pooled over the held-out folds (summary["scenes"] of the crossval
    JSON, training.scene_eval.summarise): every key null, with the reason under
    _skipped["crossval_scene"], when the JSON has no scene section (None there otherwise)."""
    sm = summary.get("scenes")
    if not sm:
        return {
            **{k: None for k in SCENE_KEYS},
            "_skipped": {
                "crossval_scene": "the crossval JSON has no scene section (python -m "
                "training crossval --scenes-only re-scores the fold models)"
            },
        }
    return {
        "_skipped": {"crossval_scene": None},
        "crossval_scene_event_f1": sm["collars"]["200ms"]["event_f1"],
        "crossval_scene_event_f1_500ms": sm["collars"]["500ms"]["event_f1"],
        "crossval_scene_recall_by_ebr": {
            e: v["recall"] for e, v in sm["recall_per_ebr"]["200ms"].items()
        },
        "crossval_scene_gate_recall": sm["gate_recall"],
        "crossval_scene_onset_latency_ms_p90": sm["onset_latency_ms"]["p90"],
        "crossval_stream_fa_per_hour": sm["streams"]["false_alarms_per_hour"],
        "crossval_background_fa_per_hour": sm["streams"]["false_alarms_per_hour_background"],
        "crossval_stream_inference_duty": sm["inference_duty"]["streams"],
    }


if __name__ == "__main__":
    print(json.dumps(bench(), indent=1))
