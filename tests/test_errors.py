"""The one error family and runner of the commands (tools/errors.py)."""

from tools.errors import BadInput, NodeFailure, ToolError, run_cli
from tools.esp.flash import FlashError
from tools.sim.twin import TwinError
from tools.validate.hil import HilError
from tools.wire.link import LinkError


def _raises(e):
    def body():
        raise e

    return body


def test_tool_error_is_one_line_and_its_exit_code(capsys):
    assert run_cli(_raises(BadInput("no such file: x.wav")), "demo") == 2
    assert run_cli(_raises(NodeFailure("node not answering")), "monitor") == 1
    assert run_cli(_raises(ToolError("disk full", 1)), "record") == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "demo: error: no such file: x.wav",
        "monitor: error: node not answering",
        "record: error: disk full",
    ]


def test_ctrl_c_is_130_and_success_passes_through(capsys):
    assert run_cli(_raises(KeyboardInterrupt()), "twin") == 130
    assert run_cli(lambda: 0, "twin") == 0
    assert capsys.readouterr().err == ""


def test_layer_errors_are_tool_errors():
    assert LinkError("x", 2).exit_code == 2 and isinstance(LinkError("x"), ToolError)
    assert FlashError("x").exit_code == 1 and isinstance(FlashError("x"), ToolError)
    assert TwinError("x").exit_code == 2 and HilError("x").exit_code == 2
