"""Builds the portable C core into a shared library that tools/node/core.py loads with ctypes.

The library is a (trivial) CPython extension module so that `pip install -e .` compiles it
with the same compiler Python uses, with no manual step; all real functions are plain C.
"""

from glob import glob

from setuptools import Extension, setup

core_sources = sorted(glob("firmware/lib/ewcore/src/*.c"))
setup(
    ext_modules=[
        Extension(
            "tools.node._ewcore",
            sources=["tools/node/_ewcore_module.c", *core_sources],
            include_dirs=["firmware/lib/ewcore/include"],
            extra_compile_args=["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"],
            depends=sorted(
                glob("firmware/lib/ewcore/include/*.h") + glob("firmware/lib/ewcore/src/*.h")
            ),
        )
    ]
)
