"""Benchmarks (`python -m tools.bench`): the core and detector (core_bench), the node application
on rv32 (app_bench), the link and the twin (link_bench); the rv32 C programs in c/ and the C
build helper (cbuild) that the tests use too."""
