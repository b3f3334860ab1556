"""Offline checks of the PlatformIO + ESP-IDF build scaffolding.

The ESP32 toolchain cannot be installed here, so nothing is cross-compiled.  What can be
checked without it:
  * platformio.ini, read by PlatformIO itself (`pio project config`, skipped without `pio`)
    and by configparser: the three boards, framework espidf, the non-default folders;
  * the two CMakeLists.txt files that PlatformIO's espidf builder needs, and that the sources
    registered in firmware/src/CMakeLists.txt exist (and that none is forgotten);
  * library.json of the core, the component manifest, the sdkconfig defaults;
  * the core compiles with the flags library.json gives it on the target (main.c and the
    ESP32 port are compiled against stub ESP-IDF headers in tests/test_firmware_compile_stubs.py).
"""

from __future__ import annotations

import configparser
import glob
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INI = ROOT / "platformio.ini"
SRC_DIR = "firmware/src"
LIB_DIR = "firmware/lib"
ENVS = {  # env name -> (board, F_CPU, IDF target)
    "esp32dev": ("esp32dev", "240000000L", "esp32"),
    "esp32-s3-devkitc-1": ("esp32-s3-devkitc-1", "240000000L", "esp32s3"),
    "esp32-c3-devkitm-1": ("esp32-c3-devkitm-1", "160000000L", "esp32c3"),
}
CMAKE_KEYWORDS = {
    "SRCS",
    "SRC_DIRS",
    "EXCLUDE_SRCS",
    "INCLUDE_DIRS",
    "PRIV_INCLUDE_DIRS",
    "REQUIRES",
    "PRIV_REQUIRES",
    "LDFRAGMENTS",
    "REQUIRED_IDF_TARGETS",
    "EMBED_FILES",
    "EMBED_TXTFILES",
    "KCONFIG",
    "KCONFIG_PROJBUILD",
    "WHOLE_ARCHIVE",
}
SOURCE_SUFFIXES = (".c", ".cpp", ".cc", ".S")


# ----------------------------------------------------------------------------- helpers


def read_ini() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    cp.read(INI, encoding="utf-8")
    return cp


def env_option(cp: configparser.ConfigParser, env: str, key: str) -> str | None:
    """An option of [env:NAME], falling back to the shared [env] section as PlatformIO does."""
    for section in (f"env:{env}", "env"):
        if cp.has_option(section, key):
            return cp.get(section, key).strip()
    return None


def strip_cmake_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def cmake_call_args(text: str, command: str) -> list[list[str]]:
    """Arguments of every `command(...)` call (no nested parentheses in our files)."""
    text = strip_cmake_comments(text)
    calls = re.findall(rf"\b{command}\s*\(([^)]*)\)", text, flags=re.IGNORECASE)
    return [re.findall(r'"[^"]*"|[^\s"]+', c) for c in calls]


def registered_sources(cmake_file: Path) -> list[Path]:
    """Files that idf_component_register(SRCS ... / SRC_DIRS ...) of `cmake_file` compiles,
    with file(GLOB ...) variables expanded."""
    comp_dir = cmake_file.parent
    text = cmake_file.read_text(encoding="utf-8")
    variables: dict[str, list[str]] = {}
    for args in cmake_call_args(text, "file"):
        if args and args[0].upper() in ("GLOB", "GLOB_RECURSE"):
            recursive = args[0].upper() == "GLOB_RECURSE"
            var, patterns = (
                args[1],
                [a.strip('"') for a in args[2:] if a.upper() not in ("CONFIGURE_DEPENDS",)],
            )
            found = []
            for pat in patterns:
                pat = (
                    pat.replace("${CMAKE_CURRENT_LIST_DIR}", str(comp_dir))
                    .replace("${CMAKE_CURRENT_SOURCE_DIR}", str(comp_dir))
                    .replace("${COMPONENT_DIR}", str(comp_dir))
                )
                if not Path(pat).is_absolute():
                    pat = str(comp_dir / pat)
                if recursive:
                    base, name = Path(pat).parent, Path(pat).name
                    pat = str(base / "**" / name)
                found += glob.glob(pat, recursive=recursive)
            variables[var] = sorted(found)
    regs = cmake_call_args(text, "idf_component_register")
    assert len(regs) == 1, f"{cmake_file}: expected one idf_component_register() call"
    files: list[Path] = []
    key = None
    for tok in regs[0]:
        if tok in CMAKE_KEYWORDS:
            key = tok
            continue
        tok = tok.strip('"')
        values = variables.get(tok[2:-1], None) if tok.startswith("${") else [tok]
        assert values is not None, f"{cmake_file}: unknown variable {tok}"
        for v in values:
            p = Path(v) if Path(v).is_absolute() else comp_dir / v
            if key == "SRCS":
                files.append(p)
            elif key == "SRC_DIRS":
                files += sorted(q for q in p.iterdir() if q.suffix in SOURCE_SUFFIXES)
    return files


def sdkconfig(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


# ----------------------------------------------------------------------------- platformio.ini


def test_platformio_ini_layout():
    cp = read_ini()
    assert cp.get("platformio", "src_dir") == SRC_DIR
    assert cp.get("platformio", "lib_dir") == LIB_DIR
    assert (ROOT / SRC_DIR).is_dir() and (ROOT / LIB_DIR / "ewcore").is_dir()
    # tests/ is the Python suite; PlatformIO's unit tests must not look there
    assert cp.get("platformio", "test_dir") != "tests"


def test_platformio_ini_envs():
    cp = read_ini()
    envs = {s.split(":", 1)[1] for s in cp.sections() if s.startswith("env:")}
    assert envs == set(ENVS)
    for env, (board, f_cpu, _) in ENVS.items():
        assert env_option(cp, env, "board") == board
        assert env_option(cp, env, "framework") == "espidf"
        assert env_option(cp, env, "platform").split("@")[0].strip() == "espressif32"
        assert env_option(cp, env, "board_build.f_cpu") == f_cpu
        assert env_option(cp, env, "monitor_speed") == "921600"
        assert env_option(cp, env, "upload_speed") == "921600"


def test_pio_project_config():
    """PlatformIO's own reading of platformio.ini (works offline, ~1 s)."""
    venv_bin = Path(sys.executable).parent  # the project's .venv when run by `make test`
    pio = (
        shutil.which("pio", path=str(venv_bin)) or shutil.which("pio") or shutil.which("platformio")
    )
    if pio is None:
        pytest.skip("PlatformIO (pio) not installed")
    res = subprocess.run(
        [pio, "project", "config", "--json-output"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout[res.stdout.index("[") :])
    sections = {name: dict(items) for name, items in data}
    assert Path(sections["platformio"]["src_dir"]).resolve() == (ROOT / SRC_DIR).resolve()
    assert Path(sections["platformio"]["lib_dir"]).resolve() == (ROOT / LIB_DIR).resolve()
    for env, (board, f_cpu, _) in ENVS.items():
        opts = sections[f"env:{env}"]
        assert opts["board"] == board
        assert opts["framework"] == ["espidf"]
        assert str(opts["board_build.f_cpu"]) == f_cpu
        assert int(opts["monitor_speed"]) == 921600
        assert int(opts["upload_speed"]) == 921600


# ----------------------------------------------------------------------------- CMake / ESP-IDF


def test_root_cmakelists():
    text = strip_cmake_comments((ROOT / "CMakeLists.txt").read_text(encoding="utf-8"))
    assert re.search(r"cmake_minimum_required\s*\(\s*VERSION\s+3\.16", text)
    assert "include($ENV{IDF_PATH}/tools/cmake/project.cmake)" in text.replace(" ", "")
    assert re.search(r"project\s*\(\s*earwitness\s*\)", text)
    # PlatformIO passes EXTRA_COMPONENT_DIRS=<src_dir>; a set() here would hide it
    assert not re.search(r"set\s*\(\s*(EXTRA_)?COMPONENT_DIRS\b", text, flags=re.IGNORECASE)
    # include(project.cmake) must come before project()
    assert text.index("project.cmake") < re.search(r"project\s*\(\s*earwitness", text).start()


def test_src_cmakelists_sources_exist_and_complete():
    cmake_file = ROOT / SRC_DIR / "CMakeLists.txt"
    files = registered_sources(cmake_file)
    assert files, "no sources registered"
    model_dir = (ROOT / "firmware" / "model").resolve()
    for f in files:
        if f.resolve().parent == model_dir and not model_dir.is_dir():
            continue  # the exported model (python -m training export) is not there yet
        assert f.is_file(), f"{cmake_file} registers {f}, which does not exist"
    on_disk = {p.resolve() for p in (ROOT / SRC_DIR).rglob("*") if p.suffix in SOURCE_SUFFIXES}
    missing = on_disk - {f.resolve() for f in files}
    assert not missing, f"sources in {SRC_DIR} not registered in CMakeLists.txt: {sorted(missing)}"
    assert (ROOT / SRC_DIR / "main.c").resolve() in {f.resolve() for f in files}


def test_core_is_also_an_esp_idf_component_that_platformio_does_not_need():
    """firmware/lib/ewcore/CMakeLists.txt (idf.py, make firmware-c3) compiles the core with
    library.json's flags, read from it; firmware/src requires it only when it is in the build:
    PlatformIO's CMake run does not know the component (lib_dir is no component folder) and
    would fail on a hard REQUIRES.  A plain idf.py run gets both folders from the root file."""
    comp = strip_cmake_comments((ROOT / LIB_DIR / "ewcore" / "CMakeLists.txt").read_text())
    assert re.search(
        r"idf_component_register\s*\(\s*SRCS\s+\$\{ew_srcs\}\s+INCLUDE_DIRS\s+"
        r'"include"',
        comp,
    )
    assert re.search(
        r'GLOB\s+ew_srcs\s+CONFIGURE_DEPENDS\s+"\$\{CMAKE_CURRENT_LIST_DIR\}/src/\*\.c"', comp
    )
    assert "library.json" in comp and re.search(r"string\(JSON\s+\w+\s+GET\s+.*build flags", comp)
    src = strip_cmake_comments((ROOT / SRC_DIR / "CMakeLists.txt").read_text())
    reg = re.search(r"idf_component_register\s*\(([^)]*)\)", src).group(1)
    assert "ewcore" not in reg
    assert re.search(r"idf_component_optional_requires\s*\(\s*PRIVATE\s+ewcore\s*\)", src)
    root = strip_cmake_comments((ROOT / "CMakeLists.txt").read_text())
    guard = re.search(
        r"if\s*\(\s*NOT\s+DEFINED\s+EXTRA_COMPONENT_DIRS\s*\)(.*?)endif", root, flags=re.S
    )
    assert guard and "firmware/src" in guard.group(1) and "firmware/lib/ewcore" in guard.group(1)
    assert root.index("EXTRA_COMPONENT_DIRS") < root.index("project.cmake")


def test_core_library_json():
    lib = ROOT / LIB_DIR / "ewcore"
    meta = json.loads((lib / "library.json").read_text(encoding="utf-8"))
    assert meta["name"] == "ewcore"
    build = meta["build"]
    assert (lib / build["srcDir"]).is_dir() and list((lib / build["srcDir"]).glob("*.c"))
    assert (lib / build["includeDir"] / "ew_params.h").is_file()
    assert "-std=gnu99" in build.get("flags", [])


def test_component_manifest():
    text = (ROOT / SRC_DIR / "idf_component.yml").read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is nearly always there
        assert re.search(r"^\s+espressif/esp-tflite-micro:", text, flags=re.M)
        return
    deps = yaml.safe_load(text)["dependencies"]
    spec = deps["espressif/esp-tflite-micro"]
    version = spec["version"] if isinstance(spec, dict) else spec
    assert re.fullmatch(r"[~^]?\d+\.\d+\.\d+|[<>=!~^*0-9., ]+", str(version))
    assert "idf" in deps


def test_sdkconfig_defaults():
    base = sdkconfig(ROOT / "sdkconfig.defaults")
    assert base["CONFIG_FREERTOS_HZ"] == "1000"
    assert base["CONFIG_ESP_TASK_WDT_EN"] == "y" and base["CONFIG_ESP_TASK_WDT_INIT"] == "y"
    assert base["CONFIG_ESP_MAIN_TASK_STACK_SIZE"] == "8192"
    assert base["CONFIG_COMPILER_OPTIMIZATION_PERF"] == "y"
    assert base["CONFIG_PARTITION_TABLE_SINGLE_APP_LARGE"] == "y"
    # the console baud rate is only settable with a custom UART console (Kconfig: no prompt
    # otherwise, and the default would be silently ignored)
    if "CONFIG_ESP_CONSOLE_UART_BAUDRATE" in base:
        assert base.get("CONFIG_ESP_CONSOLE_UART_CUSTOM") == "y"
        assert base["CONFIG_ESP_CONSOLE_UART_BAUDRATE"] == env_option(
            read_ini(), "esp32dev", "monitor_speed"
        )
    # PlatformIO builds partitions.bin from board_build.partitions, not from sdkconfig
    assert (
        env_option(read_ini(), "esp32dev", "board_build.partitions")
        == "partitions_singleapp_large.csv"
    )
    for env, (_, f_cpu, target) in ENVS.items():
        per_target = sdkconfig(ROOT / f"sdkconfig.defaults.{target}")
        mhz = int(f_cpu.rstrip("L")) // 1_000_000
        assert per_target.get(f"CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_{mhz}") == "y", env


# ----------------------------------------------------------------------------- host compiles


def _cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    return cc


def test_main_c_uses_core_parameters():
    main_c = (ROOT / SRC_DIR / "main.c").read_text(encoding="utf-8")
    params = (ROOT / LIB_DIR / "ewcore" / "include" / "ew_params.h").read_text(encoding="utf-8")
    for name in (
        "EW_CONFIG_HASH_STR",
        "EW_SAMPLE_RATE_HZ",
        "EW_FRAME_SAMPLES",
        "EW_HOP_SAMPLES",
        "EW_N_MELS",
    ):
        assert name in main_c
        assert re.search(rf"#define\s+{name}\b", params), f"{name} not in ew_params.h"
    assert re.search(r"\bvoid\s+app_main\s*\(\s*void\s*\)", main_c)


def test_core_compiles_with_library_json_flags():
    """The core with the flags PlatformIO adds on the target (-std=gnu99 ...), plus -Werror."""
    cc = _cc()
    lib = ROOT / LIB_DIR / "ewcore"
    meta = json.loads((lib / "library.json").read_text(encoding="utf-8"))
    sources = sorted((lib / meta["build"]["srcDir"]).glob("*.c"))
    res = subprocess.run(
        [
            cc,
            *meta["build"]["flags"],
            "-Werror",
            "-O2",
            "-fsyntax-only",
            f"-I{lib / meta['build']['includeDir']}",
            *map(str, sources),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
