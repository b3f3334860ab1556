"""What the ROM simulator boots: the image checks of tools/wire/esp_image.py (the way the ROM and
ESP-IDF's bootloader read a flash), and tools/flash.py against the simulator with valid,
corrupt, wrong-chip, wrong-revision and non-earwitness images.

The parser tests use small images built here (no ESP-IDF needed).  The tests of the real
ESP32-C3 build flash `build/firmware-c3/` as `make firmware-c3` leaves it (the offline ESP-IDF
bundle in ../shared/esp32c3; CI runs it before the tests when the bundle is there; another
folder: EW_FIRMWARE_C3=DIR); they skip without it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import pytest

from tools import flash as flash_cmd
from tools.node import params
from tools.sim.romsim import RomSim
from tools.wire import esp_image as ei

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_C3 = Path(os.environ.get("EW_FIRMWARE_C3", ROOT / "build" / "firmware-c3"))
MODEL = "0123456789abcdef" + "11" * 24
CONFIG = "fedcba9876543210" + "22" * 24
FAST = ["--boot-timeout", "0.3", "--hello-timeout", "0.3", "--hello-tries", "2"]
EXPECT = ["--expect-model-hash", MODEL[:16], "--expect-config-hash", CONFIG[:16]]


def flash_of(chip: str, files: dict[str, bytes]) -> bytearray:
    out = bytearray(b"\xff" * 0x200000)
    for name, at in (
        ("bootloader.bin", ei.CHIPS[chip][1]),
        ("partitions.bin", 0x8000),
        ("firmware.bin", 0x10000),
    ):
        out[at : at + len(files[name])] = files[name]
    return out


def write_dir(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    for n, data in files.items():
        (path / n).write_bytes(data)
    return path


def reason(fn, *a) -> str:
    with pytest.raises(ei.ImageError) as e:
        fn(*a)
    return str(e.value)


# ---------------------------------------------------------------------------------------------
# the parser, on synthetic images


def test_valid_image_parses_with_its_identity():
    files = ei.make_firmware("esp32c3", MODEL, CONFIG, (0, 3, 1), min_rev_full=3)
    boot = ei.check_flash(flash_of("esp32c3", files), "esp32c3", 3)
    assert boot.identity == ei.Identity(
        (0, 3, 1), bytes.fromhex(MODEL[:16]), bytes.fromhex(CONFIG[:16]), MODEL, CONFIG
    )
    assert boot.app_desc.project_name == "earwitness" and boot.app_desc.idf_ver == "v5.3.2"
    assert boot.app.chip == "esp32c3" and boot.app.min_rev_full == 3
    assert boot.app_partition.label == "factory" and boot.app_partition.offset == 0x10000
    assert boot.app.sha256 == hashlib.sha256(files["firmware.bin"][:-32]).digest()
    assert boot.app.length == len(files["firmware.bin"])


@pytest.mark.parametrize("chip", ["esp32", "esp32s3", "esp32c3"])
def test_every_chip_boots_its_own_image_only(chip):
    files = ei.make_firmware(chip, MODEL, CONFIG)
    assert ei.check_flash(flash_of(chip, files), chip, 0).chip == chip
    other = "esp32s3" if chip != "esp32s3" else "esp32c3"
    r = reason(ei.check_flash, flash_of(other, ei.make_firmware(chip, MODEL, CONFIG)), other, 0)
    assert f"built for {chip}, this chip is {other}" in r or "bad magic" in r


def test_checksum_sha256_and_segments_are_checked():
    app = bytearray(ei.make_firmware("esp32c3", MODEL, CONFIG)["firmware.bin"])
    seg_data = 24 + 8 + 300  # a byte inside the first segment
    bad = bytearray(app)
    bad[seg_data] ^= 0x01
    assert "checksum" in reason(ei.parse_image, bytes(bad))
    bad = bytearray(app)
    bad[-1] ^= 0x01  # the appended digest itself
    assert "SHA-256 does not match" in reason(ei.parse_image, bytes(bad))
    bad = bytearray(app)
    bad[6] ^= 0x01  # entry address: header bytes are hashed too
    assert "SHA-256 does not match" in reason(ei.parse_image, bytes(bad))
    bad = bytearray(app)
    struct.pack_into("<I", bad, 24 + 4, 1 << 20)  # first segment length beyond the data
    assert "invalid length" in reason(ei.parse_image, bytes(bad))
    assert "bad magic" in reason(ei.parse_image, b"\xff" * 64)
    assert "shorter than an image header" in reason(ei.parse_image, app[:10])
    assert "truncated" in reason(ei.parse_image, app[:-40])


def test_chip_revision_range():
    files = ei.make_firmware("esp32c3", MODEL, CONFIG, min_rev_full=3)
    fl = flash_of("esp32c3", files)
    for rev in (3, 4, 101, 199):
        ei.check_flash(fl, "esp32c3", rev)
    for rev, shown in ((0, "v0.0"), (2, "v0.2"), (200, "v2.0")):
        r = reason(ei.check_flash, fl, "esp32c3", rev)
        assert f"needs chip revision v0.3 - v1.99, this chip is {shown}" in r
    assert ei.parse_revision("0.3") == 3 and ei.parse_revision("v1.1") == 101
    with pytest.raises(ValueError):
        ei.parse_revision("3")


def test_not_an_earwitness_app():
    files = ei.make_firmware("esp32c3", MODEL, CONFIG, identity=False)
    r = reason(ei.check_flash, flash_of("esp32c3", files), "esp32c3", 4)
    assert r == 'app at 0x10000 (factory): not an earwitness firmware (no identity record "EWID")'
    # an image that is no ESP-IDF app at all (no app descriptor)
    files["firmware.bin"] = ei.make_image(
        "esp32c3", [(0x3C000020, ei.make_identity(MODEL, CONFIG))]
    )
    assert "no application descriptor" in reason(
        ei.check_flash, flash_of("esp32c3", files), "esp32c3", 4
    )


def test_identity_record_must_be_consistent():
    rec = bytearray(ei.make_identity(MODEL, CONFIG))
    rec[8] ^= 0xFF  # model_hash[0] disagrees with the hex
    app = ei.make_image("esp32c3", [(0x3C000020, ei.make_app_desc() + bytes(rec))])
    assert "hashes disagree" in reason(ei.find_identity, ei.parse_image(app))
    two = ei.make_app_desc() + ei.make_identity(MODEL, CONFIG) + ei.make_identity(CONFIG, MODEL)
    app = ei.make_image("esp32c3", [(0x3C000020, two)])
    assert "2 different identity records" in reason(ei.find_identity, ei.parse_image(app))


def test_partition_table_checks():
    files = ei.make_firmware("esp32c3", MODEL, CONFIG)
    bad = bytearray(files["partitions.bin"])
    bad[10] ^= 0x01  # an entry's offset: the MD5 entry disagrees
    assert "MD5 does not match" in reason(ei.parse_partitions, bytes(bad))
    assert "no partition table" in reason(ei.parse_partitions, b"\xff" * 64)
    no_app = ei.make_partitions()[:64] + b"\xff" * 64  # nvs + phy_init, no app
    fl = flash_of("esp32c3", {**files, "partitions.bin": no_app})
    assert "no factory or ota_0 app" in reason(ei.check_flash, fl, "esp32c3", 4)


# ---------------------------------------------------------------------------------------------
# the simulator + tools/flash.py


def run(argv, capsys):
    rc = flash_cmd.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def sim(romsims):
    """ROM simulators of an ESP32-C3 (tests/conftest.py's romsims), stopped after the test."""
    return functools.partial(romsims, "esp32c3")


def test_the_node_announces_the_identity_of_its_image(tmp_path, sim, capsys):
    d = write_dir(
        tmp_path / "esp32-c3-devkitm-1",
        ei.make_firmware("esp32c3", MODEL, CONFIG, (0, 7, 1), min_rev_full=3),
    )
    s = sim()
    rc, out, err = run(["--port", s.port, "--firmware", d, *EXPECT], capsys)
    assert rc == 0, err
    assert "firmware 0.7.1" in out and "hashes OK" in out
    assert s.image is not None and s.image.identity.model_sha256 == MODEL
    # the checkout's hashes are not this image's: the HELLO check fails as on a board
    rc, out, err = run(["verify", "--port", s.port], capsys)
    assert rc == 1 and f"hash mismatch: node reports model {MODEL[:16]}" in one_line(err)


@pytest.mark.parametrize("case", ["no identity", "app for another chip", "corrupt app"])
def test_refused_images_do_not_boot(tmp_path, sim, capsys, case):
    if case == "no identity":
        files = ei.make_firmware("esp32c3", MODEL, CONFIG, identity=False)
        why = "not an earwitness firmware"
    elif case == "app for another chip":
        files = ei.make_firmware("esp32c3", MODEL, CONFIG, app_chip="esp32s3")
        why = "built for esp32s3, this chip is esp32c3"
    else:
        files = ei.make_firmware("esp32c3", MODEL, CONFIG)
        app = bytearray(files["firmware.bin"])
        app[len(app) // 2] ^= 0x40
        files["firmware.bin"] = bytes(app)
        why = "(corrupt image)"
    d = write_dir(tmp_path / "esp32-c3-devkitm-1", files)
    s = sim()
    rc, out, err = run(["--port", s.port, "--firmware", d, *EXPECT, *FAST], capsys)
    assert rc == 1
    line = one_line(err)
    assert "the chip did not start the firmware" in line and why in line, line
    assert s.image is None and why in s.boot_error and s.hello_count == 0
    assert s.read_flash(0x10000, len(files["firmware.bin"])) == files["firmware.bin"]


def test_old_chip_revision_is_refused_by_esptool(tmp_path, sim, capsys):
    d = write_dir(
        tmp_path / "esp32-c3-devkitm-1", ei.make_firmware("esp32c3", MODEL, CONFIG, min_rev_full=3)
    )
    s = sim(chip_revision="0.0")
    rc, out, err = run(["--port", s.port, "--firmware", d, *EXPECT, *FAST], capsys)
    assert rc == 1
    line = one_line(err)
    assert "image refused" in line and "requires chip revision" in line and "v0.0" in line
    assert "retrying" not in out  # not taken for a baud problem
    assert s.image is None and s.hello_count == 0


def test_chip_revision_is_read_by_esptool_from_the_efuses(sim):
    from esptool.cmds import detect_chip

    for rev in ("0.3", "0.4", "1.1", "0.8"):
        s = sim(chip_revision=rev)
        esp = detect_chip(s.port, 115200, "no-reset", False, 3)
        try:
            assert esp.get_chip_revision() == ei.parse_revision(rev)
        finally:
            esp._port.close()
    with pytest.raises(ValueError, match="only modelled for esp32c3"):
        RomSim("esp32", chip_revision="1.0")


def test_romsim_cli_rejects_a_bad_revision(capsys):
    from tools import romsim

    assert romsim.main(["--chip", "esp32c3", "--chip-revision", "zero"]) == 2
    assert "chip revision 'zero'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the real ESP32-C3 build (make firmware-c3)


def _real_build() -> Path:
    if not (FIRMWARE_C3 / "firmware.bin").is_file():
        pytest.skip(
            f"no ESP32-C3 build in {FIRMWARE_C3} (make firmware-c3, with the offline "
            f"ESP-IDF bundle in ../shared/esp32c3)"
        )
    return FIRMWARE_C3


def test_real_build_parses_as_the_bootloader_reads_it():
    d = _real_build()
    files = {n: (d / n).read_bytes() for n in ("bootloader.bin", "partitions.bin", "firmware.bin")}
    boot = ei.check_flash(flash_of("esp32c3", files), "esp32c3", 3)
    assert boot.app_desc.project_name == "earwitness"
    assert boot.app_desc.idf_ver.startswith("v5.3")
    assert boot.app.min_rev_full == 3 and boot.app.sha256 is not None
    manifest = json.loads((params.MODEL_DIR / "manifest.json").read_text())
    assert boot.identity.model_sha256 == manifest["model_sha256"], (
        "the build's model is not this checkout's: run make firmware-c3 again"
    )
    assert boot.identity.config_hash_hex == params.default().config_hash
    assert reason(ei.check_flash, flash_of("esp32c3", files), "esp32c3", 2).endswith(
        "needs chip revision v0.3 - v1.99, this chip is v0.2"
    )


def test_real_build_flashes_and_boots_end_to_end(tmp_path, sim, capsys):
    """tools/flash.py writes the real image to the simulated ESP32-C3, which checks and boots
    it; the HELLO identity comes from the image and matches this checkout."""
    d = _real_build()
    s = sim()
    rc, out, err = run(["--port", s.port, "--firmware", d], capsys)  # the checkout's hashes
    assert rc == 0, err
    assert "hashes OK" in out and s.image is not None and s.hello_count >= 1
    app = (d / "firmware.bin").read_bytes()
    assert s.read_flash(0x10000, len(app)) == app


def test_real_build_corrupted_is_refused(tmp_path, sim, capsys):
    d = _real_build()
    bad = tmp_path / "esp32-c3-devkitm-1"
    shutil.copytree(d, bad)
    app = bytearray((bad / "firmware.bin").read_bytes())
    app[len(app) // 2] ^= 0x01  # one bit in the middle of the app
    (bad / "firmware.bin").write_bytes(bytes(app))
    s = sim()
    rc, out, err = run(["--port", s.port, "--firmware", bad, *FAST], capsys)
    assert rc == 1
    line = one_line(err)
    assert "the chip did not start the firmware" in line and "corrupt image" in line, line
    assert s.image is None and s.hello_count == 0


def test_real_build_on_a_chip_older_than_v0_3_is_refused(sim, capsys):
    d = _real_build()
    s = sim(chip_revision="0.2")
    rc, out, err = run(["--port", s.port, "--firmware", d, *FAST], capsys)
    assert rc == 1
    line = one_line(err)
    assert "image refused" in line and "v0.3" in line and "v0.2" in line, line
    assert s.writes == [] and s.image is None and s.hello_count == 0
