"""Each concept in one place: checks on the source that keep it that way.

A degradation's name is tested only by the registry (jaxsr.degradations),
generator classes only inside jaxsr.models, and no module copies a helper
that jaxsr.errors, jaxsr.io.levels or jaxsr.io.files owns.
"""
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jaxsr"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _hits(pattern, allowed=()):
  regex = re.compile(pattern)
  found = []
  for path in SOURCES:
    relative = path.relative_to(PACKAGE.parent).as_posix()
    if any(relative.startswith(a) for a in allowed):
      continue
    for number, line in enumerate(path.read_text().splitlines(), 1):
      if regex.search(line):
        found.append(f"{relative}:{number}: {line.strip()}")
  return found


@pytest.mark.parametrize("pattern, allowed", [
    # Degradation names: asked of the registry, never compared.
    (r"""(degradation|\.name)\s*[!=]=\s*["'](bicubic|realesrgan)["']""", ("jaxsr/degradations/",)),
    # Generator classes: they describe themselves (scale, input_multiple, TORCH_CLASS).
    (r"""__name__\s*[!=]=\s*["'](RRDBNet|SRVGGNetCompact|MSRResNet|SRResNet)["']""",
     ("jaxsr/models/",)),
    (r"""\[["']arch["']\]\s*==\s*["'](rrdbnet|srvgg|msrresnet|srresnet)["']""", ()),
    # One copy of each shared helper.
    (r"^def one_line\(", ("jaxsr/errors.py",)),
    (r"^def (quantize|to_levels)\(", ("jaxsr/io/levels.py",)),
    (r"os\.replace\(", ("jaxsr/io/files.py",)),
])
def test_concepts_live_in_one_place(pattern, allowed):
  assert not _hits(pattern, allowed)


def test_the_checks_see_the_source():
  """The patterns above do find what they look for where it is allowed."""
  assert [hit.split(":")[0] for hit in _hits(r"^def one_line\(")] == ["jaxsr/errors.py"]
  assert _hits(r"os\.replace\(")
