"""A node's settings (CONFIG keys) by name, in the unit of the name: parsing NAME[=VALUE],
range checks against ewcore.toml's [[setting]] table, applying a set of changes with roll-back
when the node refuses one.  The command is tools/config.py (python -m tools.config)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from tools import cli
from tools.wire import link as lk
from tools.wire import protocol as pr


@dataclass(frozen=True)
class Setting:
    key: int
    scale: float  # raw = round(value * scale)
    unit: str
    help: str
    threshold: bool = False  # a class's score threshold: 0..1, or "off"
    lo: int = 0  # the table's raw range (ewcore.toml [[setting]] min..max)
    hi: int = 0
    zero_off: bool = False  # 0 (off) is also accepted
    rule: str = ""  # what the node checks (ewcore.toml `wire`)

    def accepts(self, raw: int) -> bool:
        return self.lo <= raw <= self.hi or (self.zero_off and raw == 0)

    def valid_range(self) -> str:
        """The accepted values in the user's unit, e.g. `1..63 hops (or 0: off)`."""
        if self.threshold:
            return "0..1 (or off)"
        unit = f" {self.unit}" if self.unit else ""
        text = f"{_num(self.lo / self.scale)}..{_num(self.hi / self.scale)}{unit}"
        return text + (" (or 0: off)" if self.zero_off and not self.lo <= 0 <= self.hi else "")


def _num(v: float) -> str:
    return f"{v:g}" if float(v).is_integer() else f"{round(v, 4)}"


# the settings of ewcore.toml [[setting]], in key order
SETTINGS: dict[str, Setting] = {
    s.name: Setting(
        s.key, s.scale, s.unit, s.help, lo=s.min, hi=s.max, zero_off=s.zero_off, rule=s.wire
    )
    for s in pr.SETTINGS
}
THRESHOLD_PREFIX = pr.THRESHOLDS.name_prefix


class ConfigError(lk.LinkError):
    def __init__(self, msg: str):
        super().__init__(msg, 2)


def resolve(name: str, labels: list[str]) -> Setting:
    """The setting of a name (threshold.<label> uses the node's labels)."""
    if name.startswith(THRESHOLD_PREFIX):
        label = name[len(THRESHOLD_PREFIX) :]
        if label not in labels:
            raise ConfigError(f"{name}: the node's classes are {', '.join(labels)}")
        return Setting(
            pr.cfg_threshold(labels.index(label)),
            pr.THRESHOLDS.scale,
            "",
            f"score threshold of {label}",
            threshold=True,
            lo=0,
            hi=pr.THRESHOLDS.scale,
        )
    s = SETTINGS.get(name)
    if s is None:
        hint = (
            " (an audio file for the simulated node is given with --sim-audio PATH)"
            if "=" not in name and "." in name and not name.startswith(THRESHOLD_PREFIX)
            else ""
        )
        raise ConfigError(
            f"unknown setting {name!r}; known: {', '.join(SETTINGS)}, threshold.<label>{hint}"
        )
    return s


def to_raw(name: str, s: Setting, text: str) -> int:
    """The raw value of `name=text`, checked against the setting's range (ConfigError: exit 2)."""
    if s.threshold and text.strip().lower() == "off":
        return pr.THRESHOLD_OFF
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(f"{name}={text}: not a number") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}={text}: not a number")
    raw = int(round(v * s.scale))
    if not s.accepts(raw):
        raise ConfigError(f"{name}={text}: out of range; {name} is {s.valid_range()}")
    return raw


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
    returns one record per setting: name, value (in its unit), unit, raw, changed.

    Every name and value is checked (name known, value in its range) before anything is sent.
    If the node still refuses a value (a rule across settings, e.g. early-preroll-frames above
    the preroll), the values already changed by this call are set back to what they were and
    RefusedChange is raised (its `records`: what the node holds now)."""
    labels = list(link.hello().labels)
    parsed = []
    for r in requests:  # check every name and value before changing anything
        name, _, text = r.partition("=")
        name = name.strip()
        s = resolve(name, labels)
        parsed.append((name, s, to_raw(name, s, text) if "=" in r else None))
    if not parsed:
        parsed = [(n, resolve(n, labels), None) for n in all_names(labels)]
    if factory_reset:
        link.command(pr.CMD_FACTORY_RESET, 0)
    before = {s.key: link.config_get(s.key) for _, s, raw in parsed if raw is not None}
    out, applied = [], []
    for name, s, raw in parsed:
        if raw is None:
            got = link.config_get(s.key)
        else:
            try:
                got = link.config_set(s.key, raw)
            except lk.NodeRefused as e:
                raise _roll_back(link, name, s, raw, e, applied, before, parsed) from None
            applied.append((name, s))
        out.append(
            {
                "name": name,
                "value": to_value(s, got),
                "unit": s.unit,
                "raw": got,
                "changed": raw is not None,
            }
        )
    return out


class RefusedChange(lk.LinkError):
    """The node refused a checked value; the call's earlier changes were rolled back.
    `records`: every requested setting as the node holds it now (changed: False)."""

    def __init__(self, msg: str, records: list[dict], exit_code: int = 2):
        super().__init__(msg, exit_code)
        self.records = records


def _roll_back(link, name, s, raw, err, applied, before, parsed) -> lk.LinkError:
    why = err.detail or str(err)
    if s.rule:
        why += f" ({name}: {s.rule})"
    restored, failed = [], []
    for n, st in reversed(applied):
        try:
            link.config_set(st.key, before[st.key])
            restored.append(n)
        except lk.LinkError as e2:
            failed.append(f"{n} ({e2})")
    records = []
    for n, st, _ in parsed:
        try:
            got = link.config_get(st.key)
        except lk.LinkError:
            continue
        records.append(
            {"name": n, "value": to_value(st, got), "unit": st.unit, "raw": got, "changed": False}
        )
    msg = f"the node refused {name}={to_value(s, raw)}{' ' + s.unit if s.unit else ''}: {why}"
    if restored:
        msg += f"; set back: {', '.join(reversed(restored))}"
    if failed:
        msg += f"; could NOT set back: {', '.join(failed)}"
        return RefusedChange(msg, records, 1)
    return RefusedChange(msg + "; nothing changed", records, 2)


def show(rec: dict, json_lines: bool = False) -> None:
    """One setting record on stdout: `name = value unit` (`->` when changed), or JSON."""
    if json_lines:
        print(json.dumps(rec))
    else:
        unit = f" {rec['unit']}" if rec["unit"] and rec["value"] != "off" else ""
        print(f"{rec['name']} {'->' if rec['changed'] else '='} {rec['value']}{unit}")


def print_list(out=None) -> int:
    """The setting names, units and help (python -m tools.config --list)."""
    out = out or sys.stdout
    for n, s in SETTINGS.items():
        print(f"{n:26s} {s.unit:5s} {s.help}", file=out)
    print(f"{'threshold.<label>':26s} {'':5s} score threshold of a class, 0..1 or off", file=out)
    return 0


def command(
    link_opts, requests: list[str], factory_reset: bool = False, json_lines: bool = False
) -> int:
    """The command's work (python -m tools.config): run() on the node of `link_opts` (the
    parsed tools.cli link options, opened with cli.link_from_args), every record shown; if the
    node refused a change, what it holds now is shown before RefusedChange propagates."""
    with cli.link_from_args(link_opts) as link:
        try:
            records = run(link, requests, factory_reset)
        except RefusedChange as e:
            for rec in e.records:  # what the node holds now
                show(rec, json_lines)
            raise
        for rec in records:
            show(rec, json_lines)
    return 0
