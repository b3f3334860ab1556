"""The conventions every node tool shares, through each tool's command line (main(argv)):
`--sim` takes no value and `--sim-audio PATH` names the simulated node's audio; a path that is no
serial port, an unwritable output and a non-positive --duration are bad input (one
`prog: error:` line, exit 2, no traceback)."""

import json

import pytest

from tools import config, faultproxy, flash, monitor, record, romsim
from tools import link as link_cmd

CLIP = "tests/audio/gunshot_2.wav"


def one_error_line(err: str, prog: str) -> bool:
    return err.startswith(f"{prog}: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_sim_takes_no_value_in_every_tool(capsys):
    """`--sim` followed by another argument: the argument keeps its meaning."""
    assert link_cmd.main(["--sim", "--timeout", "hello_s=5"]) == 0
    assert "board twin" in capsys.readouterr().out
    assert config.main(["--sim", "holdoff-ms", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "holdoff-ms"
    assert monitor.main(["--sim", "--duration", "1", "--json"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert recs[0]["type"] == "hello" and recs[-1]["type"] == "end"
    assert faultproxy.main(["--sim", "--duration", "0.3"]) == 0
    assert "earwitness faultproxy on" in capsys.readouterr().out


def test_sim_audio_in_every_tool(capsys, tmp_path):
    assert monitor.main(["--sim-audio", CLIP, "--count", "1", "--duration", "60", "--json"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any(r["type"] == "event" and r["kind"] == "onset" for r in recs)
    assert recs[-1]["events"] == 1
    assert (
        record.main(["--sim-audio", CLIP, "--out", str(tmp_path), "--duration", "1", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["audio_seconds"] >= 1
    assert faultproxy.main(["--sim-audio", CLIP, "--duration", "0.3"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "tool, prog, argv",
    [
        (link_cmd, "link", []),
        (config, "config", ["mode"]),
        (monitor, "monitor", ["--count", "1"]),
        (record, "record", ["--out", "OUT"]),
        (faultproxy, "faultproxy", ["--duration", "1"]),
    ],
)
def test_missing_sim_audio_is_bad_input(capsys, tmp_path, tool, prog, argv):
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert tool.main(["--sim-audio", str(tmp_path / "nope.wav"), *argv]) == 2
    err = capsys.readouterr().err
    assert one_error_line(err, prog) and "nope.wav: no such file or folder" in err


def test_sim_with_a_path_is_no_longer_swallowed(capsys, tmp_path):
    """The old `--sim PATH` form: the path is an argument of its own, refused by argparse."""
    with pytest.raises(SystemExit) as e:
        record.main(["--sim", CLIP, "--out", str(tmp_path)])
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize(
    "tool, prog, argv",
    [
        (link_cmd, "link", []),
        (config, "config", []),
        (monitor, "monitor", ["--duration", "1"]),
        (record, "record", ["--out", "OUT"]),
        (faultproxy, "faultproxy", ["--duration", "1"]),
        (flash, "flash", ["verify"]),
    ],
)
def test_a_regular_file_as_port_is_bad_input(capsys, tmp_path, tool, prog, argv):
    f = tmp_path / "not-a-port"
    f.write_text("x")
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert tool.main([*argv, "--port", str(f)]) == 2
    err = capsys.readouterr().err
    assert one_error_line(err, prog) and "not a serial port (a regular file)" in err


@pytest.mark.parametrize("out", ["FILE", "/proc/nope/x", "FILE/sub"])
def test_record_unusable_out_is_bad_input(capsys, tmp_path, out):
    f = tmp_path / "a-file"
    f.write_text("x")
    out = out.replace("FILE", str(f))
    # checked before the node is opened: no port needed
    assert record.main(["--port", "/dev/earwitness-none", "--out", out]) == 2
    err = capsys.readouterr().err
    assert one_error_line(err, "record") and "--out" in err


def test_romsim_unwritable_flash_file(capsys):
    assert romsim.main(["--flash-file", "/proc/nope/flash.bin"]) == 2
    assert one_error_line(capsys.readouterr().err, "romsim")


@pytest.mark.parametrize(
    "tool, prog, argv",
    [
        (record, "record", ["--out", "OUT", "--duration", "-1"]),
        (record, "record", ["--out", "OUT", "--duration", "0"]),
        (monitor, "monitor", ["--duration", "-1"]),
        (monitor, "monitor", ["--duration", "0"]),
        (monitor, "monitor", ["--count", "0"]),
        (faultproxy, "faultproxy", ["--duration", "0"]),
    ],
)
def test_non_positive_duration_is_refused_alike(capsys, tmp_path, tool, prog, argv):
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert tool.main(["--port", "/dev/earwitness-none", *argv]) == 2
    err = capsys.readouterr().err
    assert one_error_line(err, prog) and "must be > 0" in err


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["nope.wav"], "nope.wav: no such file or folder"),
        (["--config", "/proc/nope/nvs.json"], "--config /proc/nope/nvs.json"),
        (["--config", "tests"], "--config tests: is a folder"),
        (["--node-id", "zz"], "--node-id zz: 6 bytes"),
        (["--stub-scores", "1,x"], "--stub-scores"),
        (["--model", "/nope"], "/nope"),
    ],
)
def test_twin_bad_arguments(capsys, argv, msg):
    from tools import twin

    argv = (
        argv if "--model" in argv or "--stub-scores" in argv else [*argv, "--stub-scores", "0,255"]
    )
    assert twin.main(argv) == 2
    err = capsys.readouterr().err
    assert one_error_line(err, "twin") and msg in err
