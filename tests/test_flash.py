"""tools/flash.py end to end: esptool (its Python API, as users run it) against the ROM-bootloader
simulator tools/sim/romsim.py on a pty, followed by the simulated firmware's HELLO.

The images are synthetic but valid (tools/wire/esp_image.make_firmware: ESP images with the chip
id, segments, checksum and SHA-256, an app descriptor and the earwitness identity record; a
partition table at 0x8000, the app at 0x10000), since the simulator boots only what the
bootloader would; it stores every byte written, so the tests compare the flash contents with the
image byte for byte.  tests/test_romsim_image.py checks what the simulator refuses.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tools import flash as flash_cmd
from tools.esp import flash
from tools.sim.romsim import FLASH_DATA, FLASH_DEFL_DATA, SPI_FLASH_MD5
from tools.wire import esp_image

ROOT = Path(__file__).resolve().parents[1]
MODEL = "0123456789abcdef"
CONFIG = "fedcba9876543210"
#: HELLO waits short enough that the failure paths stay fast (the node answers in ms)
FAST = ["--boot-timeout", "0.3", "--hello-timeout", "0.3", "--hello-tries", "2"]
EXPECT = ["--expect-model-hash", MODEL, "--expect-config-hash", CONFIG]


def parts(chip: str, seed: int = 1, model: str = MODEL, config: str = CONFIG) -> dict[str, bytes]:
    """A valid earwitness build whose identity record says model/config (16 hex digits, padded
    to a SHA-256 with zeros); `seed` varies the app's bytes."""
    rnd = random.Random(seed)
    filler = bytes(rnd.getrandbits(8) for _ in range(9000))
    return esp_image.make_firmware(chip, model + "0" * 48, config + "0" * 48, filler=filler)


def preload(chip: str, **kw) -> dict[int, bytes]:
    """The flash of a board that already runs a build (RomSim(preload=...))."""
    p = parts(chip, **kw)
    return {
        flash.BOOTLOADER_OFFSETS[chip]: p["bootloader.bin"],
        0x8000: p["partitions.bin"],
        0x10000: p["firmware.bin"],
    }


def build_dir(tmp_path: Path, chip: str, name: str | None = None) -> Path:
    d = tmp_path / (
        name
        or {"esp32": "esp32dev", "esp32s3": "esp32-s3-devkitc-1", "esp32c3": "esp32-c3-devkitm-1"}[
            chip
        ]
    )
    d.mkdir(parents=True)
    for n, data in parts(chip).items():
        (d / n).write_bytes(data)
    return d


def merged(tmp_path: Path, chip: str) -> Path:
    p = tmp_path / f"merged-{chip}.bin"
    p.write_bytes(flash.load_image(build_dir(tmp_path / "m", chip)).merged())
    return p


def run(argv, capsys):
    rc = flash_cmd.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------------------------------
# end to end


def test_flash_merged_image_stub_end_to_end(tmp_path, romsims, capsys):
    img = merged(tmp_path, "esp32")
    sim = romsims("esp32")
    rc, out, err = run(["--port", sim.port, "--firmware", img, *EXPECT], capsys)
    assert rc == 0, err
    data = img.read_bytes()
    assert sim.read_flash(0, len(data)) == data  # every byte, at 0x0
    assert sim.read_flash(len(data), 4096) == b"\xff" * 4096  # nothing beyond
    assert FLASH_DEFL_DATA in sim.commands  # the stub's compressed path
    assert SPI_FLASH_MD5 in sim.commands
    assert sim.state == "app" and sim.boots == 1
    assert "MD5 verified" in out and "hashes OK" in out
    assert err == ""


@pytest.mark.parametrize("chip", ["esp32", "esp32s3", "esp32c3"])
def test_flash_build_dir_rom_loader_offsets(tmp_path, romsims, capsys, chip):
    d = build_dir(tmp_path, chip)
    sim = romsims(chip)
    rc, out, err = run(["--port", sim.port, "--firmware", d, "--no-stub", *EXPECT], capsys)
    assert rc == 0, err
    boot_at = 0x1000 if chip == "esp32" else 0x0
    for name, at in (
        ("bootloader.bin", boot_at),
        ("partitions.bin", 0x8000),
        ("firmware.bin", 0x10000),
    ):
        data = (d / name).read_bytes()
        assert sim.read_flash(at, len(data)) == data, name
    assert FLASH_DATA in sim.commands and FLASH_DEFL_DATA not in sim.commands
    assert f"for {chip}" in out


def test_flash_node_library_result(tmp_path, romsims):
    img = flash.load_image(build_dir(tmp_path, "esp32c3"))
    sim = romsims("esp32c3", mac="aa:bb:cc:dd:ee:01")
    res = flash.flash_node(
        sim.port, img, flash.FlashOptions(expected=flash.Expected(MODEL, CONFIG))
    )
    assert res.ok and res.exit_code == 0 and res.error is None
    assert res.chip == "esp32c3" and res.mac == "aa:bb:cc:dd:ee:01"
    assert res.baud == 921600 and res.md5_verified and res.bytes_written == img.size
    assert res.hello.model_hash.hex() == MODEL and res.hello.config_hash.hex() == CONFIG
    assert res.hello.node_id == bytes.fromhex("aabbccddee01")
    assert json.loads(json.dumps(res.as_dict()))["hello"]["model_hash"] == MODEL


def test_reflash_a_running_node(tmp_path, romsims, capsys):
    """Second flash of a node already running the firmware (the SYNC resets it into the ROM)."""
    sim = romsims("esp32")
    d = build_dir(tmp_path, "esp32")
    assert run(["--port", sim.port, "--firmware", d, *EXPECT], capsys)[0] == 0
    d2 = tmp_path / "v2" / "esp32dev"
    d2.mkdir(parents=True)
    new = parts("esp32", seed=2)
    for n, data in new.items():
        (d2 / n).write_bytes(data)
    rc, out, err = run(["--port", sim.port, "--firmware", d2, *EXPECT], capsys)
    assert rc == 0, err
    assert sim.read_flash(0x10000, len(new["firmware.bin"])) == new["firmware.bin"]
    assert sim.boots == 2


def test_default_expected_hashes_come_from_the_checkout(tmp_path, romsims, capsys):
    """Without --expect-*: config hash = tools.node.params config_hash, model = manifest.json."""
    from tools.node import params

    cfg = params.default().config_hash[:16]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "manifest.json").write_text(json.dumps({"model_sha256": MODEL + "00" * 24}))
    sim = romsims("esp32", config_hash=cfg)
    rc, out, err = run(
        ["--port", sim.port, "--firmware", merged(tmp_path, "esp32"), "--model-dir", model_dir],
        capsys,
    )
    assert rc == 0, err
    exp = flash.expected_hashes(model_dir)
    assert (exp.model_hash, exp.config_hash) == (MODEL, cfg)


def test_flash_then_the_twins_hello(tmp_path, romsims, capsys):
    """The board boots into the real simulated node (tools/twin.py, the firmware's C app),
    which announces the identity of the image that was flashed, as the board would."""
    from tools.sim import twin

    with twin.start(silence=True, stub_scores=[0] * 7 + [255], board="twin-esp32") as tw:
        sim = romsims("esp32", app_port=tw.port)
        img = merged(tmp_path, "esp32")
        rc, out, err = run(["--port", sim.port, "--firmware", img, *EXPECT], capsys)
        assert rc == 0, err
        assert "board twin-esp32" in out and "hashes OK" in out
        assert sim.read_flash(0, img.stat().st_size) == img.read_bytes()
        rc, out, err = run(
            [
                "verify",
                "--port",
                sim.port,
                "--expect-model-hash",
                MODEL,
                "--expect-config-hash",
                "ab" * 8,
            ],
            capsys,
        )
        assert rc == 1 and f"hash mismatch: node reports config {CONFIG}" in err


@pytest.mark.slow
def test_baud_fallback(tmp_path, romsims, capsys):
    """The adapter cannot do 921600 (the CHANGE_BAUDRATE is lost): reconnect, write at 115200."""
    sim = romsims("esp32s3", max_baud=460800)
    d = build_dir(tmp_path, "esp32s3")
    rc, out, err = run(["--port", sim.port, "--firmware", d, *EXPECT], capsys)
    assert rc == 0, err
    assert "retrying at 115200 baud" in out and "at 115200 baud" in out
    data = (d / "firmware.bin").read_bytes()
    assert sim.read_flash(0x10000, len(data)) == data


def test_all_in_parallel_by_vid_pid(tmp_path, romsims, capsys, monkeypatch):
    a = romsims("esp32", mac="24:0a:c4:00:00:01")
    b = romsims("esp32", mac="24:0a:c4:00:00:02")
    other = romsims("esp32")  # a serial port that is not an ESP32 bridge
    fake = [
        SimpleNamespace(
            device=a.port, vid=0x10C4, pid=0xEA60, description="CP2102", serial_number="0001"
        ),
        SimpleNamespace(
            device=b.port, vid=0x1A86, pid=0x7523, description="CH340", serial_number=None
        ),
        SimpleNamespace(
            device=other.port, vid=0x1234, pid=0x5678, description="modem", serial_number=None
        ),
    ]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: fake)
    img = merged(tmp_path, "esp32")
    rc, out, err = run(["--all", "--firmware", img, *EXPECT], capsys)
    assert rc == 0, err
    data = img.read_bytes()
    for s in (a, b):
        assert s.read_flash(0, len(data)) == data and s.state == "app"
    assert other.commands == [] and other.read_flash(0, 16) == b"\xff" * 16
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["port", "chip"])
    table = lines[head : head + 3]
    assert sorted(ln.split()[0] for ln in table[1:]) == sorted([a.port, b.port])
    assert all(ln.rstrip().endswith("OK") for ln in table[1:])


def test_all_reports_each_node(tmp_path, romsims, capsys, monkeypatch):
    good = romsims("esp32")
    silent = romsims("esp32", silent_app=True)
    fake = [
        SimpleNamespace(
            device=p, vid=0x303A, pid=0x1001, description="USB JTAG", serial_number=None
        )
        for p in (good.port, silent.port)
    ]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: fake)
    rc, out, err = run(
        ["--all", "--firmware", merged(tmp_path, "esp32"), *EXPECT, *FAST, "--json"], capsys
    )
    assert rc == 1
    res = {r["port"]: r for r in json.loads(out)}
    assert res[good.port]["ok"] and res[good.port]["hello"]["model_hash"] == MODEL
    assert not res[silent.port]["ok"] and res[silent.port]["md5_verified"]
    assert err.count("\n") == 1 and silent.port in err and "silent after flashing" in err


def test_verify_subcommand(romsims, capsys):
    sim = romsims("esp32c3", boot="app", preload=preload("esp32c3"))
    rc, out, err = run(["verify", "--port", sim.port, *EXPECT], capsys)
    assert rc == 0, err
    assert f"model {MODEL}" in out and "OK" in out
    assert sim.commands == []  # HELLO only: the loader was never touched
    rc, out, err = run(
        [
            "verify",
            "--port",
            sim.port,
            "--expect-model-hash",
            "ab" * 8,
            "--expect-config-hash",
            CONFIG,
        ],
        capsys,
    )
    assert rc == 1 and "hash mismatch" in err


def test_image_subcommand_merges_at_the_right_offsets(tmp_path, capsys):
    d = build_dir(tmp_path, "esp32")
    out_bin = tmp_path / "out" / "merged.bin"
    rc, out, err = run(["image", "--firmware", d, "-o", out_bin], capsys)
    assert rc == 0, err
    m = out_bin.read_bytes()
    p = parts("esp32")
    assert m[:0x1000] == b"\xff" * 0x1000
    assert m[0x1000 : 0x1000 + len(p["bootloader.bin"])] == p["bootloader.bin"]
    assert m[0x8000 : 0x8000 + len(p["partitions.bin"])] == p["partitions.bin"]
    assert m[0x10000:] == p["firmware.bin"]
    img = flash.load_image(out_bin)
    assert img.chip == "esp32" and hashlib.sha256(m).hexdigest() in out


@pytest.mark.parametrize(
    "chip,name", [("esp32", "ESP32-D0WD"), ("esp32s3", "ESP32-S3"), ("esp32c3", "ESP32-C3")]
)
def test_romsim_speaks_esptools_protocol(tmp_path, romsims, capsys, chip, name):
    """The simulator against esptool's own command line (no tools/flash.py involved)."""
    import esptool

    sim = romsims(chip, mac="24:0a:c4:aa:bb:cc")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(random.Random(5).getrandbits(8) for _ in range(3000)))
    base = ["--port", sim.port, "--before", "no-reset", "--after", "no-reset", "--no-stub"]
    esptool.main(base + ["read-mac"])
    esptool.main(base + ["--baud", "460800", "write-flash", "0x20000", str(blob)])
    esptool.main(base + ["verify-flash", "0x20000", str(blob)])
    out = capsys.readouterr().out
    assert f"Chip type:          {name}" in out or name in out
    assert "MAC:                24:0a:c4:aa:bb:cc" in out
    assert "Hash of data verified" in out and "verification successful" in out.lower()
    assert sim.read_flash(0x20000, 3000) == blob.read_bytes()
    assert sim.state == "rom"  # --after no-reset: still in the loader


# ---------------------------------------------------------------------------------------------
# failure paths: exit 2 = bad usage / input, 1 = the node failed; one line on stderr


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_no_port_found(tmp_path, capsys, monkeypatch):
    fake = [
        SimpleNamespace(
            device="/dev/ttyS0", vid=None, pid=None, description="n/a", serial_number=None
        ),
        SimpleNamespace(
            device="/dev/ttyACM9",
            vid=0x2341,
            pid=0x0043,
            description="Arduino Uno",
            serial_number=None,
        ),
    ]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: fake)
    rc, out, err = run(["--firmware", merged(tmp_path, "esp32")], capsys)
    assert rc == 2
    assert "no ESP32 board found" in _one_error_line(err)
    rc, out, err = run(["list"], capsys)
    assert rc == 0 and "no ESP32 board found" in out


def test_two_boards_without_port_or_all(tmp_path, capsys, monkeypatch):
    fake = [
        SimpleNamespace(
            device=f"/dev/ttyUSB{i}", vid=0x10C4, pid=0xEA60, description="", serial_number=None
        )
        for i in range(2)
    ]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: fake)
    assert [p.bridge for p in flash.find_ports()] == ["CP210x", "CP210x"]
    rc, out, err = run(["--firmware", merged(tmp_path, "esp32")], capsys)
    assert rc == 2 and "--all" in _one_error_line(err)


def test_no_such_port(tmp_path, capsys):
    rc, out, err = run(
        ["--port", tmp_path / "ttyNOPE", "--firmware", merged(tmp_path, "esp32")], capsys
    )
    assert rc == 2 and "no such serial port" in _one_error_line(err)


def test_wrong_chip(tmp_path, romsims, capsys):
    sim = romsims("esp32c3")
    rc, out, err = run(
        ["--port", sim.port, "--firmware", merged(tmp_path, "esp32"), *EXPECT], capsys
    )
    assert rc == 2
    assert "wrong chip: expected esp32, found esp32c3" in _one_error_line(err)
    assert sim.writes == [] and sim.state == "rom"


def test_wrong_chip_from_chip_flag(tmp_path, romsims, capsys):
    sim = romsims("esp32s3")
    d = build_dir(tmp_path, "esp32c3")
    rc, out, err = run(["--port", sim.port, "--firmware", d, "--chip", "esp32c3"], capsys)
    assert rc == 2 and "wrong chip: expected esp32c3, found esp32s3" in _one_error_line(err)
    rc, out, err = run(["--port", sim.port, "--firmware", d, "--chip", "esp32s3"], capsys)
    assert rc == 2 and "image is for esp32c3, --chip says esp32s3" in _one_error_line(err)
    assert sim.writes == []


def test_node_silent_after_flash(tmp_path, romsims, capsys):
    sim = romsims("esp32", silent_app=True)
    img = merged(tmp_path, "esp32")
    rc, out, err = run(["--port", sim.port, "--firmware", img, *EXPECT, *FAST], capsys)
    assert rc == 1
    line = _one_error_line(err)
    assert "silent after flashing" in line and "node not answering" in line
    assert sim.read_flash(0, img.stat().st_size) == img.read_bytes()  # written, just silent
    # --no-verify-hello: flashing alone succeeds
    rc, out, err = run(["--port", sim.port, "--firmware", img, "--no-verify-hello"], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("what", ["model", "config"])
def test_hash_mismatch(tmp_path, romsims, capsys, what):
    bad = "deadbeefdeadbeef"
    sim = romsims("esp32", **{f"{what}_hash": bad})
    rc, out, err = run(
        ["--port", sim.port, "--firmware", merged(tmp_path, "esp32"), *EXPECT, *FAST], capsys
    )
    assert rc == 1
    line = _one_error_line(err)
    want = MODEL if what == "model" else CONFIG
    assert f"hash mismatch: node reports {what} {bad}, expected {want}" in line


def test_corrupt_md5_is_a_failed_flash(tmp_path, romsims, capsys):
    sim = romsims("esp32c3", corrupt_md5=True)
    rc, out, err = run(
        ["--port", sim.port, "--firmware", merged(tmp_path, "esp32c3"), "--no-stub", *EXPECT],
        capsys,
    )
    assert rc == 1
    assert "flash verify failed" in _one_error_line(err) and "MD5" in err
    assert sim.state == "rom"  # never reset into a firmware that failed to verify


def test_node_not_in_download_mode(tmp_path, romsims, capsys):
    """A board that never answers the loader protocol (sim firmware with reset-on-SYNC off)."""
    sim = romsims("esp32", boot="app", silent_app=True, reset_on_sync=False)
    rc, out, err = run(
        ["--port", sim.port, "--firmware", merged(tmp_path, "esp32"), "--connect-attempts", "1"],
        capsys,
    )
    assert rc == 1 and "cannot connect to the ROM loader" in _one_error_line(err)


def _corrupt_inputs(tmp_path: Path) -> list[tuple[Path, str]]:
    out = []
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    out.append((empty, "empty image"))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(random.Random(3).getrandbits(8) for _ in range(70000)))
    out.append((junk, "not a merged flash image"))
    app_only = tmp_path / "firmware.bin"
    app_only.write_bytes(parts("esp32")["firmware.bin"])
    out.append((app_only, "no partition table at 0x8000"))
    d = build_dir(tmp_path, "esp32")
    (d / "partitions.bin").unlink()
    out.append((d, "missing partitions.bin"))
    d2 = build_dir(tmp_path / "x", "esp32s3")
    (d2 / "firmware.bin").write_bytes(b"\0" * 100)
    out.append((d2, "firmware.bin: corrupt image"))
    out.append((tmp_path / "nope.bin", "no such image"))
    return out


def test_missing_or_corrupt_image(tmp_path, capsys):
    for path, reason in _corrupt_inputs(tmp_path):
        rc, out, err = run(["--port", "/dev/null", "--firmware", path], capsys)
        assert rc == 2, (path, err)
        assert reason in _one_error_line(err), (path, err)


def test_build_offline_is_a_clear_error(tmp_path, capsys):
    pio = tmp_path / "pio"
    # what `pio run -e esp32dev` prints here, offline (PlatformIO 6.1, after ~60 s)
    pio.write_text(
        "#!/bin/sh\necho 'Processing esp32dev (board: esp32dev; platform: "
        "espressif32 @ 6.10.0; framework: espidf)'\n"
        "echo 'Platform Manager: Installing espressif32 @ 6.10.0'\n"
        "echo 'HTTPClientError: ' >&2\nexit 1\n"
    )
    pio.chmod(0o755)
    rc, out, err = run(
        [
            "image",
            "--env",
            "esp32dev",
            "--pio",
            pio,
            "--project-dir",
            tmp_path,
            "-o",
            tmp_path / "m.bin",
        ],
        capsys,
    )
    assert rc == 1
    line = _one_error_line(err)
    assert (
        "could not fetch the ESP32 toolchain" in line and "--firmware .pio/build/esp32dev" in line
    )


def test_build_then_flash(tmp_path, romsims, capsys):
    """--env runs `pio run -e ENV -d PROJECT` and flashes PROJECT/.pio/build/ENV."""
    src = build_dir(tmp_path / "prebuilt", "esp32c3")
    pio = tmp_path / "pio"
    pio.write_text(
        "#!/bin/sh\n# args: run -e ENV -d DIR\n"
        f'mkdir -p "$5/.pio/build/$3" && cp {src}/*.bin "$5/.pio/build/$3/"\n'
    )
    pio.chmod(0o755)
    sim = romsims("esp32c3")
    rc, out, err = run(
        [
            "--env",
            "esp32-c3-devkitm-1",
            "--pio",
            pio,
            "--project-dir",
            tmp_path,
            "--port",
            sim.port,
            *EXPECT,
        ],
        capsys,
    )
    assert rc == 0, err
    fw = (src / "firmware.bin").read_bytes()
    assert sim.read_flash(0x10000, len(fw)) == fw
    rc, out, err = run(["--env", "nope"], capsys)
    assert rc == 2


def test_bad_usage(tmp_path, capsys):
    rc, out, err = run(["--port", "/dev/null"], capsys)
    assert rc == 2 and "--firmware" in _one_error_line(err)
    rc, out, err = run(["--firmware", "x.bin", "--hello-tries", "0", "--port", "/dev/null"], capsys)
    assert rc == 2
    rc, out, err = run(
        [
            "--expect-model-hash",
            "xyz",
            "--firmware",
            merged(tmp_path, "esp32"),
            "--port",
            "/dev/null",
        ],
        capsys,
    )
    assert rc == 2 and "16 hex digits" in _one_error_line(err)


# ---------------------------------------------------------------------------------------------
# the command lines as users run them


def test_cli_help():
    for args in (
        ["tools/flash.py", "--help"],
        ["tools/flash.py", "flash", "--help"],
        ["tools/flash.py", "verify", "--help"],
        ["-m", "tools.romsim", "--help"],
    ):
        p = subprocess.run(
            [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, p.stderr
        assert "usage:" in p.stdout
    p = subprocess.run(
        [sys.executable, "tools/flash.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for word in ("list", "verify", "image", "wrong chip", "Exit status"):
        assert word in p.stdout
    p = subprocess.run(
        [sys.executable, "tools/flash.py", "flash", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for flag in (
        "--hello-timeout",
        "--boot-timeout",
        "--connect-attempts",
        "--all",
        "--expect-model-hash",
        "--no-verify-hello",
        "--fallback-baud",
    ):
        assert flag in p.stdout


@pytest.mark.slow
def test_cli_against_romsim_process(tmp_path):
    """`python -m tools.romsim --twin` + `python tools/flash.py` as processes, like a dry run."""
    img = merged(tmp_path, "esp32s3")
    ff = tmp_path / "flash.img"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.romsim",
            "--chip",
            "esp32s3",
            "--flash-file",
            str(ff),
            "--twin",
            "--silence --stub-scores 0,255",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = sim.stdout.readline()
        assert line.startswith("earwitness romsim on /dev/pts/"), line
        port = line.split()[3]
        p = subprocess.run(
            [sys.executable, "tools/flash.py", "--port", port, "--firmware", str(img), *EXPECT],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        assert "board twin" in p.stdout and "hashes OK" in p.stdout
    finally:
        sim.terminate()
        sim.wait(10)
    data = img.read_bytes()
    assert ff.read_bytes()[: len(data)] == data  # saved by the simulator on exit
