"""tools/flash.py on a real board (marker `hardware`, deselected by default; never in CI).

    EARWITNESS_PORT=/dev/ttyUSB0 EARWITNESS_FIRMWARE=.pio/build/esp32dev \\
        .venv/bin/pytest -m hardware tests/test_flash_hw.py

EARWITNESS_FIRMWARE: a PlatformIO build dir or a merged image of the earwitness firmware (built
where PlatformIO can download ESP-IDF).  The board must come back with the shipped model's and
this checkout's config hashes.
"""

import os

import pytest

from tools.esp import flash

PORT = os.environ.get("EARWITNESS_PORT")
FIRMWARE = os.environ.get("EARWITNESS_FIRMWARE")

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(
        not (PORT and FIRMWARE), reason="set EARWITNESS_PORT and EARWITNESS_FIRMWARE"
    ),
]


def test_flash_real_board_and_check_hello():
    res = flash.flash_node(PORT, flash.load_image(FIRMWARE))
    assert res.ok, res.error
    assert res.md5_verified and res.hello_checked
    assert res.chip == flash.load_image(FIRMWARE).chip


def test_verify_real_board():
    hello = flash.verify_node(PORT)
    assert hello.proto_version == 1
