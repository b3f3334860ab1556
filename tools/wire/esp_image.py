"""ESP flash images as the ROM and the second-stage bootloader read them, and the earwitness
identity inside the app; used by the ROM simulator (tools/sim/romsim.py) to decide what boots.

Formats (esptool's "Firmware Image Format" and ESP-IDF's esp_app_format / partition table
documentation):

- **Image**: 8-byte header (magic 0xE9, segment count, SPI mode, flash size/frequency, entry
  address), 16-byte extended header (WP pin, SPI pin drive, chip id u16, min revision u8,
  min/max revision "full" u16 = major * 100 + minor, reserved, hash-appended flag), then the
  segments (load address u32, length u32, data); zero padding so that the checksum byte ends on
  a 16-byte boundary, the checksum (0xEF XOR every data byte of every segment), and with the
  hash flag the SHA-256 of everything before it.
- **App descriptor** (`esp_app_desc_t`, 256 bytes at the start of the app's first segment):
  magic 0xABCD5432, secure version, version[32], project_name[32], time[16], date[16],
  idf_ver[32], app_elf_sha256[32], ...
- **Partition table** at 0x8000: 32-byte entries (0xAA50, type, subtype, offset, size,
  label[16], flags), an MD5 entry (0xEBEB) over the entries before it, 0xFF after the end.
- **Identity** (firmware/src/main.c `s_identity`, kept in the image's read-only data): "EWID",
  u8 layout (1), u8 fw major/minor/patch, model_hash[8], config_hash[8] (as in HELLO),
  model_sha256[64], config_hash_hex[64] (lowercase hex).

`check_flash(flash, chip, revision)` walks a flash the way the chip boots it (bootloader at
0x0 or 0x1000, partition table, the factory / first OTA app) and returns a `BootImage`, or
raises `ImageError` with the reason the bootloader would log.  The `make_*` functions build
valid images (tests, and images for a dry run).
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

IMAGE_MAGIC = 0xE9
CHECKSUM_SEED = 0xEF
MAX_SEGMENTS = 16
APP_DESC_MAGIC = 0xABCD5432
APP_DESC_SIZE = 256
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_MAX = 0xC00
PARTITION_MAGIC = b"\xaa\x50"
PARTITION_MD5_MAGIC = b"\xeb\xeb"
IDENTITY_MAGIC = b"EWID"
IDENTITY_LAYOUT = 1
IDENTITY_SIZE = 152
_IDENTITY = struct.Struct("<4sBBBB8s8s64s64s")
assert _IDENTITY.size == IDENTITY_SIZE

#: chip name -> (image chip id, second-stage bootloader offset)
CHIPS = {"esp32": (0, 0x1000), "esp32s3": (9, 0x0), "esp32c3": (5, 0x0)}
CHIP_NAMES = {
    0: "esp32",
    2: "esp32s2",
    5: "esp32c3",
    9: "esp32s3",
    12: "esp32c2",
    13: "esp32c6",
    16: "esp32h2",
    18: "esp32p4",
}


class ImageError(ValueError):
    """What the ROM / bootloader would refuse, with its reason (one line)."""


def revision_str(rev_full: int) -> str:
    return f"v{rev_full // 100}.{rev_full % 100}"


def parse_revision(text: str) -> int:
    """ "0.3" / "v0.3" / "1.1" -> major * 100 + minor (ValueError when malformed)."""
    m = re.fullmatch(r"v?(\d)\.(\d{1,2})", text.strip())
    if not m:
        raise ValueError(f"chip revision {text!r}: expected MAJOR.MINOR, e.g. 0.3")
    return int(m.group(1)) * 100 + int(m.group(2))


@dataclass
class Segment:
    addr: int
    data: bytes


@dataclass
class Image:
    chip_id: int
    entry: int
    min_rev: int  # the old single-byte field (ESP32: major; C3: minor)
    min_rev_full: int
    max_rev_full: int
    segments: list[Segment]
    checksum: int
    sha256: bytes | None  # appended digest (checked), None when not appended
    length: int  # bytes of the image, digest included

    @property
    def chip(self) -> str:
        return CHIP_NAMES.get(self.chip_id, f"chip id {self.chip_id}")

    def supports(self, revision: int) -> bool:
        if self.max_rev_full == 0:  # an image without the "full" fields
            return revision // 100 >= self.min_rev
        return self.min_rev_full <= revision <= self.max_rev_full


@dataclass
class AppDesc:
    secure_version: int
    version: str
    project_name: str
    time: str
    date: str
    idf_ver: str
    elf_sha256: bytes


@dataclass
class Identity:
    fw_version: tuple[int, int, int]
    model_hash: bytes  # 8 bytes, as HELLO carries them
    config_hash: bytes
    model_sha256: str  # 64 hex digits
    config_hash_hex: str

    @property
    def fw_version_str(self) -> str:
        return ".".join(map(str, self.fw_version))


@dataclass
class Partition:
    type: int
    subtype: int
    offset: int
    size: int
    label: str
    flags: int


@dataclass
class BootImage:
    """A flash the simulated chip boots: the images and what the app says it is."""

    chip: str
    bootloader: Image
    partitions: list[Partition]
    app_partition: Partition
    app: Image
    app_desc: AppDesc
    identity: Identity


def parse_image(data: bytes, what: str = "image") -> Image:
    """One ESP image from the start of `data`; ImageError when the header, a segment, the
    checksum or the appended SHA-256 is wrong."""
    data = bytes(data)
    if len(data) < 24:
        raise ImageError(f"{what}: {len(data)} bytes, shorter than an image header")
    if data[0] != IMAGE_MAGIC:
        raise ImageError(f"{what}: bad magic byte 0x{data[0]:02x} (expected 0xe9)")
    nseg = data[1]
    if not 0 < nseg <= MAX_SEGMENTS:
        raise ImageError(f"{what}: {nseg} segments (1..{MAX_SEGMENTS} allowed)")
    (entry,) = struct.unpack_from("<I", data, 4)
    chip_id, min_rev, min_full, max_full = struct.unpack_from("<HBHH", data, 12)
    hash_appended = data[23]
    pos, checksum, segments = 24, CHECKSUM_SEED, []
    for i in range(nseg):
        if pos + 8 > len(data):
            raise ImageError(f"{what}: segment {i} header beyond the end of the data")
        addr, length = struct.unpack_from("<II", data, pos)
        pos += 8
        if length % 4 or pos + length > len(data):
            raise ImageError(f"{what}: segment {i} at 0x{addr:08x}: invalid length {length}")
        seg = data[pos : pos + length]
        for b in seg:
            checksum ^= b
        segments.append(Segment(addr, seg))
        pos += length
    pos += 15 - pos % 16  # the checksum byte ends a 16-byte block
    if pos >= len(data):
        raise ImageError(f"{what}: truncated (no checksum byte)")
    if data[pos] != checksum:
        raise ImageError(
            f"{what}: checksum 0x{data[pos]:02x}, computed 0x{checksum:02x} (corrupt image)"
        )
    pos += 1
    digest = None
    if hash_appended == 1:
        if pos + 32 > len(data):
            raise ImageError(f"{what}: truncated (no SHA-256 after the checksum)")
        digest = data[pos : pos + 32]
        if hashlib.sha256(data[:pos]).digest() != digest:
            raise ImageError(f"{what}: SHA-256 does not match the image (corrupt image)")
        pos += 32
    return Image(chip_id, entry, min_rev, min_full, max_full, segments, checksum, digest, pos)


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("latin-1")


def parse_app_desc(image: Image, what: str = "app") -> AppDesc:
    seg = image.segments[0].data
    if len(seg) < APP_DESC_SIZE or struct.unpack_from("<I", seg)[0] != APP_DESC_MAGIC:
        raise ImageError(
            f"{what}: no application descriptor (magic 0xabcd5432) at the start "
            f"of its first segment: not an ESP-IDF app"
        )
    (secure,) = struct.unpack_from("<I", seg, 4)
    f = struct.unpack_from("<32s32s16s16s32s32s", seg, 16)
    return AppDesc(secure, _cstr(f[0]), _cstr(f[1]), _cstr(f[2]), _cstr(f[3]), _cstr(f[4]), f[5])


def find_identity(image: Image, what: str = "app") -> Identity:
    """The earwitness identity record in the app's segments (exactly one, consistent)."""
    found = []
    for seg in image.segments:
        start = 0
        while (i := seg.data.find(IDENTITY_MAGIC + bytes([IDENTITY_LAYOUT]), start)) >= 0:
            start = i + 1
            if i + IDENTITY_SIZE > len(seg.data):
                continue
            _, _, ma, mi, pa, mh, ch, msha, chex = _IDENTITY.unpack_from(seg.data, i)
            try:
                msha_s, chex_s = msha.decode("ascii"), chex.decode("ascii")
            except UnicodeDecodeError:
                continue
            if not (
                re.fullmatch(r"[0-9a-f]{64}", msha_s) and re.fullmatch(r"[0-9a-f]{64}", chex_s)
            ):
                continue
            if bytes.fromhex(msha_s[:16]) != mh or bytes.fromhex(chex_s[:16]) != ch:
                raise ImageError(
                    f"{what}: identity record at segment 0x{seg.addr:08x}+{i}: "
                    f"hashes disagree with the hex digests"
                )
            found.append(Identity((ma, mi, pa), mh, ch, msha_s, chex_s))
    if not found:
        raise ImageError(f'{what}: not an earwitness firmware (no identity record "EWID")')
    if len(found) > 1 and any(f != found[0] for f in found[1:]):
        raise ImageError(f"{what}: {len(found)} different identity records")
    return found[0]


def parse_partitions(data: bytes) -> list[Partition]:
    data = bytes(data[:PARTITION_TABLE_MAX])
    out: list[Partition] = []
    for pos in range(0, len(data) - 31, 32):
        e = data[pos : pos + 32]
        if e[:2] == PARTITION_MAGIC:
            t, st, off, size, label, flags = struct.unpack_from("<BBII16sI", e, 2)
            out.append(Partition(t, st, off, size, _cstr(label), flags))
        elif e[:2] == PARTITION_MD5_MAGIC:
            if hashlib.md5(data[:pos]).digest() != e[16:32]:
                raise ImageError("partition table at 0x8000: MD5 does not match (corrupt)")
            break
        elif e[:2] == b"\xff\xff":
            break
        else:
            raise ImageError(
                f"partition table at 0x8000: bad entry magic {e[:2].hex()} at entry {pos // 32}"
            )
    if not out:
        raise ImageError("no partition table at 0x8000")
    return out


def check_flash(flash: bytes, chip: str, revision: int) -> BootImage:
    """Boot `flash` as `chip` (revision major * 100 + minor): ImageError with the first reason
    the ROM or the bootloader would stop at, else the BootImage."""
    chip_id, boot_off = CHIPS[chip]

    def check(img: Image, what: str) -> None:
        if img.chip_id != chip_id:
            raise ImageError(f"{what}: built for {img.chip}, this chip is {chip}")
        if not img.supports(revision):
            want = (
                f"{revision_str(img.min_rev_full)} - {revision_str(img.max_rev_full)}"
                if img.max_rev_full
                else f"v{img.min_rev}.x or later"
            )
            raise ImageError(
                f"{what}: needs chip revision {want}, this chip is {revision_str(revision)}"
            )

    boot = parse_image(flash[boot_off : boot_off + 0x10000], f"bootloader at 0x{boot_off:x}")
    check(boot, f"bootloader at 0x{boot_off:x}")
    parts = parse_partitions(flash[PARTITION_TABLE_OFFSET:])
    apps = [p for p in parts if p.type == 0]
    app_part = next((p for p in apps if p.subtype == 0x00), None) or next(
        (p for p in apps if p.subtype == 0x10), None
    )
    if app_part is None:
        raise ImageError("partition table: no factory or ota_0 app partition")
    what = f"app at 0x{app_part.offset:x} ({app_part.label})"
    if app_part.offset + app_part.size > len(flash):
        raise ImageError(f"{what}: partition beyond the end of the flash")
    app = parse_image(flash[app_part.offset : app_part.offset + app_part.size], what)
    check(app, what)
    desc = parse_app_desc(app, what)
    ident = find_identity(app, what)
    return BootImage(chip, boot, parts, app_part, app, desc, ident)


# --------------------------------------------------------------------------------------------
# Builders (the inverse of the parsers): valid images for tests and dry runs


def make_image(
    chip: str,
    segments,
    *,
    entry: int = 0x40380000,
    min_rev_full: int = 0,
    max_rev_full: int = 199,
    hash_appended: bool = True,
) -> bytes:
    """An ESP image of (address, data) segments (data padded to 4 bytes)."""
    chip_id = CHIPS[chip][0] if isinstance(chip, str) else int(chip)
    segs = [(a, bytes(d) + bytes(-len(d) % 4)) for a, d in segments]
    min_rev = min_rev_full % 100 if chip == "esp32c3" else min_rev_full // 100
    out = bytearray(struct.pack("<BBBBI", IMAGE_MAGIC, len(segs), 2, 0x20, entry))
    out += struct.pack(
        "<B3sHBHH4sB",
        0xEE,
        bytes(3),
        chip_id,
        min_rev,
        min_rev_full,
        max_rev_full,
        bytes(4),
        1 if hash_appended else 0,
    )
    checksum = CHECKSUM_SEED
    for a, d in segs:
        out += struct.pack("<II", a, len(d)) + d
        for b in d:
            checksum ^= b
    out += bytes(15 - len(out) % 16) + bytes([checksum])
    if hash_appended:
        out += hashlib.sha256(out).digest()
    return bytes(out)


def make_app_desc(
    project_name: str = "earwitness", version: str = "0.2.0", idf_ver: str = "v5.3.2"
) -> bytes:
    f = lambda s, n: s.encode()[: n - 1].ljust(n, b"\0")  # noqa: E731
    return (
        struct.pack("<II8s", APP_DESC_MAGIC, 0, bytes(8))
        + f(version, 32)
        + f(project_name, 32)
        + f("00:00:00", 16)
        + f("Jan  1 2026", 16)
        + f(idf_ver, 32)
        + bytes(32)
    ).ljust(APP_DESC_SIZE, b"\0")


def make_identity(model_sha256: str, config_hash_hex: str, fw_version=(0, 2, 0)) -> bytes:
    m, c = model_sha256.lower(), config_hash_hex.lower()
    return _IDENTITY.pack(
        IDENTITY_MAGIC,
        IDENTITY_LAYOUT,
        *fw_version,
        bytes.fromhex(m[:16]),
        bytes.fromhex(c[:16]),
        m.encode(),
        c.encode(),
    )


def make_partitions(app_offset: int = 0x10000, app_size: int = 0x180000) -> bytes:
    rows = [
        (1, 0x02, 0x9000, 0x6000, "nvs"),
        (1, 0x01, 0xF000, 0x1000, "phy_init"),
        (0, 0x00, app_offset, app_size, "factory"),
    ]
    out = b"".join(
        PARTITION_MAGIC + struct.pack("<BBII16sI", t, st, o, s, n.encode(), 0)
        for t, st, o, s, n in rows
    )
    out += PARTITION_MD5_MAGIC + b"\xff" * 14 + hashlib.md5(out).digest()
    return out + b"\xff" * (PARTITION_TABLE_MAX - len(out))


def make_firmware(
    chip: str,
    model_sha256: str,
    config_hash_hex: str,
    fw_version=(0, 2, 0),
    *,
    min_rev_full: int = 0,
    filler: bytes = b"",
    identity: bool = True,
    app_chip: str | None = None,
) -> dict[str, bytes]:
    """bootloader.bin, partitions.bin, firmware.bin of a small valid earwitness build."""
    rodata = (
        make_app_desc()
        + filler
        + (make_identity(model_sha256, config_hash_hex, fw_version) if identity else b"")
    )
    boot = make_image(chip, [(0x403CE000, b"\x13\x00\x00\x00" * 64)], min_rev_full=min_rev_full)
    app = make_image(
        app_chip or chip,
        [(0x3C000020, rodata), (0x40380000, b"\x01\x00" * 64)],
        min_rev_full=min_rev_full,
    )
    return {"bootloader.bin": boot, "partitions.bin": make_partitions(), "firmware.bin": app}
