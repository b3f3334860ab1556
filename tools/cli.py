"""What the commands that talk to a node share: the --port/--sim/--model/--realtime/--baud/
--timeout options (`add_link_args`, read back by `link_from_args`) and `open_node`, which opens
a NodeLink to a port, to the one ESP32 board found, or to a simulated node started here.

It sits above tools.wire and tools.sim (--sim starts a twin), so neither of those imports it.
"""

from __future__ import annotations

import argparse
import dataclasses

from tools.errors import run_cli  # noqa: F401  (re-exported for the commands)
from tools.node import params
from tools.wire import protocol as pr
from tools.wire.link import DEFAULT_BAUD, LinkError, NodeLink, Timeouts
from tools.wire.ports import find_ports


def open_node(
    port: str | None = None,
    sim=None,
    baud: int = DEFAULT_BAUD,
    timeouts: Timeouts | None = None,
    model=None,
    realtime: bool = False,
    **twin_opts,
) -> NodeLink:
    """An open NodeLink: to `port`, or (sim=True or an audio path) to a simulated node started
    here (tools.twin; stopped by close()).  Without either, the one ESP32-looking USB port."""
    if port and sim:
        raise LinkError("give --port or --sim, not both", 2)
    twin = None
    if sim:
        try:
            from tools.sim import twin as _twin_mod
        except ImportError as e:
            raise LinkError(f"the simulated node is not available ({e})", 2) from None
        if sim is not True:  # a missing --sim-audio path: one line, exit 2
            try:
                _twin_mod.audio_files([sim])
            except _twin_mod.TwinError as e:
                raise LinkError(f"--sim-audio {e}", 2) from None
        try:
            twin = _twin_mod.start(
                audio=None if sim is True else str(sim), model=model, realtime=realtime, **twin_opts
            )
        except (_twin_mod.TwinError, OSError, ValueError, RuntimeError) as e:
            raise LinkError(f"cannot start the simulated node: {e}", 2) from None
        port = twin.port
    elif not port:
        found = find_ports()
        if len(found) != 1:
            listing = "; ".join(f"{p.device} ({p.label})" for p in found) or "none found"
            raise LinkError(
                f"no --port given and {len(found)} candidate ports ({listing}): "
                f"give --port PATH or --sim",
                2,
            )
        port = found[0].device
    link = NodeLink(port, baud, timeouts)
    link._twin = twin
    try:
        link.open()
    except BaseException:
        link.close()
        raise
    return link


class _TimeoutAction(argparse.Action):
    def __call__(self, parser, ns, values, option_string=None):
        getattr(ns, self.dest).append(values)


def add_sim_args(group, sim_help: str | None = None, audio: bool = True) -> None:
    """`--sim` (a simulated node, silent microphone) and `--sim-audio PATH` (the same, its
    microphone playing PATH; implies --sim) on a parser or argument group.  Both set `sim`:
    None, True, or the audio path.  `--sim` takes no value, so `--sim NAME=VALUE` or
    `--sim --json` never swallows the next argument."""
    group.add_argument(
        "--sim",
        action="store_const",
        const=True,
        default=None,
        help=sim_help
        or "start a simulated node (tools.twin, silent microphone "
        "unless --sim-audio) and talk to it; stopped on exit",
    )
    if not audio:
        return
    group.add_argument(
        "--sim-audio",
        dest="sim",
        metavar="PATH",
        help="the simulated node's microphone plays PATH (a WAV/FLAC file or a "
        "folder of them, from its first sample at each new stream); implies --sim",
    )


def add_link_args(
    ap: argparse.ArgumentParser, sim_help: str | None = None, sim_audio: bool = True
) -> None:
    """--port/--sim/--sim-audio/--model/--realtime/--baud/--timeout on a tool's parser (read
    back with `link_from_args`; `args.sim` is None, True or the --sim-audio path).
    sim_audio=False: no --sim-audio (a tool that feeds the node by INJECT, not its microphone)."""
    g = ap.add_argument_group("node connection")
    g.add_argument(
        "--port",
        metavar="PATH",
        help="serial port of the node (a board or a twin's "
        "pty); default: the one ESP32 USB-serial port found",
    )
    add_sim_args(g, sim_help, audio=sim_audio)
    g.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="model of the simulated node (default: the shipped "
        f"{params.MODEL_DIR.relative_to(params.ROOT)})",
    )
    g.add_argument("--realtime", action="store_true", help="pace the simulated node to real time")
    g.add_argument("--baud", type=int, default=DEFAULT_BAUD, help=f"default {DEFAULT_BAUD}")
    g.add_argument(
        "--timeout",
        dest="timeouts",
        action=_TimeoutAction,
        default=[],
        metavar="NAME=SECONDS",
        help="override a wait (repeatable): "
        + ", ".join(f.name for f in dataclasses.fields(Timeouts)),
    )


def timeouts_from_args(args) -> Timeouts:
    t = Timeouts()
    for spec in getattr(args, "timeouts", []) or []:
        t.override(spec)
    return t


def link_from_args(args, **twin_opts) -> NodeLink:
    """open_node() from the parsed --port/--sim/--baud/--timeout/--model/--realtime."""
    return open_node(
        args.port,
        args.sim,
        args.baud,
        timeouts_from_args(args),
        model=getattr(args, "model", None),
        realtime=getattr(args, "realtime", False),
        **twin_opts,
    )


def hello_check(link_opts) -> int:
    """`python -m tools.link`: open the node of `link_opts` (the parsed link options) and
    print its HELLO on one line (a connectivity check)."""
    with link_from_args(link_opts) as link:
        h = link.hello()
        print(
            f"{link.port_name}: protocol v{h.proto_version}, firmware {h.fw_version}, "
            f"board {h.board or '?'}, node {h.node_id.hex(':')}, "
            f"model {h.model_hash.hex()}, config {h.config_hash.hex()}, "
            f"{h.sample_rate_hz} Hz, reset {pr.RESET_REASONS.get(h.reset_reason, '?')}, "
            f"labels {','.join(h.labels)}"
        )
    return 0
