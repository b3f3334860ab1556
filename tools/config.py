"""python -m tools.config — read and change a node's settings (CONFIG keys) by name.

    python -m tools.config --port /dev/ttyUSB0                     # every setting, with units
    python -m tools.config --port /dev/ttyUSB0 gate-peak-margin-db threshold.gunshot
    python -m tools.config --port /dev/ttyUSB0 gate-peak-margin-db=4 threshold.gunshot=0.8
    python -m tools.config --sim early-preroll-frames=0 --json    # against a simulated node
    python -m tools.config --port /dev/ttyUSB0 --factory-reset

Values are given and printed in the unit of the name (dB, dBFS, ms, a 0..1 score; `off`
disables a class threshold); the node answers every change with the value now in effect
(margins are held as 256·log2 of a power, so 9 dB comes back as 8.9961).  The node persists
every change (NVS) until `--factory-reset`.  Key numbers and ranges: docs/protocol.md.

Exit status: 0 ok; 1 the node refused a value (out of range) or did not answer; 2 bad usage
(unknown name, malformed value, no port).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from tools import cli
from tools.wire import link as lk
from tools.wire import protocol as pr


@dataclass(frozen=True)
class Setting:
    key: int
    scale: float          # raw = round(value * scale)
    unit: str
    help: str
    threshold: bool = False   # a class's score threshold: 0..1, or "off"


# the settings of ewcore.toml [[setting]], in key order
SETTINGS: dict[str, Setting] = {s.name: Setting(s.key, s.scale, s.unit, s.help) for s in pr.SETTINGS}
THRESHOLD_PREFIX = pr.THRESHOLDS.name_prefix


class ConfigError(lk.LinkError):
    def __init__(self, msg: str):
        super().__init__(msg, 2)


def resolve(name: str, labels: list[str]) -> Setting:
    """The setting of a name (threshold.<label> uses the node's labels)."""
    if name.startswith(THRESHOLD_PREFIX):
        label = name[len(THRESHOLD_PREFIX):]
        if label not in labels:
            raise ConfigError(f"{name}: the node's classes are {', '.join(labels)}")
        return Setting(pr.cfg_threshold(labels.index(label)), pr.THRESHOLDS.scale, "", f"score threshold of {label}",
                       threshold=True)
    s = SETTINGS.get(name)
    if s is None:
        raise ConfigError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}, threshold.<label>")
    return s


def to_raw(name: str, s: Setting, text: str) -> int:
    if s.threshold and text.strip().lower() == "off":
        return pr.THRESHOLD_OFF
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"{name}={text}: not a number") from None
    if s.threshold and not 0.0 <= v <= 1.0:
        raise ConfigError(f"{name}={text}: a score threshold is 0..1 (or off)")
    return int(round(v * s.scale))


def to_value(s: Setting, raw: int):
    if s.threshold and raw >= pr.THRESHOLD_OFF:
        return "off"
    if s.scale == 1:
        return raw
    return round(raw / s.scale, 4)


def all_names(labels: list[str]) -> list[str]:
    return list(SETTINGS) + [THRESHOLD_PREFIX + lab for lab in labels]


def run(link: lk.NodeLink, requests: list[str], factory_reset: bool = False) -> list[dict]:
    """Apply `name=value` and read `name` requests (all settings when empty) on an open link;
    returns one record per setting: name, value (in its unit), unit, raw, changed."""
    labels = list(link.hello().labels)
    parsed = []
    for r in requests:                  # check every name and value before changing anything
        name, _, text = r.partition("=")
        name = name.strip()
        s = resolve(name, labels)
        parsed.append((name, s, to_raw(name, s, text) if "=" in r else None))
    if not parsed:
        parsed = [(n, resolve(n, labels), None) for n in all_names(labels)]
    if factory_reset:
        link.command(pr.CMD_FACTORY_RESET, 0)
    out = []
    for name, s, raw in parsed:
        got = link.config_get(s.key) if raw is None else link.config_set(s.key, raw)
        out.append({"name": name, "value": to_value(s, got), "unit": s.unit, "raw": got,
                    "changed": raw is not None})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.config", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_link_args(ap)
    ap.add_argument("settings", nargs="*", metavar="NAME[=VALUE]",
                    help="settings to read (NAME) or change (NAME=VALUE); none: read them all")
    ap.add_argument("--factory-reset", action="store_true",
                    help="restore the firmware's and model's defaults first")
    ap.add_argument("--json", action="store_true", help="one JSON object per setting")
    ap.add_argument("--list", action="store_true", help="list the setting names and exit")
    args = ap.parse_args(argv)
    if args.list:
        for n, s in SETTINGS.items():
            print(f"{n:26s} {s.unit:5s} {s.help}")
        print(f"{'threshold.<label>':26s} {'':5s} score threshold of a class, 0..1 or off")
        return 0

    def body() -> int:
        with cli.link_from_args(args) as link:
            for rec in run(link, args.settings, args.factory_reset):
                if args.json:
                    print(json.dumps(rec))
                else:
                    unit = f" {rec['unit']}" if rec["unit"] and rec["value"] != "off" else ""
                    print(f"{rec['name']} {'->' if rec['changed'] else '='} {rec['value']}{unit}")
        return 0

    return cli.run_cli(body, "config")


if __name__ == "__main__":
    sys.exit(main())
