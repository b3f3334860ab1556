"""training.baselines: MFCC statistics + logistic regression / SVM on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tools.node import params
from training import baselines, evaluate

AUDIO = params.ROOT / "tests" / "audio"
SR = 16000


def test_mfcc_stats_shape_and_content():
    rng = np.random.default_rng(0)
    noise = (rng.normal(0, 3000, SR)).astype(np.int16)
    t = np.arange(SR) / SR
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    a, b = baselines.mfcc_stats(noise), baselines.mfcc_stats(tone)
    assert a.shape == b.shape == (4 * baselines.N_MFCC,)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    assert not np.allclose(a, b)
    short = baselines.mfcc_stats(tone[:100])  # shorter than one FFT frame
    assert short.shape == a.shape and np.all(np.isfinite(short))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Separable toy set: 'siren' = tone sweeps, 'gunshot' = decaying noise bursts, negatives =
    steady low noise.  Folds 1-2 train, fold 3 tests."""
    root = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(1)
    rows = []
    t = np.arange(SR) / SR
    for i in range(12):
        fold = 1 + i % 3
        f0 = 600 + 80 * i
        sweep = 0.5 * np.sin(2 * np.pi * (f0 * t + 400 * t * t))
        burst = rng.normal(0, 0.5, SR) * np.exp(-t / 0.05)
        quiet = rng.normal(0, 0.01, SR)
        for lab, x in (("siren", sweep), ("gunshot", burst), ("background", quiet)):
            p = f"{lab}_{i}.wav"
            sf.write(root / p, x, SR, subtype="PCM_16")
            rows.append({"path": p, "label": lab, "fold": str(fold)})
    return root, rows


def test_run_on_separable_data(synthetic):
    root, rows = synthetic
    train = [r for r in rows if r["fold"] != "3"]
    test = [r for r in rows if r["fold"] == "3"]
    res = baselines.run(train, test, root, ["gunshot", "siren"], negative="other")
    assert res["n_train"] == len(train) and res["n_test"] == len(test)
    for name in ("logreg", "svm"):
        s = res[name]
        assert set(s["per_class"]) == {"gunshot", "siren"}
        m = np.array(s["confusion"]["matrix"])
        assert s["confusion"]["labels"] == ["gunshot", "siren", "other"]
        assert m.sum() == len(test)
        assert s["accuracy"] == 1.0 and s["macro_f1"] == 1.0, (name, s["confusion"])


def test_run_on_shipped_clips():
    rows = evaluate.read_csv(AUDIO / "manifest.csv")
    train = [r for r in rows if r["fold"] != "4"]
    test = [r for r in rows if r["fold"] == "4"]
    res = baselines.run(train, test, AUDIO, baselines.DEFAULT_CLASSES)
    for name in ("logreg", "svm"):
        s = res[name]
        assert 0.0 <= s["accuracy"] <= 1.0
        assert s["macro_f1"] is None or 0.0 <= s["macro_f1"] <= 1.0
        assert np.array(s["confusion"]["matrix"]).sum() == len(test)
        assert set(s["per_class"]) == set(baselines.DEFAULT_CLASSES)
    json.dumps(res)


def test_run_rejects_single_class_training(synthetic):
    root, rows = synthetic
    only = [r for r in rows if r["label"] == "siren"]
    with pytest.raises(ValueError, match="single class"):
        baselines.run(only, only, root, ["siren"])


def test_cli_folds_loop(synthetic, tmp_path, capsys):
    root, rows = synthetic
    csv_path = root / "meta.csv"
    csv_path.write_text(
        "path,label,fold\n" + "".join(f"{r['path']},{r['label']},{r['fold']}\n" for r in rows)
    )
    out = tmp_path / "b.json"
    rc = baselines.main(
        ["--csv", str(csv_path), "--json", str(out), "--classes", "gunshot", "siren", "-q"]
    )
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert sorted(res["folds"]) == ["1", "2", "3"]
    ms = res["mean_std"]["svm"]["macro_f1"]
    assert ms["n"] == 3 and ms["mean"] == pytest.approx(1.0)
    assert res["pooled"]["svm"]["n_clips"] == len(rows) and res["pooled"]["svm"]["accuracy"] == 1.0


def test_cli_bad_input(tmp_path, capsys):
    nofold = tmp_path / "nofold.csv"
    nofold.write_text("path,label\na.wav,gunshot\n")
    for argv, reason in (
        (["--csv", str(tmp_path / "none.csv")], "no such file"),
        (["--csv", str(nofold)], "no fold column"),
        (["--csv", str(AUDIO / "manifest.csv"), "--test-fold", "9"], "no row in fold 9"),
    ):
        rc = baselines.main(argv + ["--json", str(tmp_path / "o.json"), "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and reason in err and "Traceback" not in err, (argv, err)


def test_crossval_accepts_row_objects(synthetic):
    """training.data.Row-like objects (fold as int) work like CSV dicts."""
    from types import SimpleNamespace

    root, rows = synthetic
    objs = [SimpleNamespace(path=r["path"], label=r["label"], fold=int(r["fold"])) for r in rows]
    res = baselines.crossval(objs, root, ["gunshot", "siren"], folds=[3])
    assert list(res["folds"]) == ["3"]
    assert res["folds"]["3"]["svm"]["accuracy"] == 1.0
