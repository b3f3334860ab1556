"""Build the shipped reference scenes for `make demo` / HIL from the shipped clips, exactly.

    python -m tools.make_scenes            # writes tests/audio/scenes/*
    python -m tools.make_scenes --check    # exit 1 if the shipped files differ from a rebuild

Two 24-s scenes mix event clips of tests/audio (SESA / ESC excerpts, CC BY 4.0 / CC0, see
tests/audio/ATTRIBUTION.md) into a bed of the shipped background clips, at known times:

  street.wav  bed: idling engine and rain, cross-faded in turn, at -35 dBFS RMS
              gunshot_1 @ 2.0 s, siren_1 @ 6.0 s, glass_breaking_1 @ 12.0 s,
              fireworks_explosion_2 @ 17.0 s
  home.wav    bed: sea waves and rain, cross-faded in turn, at -38 dBFS RMS
              baby_cry_1 @ 1.5 s, dog_bark_1 @ 7.0 s, gunshot_2 @ 11.0 s (two shots),
              other_door_wood_knock_1 @ 17.0 s (label other: never scored), fireworks_explosion_1
              @ 20.5 s

Event clips keep their level; each gets a 0.25 s fade in and out so that the clip's own
background does not start abruptly.  Ground truth: every event clip has its event at the clip
time given in ATTRIBUTION.md (0.50 s; gunshot_2 also 3.51 s); the offset is the last 16-ms block
within 30 dB of the clip's peak before the next event of the clip.

Outputs (tests/audio/scenes/): street.wav, home.wav, scenes.csv (scene relative to this
folder), truth.csv (ground truth for `--root tests/audio`: the two scenes and every shipped
event clip; scene,onset_s,offset_s,label,source), ATTRIBUTION.md.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.node import audio, params

SR = params.default().sample_rate_hz
CLIPS = params.ROOT / "tests" / "audio"
OUT = CLIPS / "scenes"
SCENE_S = 24.0
FADE_S = 0.25
BLOCK = 256

# clip -> (label, event onsets inside the clip, s)
EVENT_CLIPS = {
    "gunshot_1.wav": ("gunshot", [0.50]),
    "gunshot_2.wav": ("gunshot", [0.50, 3.51]),
    "fireworks_explosion_1.wav": ("fireworks_explosion", [0.50]),
    "fireworks_explosion_2.wav": ("fireworks_explosion", [0.50]),
    "glass_breaking_1.wav": ("glass_breaking", [0.50]),
    "other_door_wood_knock_1.wav": ("other", [0.50]),
    "siren_1.wav": ("siren", [0.50]),
    "baby_cry_1.wav": ("baby_cry", [0.50]),
    "dog_bark_1.wav": ("dog_bark", [0.50]),
}

SCENES = {
    "street.wav": {
        "bed": ["background_engine_1.wav", "background_rain_1.wav"],
        "bed_db": -35.0,
        "events": [
            ("gunshot_1.wav", 2.0),
            ("siren_1.wav", 6.0),
            ("glass_breaking_1.wav", 12.0),
            ("fireworks_explosion_2.wav", 17.0),
        ],
    },
    "home.wav": {
        "bed": ["background_sea_waves_1.wav", "background_rain_1.wav"],
        "bed_db": -38.0,
        "events": [
            ("baby_cry_1.wav", 1.5),
            ("dog_bark_1.wav", 7.0),
            ("gunshot_2.wav", 11.0),
            ("other_door_wood_knock_1.wav", 17.0),
            ("fireworks_explosion_1.wav", 20.5),
        ],
    },
}


def event_spans(name: str, x: np.ndarray) -> list[tuple[float, float, str]]:
    """(onset, offset, label) of the events inside one shipped clip, clip time."""
    label, onsets = EVENT_CLIPS[name]
    lv = audio.block_levels_db(x, BLOCK)
    peak = lv.max()
    out = []
    for i, on in enumerate(onsets):
        end = onsets[i + 1] if i + 1 < len(onsets) else x.size / SR
        a, b = int(on * SR) // BLOCK, int(end * SR) // BLOCK
        loud = np.nonzero(lv[a:b] >= peak - 30.0)[0]
        off = (a + loud[-1] + 1) * BLOCK / SR if loud.size else on + BLOCK / SR
        out.append((on, round(min(off, end), 3), label))
    return out


def _xfade_concat(parts: list[np.ndarray], fade: int) -> np.ndarray:
    y = parts[0].astype(np.float64)
    r = np.linspace(0.0, 1.0, fade)
    for p in parts[1:]:
        p = p.astype(np.float64)
        y = np.concatenate([y[:-fade], y[-fade:] * (1 - r) + p[:fade] * r, p[fade:]])
    return y


def bed(names: list[str], level_db: float, n: int) -> np.ndarray:
    """Background clips, each scaled to level_db RMS, cross-faded in turn to n samples."""
    clips = []
    for nm in names:
        x = audio.load(CLIPS / nm).astype(np.float64)
        rms = np.sqrt(np.mean(x * x))
        clips.append(x * (32768.0 * 10 ** (level_db / 20) / rms))
    fade = int(0.5 * SR)
    parts, total, i = [], 0, 0
    while total < n + fade:
        c = clips[i % len(clips)]
        parts.append(c)
        total += c.size - fade
        i += 1
    return _xfade_concat(parts, fade)[:n]


def build_scene(spec: dict) -> tuple[np.ndarray, list[tuple[float, float, str, str]]]:
    n = int(SCENE_S * SR)
    y = bed(spec["bed"], spec["bed_db"], n)
    truth = []
    fade = int(FADE_S * SR)
    ramp = np.linspace(0.0, 1.0, fade)
    for name, at in spec["events"]:
        x = audio.load(CLIPS / name).astype(np.float64)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
        a = int(round(at * SR))
        m = min(x.size, n - a)
        y[a : a + m] += x[:m]
        for on, off, label in event_spans(name, audio.load(CLIPS / name)):
            truth.append((round(at + on, 3), round(at + off, 3), label, name))
    return np.clip(np.round(y), -32768, 32767).astype(np.int16), truth


ATTRIBUTION = """# Mixed reference scenes: sources and credits

`street.wav` and `home.wav` are built by `python -m tools.make_scenes` from the shipped clips in
`tests/audio` (see `../ATTRIBUTION.md` for each clip's dataset, licence and Freesound credit):
event clips mixed at known times into a bed of the shipped background clips (scaled, faded,
cross-faded: see the module docstring).  They are adaptations of those clips and carry their
licences: SESA excerpts CC BY 4.0 (Tito Spadini, doi:10.5281/zenodo.3519845); ESC-10/ESC-50
excerpts whose Freesound licence is CC0 (ESC-10 as a collection: CC BY 3.0, K. J. Piczak).

| scene | clips used |
|---|---|
{rows}

Ground truth: `scenes.csv` (scene relative to this folder) and `truth.csv` (relative to
`tests/audio`: the scenes plus the single clips).
"""


def build() -> dict[str, bytes]:
    """All output files, name -> bytes (deterministic)."""
    import soundfile as sf

    files: dict[str, bytes] = {}
    scene_rows, truth_rows, att = [], [], []
    for scene, spec in SCENES.items():
        y, truth = build_scene(spec)
        buf = io.BytesIO()
        sf.write(buf, y, SR, subtype="PCM_16", format="WAV")
        files[scene] = buf.getvalue()
        for on, off, label, src in truth:
            scene_rows.append([scene, on, off, label, src])
            truth_rows.append([f"scenes/{scene}", on, off, label, src])
        att.append(f"| {scene} | " + ", ".join(spec["bed"] + [e for e, _ in spec["events"]]) + " |")
    for name in sorted(EVENT_CLIPS):
        for on, off, label in event_spans(name, audio.load(CLIPS / name)):
            truth_rows.append([name, on, off, label, name])

    def table(rows) -> bytes:
        s = io.StringIO()
        w = csv.writer(s, lineterminator="\n")
        w.writerow(["scene", "onset_s", "offset_s", "label", "source"])
        w.writerows(rows)
        return s.getvalue().encode()

    files["scenes.csv"] = table(scene_rows)
    files["truth.csv"] = table(truth_rows)
    files["ATTRIBUTION.md"] = ATTRIBUTION.format(rows="\n".join(att)).encode()
    return files


def run(out: Path = OUT, check: bool = False) -> int:
    """The command's work (python -m tools.make_scenes): write the scene files to `out`, or
    (check) compare them with a rebuild: 1 if any differs."""
    files = build()
    if check:
        bad = [n for n, b in files.items() if not (out / n).exists() or (out / n).read_bytes() != b]
        if bad:
            print(
                f"make_scenes: {', '.join(bad)} differ from a rebuild: run "
                f"`python -m tools.make_scenes`",
                file=sys.stderr,
            )
            return 1
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for n, b in files.items():
        (out / n).write_bytes(b)
    print(f"wrote {', '.join(files)} to {out}")
    return 0
