"""Figures of the real ESP32-C3 firmware build (`make firmware-c3` -> build/firmware-c3/), from
ESP-IDF's own size report (`idf.py size`, saved as size.txt by the build):

  firmware_c3_image_bytes       "Total image size": what the app partition holds (firmware.bin
                                without the padding)
  firmware_c3_dram_bytes        static DRAM: .data + .bss (+ .noinit), the DRAM row without the
                                instruction RAM code that shares the ESP32-C3's SRAM
  firmware_c3_iram_bytes        code and vectors in internal RAM (.text / .vectors / .iram*,
                                in the DRAM row's shared SRAM and the IRAM row)
  firmware_c3_flash_code_bytes  code executed from flash through the cache ("Flash Code")

plus firmware_c3_detail (every row of the table, the heap left after the statics).  Without the
build the figures are null and `_skipped["firmware_c3"]` says why.
"""

from __future__ import annotations

import re
from pathlib import Path

from tools.node import params

DEFAULT_DIR = params.ROOT / "build" / "firmware-c3"
KEYS = (
    "firmware_c3_image_bytes",
    "firmware_c3_dram_bytes",
    "firmware_c3_iram_bytes",
    "firmware_c3_flash_code_bytes",
)
_CODE = re.compile(r"^\.(text|vectors|iram\S*)$")


def parse_size_table(text: str) -> dict:
    """idf.py size's "Memory Type Usage Summary" as {memory type: {"used", "remain", "total",
    "sections": {name: used}}} plus "image_bytes" ("Total image size")."""
    rows: dict = {}
    current = None
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        if len(cells) < 4 or not cells[1] or not re.fullmatch(r"\d+", cells[2] or "x"):
            continue
        name = cells[1]
        nums = [int(c) if re.fullmatch(r"\d+", c) else None for c in cells[2:6]]
        used, _pct, remain, total = (nums + [None] * 4)[:4]
        if name.startswith("."):
            if current is not None:
                rows[current]["sections"][name] = used
        else:
            current = name
            rows[name] = {"used": used, "remain": remain, "total": total, "sections": {}}
    m = re.search(r"Total image size:\s*(\d+)", text)
    if not rows or not m:
        raise ValueError("no Memory Type Usage Summary / Total image size in the size report")
    rows["image_bytes"] = int(m.group(1))
    return rows


def figures(build_dir: Path = DEFAULT_DIR) -> dict:
    """The four figures (+ detail); raises FileNotFoundError / ValueError with the reason."""
    size_txt = Path(build_dir) / "size.txt"
    if not size_txt.is_file():
        raise FileNotFoundError(
            f"{size_txt} not found: build the firmware with "
            f"`make firmware-c3` (needs ../shared/esp32c3)"
        )
    t = parse_size_table(size_txt.read_text(encoding="utf-8"))
    dram = t.get("DRAM") or t.get("DIRAM")
    if dram is None or "Flash Code" not in t:
        raise ValueError(f"{size_txt}: no DRAM / Flash Code row")
    iram = sum(u or 0 for n, u in dram["sections"].items() if _CODE.match(n))
    iram += sum(u or 0 for n, u in t.get("IRAM", {}).get("sections", {}).items() if _CODE.match(n))
    dram_code = sum(u or 0 for n, u in dram["sections"].items() if _CODE.match(n))
    return {
        "firmware_c3_image_bytes": t["image_bytes"],
        "firmware_c3_dram_bytes": dram["used"] - dram_code,
        "firmware_c3_iram_bytes": iram,
        "firmware_c3_flash_code_bytes": t["Flash Code"]["used"],
        "firmware_c3_detail": {
            "source": str(size_txt.relative_to(params.ROOT))
            if size_txt.is_relative_to(params.ROOT)
            else str(size_txt),
            "dram_total": dram["total"],
            "dram_remain_for_heap": dram["remain"],
            "rows": {k: v for k, v in t.items() if k != "image_bytes"},
        },
    }
