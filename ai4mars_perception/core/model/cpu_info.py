"""Which CPU a figure came from: its model name and the vector extensions that decide our speed (AVX2, AVX-512,
VNNI for int8, BF16 for bf16 training), read from ``/proc/cpuinfo``."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# (label, any of these /proc/cpuinfo flags) in the order they are printed
ISA_FLAGS = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni", "avx_vnni")),
    ("BF16", ("avx512_bf16", "amx_bf16")),
)


def _field(text: str, key: str) -> str:
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return ""


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The first processor's flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        return set(_field(cpuinfo.read_text(), "flags").split())
    except OSError:
        return set()


def cpu_isa(cpuinfo: Path = CPUINFO) -> list[str]:
    """The extensions of :data:`ISA_FLAGS` this CPU has, e.g. ``["AVX2", "AVX-512", "VNNI", "BF16"]``."""
    flags = cpu_flags(cpuinfo)
    return [label for label, names in ISA_FLAGS if flags & set(names)]


def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether this CPU computes bf16 natively (AVX512_BF16 or AMX-BF16): bf16 autocast then pays off."""
    return "BF16" in cpu_isa(cpuinfo)


def cpu_description(cpuinfo: Path = CPUINFO) -> dict:
    """``{"model": "AMD EPYC 9R14 96-Core Processor", "isa": [...], "summary": "... (AVX2, AVX-512, ...)"}``."""
    try:
        model = _field(cpuinfo.read_text(), "model name")
    except OSError:
        model = ""
    model = model or platform.processor() or platform.machine()
    isa = cpu_isa(cpuinfo)
    return {"model": model, "isa": isa, "summary": f"{model} ({', '.join(isa) or 'no AVX2'})"}
