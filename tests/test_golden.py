"""Golden vectors: reference == committed files == C on the host == C on rv32imc == binding."""

import json

import numpy as np
import pytest
from conftest import requires_rv32

from tools import gen_params, golden
from tools.bench.cbuild import BUILD, C_TESTS, build, run
from tools.node import core, params
from tools.node import reference as R

IDX = json.loads((golden.GOLDEN / "index.json").read_text())
CASES = list(IDX["cases"])


def test_generated_params_are_current():
    assert gen_params.main(["--check"]) == 0


@pytest.mark.parametrize("target", ["SETTINGS_H", "SETTINGS_C", "PROTOCOL_MD", "HEADER"])
def test_gen_params_check_finds_a_stale_file(target, tmp_path, monkeypatch, capsys):
    """--check fails (exit 1, naming the file) when one generated output differs by one byte;
    a table entry of the wrong type is one error line, exit 2."""
    src = getattr(gen_params, target)
    stale = tmp_path / src.name
    text = src.read_text()  # the docs: only the generated table counts
    stale.write_text(
        text.replace("| 0x0017 |", "| 0x0018 |") if src.suffix == ".md" else text + "\n"
    )
    monkeypatch.setattr(gen_params, target, stale)
    assert gen_params.main(["--check"]) == 1
    assert src.name in capsys.readouterr().err


def test_gen_params_refuses_a_bad_setting_table(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "ewcore.toml"
    bad.write_text(params.CONFIG_PATH.read_text().replace("max = 23040", 'max = "90 dB"', 1))
    monkeypatch.setattr(params, "CONFIG_PATH", bad)
    assert gen_params.main(["--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GATE_ONSET_MARGIN_Q8" in err[0] and "max" in err[0]


def test_golden_index_matches_config():
    assert IDX["config_hash"] == params.default().config_hash, (
        "tests/golden was made for another ewcore.toml: run `python -m tools.golden --update`"
    )


def test_reference_reproduces_golden():
    assert golden.main([]) == 0


def _golden_header() -> list:
    d = BUILD / "golden"
    d.mkdir(parents=True, exist_ok=True)
    lines = ["#include <stdint.h>"]
    for name in CASES:
        x = golden.load(name, "input")
        lines.append(
            f"static const int16_t golden_{name}[{x.size}] = {{{','.join(map(str, x.tolist()))}}};"
        )
    codes = np.frombuffer((golden.GOLDEN / "adc.codes.u2").read_bytes(), "<u2")
    lines.append(
        f"static const uint16_t golden_adc_codes[{codes.size}] = {{{','.join(map(str, codes.tolist()))}}};"
    )
    text = "\n".join(lines) + "\n"
    h = d / "golden_data.h"
    if not h.exists() or h.read_text() != text:
        h.write_text(text)
    return [d]


def _parse(stdout: bytes) -> dict:
    out = {}
    for line in stdout.decode().splitlines():
        parts = line.split()
        if parts[0] == "log2":
            out["log2"] = [int(v) for v in parts[1:]]
            continue
        case, stage, n = parts[0], parts[1], int(parts[2])
        vals = np.array([int(v) for v in parts[3:]], dtype=np.int64)
        assert vals.size == n
        out[(case, stage)] = vals
    return out


def _check_c_output(res):
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    got = _parse(res.stdout)
    for name in CASES:
        for stage in golden.STAGES:
            exp = golden.load(name, stage).astype(np.int64).ravel()
            g = got[(name, stage)]
            assert g.shape == exp.shape, (name, stage)
            bad = np.nonzero(g != exp)[0]
            assert bad.size == 0, f"{name}/{stage}: {bad.size} mismatches, first at {bad[0]}"
    codes = np.frombuffer((golden.GOLDEN / "adc.codes.u2").read_bytes(), "<u2")
    np.testing.assert_array_equal(
        got[("adc", "pcm")], np.frombuffer((golden.GOLDEN / "adc.pcm.i2").read_bytes(), "<i2")
    )
    assert codes.size == got[("adc", "pcm")].size
    assert got["log2"] == [
        0,
        0,
        R.log2_q8(np.uint64(1000003)).item(),
        R.log2_q8(np.uint64(2**64 - 1)).item(),
    ]


def test_c_host_matches_golden():
    exe = build("test_golden", [C_TESTS / "test_golden.c"], include_dirs=_golden_header())
    _check_c_output(run(exe))


@requires_rv32
@pytest.mark.rv32
def test_c_rv32imc_matches_golden():
    """The same program built for the ESP32-C3 ISA (rv32imc, no FPU) under QEMU."""
    exe = build(
        "test_golden", [C_TESTS / "test_golden.c"], target="rv32", include_dirs=_golden_header()
    )
    _check_c_output(run(exe, target="rv32", timeout=300))


@pytest.mark.parametrize("name", CASES)
def test_binding_matches_golden(name):
    x = golden.load(name, "input")
    np.testing.assert_array_equal(core.dc_block(x), golden.load(name, "dc"))
    np.testing.assert_array_equal(core.decimate(x, 2), golden.load(name, "decim2"))
    np.testing.assert_array_equal(core.decimate(x, 3), golden.load(name, "decim3"))
    np.testing.assert_array_equal(core.logmel(x), golden.load(name, "logmel"))
    np.testing.assert_array_equal(core.features(x), golden.load(name, "features"))
    # the node's own frame assembly and gate (streamed in odd chunks) give the same numbers
    node = core.Node(trace=True)
    for chunk in np.array_split(x, 37):
        node.process(chunk)
    g = golden.load(name, "gate")
    tr = node.trace
    for field in ("level_q8", "bg_q8", "excess_q8", "nf_q8", "spread_q16", "flags"):
        col = R.GATE_FIELDS.index(field)
        np.testing.assert_array_equal(tr[field].astype(np.int64), g[:, col], err_msg=field)
