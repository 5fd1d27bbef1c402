"""Sending written DICOM files to an archive with a C-STORE (pynetdicom).

``jaxsr upscale --send=AET@HOST:PORT`` stores each output after it is
written, so a study lands in the PACS as the run goes. Each file is offered
in the transfer syntax it was written in (the archive must accept it: send
uncompressed, ``--dicom_transfer_syntax=uncompressed``, to one that takes
nothing else) and retried once on a failed association or a failure status.
Files stay on disk whatever the archive answers; a refusal or an unreachable
archive is one line per file naming the file, the archive and what it said.
"""
import dataclasses
import logging
import pathlib
import re

import pydicom

from jaxsr import errors

_DESTINATION = re.compile(r"^([^@\s]{1,16})@(\[[^\]]+\]|[^:@\s]+):(\d{1,5})$")


class SendError(errors.UserError):
  """A bad --send destination, or a file the archive did not store; one line."""


@dataclasses.dataclass(frozen=True)
class Destination:
  ae_title: str
  host: str
  port: int

  @classmethod
  def parse(cls, text: str) -> "Destination":
    """'AET@HOST:PORT' (an IPv6 host in brackets)."""
    match = _DESTINATION.match(text.strip())
    if not match or not 0 < int(match.group(3)) < 65536:
      raise SendError(f"--send={text}: give AET@HOST:PORT, e.g. PACS@10.0.0.5:104 "
                      "(AE title up to 16 characters)")
    return cls(match.group(1), match.group(2).strip("[]"), int(match.group(3)))

  def __str__(self):
    return f"{self.ae_title}@{self.host}:{self.port}"


class Sender:
  """C-STOREs files to one archive; :meth:`send` returns what it answered."""

  def __init__(self, destination: Destination, calling_aet: str = "JAXSR",
               timeout: float = 30.0, attempts: int = 2):
    if not 0 < len(calling_aet) <= 16:
      raise SendError(f"--calling_aet={calling_aet!r}: an AE title has 1 to 16 characters")
    self.destination, self.calling_aet = destination, calling_aet
    self.timeout, self.attempts = timeout, attempts

  def send(self, path: pathlib.Path) -> str:
    """Stores ``path``; returns the archive's status text; raises SendError."""
    from pynetdicom import AE  # pylint: disable=import-outside-toplevel  # Only when sending.
    # pynetdicom logs each refusal over several lines; the line we raise says it once.
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    ds = pydicom.dcmread(path)
    syntax = ds.file_meta.TransferSyntaxUID
    problem = ""
    for _ in range(self.attempts):
      ae = AE(ae_title=self.calling_aet)
      ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
      ae.add_requested_context(ds.SOPClassUID, [syntax])
      assoc = ae.associate(self.destination.host, self.destination.port,
                           ae_title=self.destination.ae_title)
      if not assoc.is_established:
        problem = "association refused or archive unreachable"
        continue
      try:
        if not any(c.abstract_syntax == ds.SOPClassUID and c.result == 0x00
                   for c in assoc.accepted_contexts):
          problem = f"archive does not accept {ds.SOPClassUID.name} in {syntax.name}"
          break  # Asking again gets the same answer.
        status = assoc.send_c_store(ds)
      finally:
        assoc.release()
      code = int(status.Status) if status is not None and "Status" in status else None
      if code == 0x0000:
        return "stored"
      if code is not None and code in (0xB000, 0xB007, 0xB006):
        return f"stored with warning 0x{code:04X}"
      problem = ("no answer" if code is None else f"failure status 0x{code:04X}")
    raise SendError(f"{path}: not stored by {self.destination}: {problem} "
                    "(the file stays on disk)")
