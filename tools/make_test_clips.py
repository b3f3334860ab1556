"""Cut the small, redistributable real clips in tests/audio/ from the shared development corpus.

The test suite must run from a fresh clone, which has no /work/shared.  So a dozen short real
clips are shipped in the repository, and this script reproduces them exactly from the shared
corpus: an explicit list of source files and trim offsets (below), copied sample for sample
(the shared FLACs are already 16 kHz mono 16-bit PCM, so nothing is resampled, scaled or
dithered; a WAV here holds the very int16 values of its source segment).

Only clips whose licence allows redistribution are used:
  * SESA (CC BY 4.0),
  * ESC-10 / ESC-50 clips whose own Freesound licence is CC0 or CC BY
    (never CC BY-NC or Sampling+; ESC-50 as a whole is CC BY-NC, its single clips keep
    the licence of their Freesound source).
Never DCASE 2016, screams_devi, glassbreak_ei or UrbanSound8K (no or non-commercial licence).

Event clips start about 0.5 s before the event's onset (where the source allows), so that a
detector sees some background before the event; background clips are 4 s of steady sound.

    python -m tools.make_test_clips                 # write tests/audio/*.wav, manifest, credits
    python -m tools.make_test_clips --check         # verify the shipped files, write nothing
    python -m tools.make_test_clips --data DIR      # corpus root (default: $EW_SHARED_DATA or
                                                    #   /work/shared/data)
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

if __package__ in (None, ""):  # `python tools/make_test_clips.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.node import params  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "tests" / "audio"
DEFAULT_DATA = Path(os.environ.get("EW_SHARED_DATA", "/work/shared/data"))
SAMPLE_RATE = params.default().sample_rate_hz
BLOCK = 256  # 16 ms: the core's hop / gate block
MAX_CLIP_S = 4.0
MAX_TOTAL_BYTES = 1_500_000
MANIFEST_FIELDS = [
    "path",
    "label",
    "source_label",
    "fold",
    "duration_s",
    "source",
    "licence",
    "source_path",
    "offset_s",
]
# Licences a clip may carry to be shipped (the `licence` column of the shared metadata).
SESA_LICENCE_PREFIX = "CC BY 4.0 (SESA"
FREESOUND_OK = ("CC0", "CC-BY")


@dataclass(frozen=True)
class Clip:
    name: str  # file name under tests/audio/
    source_path: str  # relative to the shared data root
    offset_s: float  # start of the segment in the source
    duration_s: float  # length of the segment
    kind: str  # "event" or "background"
    note: str  # what is in the segment (checked by eye with --check's report)


# The selection.  Offsets: event onset (first 16 ms block 15 dB above the lead-in) minus 0.5 s,
# or 0 where the source has less lead-in than that.
CLIPS: tuple[Clip, ...] = (
    Clip(
        "gunshot_1.wav",
        "sesa/gunshot/train_gunshot_002.flac",
        0.43,
        3.0,
        "event",
        "one shot at 0.50 s, short decay; 8-bit source, quiet parts are mostly exact zeros",
    ),
    Clip(
        "gunshot_2.wav",
        "sesa/gunshot/train_gunshot_062.flac",
        0.19,
        4.0,
        "event",
        "two shots, at 0.50 s and 3.51 s, with reverberant tails",
    ),
    Clip(
        "fireworks_explosion_1.wav",
        "sesa/fireworks_explosion/train_explosion_001.flac",
        0.72,
        3.0,
        "event",
        "explosion at 0.50 s, long decay",
    ),
    Clip(
        "fireworks_explosion_2.wav",
        "sesa/fireworks_explosion/train_explosion_048.flac",
        0.14,
        3.0,
        "event",
        "explosion at 0.50 s followed by rumble",
    ),
    Clip(
        "glass_breaking_1.wav",
        "esc50/glass_breaking/4-212698-A-39.flac",
        0.0,
        3.0,
        "event",
        "bottle breaking at 0.46 s; digital silence (ESC zero padding) from 2.33 s",
    ),
    Clip(
        "other_door_wood_knock_1.wav",
        "esc50/other/4-261068-A-30.flac",
        0.33,
        3.0,
        "event",
        "four aggressive bangs on a door from 0.50 s; near-silent lead-in (-90 dBFS)",
    ),
    Clip(
        "siren_1.wav",
        "sesa/siren/train_siren_003.flac",
        0.30,
        4.0,
        "event",
        "wail siren starting at 0.50 s, rising sweep ~700-1500 Hz",
    ),
    Clip(
        "baby_cry_1.wav",
        "esc10/baby_cry/2-66637-A.flac",
        0.32,
        4.0,
        "event",
        "crying from 0.50 s, several bursts",
    ),
    Clip(
        "dog_bark_1.wav",
        "esc10/dog_bark/3-170015-A.flac",
        0.73,
        3.0,
        "event",
        "a single bark at 0.50 s; digital silence (ESC zero padding) from 2.65 s",
    ),
    Clip(
        "background_rain_1.wav",
        "esc10/background/1-50060-A.flac",
        0.58,
        4.0,
        "background",
        "steady rain",
    ),
    Clip(
        "background_sea_waves_1.wav",
        "esc50/background/4-182613-A-11.flac",
        0.0,
        4.0,
        "background",
        "sea waves on a beach",
    ),
    Clip(
        "background_engine_1.wav",
        "esc50/background/4-186936-A-44.flac",
        0.19,
        4.0,
        "background",
        "idling engine",
    ),
)


def load_metadata(data: Path) -> dict[str, dict[str, str]]:
    with open(data / "all_metadata.csv", newline="", encoding="utf-8") as fp:
        return {row["path"]: row for row in csv.DictReader(fp)}


def licence_ok(row: dict[str, str]) -> bool:
    """True when the clip may be redistributed (see the module docstring)."""
    corpus = row["path"].split("/", 1)[0]
    lic = row["licence"]
    if corpus == "sesa":
        return lic.startswith(SESA_LICENCE_PREFIX)
    if corpus in ("esc10", "esc50"):
        m = re.search(r"clip:\s*(\S+)\s+-", lic)
        return bool(m) and m.group(1) in FREESOUND_OK
    return False


def freesound_credit(licence: str) -> dict[str, str] | None:
    """Split an ESC licence string into Freesound licence, title, author and URL."""
    m = re.search(r"clip:\s*(\S+)\s+-\s+'(.*)'\s+by\s+(.+?)\s+\((https?://[^)]+)\)\s*$", licence)
    if not m:
        return None
    return {"licence": m.group(1), "title": m.group(2), "author": m.group(3), "url": m.group(4)}


def block_db(x: np.ndarray) -> np.ndarray:
    """Mean-square power of 16 ms blocks in dBFS (int16 full scale = 0 dB)."""
    n = len(x) // BLOCK
    b = x[: n * BLOCK].astype(np.float64).reshape(n, BLOCK) / 32768.0
    return 10.0 * np.log10(np.mean(b * b, axis=1) + 1e-12)


def cut(clip: Clip, data: Path) -> np.ndarray:
    x, sr = sf.read(data / clip.source_path, dtype="int16", always_2d=False)
    if sr != SAMPLE_RATE or x.ndim != 1:
        raise ValueError(
            f"{clip.source_path}: expected {SAMPLE_RATE} Hz mono, got {sr} Hz {x.shape}"
        )
    start = round(clip.offset_s * SAMPLE_RATE)
    stop = start + round(clip.duration_s * SAMPLE_RATE)
    if stop > len(x):
        raise ValueError(
            f"{clip.source_path}: segment ends at {stop / sr:.3f} s, source is {len(x) / sr:.3f} s"
        )
    return x, x[start:stop].copy()


def check_segment(clip: Clip, src: np.ndarray, seg: np.ndarray) -> tuple[list[str], str]:
    """Look at the segment with numbers instead of ears; returns (problems, report line)."""
    problems = []
    peak = np.max(np.abs(seg.astype(np.int32)))
    peak_dbfs = 20 * np.log10(max(peak, 1) / 32768.0)
    p_seg, p_src = block_db(seg), block_db(src)
    k = int(np.argmax(p_seg))
    line = (
        f"{clip.name:30s} {clip.duration_s:4.1f} s  peak {peak_dbfs:6.1f} dBFS  "
        f"loudest 16 ms block at {k * BLOCK / SAMPLE_RATE:5.2f} s "
        f"({p_seg[k]:6.1f} dBFS; source max {p_src.max():6.1f})"
    )
    if clip.kind == "event":
        lead = p_seg[: max(1, int(0.25 * SAMPLE_RATE / BLOCK))]
        onset = int(np.argmax(p_seg > np.median(lead) + 15.0))
        line += f"  onset {onset * BLOCK / SAMPLE_RATE:4.2f} s"
        if p_seg.max() < p_src.max() - 6.0:
            problems.append("the segment misses the loudest part of the source (> 6 dB below)")
        if p_seg.max() < np.median(lead) + 15.0:
            problems.append("no event 15 dB above the lead-in")
        if not 0.25 <= onset * BLOCK / SAMPLE_RATE <= 1.0:
            problems.append(f"onset at {onset * BLOCK / SAMPLE_RATE:.2f} s, expected ~0.5 s")
    else:
        # steadiness on the gate's time scale: power over 0.256 s (16 blocks), s.d. in dB
        m = len(p_seg) // 16
        slow = 10.0 * np.log10(np.mean(10.0 ** (p_seg[: m * 16] / 10.0).reshape(m, 16), axis=1))
        spread = float(np.std(slow))
        line += f"  0.256 s power s.d. {spread:3.1f} dB (16 ms: {np.std(p_seg):3.1f} dB)"
        if spread > 3.0:
            problems.append(f"background not steady (0.256 s power s.d. {spread:.1f} dB)")
    if clip.duration_s > MAX_CLIP_S:
        problems.append(f"longer than {MAX_CLIP_S} s")
    return problems, line


def wav_bytes(seg: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, seg, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def manifest_text(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def attribution_text(rows: list[dict[str, str]]) -> str:
    out = [
        "# Audio clips in tests/audio: sources and credits",
        "",
        "These short clips let the test suite run on real audio without the development corpus.",
        "Each is a segment cut from a clip of a public dataset; `tools/make_test_clips.py` "
        "reproduces them exactly and `manifest.csv` gives source file and offset for each.",
        "",
        "**Modifications.** The shared corpus converted the originals to 16 kHz mono 16-bit PCM "
        "(channels averaged, resampled with soxr VHQ; a file whose peak exceeded 0.999 after "
        "resampling was scaled down as a whole; SESA's sources are already 16 kHz but 8-bit, so "
        "they were only re-encoded). From that, each clip here was **trimmed** to "
        "the segment given below (at most 4 s) and written as WAV. Nothing else was changed.",
        "",
        "## Datasets",
        "",
        "* **SESA** - Sound Events for Surveillance Applications, Tito Spadini, 2019, Zenodo, "
        "doi:10.5281/zenodo.3519845. Licence: CC BY 4.0 "
        "(https://creativecommons.org/licenses/by/4.0/). SESA gives no per-clip Freesound credits.",
        '* **ESC-10** - K. J. Piczak, "ESC: Dataset for Environmental Sound Classification", '
        "Proc. ACM Multimedia 2015, doi:10.1145/2733373.2806390 "
        "(https://github.com/karoldvl/ESC-10). Licence: CC BY 3.0 "
        "(https://creativecommons.org/licenses/by/3.0/); each clip also carries the licence of "
        "its Freesound source (below).",
        "* **ESC-50** - K. J. Piczak, ESC-50 (https://github.com/karolpiczak/ESC-50, "
        "doi:10.7910/DVN/YDEPUT). The dataset as a whole is CC BY-NC 3.0; only clips whose own "
        "Freesound licence is CC0 or CC BY are used here, and they are redistributed under that "
        "licence, with the credit below.",
        "",
        "Freesound licences: CC0 = https://creativecommons.org/publicdomain/zero/1.0/ ; "
        "CC-BY = Creative Commons Attribution (see the sound's Freesound page for the version).",
        "",
        "## Clips",
        "",
        "| file | label | source file (shared corpus) | segment of the source | licence | "
        "Freesound credit (title, author, URL) | content |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = {c.name: c.note for c in CLIPS}
    for r in rows:
        corpus = r["source_path"].split("/", 1)[0]
        start = float(r["offset_s"])
        seg = f"{start:.2f}-{start + float(r['duration_s']):.2f} s"
        cred = freesound_credit(r["licence"])
        if cred:
            lic = f"{cred['licence']} (Freesound)" + (
                "; ESC-10 CC BY 3.0" if corpus == "esc10" else ""
            )
            who = f"'{cred['title'].strip()}' by {cred['author']}, {cred['url']}"
        else:
            lic, who = "CC BY 4.0 (SESA)", "n/a (SESA, Tito Spadini)"
        label = r["label"] + (
            f" ({r['source_label']})" if r["label"] in ("other", "background") else ""
        )
        out.append(
            f"| {r['path']} | {label} | {r['source_path']} | {seg} | {lic} | {who} | "
            f"{notes[r['path']]} |"
        )
    out.append("")
    return "\n".join(out)


def build(data: Path) -> tuple[dict[str, bytes], list[str], list[str]]:
    """All output files as bytes, the per-clip report and any problems found."""
    meta = load_metadata(data)
    files: dict[str, bytes] = {}
    rows, report, problems = [], [], []
    for clip in CLIPS:
        row = meta.get(clip.source_path)
        if row is None:
            raise KeyError(f"{clip.source_path} is not in all_metadata.csv")
        if not licence_ok(row):
            raise ValueError(
                f"{clip.source_path}: licence does not allow redistribution: {row['licence']}"
            )
        src, seg = cut(clip, data)
        probs, line = check_segment(clip, src, seg)
        report.append(f"{line}  [{clip.note}]")
        problems += [f"{clip.name}: {p}" for p in probs]
        files[clip.name] = wav_bytes(seg)
        rows.append(
            {
                "path": clip.name,
                "label": row["label"],
                "source_label": row["source_label"],
                "fold": row["fold"],
                "duration_s": str(round(len(seg) / SAMPLE_RATE, 3)),
                "source": row["source"],
                "licence": row["licence"],
                "source_path": clip.source_path,
                "offset_s": str(round(clip.offset_s, 3)),
            }
        )
    files["manifest.csv"] = manifest_text(rows).encode()
    files["ATTRIBUTION.md"] = attribution_text(rows).encode()
    total = sum(len(b) for n, b in files.items() if n.endswith(".wav"))
    report.append(f"total WAV size {total} bytes ({total / 1e6:.3f} MB)")
    if total >= MAX_TOTAL_BYTES:
        problems.append(f"total WAV size {total} bytes >= {MAX_TOTAL_BYTES}")
    return files, report, problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared corpus root")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    ap.add_argument(
        "--check",
        action="store_true",
        help="compare with the files in --out instead of writing them",
    )
    args = ap.parse_args(argv)
    if not (args.data / "all_metadata.csv").is_file():
        print(f"no corpus at {args.data} (set --data or EW_SHARED_DATA)", file=sys.stderr)
        return 2
    files, report, problems = build(args.data)
    print("\n".join(report))
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    if problems:
        return 1
    if args.check:
        stale = sorted(
            n
            for n, b in files.items()
            if not (args.out / n).is_file() or (args.out / n).read_bytes() != b
        )
        extra = sorted(p.name for p in args.out.glob("*.wav") if p.name not in files)
        for n in stale:
            print(f"differs or missing: {args.out / n}", file=sys.stderr)
        for n in extra:
            print(f"not produced by this script: {args.out / n}", file=sys.stderr)
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (args.out / name).write_bytes(blob)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
