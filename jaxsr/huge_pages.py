"""Huge pages for XLA:CPU's per-call buffers: an opt-in restart at start-up.

XLA:CPU mallocs each call's temporary buffer (hundreds of MB for an RRDBNet
train step) and frees it afterwards. glibc serves blocks that large from
fresh ``mmap``s, so every call faults the buffer in again 4 KiB at a time.
glibc 2.35+ can back those blocks with 2 MiB transparent huge pages (the
``glibc.malloc.hugetlb=1`` tunable): far fewer page faults and less system
time. In paired wall-clock runs that did not make the train step faster
(benchmarks/README.md, "CPU options"), so it is off unless asked for.

glibc reads tunables only when a process starts, so with
``JAXSR_HUGE_PAGES=1`` the command-line entry points re-execute themselves
once with the tunable added (:func:`restart_with_huge_pages`); setting
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` yourself does the same without the
restart. Results never change.
"""
import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb"
OPT_IN = "JAXSR_HUGE_PAGES"


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
  """Re-executes this command with huge pages on when ``JAXSR_HUGE_PAGES=1``;
  returns where that is not asked for, unsupported, or already done."""
  if os.environ.get(OPT_IN, "0") != "1" or not glibc_supports_huge_pages():
    return
  tunables = tunables_with_huge_pages(os.environ.get("GLIBC_TUNABLES"))
  if tunables is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, dict(os.environ, GLIBC_TUNABLES=tunables))
