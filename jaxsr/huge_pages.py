"""Huge pages for XLA:CPU's per-call buffers, switched on before start-up.

XLA:CPU mallocs each call's temporary buffer (~460 MB for an RRDBNet train
step at batch 4) and frees it afterwards. glibc serves blocks that large from
fresh ``mmap``s, so every call faults the buffer in again 4 KiB at a time:
~113k page faults and ~0.25 s of system time per train step. glibc 2.35+
can back those blocks with 2 MiB transparent huge pages (the
``glibc.malloc.hugetlb=1`` tunable), which leaves ~700 faults. glibc reads
tunables only when a process starts, so the command-line entry points
restart themselves once with the tunable set (:func:`restart_with_huge_pages`).

Set ``JAXSR_HUGE_PAGES=0`` to keep the process as started. The setting does
not change any result; where the kernel has transparent huge pages off it is
ignored.
"""
import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "JAXSR_HUGE_PAGES"


def glibc_supports_huge_pages() -> bool:
  """True on Linux with glibc 2.35 or newer (the first with the tunable)."""
  if not sys.platform.startswith("linux"):
    return False
  library, version = platform.libc_ver()
  if library != "glibc":
    return False
  try:
    major, minor = (int(part) for part in version.split(".")[:2])
  except ValueError:
    return False
  return (major, minor) >= (2, 35)


def tunables_with_huge_pages(current: str | None) -> str | None:
  """``GLIBC_TUNABLES`` with huge pages added, or None if it already sets them."""
  if current and TUNABLE in current:
    return None  # Whoever set it decided, either way.
  return f"{current}:{TUNABLE}=1" if current else f"{TUNABLE}=1"


def restart_with_huge_pages() -> None:
  """Re-executes this command with huge pages on; returns where that is
  unsupported, opted out of, or already done."""
  if os.environ.get(OPT_OUT, "1") == "0" or not glibc_supports_huge_pages():
    return
  tunables = tunables_with_huge_pages(os.environ.get("GLIBC_TUNABLES"))
  if tunables is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, dict(os.environ, GLIBC_TUNABLES=tunables))
