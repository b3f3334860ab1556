"""python -m training data — download public corpora and convert them to the training layout.

    python -m training data --out data/            # every corpus of the table below
    python -m training data --out data/ esc50 fsdd # some of them
    python -m training ship --root data/            # train on the result

Each corpus is downloaded from its official source into OUT/downloads/ (resumable: an
interrupted download is kept as NAME.part and continued with an HTTP Range request), checked
against the checksum its publisher gives (a mismatch is refused and the file deleted), unpacked
and converted to the layout `python -m training` reads, the layout of ../shared/data:

    OUT/<corpus>/<label>/<clip>.flac     16 kHz mono 16-bit FLAC (channels averaged, soxr VHQ;
                                         a clip whose peak exceeds 0.999 after resampling is
                                         scaled down as a whole to 0.999)
    OUT/<corpus>/metadata.csv            path,label,source_label,fold,duration_s,source,licence
    OUT/all_metadata.csv                 every corpus in OUT, + a leading `corpus` column

with the label normalisation and fold rules of ../shared/data/README.md.  A re-run skips what
is already there (a verified archive is not downloaded again, a converted clip not converted
again) and rewrites all_metadata.csv from the corpora present in OUT.

Reproduced from an official source (see CORPORA):
  esc10         ESC-10 subset of ESC-50, folds 1-3       (GitHub karolpiczak/ESC-50)
  esc50         ESC-50 fold 4, every class               (same archive)
  urbansound8k  UrbanSound8K folds 1-3                   (Zenodo 10.5281/zenodo.1203745)
  fsdd          Free Spoken Digit Dataset, all clips     (GitHub Jakobovski/free-spoken-digit-dataset)
Not reproduced (no public source this tool can fetch and check, or the shared copy is a
hand-curated cut): sesa (Zenodo 10.5281/zenodo.3519845: download it by hand), donateacry,
dcase2016_task2, screams_devi, urbansound8k_subset, glassbreak_ei, room_sounds, knocks,
moodist, blanket.  Also not reproduced: the per-class subsampling for size and the clips
../shared/data removed after its fingerprint (duplicate / evaluation leakage) pass, so the
counts here are larger than there.

Exit status: 0 ok, 1 a download failed (offline, server error, checksum mismatch), 2 bad input.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.node.audio import CORPUS_COLUMNS as META_COLUMNS

SR = 16000
PEAK = 0.999
CHUNK = 1 << 20
USER_AGENT = "earwitness-training-data/1"


class DownloadError(Exception):
    """A download that failed for a reason outside the user's input (exit 1)."""


class DataError(Exception):
    """Bad input (exit 2)."""


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    size: int | None = None  # bytes, where known
    md5: str | None = None  # as published by the source (Zenodo publishes MD5s)
    sha256: str | None = None  # None: the source publishes none; the tool prints the
    # computed one so that a maintainer can pin it here


@dataclass(frozen=True)
class Clip:
    src: Path  # extracted original
    name: str  # output stem
    label: str  # normalised label
    source_label: str
    fold: int
    licence: str


@dataclass(frozen=True)
class Corpus:
    name: str
    title: str
    archive: Archive
    source: str  # `source` column
    clips: Callable[[Path, Corpus, tuple[int, ...] | None], Iterator[Clip]]
    folds: tuple[int, ...] | None  # folds kept by default (None: all)
    notes: str = ""


# ---------------------------------------------------------------- label maps (shared/data README)

ESC_LABELS = {
    "dog": "dog_bark",
    "crying_baby": "baby_cry",
    "glass_breaking": "glass_breaking",
    "clock_alarm": "alarm",
    "car_horn": "car_horn",
    # stationary ambience
    "rain": "background",
    "sea_waves": "background",
    "wind": "background",
    "crickets": "background",
    "insects": "background",
    "chirping_birds": "background",
    "crackling_fire": "background",
    "engine": "background",
    "airplane": "background",
    "helicopter": "background",
    "vacuum_cleaner": "background",
    "washing_machine": "background",
    "train": "background",
    "water_drops": "background",
}  # every other ESC-50 class -> other
ESC10_NAMES = {
    "dog": "Dog bark",
    "rooster": "Rooster",
    "rain": "Rain",
    "sea_waves": "Sea waves",
    "crackling_fire": "Fire crackling",
    "crying_baby": "Baby cry",
    "sneezing": "Person sneeze",
    "clock_tick": "Clock tick",
    "helicopter": "Helicopter",
    "chainsaw": "Chainsaw",
}
US8K_LABELS = {
    "gun_shot": "gunshot",
    "dog_bark": "dog_bark",
    "siren": "siren",
    "car_horn": "car_horn",
    "air_conditioner": "background",
    "engine_idling": "background",
    "drilling": "other",
    "jackhammer": "other",
    "children_playing": "other",
    "street_music": "other",
}
# Freesound ids moved to the fold of another corpus's clip of the same recording (README)
US8K_FOLD_OVERRIDES = {"114587": 2, "116400": 2, "180256": 3, "162431": 1}
US8K_EXCLUDE = {"102842-3-0-1"}  # labelled dog_bark, it is an owl
FSDD_FOLDS = {"george": 1, "jackson": 2, "lucas": 3, "nicolas": 4, "theo": 5, "yweweler": 1}


def hash_fold(key: str) -> int:
    """The shared/data fold of a group key without an own fold: md5 mod 5 + 1."""
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % 5 + 1


def _one_dir(root: Path, pattern: str) -> Path:
    hits = sorted(root.glob(pattern))
    if not hits:
        raise DataError(f"{root}: the archive does not contain {pattern} (not the expected layout)")
    return hits[0]


def _esc_rows(root: Path) -> Iterator[dict]:
    base = _one_dir(root, "ESC-50-*/meta/esc50.csv").parents[1]
    with open(base / "meta" / "esc50.csv", newline="") as f:
        for r in csv.DictReader(f):
            r["_src"] = base / "audio" / r["filename"]
            yield r


def esc10_clips(root, corpus, folds):
    for r in _esc_rows(root):
        if r["esc10"].strip().lower() != "true" or (folds and int(r["fold"]) not in folds):
            continue
        cat = r["category"]
        yield Clip(
            r["_src"],
            re.sub(r"-\d+$", "", Path(r["filename"]).stem),
            ESC_LABELS.get(cat, "other"),
            ESC10_NAMES.get(cat, cat),
            int(r["fold"]),
            f"CC BY 3.0 (ESC-10 subset); clip: Freesound sound {r['src_file']}",
        )


def esc50_clips(root, corpus, folds):
    for r in _esc_rows(root):
        if folds and int(r["fold"]) not in folds:
            continue
        cat = r["category"]
        yield Clip(
            r["_src"],
            Path(r["filename"]).stem,
            ESC_LABELS.get(cat, "other"),
            cat,
            int(r["fold"]),
            f"CC BY-NC 3.0 (ESC-50); clip: Freesound sound {r['src_file']}",
        )


def us8k_clips(root, corpus, folds):
    base = _one_dir(root, "*/metadata/UrbanSound8K.csv").parents[1]
    with open(base / "metadata" / "UrbanSound8K.csv", newline="") as f:
        for r in csv.DictReader(f):
            stem = Path(r["slice_file_name"]).stem
            if int(r["fold"]) not in (folds or range(1, 11)) or stem in US8K_EXCLUDE:
                continue
            fs_id = r["fsID"]
            yield Clip(
                base / "audio" / f"fold{r['fold']}" / r["slice_file_name"],
                stem,
                US8K_LABELS[r["class"]],
                r["class"],
                US8K_FOLD_OVERRIDES.get(fs_id, int(r["fold"])),
                f"CC BY-NC 3.0 (UrbanSound8K, Salamon, Jacoby & Bello 2014; Freesound sound {fs_id})",
            )


def fsdd_clips(root, corpus, folds):
    rec = _one_dir(root, "free-spoken-digit-dataset-*/recordings")
    for p in sorted(rec.glob("*.wav")):
        m = re.fullmatch(r"(\d)_([a-z]+)_(\d+)", p.stem)
        if not m:
            continue
        digit, speaker = m.group(1), m.group(2)
        fold = FSDD_FOLDS.get(speaker) or hash_fold(f"fsdd:{speaker}")
        if folds and fold not in folds:
            continue
        yield Clip(
            p,
            p.stem,
            "other",
            f"speech (spoken digit {digit}, speaker {speaker})",
            fold,
            "CC BY-SA 4.0 (Free Spoken Digit Dataset, Z. Jackson et al.)",
        )


ESC50_ARCHIVE = Archive(
    "https://github.com/karolpiczak/ESC-50/archive/refs/heads/master.zip",
    "ESC-50-master.zip",
    # GitHub publishes no checksum for its archives and `master` can move: the tool prints the
    # SHA-256 of what it downloaded; pin it here (or point the URL at a commit) to freeze it
    sha256=None,
)
FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"  # the commit shared/data used

CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus(
            "esc10",
            "ESC-10 (Piczak 2015), folds 1-3",
            ESC50_ARCHIVE,
            "karolpiczak/ESC-50 (GitHub archive, master; ESC-10 = the esc10 column)",
            esc10_clips,
            (1, 2, 3),
            "folds 4-5 are reserved for evaluation",
        ),
        Corpus(
            "esc50",
            "ESC-50 (Piczak 2015), fold 4",
            ESC50_ARCHIVE,
            "karolpiczak/ESC-50 (GitHub archive, master)",
            esc50_clips,
            (4,),
            "shared/data keeps only part of fold 4; the whole fold is taken here",
        ),
        Corpus(
            "urbansound8k",
            "UrbanSound8K (Salamon, Jacoby & Bello 2014), folds 1-3",
            Archive(
                "https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",
                "UrbanSound8K.tar.gz",
                size=6023741708,
                md5="9aa69802bbf37fb986f71ec1483a196e",
            ),  # Zenodo's published MD5
            "UrbanSound8K (Zenodo 10.5281/zenodo.1203745)",
            us8k_clips,
            (1, 2, 3),
            "folds 4-10 are reserved for evaluation; 6 GB download",
        ),
        Corpus(
            "fsdd",
            "Free Spoken Digit Dataset (speech negatives)",
            Archive(
                f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.zip",
                f"free-spoken-digit-dataset-{FSDD_COMMIT[:8]}.zip",
                sha256=None,
            ),
            f"Jakobovski/free-spoken-digit-dataset @ {FSDD_COMMIT[:8]} (recordings, 8 kHz originals)",
            fsdd_clips,
            None,
            "all 3000 recordings (shared/data keeps 12 per speaker)",
        ),
    )
}
NOT_REPRODUCED = (
    "sesa",
    "donateacry",
    "dcase2016_task2",
    "screams_devi",
    "urbansound8k_subset",
    "glassbreak_ei",
    "room_sounds",
    "knocks",
    "moodist",
    "blanket",
)


# ---------------------------------------------------------------- download


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _open(url: str, offset: int, timeout: float):
    """(response, total size or None, resumed?) for `url` from byte `offset`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":  # local mirror: Range by seeking
        path = Path(urllib.request.url2pathname(parts.path))
        try:
            f = open(path, "rb")
        except OSError as e:
            raise DownloadError(f"{url}: {e.strerror}") from None
        size = path.stat().st_size
        f.seek(min(offset, size))
        return f, size, offset > 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part is already complete
            return None, offset, True
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"cannot reach {parts.hostname} ({reason}); are you offline? "
            f"Nothing was changed, run the same command again when online"
        ) from None
    resumed = r.status == 206
    length = r.headers.get("Content-Length")
    total = (int(length) + (offset if resumed else 0)) if length else None
    return r, total, resumed


def download(
    archive: Archive, dest_dir: Path, quiet: bool = False, timeout: float = 60.0, log=print
) -> Path:
    """OUT/downloads/FILE, verified; resumes FILE.part.  Raises DownloadError."""
    from tqdm import tqdm

    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / archive.filename
    if dest.exists():
        verify(archive, dest, log)
        return dest
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    resp, total, resumed = _open(archive.url, offset, timeout)
    if resp is not None:
        if offset and not resumed:
            log(f"{archive.filename}: the server does not resume, starting again")
            offset = 0
        with (
            resp,
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=total or archive.size,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=archive.filename,
                disable=quiet,
                leave=False,
            ) as bar,
        ):
            if offset:
                log(f"{archive.filename}: resuming at {offset} bytes")
            try:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as e:
                raise DownloadError(
                    f"{archive.url}: download interrupted ({e}); "
                    f"run again to resume from {part.name}"
                ) from None
    verify(archive, part, log)
    part.rename(dest)
    return dest


def verify(archive: Archive, path: Path, log=print) -> None:
    """Size and published checksum; a file that does not match is deleted (DownloadError)."""
    problem = None
    if archive.size is not None and path.stat().st_size != archive.size:
        problem = f"{path.stat().st_size} bytes, expected {archive.size}"
    else:
        for algo in ("md5", "sha256"):
            want = getattr(archive, algo)
            if want is not None:
                got = _digest(path, algo)
                if got != want.lower():
                    problem = f"{algo} {got}, expected {want}"
                break
        else:
            log(
                f"{archive.filename}: sha256 {_digest(path, 'sha256')} "
                f"(the source publishes no checksum: pin this in training/corpus.py to freeze it)"
            )
    if problem:
        path.unlink()
        raise DownloadError(
            f"{archive.filename}: checksum mismatch ({problem}); the file was "
            f"deleted, run again to download it afresh"
        )


def extract(archive_path: Path, into: Path) -> Path:
    """Unpack once (a `.done` marker records a complete extraction)."""
    marker = into / ".done"
    if marker.exists():
        return into
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as z:
            for m in z.namelist():
                if m.startswith("/") or ".." in Path(m).parts:
                    raise DataError(f"{archive_path}: unsafe member {m}")
            z.extractall(into)
    else:
        with tarfile.open(archive_path) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # Python < 3.11.4: check the members by hand
                for m in t.getmembers():
                    if (
                        m.name.startswith("/")
                        or ".." in Path(m.name).parts
                        or m.issym()
                        or m.islnk()
                    ):
                        raise DataError(f"{archive_path}: unsafe member {m.name}")
                t.extractall(into)
    marker.touch()
    return into


# ---------------------------------------------------------------- conversion


def convert_clip(src: Path, dst: Path) -> float:
    """Write src as 16 kHz mono PCM_16 FLAC (shared/data rules); returns the duration in s."""
    import soundfile as sf

    x, sr = sf.read(str(src), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        import soxr

        x = soxr.resample(x, sr, SR, quality="VHQ")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > PEAK:
        x = x * (PEAK / peak)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.stem + ".tmp.flac")
    sf.write(str(tmp), x, SR, subtype="PCM_16", format="FLAC")
    os.replace(tmp, dst)
    return round(x.size / SR, 3)


def convert(corpus: Corpus, extracted: Path, out: Path, folds, quiet=False) -> int:
    """OUT/<corpus>/<label>/<clip>.flac + OUT/<corpus>/metadata.csv; returns the clip count."""
    import soundfile as sf
    from tqdm import tqdm

    clips = list(corpus.clips(extracted, corpus, folds))
    if not clips:
        raise DataError(f"{corpus.name}: no clips in the archive for folds {folds}")
    rows = []
    for c in tqdm(
        clips, desc=f"{corpus.name}: converting", unit="clip", disable=quiet, leave=False
    ):
        rel = f"{corpus.name}/{c.label}/{c.name}.flac"
        dst = out / rel
        if dst.exists():
            duration = round(sf.info(str(dst)).frames / SR, 3)
        else:
            if not c.src.exists():
                raise DataError(
                    f"{corpus.name}: {c.src.name} is listed in the metadata but missing"
                )
            duration = convert_clip(c.src, dst)
        rows.append(
            {
                "path": rel,
                "label": c.label,
                "source_label": c.source_label,
                "fold": c.fold,
                "duration_s": duration,
                "source": corpus.source,
                "licence": c.licence,
            }
        )
    rows.sort(key=lambda r: r["path"])
    with open(out / corpus.name / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, META_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def write_all_metadata(out: Path) -> int:
    """OUT/all_metadata.csv: every OUT/<corpus>/metadata.csv, + a leading corpus column.

    Paths become relative to OUT: a folder written by `python -m tools.record --out OUT/NAME`
    (paths relative to OUT/NAME, the same columns) is picked up as corpus NAME."""
    rows = []
    for meta in sorted(out.glob("*/metadata.csv")):
        name = meta.parent.name
        with open(meta, newline="") as f:
            rd = csv.DictReader(f)
            if rd.fieldnames is None or list(rd.fieldnames[:2]) != META_COLUMNS[:2]:
                continue
            for r in rd:
                if not (out / r["path"]).exists() and (out / name / r["path"]).exists():
                    r["path"] = f"{name}/{r['path']}"
                rows.append({"corpus": name, **r})
    with open(out / "all_metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["corpus", *META_COLUMNS], extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def fetch(names, out: Path, all_folds=False, quiet=False, corpora=None, log=print) -> dict:
    """Download, verify, extract and convert `names`; returns {corpus: clip count}."""
    corpora = CORPORA if corpora is None else corpora
    counts = {}
    for name in names:
        c = corpora[name]
        path = download(c.archive, out / "downloads", quiet=quiet, log=log)
        extracted = extract(path, out / "downloads" / (c.archive.filename + ".d"))
        counts[name] = convert(c, extracted, out, None if all_folds else c.folds, quiet=quiet)
        log(f"{name}: {counts[name]} clips in {out / name}")
    total = write_all_metadata(out)
    log(
        f"{out / 'all_metadata.csv'}: {total} clips; train with: python -m training ship --root {out}"
    )
    return counts


# ---------------------------------------------------------------- CLI (python -m training data)


def add_parser(sub):
    table = "\n".join(f"  {c.name:13s} {c.title}; {c.notes}" for c in CORPORA.values())
    p = sub.add_parser(
        "data",
        help="download the public corpora and convert them to the training layout",
        description="Download public corpora from their official sources (resumable, checksummed) "
        "and convert them to OUT/<corpus>/<label>/<clip>.flac + metadata.csv + "
        "all_metadata.csv, the layout `ship --root OUT` reads.",
        epilog=f"corpora it reproduces:\n{table}\n"
        f"corpora of ../shared/data it cannot reproduce (no public source it can fetch): "
        f"{', '.join(NOT_REPRODUCED)}",
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "corpora", nargs="*", metavar="CORPUS", help=f"which ({', '.join(CORPORA)}; default: all)"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (also holds downloads/)")
    p.add_argument(
        "--all-folds",
        action="store_true",
        help="keep every fold, also those ../shared/data reserves for evaluation",
    )
    p.add_argument(
        "--keep-downloads",
        action=__import__("argparse").BooleanOptionalAction,
        default=True,
        help="keep OUT/downloads after conversion (default: keep)",
    )
    p.add_argument(
        "--index-only",
        action="store_true",
        help="download nothing, only rewrite OUT/all_metadata.csv from the corpora in OUT "
        "(e.g. after recording into OUT/NAME with python -m tools.record)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run(args) -> int:
    """Returns the exit status; errors are one line on stderr."""
    unknown = [n for n in args.corpora if n not in CORPORA]
    if unknown:
        hint = " (no public source: see --help)" if set(unknown) & set(NOT_REPRODUCED) else ""
        print(
            f"training data: error: unknown corpus {', '.join(unknown)}{hint}; "
            f"choose from {', '.join(CORPORA)}",
            file=sys.stderr,
        )
        return 2
    names = list(dict.fromkeys(args.corpora or CORPORA))
    if args.index_only:
        if not args.out.is_dir():
            print(f"training data: error: {args.out}: no such folder", file=sys.stderr)
            return 2
        print(f"{args.out / 'all_metadata.csv'}: {write_all_metadata(args.out)} clips")
        return 0
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        fetch(names, args.out, all_folds=args.all_folds, quiet=args.quiet)
    except DownloadError as e:
        print(f"training data: error: {e}", file=sys.stderr)
        return 1
    except (DataError, OSError) as e:
        print(f"training data: error: {e}", file=sys.stderr)
        return 2
    if not args.keep_downloads:
        shutil.rmtree(args.out / "downloads", ignore_errors=True)
    return 0
