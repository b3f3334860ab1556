"""Data sets for training: a CSV of clips (path,label[,fold,duration_s,source,licence,...]) under a
root folder, a class map, and loading through tools.node.audio (the node's 16 kHz int16).

    rows = data.read_csv("../shared/data/all_metadata.csv")
    cmap = data.ClassMap.default()          # 7 targets + "other"
    clips = data.load_clips(rows, root, strict=False)   # bad files reported and skipped

Errors a person can act on are `DataError` (CLI: exit 2, one line).
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.node import audio, params

DEFAULT_TARGETS = params.DEFAULT_TARGETS
NEGATIVE = params.NEGATIVE_LABEL
# labels of the shared corpus that are hard negatives (impulsive, easily confused with targets)
HARD_NEGATIVES = ("door_slam", "other", "car_horn", "alarm")
BACKGROUND_LABELS = ("background",)


class DataError(Exception):
    """Bad input data (missing column, unreadable CSV, unusable clip under --strict)."""


@dataclass(frozen=True)
class Row:
    path: str
    label: str
    fold: int | None = None
    duration_s: float | None = None
    source: str = ""
    corpus: str = ""
    source_label: str = ""


@dataclass
class ClassMap:
    """Model classes in output order; every unmapped label maps to the negative class (last)."""

    targets: tuple[str, ...] = DEFAULT_TARGETS
    negative: str = NEGATIVE
    aliases: dict = field(default_factory=dict)  # dataset label -> target label

    @classmethod
    def default(cls) -> ClassMap:
        return cls()

    @classmethod
    def parse(cls, spec: str | None) -> ClassMap:
        """'gunshot,glass_breaking,siren=siren+alarm' -> targets, with optional label aliases."""
        if not spec:
            return cls()
        targets, aliases = [], {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, extra = item.partition("=")
            targets.append(name)
            for a in filter(None, extra.split("+")):
                aliases[a] = name
        if len(set(targets)) != len(targets) or NEGATIVE in targets:
            raise DataError(
                f"bad class map '{spec}': duplicate classes or '{NEGATIVE}' as a target"
            )
        return cls(tuple(targets), NEGATIVE, aliases)

    @property
    def labels(self) -> list[str]:
        return list(self.targets) + [self.negative]

    @property
    def n_classes(self) -> int:
        return len(self.targets) + 1

    @property
    def negative_index(self) -> int:
        return len(self.targets)

    def index(self, label: str) -> int:
        label = self.aliases.get(label, label)
        return self.targets.index(label) if label in self.targets else self.negative_index

    def is_target(self, label: str) -> bool:
        return self.index(label) != self.negative_index

    def to_json(self) -> dict:
        return {"targets": list(self.targets), "negative": self.negative, "aliases": self.aliases}


def read_rows(path) -> list[dict]:
    """The rows of a clip CSV as dicts (every column kept). Requires the columns path and label
    and at least one row; raises DataError (one line: file and reason) otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            missing = [c for c in ("path", "label") if c not in cols]
            if missing:
                raise DataError(
                    f"{path}: CSV has no {' / '.join(missing)} column "
                    f"(columns: {', '.join(cols) or 'none'})"
                )
            rows = list(reader)
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a CSV") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text CSV ({e})") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_csv(path, root=None) -> list[Row]:
    """Rows of a clip CSV (read_rows), checked: every row needs a path and a label, a fold must
    be an integer; other columns are optional/ignored."""
    rows = []
    for i, r in enumerate(read_rows(path), start=2):
        p, lab = (r.get("path") or "").strip(), (r.get("label") or "").strip()
        if not p or not lab:
            raise DataError(f"{path}:{i}: empty path or label")
        fold = r.get("fold")
        try:
            fold = int(fold) if fold not in (None, "") else None
        except ValueError:
            raise DataError(f"{path}:{i}: fold '{fold}' is not an integer") from None
        dur = r.get("duration_s")
        try:
            dur = float(dur) if dur not in (None, "") else None
        except ValueError:
            dur = None
        rows.append(
            Row(
                p,
                lab,
                fold,
                dur,
                r.get("source") or "",
                r.get("corpus") or "",
                r.get("source_label") or "",
            )
        )
    return rows


@dataclass
class Clip:
    row: Row
    pcm: np.ndarray  # int16, 16 kHz

    @property
    def label(self) -> str:
        return self.row.label


def load_clips(
    rows, root, strict: bool = False, progress: bool = False, log=None
) -> tuple[list[Clip], list[str]]:
    """Load every row's audio; returns (clips, problems). A bad file is reported (path and
    reason) and skipped, or raises DataError when strict."""
    root = Path(root)
    clips, problems = [], []
    log = log or (lambda m: print(m, file=sys.stderr))
    it = rows
    if progress:
        from tqdm import tqdm

        it = tqdm(rows, desc="load", unit="clip", file=sys.stderr, leave=False)
    for r in it:
        try:
            x = audio.load(root / r.path)
        except audio.AudioError as e:
            if strict:
                raise DataError(str(e)) from None
            problems.append(str(e))
            log(f"skipped: {e}")
            continue
        if x.size < 256:
            msg = f"{root / r.path}: shorter than one 16 ms hop"
            if strict:
                raise DataError(msg)
            problems.append(msg)
            log(f"skipped: {msg}")
            continue
        clips.append(Clip(r, x))
    return clips, problems


def rows_hash(rows, root) -> str:
    """Identity of a data set for caches: paths, labels, folds and file sizes/mtimes."""
    h = hashlib.sha256()
    root = Path(root)
    for r in rows:
        p = root / r.path
        try:
            st = p.stat()
            sig = f"{st.st_size}:{int(st.st_mtime)}"
        except OSError:
            sig = "missing"
        h.update(f"{r.path}|{r.label}|{r.fold}|{sig}\n".encode())
    return h.hexdigest()
