"""With JAXSR_HUGE_PAGES=1 the entry points restart once with glibc's huge-page tunable."""
import os
import subprocess
import sys
import textwrap

import pytest

from jaxsr import huge_pages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tunables_are_added_to_what_is_set_and_never_overridden():
  assert huge_pages.tunables_with_huge_pages(None) == "glibc.malloc.hugetlb=1"
  assert huge_pages.tunables_with_huge_pages("") == "glibc.malloc.hugetlb=1"
  assert (huge_pages.tunables_with_huge_pages("glibc.malloc.arena_max=2")
          == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
  assert huge_pages.tunables_with_huge_pages("glibc.malloc.hugetlb=0") is None


@pytest.mark.parametrize("platform_name, libc, expected", [
    ("linux", ("glibc", "2.36"), True),
    ("linux", ("glibc", "2.35"), True),
    ("linux", ("glibc", "2.31"), False),
    ("linux", ("", ""), False),  # musl
    ("darwin", ("", ""), False),
])
def test_only_glibc_2_35_and_newer_counts_as_supported(monkeypatch, platform_name, libc, expected):
  monkeypatch.setattr(huge_pages.sys, "platform", platform_name)
  monkeypatch.setattr(huge_pages.platform, "libc_ver", lambda: libc)
  assert huge_pages.glibc_supports_huge_pages() is expected


@pytest.mark.parametrize("environment, restarts", [
    ({}, False),  # Opt-in: no gain measured (benchmarks/README.md).
    ({"JAXSR_HUGE_PAGES": "0"}, False),
    ({"JAXSR_HUGE_PAGES": "1"}, True),
    ({"JAXSR_HUGE_PAGES": "1", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, True),
    ({"JAXSR_HUGE_PAGES": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, False),  # restarted
])
def test_restart_reexecutes_the_same_command_line_once(monkeypatch, environment, restarts):
  for name in ("GLIBC_TUNABLES", "JAXSR_HUGE_PAGES"):
    monkeypatch.delenv(name, raising=False)
  for name, value in environment.items():
    monkeypatch.setenv(name, value)
  monkeypatch.setattr(huge_pages, "glibc_supports_huge_pages", lambda: True)
  calls = []
  monkeypatch.setattr(huge_pages.os, "execve", lambda *args: calls.append(args))
  huge_pages.restart_with_huge_pages()
  if not restarts:
    assert not calls
    return
  (executable, argv, env), = calls
  assert executable == sys.executable and argv == sys.orig_argv
  assert env["GLIBC_TUNABLES"].endswith("glibc.malloc.hugetlb=1")
  assert env["GLIBC_TUNABLES"].startswith(environment.get("GLIBC_TUNABLES", "glibc"))


def test_restart_does_nothing_where_unsupported(monkeypatch):
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  monkeypatch.setenv("JAXSR_HUGE_PAGES", "1")
  monkeypatch.setattr(huge_pages, "glibc_supports_huge_pages", lambda: False)
  monkeypatch.setattr(huge_pages.os, "execve", lambda *args: pytest.fail("restarted"))
  huge_pages.restart_with_huge_pages()


@pytest.mark.slow
@pytest.mark.parametrize("command, status, opt_in", [
    (["-m", "jaxsr.main", "--helpshort"], 1, "1"),  # absl's help exits with 1.
    (["-m", "jaxsr.upscale", "--help"], 0, "1"),
    (["-m", "jaxsr.evaluate", "--help"], 0, "1"),
    (["-m", "jaxsr.cli", "upscale", "--help"], 0, "1"),
    (["-m", "jaxsr.cli", "upscale", "--help"], 0, None),  # Not asked: one start.
])
def test_entry_points_restart_only_when_asked(tmp_path, command, status, opt_in):
  # A sitecustomize records GLIBC_TUNABLES at every interpreter start.
  log = tmp_path / "starts.txt"
  (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(f"""
      import os
      with open({str(log)!r}, "a") as f:
        f.write(repr(os.environ.get("GLIBC_TUNABLES")) + "\\n")
  """))
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JAXSR_HUGE_PAGES")}
  if opt_in:
    env["JAXSR_HUGE_PAGES"] = opt_in
  env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), REPO, env.get("PYTHONPATH", "")])
  proc = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=120, check=False)
  assert proc.returncode == status, proc.stderr
  assert "--workdir" in proc.stdout or "--output" in proc.stdout
  starts = log.read_text().splitlines()
  if opt_in and huge_pages.glibc_supports_huge_pages():
    assert starts == ["None", repr("glibc.malloc.hugetlb=1")]
  else:
    assert starts == ["None"]
