"""`python -m training data` against local mirrors of two tiny archives in the official layouts
(an ESC-50 GitHub zip and an UrbanSound8K Zenodo tar.gz, generated here): download over file://
and over a local HTTP server with Range support, checksum refusal, resume of a .part,
conversion to the FLAC + metadata.csv layout, idempotent re-run, the offline message.
Never touches the network."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tools.node.audio import CORPUS_COLUMNS as META_COLUMNS
from training import corpus
from training import data as tdata
from training.__main__ import main as training_main

ESC_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
# filename, fold, target, category, esc10, src_file, take
ESC_ROWS = [
    ("1-100032-A-0.wav", 1, 0, "dog", "True", 100032, "A"),
    ("2-118072-A-10.wav", 2, 10, "rain", "True", 118072, "A"),
    ("3-100038-A-14.wav", 3, 14, "chirping_birds", "False", 100038, "A"),  # not ESC-10
    ("4-181286-A-39.wav", 4, 39, "glass_breaking", "False", 181286, "A"),
    ("4-204121-A-20.wav", 4, 20, "crying_baby", "True", 204121, "A"),
    ("5-103415-A-2.wav", 5, 2, "pig", "False", 103415, "A"),  # fold 5: evaluation
]
US8K_HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
US8K_ROWS = [
    ("7061-6-0-0.wav", 7061, 0.0, 0.5, 1, 1, 6, "gun_shot"),
    ("107228-5-0-1.wav", 107228, 0.5, 1.0, 1, 2, 5, "engine_idling"),
    ("114587-3-0-0.wav", 114587, 0.0, 0.6, 1, 3, 3, "dog_bark"),  # fold override -> 2
    ("102842-3-0-1.wav", 102842, 0.0, 0.6, 1, 1, 3, "dog_bark"),  # excluded (an owl)
    ("99180-9-0-7.wav", 99180, 0.0, 0.4, 2, 3, 9, "street_music"),
    ("100263-2-0-117.wav", 100263, 0.0, 0.5, 1, 5, 2, "children_playing"),  # fold 5: evaluation
]


def _wav(sr, seconds, channels=1, loud=False, seed=0):
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    if loud:  # full-scale square wave: overshoots after resampling, must be scaled to 0.999
        x = np.sign(np.sin(2 * np.pi * 1000 * np.arange(n) / sr))
    else:
        x = 0.3 * rng.standard_normal(n).clip(-3, 3) / 3
    x = np.repeat(x[:, None], channels, axis=1)
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _csv_bytes(header, rows):
    s = io.StringIO()
    w = csv.writer(s, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return s.getvalue().encode()


def make_esc_zip(path: Path):
    top = "ESC-50-master"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{top}/meta/esc50.csv", _csv_bytes(ESC_HEADER, ESC_ROWS))
        for i, r in enumerate(ESC_ROWS):
            z.writestr(
                f"{top}/audio/{r[0]}",
                _wav(
                    44100, 0.4, channels=2 if i == 0 else 1, loud=r[3] == "glass_breaking", seed=i
                ),
            )
        z.writestr(f"{top}/README.md", b"ESC-50\n")


def make_us8k_tar(path: Path):
    def add(t, name, payload):
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))

    with tarfile.open(path, "w:gz") as t:
        add(t, "UrbanSound8K/metadata/UrbanSound8K.csv", _csv_bytes(US8K_HEADER, US8K_ROWS))
        for i, r in enumerate(US8K_ROWS):
            add(t, f"UrbanSound8K/audio/fold{r[5]}/{r[0]}", _wav(22050, 0.3, seed=10 + i))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path):
    """Two archives in a local folder and a corpus table pointing at them (file:// URLs)."""
    m = tmp_path / "mirror"
    m.mkdir()
    make_esc_zip(m / "ESC-50-master.zip")
    make_us8k_tar(m / "UrbanSound8K.tar.gz")
    esc = corpus.Archive(
        (m / "ESC-50-master.zip").as_uri(),
        "ESC-50-master.zip",
        sha256=hashlib.sha256((m / "ESC-50-master.zip").read_bytes()).hexdigest(),
    )
    us8k = corpus.Archive(
        (m / "UrbanSound8K.tar.gz").as_uri(),
        "UrbanSound8K.tar.gz",
        size=(m / "UrbanSound8K.tar.gz").stat().st_size,
        md5=md5(m / "UrbanSound8K.tar.gz"),
    )
    table = {
        "esc10": dataclasses.replace(corpus.CORPORA["esc10"], archive=esc),
        "esc50": dataclasses.replace(corpus.CORPORA["esc50"], archive=esc),
        "urbansound8k": dataclasses.replace(corpus.CORPORA["urbansound8k"], archive=us8k),
    }
    return m, table


def read_meta(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_download_convert_layout(mirror, tmp_path):
    m, table = mirror
    out = tmp_path / "data"
    counts = corpus.fetch(
        ["esc10", "esc50", "urbansound8k"], out, quiet=True, corpora=table, log=lambda s: None
    )
    assert counts == {"esc10": 2, "esc50": 2, "urbansound8k": 4}

    esc10 = {r["path"]: r for r in read_meta(out / "esc10" / "metadata.csv")}
    assert list(read_meta(out / "esc10" / "metadata.csv")[0]) == META_COLUMNS
    assert esc10["esc10/dog_bark/1-100032-A.flac"]["source_label"] == "Dog bark"
    assert esc10["esc10/background/2-118072-A.flac"]["fold"] == "2"
    esc50 = {r["path"]: r for r in read_meta(out / "esc50" / "metadata.csv")}
    assert set(esc50) == {
        "esc50/glass_breaking/4-181286-A-39.flac",
        "esc50/baby_cry/4-204121-A-20.flac",
    }
    us = {r["path"]: r for r in read_meta(out / "urbansound8k" / "metadata.csv")}
    assert set(us) == {
        "urbansound8k/gunshot/7061-6-0-0.flac",
        "urbansound8k/background/107228-5-0-1.flac",
        "urbansound8k/dog_bark/114587-3-0-0.flac",
        "urbansound8k/other/99180-9-0-7.flac",
    }
    assert us["urbansound8k/dog_bark/114587-3-0-0.flac"]["fold"] == "2"  # README's override
    assert us["urbansound8k/other/99180-9-0-7.flac"]["source_label"] == "street_music"

    for rel, r in {**esc10, **esc50, **us}.items():
        info = sf.info(str(out / rel))
        assert (info.format, info.subtype, info.samplerate, info.channels) == (
            "FLAC",
            "PCM_16",
            16000,
            1,
        )
        assert float(r["duration_s"]) == pytest.approx(info.frames / 16000, abs=1e-3)
    assert float(us["urbansound8k/gunshot/7061-6-0-0.flac"]["duration_s"]) == pytest.approx(
        0.3, abs=1e-3
    )
    glass, _ = sf.read(str(out / "esc50/glass_breaking/4-181286-A-39.flac"))
    assert 0.99 < np.abs(glass).max() <= 0.9995  # scaled, not clipped

    # all_metadata.csv: every corpus, + corpus column, readable by the training CSV reader
    allm = read_meta(out / "all_metadata.csv")
    assert list(allm[0]) == ["corpus", *META_COLUMNS] and len(allm) == 8
    rows = tdata.read_csv(out / "all_metadata.csv")
    assert {r.corpus for r in rows} == {"esc10", "esc50", "urbansound8k"}
    assert all((out / r.path).is_file() for r in rows)


def test_all_folds_keeps_evaluation_folds(mirror, tmp_path):
    _, table = mirror
    counts = corpus.fetch(
        ["urbansound8k"],
        tmp_path / "d",
        all_folds=True,
        quiet=True,
        corpora=table,
        log=lambda s: None,
    )
    assert counts == {"urbansound8k": 5}


def test_checksum_mismatch_refused(mirror, tmp_path):
    _, table = mirror
    bad = dataclasses.replace(table["urbansound8k"].archive, size=None, md5="0" * 32)
    out = tmp_path / "d"
    with pytest.raises(corpus.DownloadError, match="checksum mismatch"):
        corpus.download(bad, out / "downloads", quiet=True, log=lambda s: None)
    assert list((out / "downloads").iterdir()) == []  # neither the file nor a .part kept
    wrong_size = dataclasses.replace(table["urbansound8k"].archive, size=123)
    with pytest.raises(corpus.DownloadError, match="expected 123"):
        corpus.download(wrong_size, out / "downloads", quiet=True, log=lambda s: None)


def test_resume_partial_download(mirror, tmp_path):
    m, table = mirror
    arch = table["urbansound8k"].archive
    src = m / "UrbanSound8K.tar.gz"
    whole = src.read_bytes()
    half = len(whole) // 2
    dl = tmp_path / "d" / "downloads"
    dl.mkdir(parents=True)
    (dl / "UrbanSound8K.tar.gz.part").write_bytes(whole[:half])
    # the mirror's first half is now garbage: only a download that continues the .part from
    # byte `half` can end with the published checksum
    src.write_bytes(b"\0" * half + whole[half:])
    logs = []
    path = corpus.download(arch, dl, quiet=True, log=logs.append)
    assert path.read_bytes() == whole
    assert not (dl / "UrbanSound8K.tar.gz.part").exists()
    assert any(f"resuming at {half} bytes" in s for s in logs)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror folder with single-range `Range: bytes=N-` support."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


def test_resume_over_http(mirror, tmp_path):
    m, table = mirror
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(m), **k)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        arch = dataclasses.replace(
            table["urbansound8k"].archive,
            url=f"http://127.0.0.1:{srv.server_address[1]}/UrbanSound8K.tar.gz",
        )
        whole = (m / "UrbanSound8K.tar.gz").read_bytes()
        dl = tmp_path / "downloads"
        dl.mkdir()
        (dl / "UrbanSound8K.tar.gz.part").write_bytes(whole[:1000])
        (m / "UrbanSound8K.tar.gz").write_bytes(b"\0" * 1000 + whole[1000:])
        logs = []
        assert corpus.download(arch, dl, quiet=True, log=logs.append).read_bytes() == whole
        assert any("resuming at 1000 bytes" in s for s in logs)
    finally:
        srv.shutdown()
        srv.server_close()


def test_rerun_is_idempotent(mirror, tmp_path):
    m, table = mirror
    out = tmp_path / "data"
    quiet = dict(quiet=True, corpora=table, log=lambda s: None)
    corpus.fetch(["esc10", "urbansound8k"], out, **quiet)
    flacs = sorted(out.glob("*/*/*.flac"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in flacs}
    metas = {p: p.read_bytes() for p in [out / "all_metadata.csv", *out.glob("*/metadata.csv")]}
    for f in m.iterdir():  # a second run must not download (the mirror is gone)
        f.unlink()
    corpus.fetch(["esc10", "urbansound8k"], out, **quiet)
    assert sorted(out.glob("*/*/*.flac")) == flacs
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in flacs} == before
    assert {p: p.read_bytes() for p in metas} == metas


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_one_line_exit_1(mirror, tmp_path, monkeypatch, capsys):
    _, table = mirror
    offline = dataclasses.replace(
        table["esc10"].archive, url=f"http://127.0.0.1:{_closed_port()}/x.zip"
    )
    monkeypatch.setattr(
        corpus, "CORPORA", {"esc10": dataclasses.replace(table["esc10"], archive=offline)}
    )
    assert training_main(["data", "--out", str(tmp_path / "d"), "--quiet", "esc10"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("training data: error: cannot reach 127.0.0.1")
    assert "offline" in err and "Traceback" not in err
    assert not list((tmp_path / "d" / "downloads").glob("*"))


def test_unknown_corpus_exit_2(tmp_path, capsys):
    assert training_main(["data", "--out", str(tmp_path / "d"), "sesa"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown corpus sesa (no public source" in err


def test_table_entries_are_complete():
    """Every corpus names an archive URL of its official host and at most one checksum kind."""
    for c in corpus.CORPORA.values():
        assert c.archive.url.startswith(("https://github.com/", "https://zenodo.org/"))
        assert not (c.archive.md5 and c.archive.sha256)
        assert set(c.folds or ()) <= set(range(1, 11))
    assert corpus.CORPORA["urbansound8k"].archive.md5 == "9aa69802bbf37fb986f71ec1483a196e"
    assert not set(corpus.CORPORA) & set(corpus.NOT_REPRODUCED)


def test_index_only_picks_up_a_record_folder(mirror, tmp_path, capsys):
    """A folder written by tools.record into OUT/NAME joins all_metadata.csv as corpus NAME."""
    from tools.hostio.record import MetadataCsv

    _, table = mirror
    out = tmp_path / "data"
    corpus.fetch(["esc10"], out, quiet=True, corpora=table, log=lambda s: None)
    field = out / "field"
    field.mkdir()
    (field / "node3_0001.wav").write_bytes(_wav(16000, 0.5))
    MetadataCsv(field / "metadata.csv").append(
        {
            "path": "node3_0001.wav",
            "label": "gunshot",
            "source_label": "",
            "fold": 4,
            "duration_s": 0.5,
            "source": "node 3",
            "licence": "own recording",
        }
    )
    assert training_main(["data", "--out", str(out), "--index-only"]) == 0
    assert "all_metadata.csv: 3 clips" in capsys.readouterr().out
    rows = {r.path: r for r in tdata.read_csv(out / "all_metadata.csv")}
    assert (
        rows["field/node3_0001.wav"].label == "gunshot" and rows["field/node3_0001.wav"].fold == 4
    )
    assert rows["field/node3_0001.wav"].corpus == "field"
    assert all((out / p).is_file() for p in rows)
