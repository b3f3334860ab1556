"""tools.config end to end against the twin through its pty: read every setting, change some by
name in their units, persistence across a reboot of the node, factory reset, refused and
malformed values."""

import json

import pytest

from tools import cli, config
from tools.hostio import config as settings
from tools.wire import protocol as pr


def run_main(capsys, argv):
    rc = config.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def twin_port():
    from tools.sim import twin

    t = twin.start()
    try:
        yield t.port
    finally:
        t.stop()


def test_read_all_and_change_by_name(capsys, twin_port):
    rc, out, err = run_main(capsys, ["--port", twin_port, "--json", "--factory-reset"])
    assert rc == 0 and err == ""
    recs = {r["name"]: r for r in map(json.loads, out.splitlines())}
    labels = [n[len("threshold.") :] for n in recs if n.startswith("threshold.")]
    assert set(settings.SETTINGS) <= set(recs) and "gunshot" in labels and "other" in labels
    assert recs["early-preroll-frames"]["value"] == 44 and recs["mode"]["value"] == 0
    assert (
        recs["gate-peak-margin-db"]["unit"] == "dB"
        and 2.9 < recs["gate-peak-margin-db"]["value"] < 3.1
    )
    assert recs["threshold.other"]["value"] == "off"
    assert (
        recs["threshold.gunshot"]["value"] != "off"
        and 0.5 <= recs["threshold.gunshot"]["value"] < 1
    )

    rc, out, err = run_main(
        capsys,
        [
            "--port",
            twin_port,
            "gate-onset-margin-db=9",
            "early-preroll-frames=0",
            "threshold.gunshot=off",
            "threshold.siren=0.75",
            "holdoff-ms",
        ],
    )
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "gate-onset-margin-db -> 8.9961 dB"  # the nearest value the node holds
    assert lines[1:] == [
        "early-preroll-frames -> 0 hops",
        "threshold.gunshot -> off",
        "threshold.siren -> 0.75",
        f"holdoff-ms = {lines[4].split()[-2]} ms",
    ]
    with cli.open_node(twin_port) as link:  # the node itself holds them
        assert link.config_get(pr.CFG_EARLY_PREROLL_FRAMES) == 0
        assert link.config_get(pr.cfg_threshold(0)) == 256
        assert link.config_get(pr.cfg_threshold(3)) == 192
        link.command(pr.CMD_REBOOT, 0)  # persisted across a reboot
    with cli.open_node(twin_port) as link:
        assert link.config_get(pr.CFG_EARLY_PREROLL_FRAMES) == 0
    rc, out, _ = run_main(capsys, ["--port", twin_port, "--factory-reset", "early-preroll-frames"])
    assert rc == 0 and out == "early-preroll-frames = 44 hops\n"


@pytest.mark.parametrize(
    "argv, code, msg",
    [
        (["no-such-setting"], 2, "unknown setting 'no-such-setting'"),
        (["threshold.cat=0.5"], 2, "the node's classes are gunshot"),
        (["threshold.gunshot=1.5"], 2, "0..1 (or off)"),
        (["gain-db=loud"], 2, "not a number"),
        (["early-preroll-frames=64"], 2, "early-preroll-frames is 1..63 hops (or 0: off)"),
        (["gate-peak-margin-db=-3"], 2, "gate-peak-margin-db is 0..90 dB"),
        (["holdoff-ms=nan"], 2, "not a number"),
    ],
)
def test_bad_values(capsys, twin_port, argv, code, msg):
    rc, out, err = run_main(capsys, ["--port", twin_port] + argv)
    assert rc == code and msg in err and err.startswith("config: error:") and "Traceback" not in err
    assert err.count("\n") == 1


def test_out_of_range_is_refused_before_anything_is_sent(capsys, twin_port):
    """A value outside its table range: one line with the range, exit 2, and the setting
    before it on the command line is not applied either."""
    run_main(capsys, ["--port", twin_port, "--factory-reset"])
    rc, out, err = run_main(
        capsys, ["--port", twin_port, "holdoff-ms=900", "early-preroll-frames=64"]
    )
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "early-preroll-frames=64: out of range" in err
    with cli.open_node(twin_port) as link:
        assert link.config_get(pr.CFG_HOLDOFF_MS) != 900


def test_a_value_the_node_refuses_rolls_back_the_others(capsys, twin_port):
    """In range but refused by the node (early-preroll must exceed the detector's preroll):
    the error names the setting and the rule, holdoff-ms set by the same call is set back,
    stdout shows what the node holds now."""
    run_main(capsys, ["--port", twin_port, "--factory-reset"])
    with cli.open_node(twin_port) as link:
        holdoff0 = link.config_get(pr.CFG_HOLDOFF_MS)
        early0 = link.config_get(pr.CFG_EARLY_PREROLL_FRAMES)
    assert holdoff0 != 900
    rc, out, err = run_main(
        capsys, ["--port", twin_port, "holdoff-ms=900", "early-preroll-frames=3", "--json"]
    )
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert (
        "refused early-preroll-frames=3" in err
        and "preroll" in err
        and "set back: holdoff-ms" in err
    )
    now = {r["name"]: r["value"] for r in map(json.loads, out.splitlines())}
    assert now == {"holdoff-ms": holdoff0, "early-preroll-frames": early0}
    with cli.open_node(twin_port) as link:
        assert link.config_get(pr.CFG_HOLDOFF_MS) == holdoff0
        assert link.config_get(pr.CFG_EARLY_PREROLL_FRAMES) == early0


def test_sim_from_the_command_line(capsys):
    """The example of config's own --help: `--sim NAME=VALUE --json` (--sim takes no value)."""
    rc, out, err = run_main(capsys, ["--sim", "early-preroll-frames=0", "--json"])
    assert rc == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"name": "early-preroll-frames", "value": 0, "unit": "hops", "raw": 0, "changed": True}
    ]
    assert "--sim early-preroll-frames=0 --json" in config.__doc__
    rc, out, err = run_main(capsys, ["--sim-audio", "tests/audio/siren_1.wav", "mode"])
    assert rc == 0 and out == "mode = 0\n", err
    rc, out, err = run_main(capsys, ["--sim-audio", "tests/audio/no-such.wav", "mode"])
    assert rc == 2 and err.startswith("config: error:") and "no-such.wav" in err
    assert err.count("\n") == 1


def test_names_are_checked_before_anything_changes(capsys, twin_port):
    rc, _, err = run_main(capsys, ["--port", twin_port, "--factory-reset"])
    rc, _, err = run_main(capsys, ["--port", twin_port, "holdoff-ms=900", "bogus=1"])
    assert rc == 2 and "bogus" in err
    with cli.open_node(twin_port) as link:
        assert link.config_get(pr.CFG_HOLDOFF_MS) != 900
    # nor is the node reset when a name is wrong
    rc, _, _ = run_main(capsys, ["--port", twin_port, "holdoff-ms=900"])
    assert rc == 0
    rc, _, err = run_main(capsys, ["--port", twin_port, "--factory-reset", "bogus=1"])
    assert rc == 2 and "bogus" in err
    with cli.open_node(twin_port) as link:
        assert link.config_get(pr.CFG_HOLDOFF_MS) == 900


def test_list_and_no_port(capsys, tmp_path):
    rc, out, _ = run_main(capsys, ["--list"])
    assert rc == 0 and "gate-peak-margin-db" in out and "threshold.<label>" in out
    rc, _, err = run_main(capsys, ["--port", str(tmp_path / "nope")])
    assert rc != 0 and err.startswith("config: error:") and "Traceback" not in err
