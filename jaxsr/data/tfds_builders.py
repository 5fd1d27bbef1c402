"""TFDS builders that store radiographs as ArrayRecord datasets.

Decoding PNG/TIFF/JPEG/DICOM is slow and needs several libraries; doing it
once and keeping the integer grey levels in ArrayRecord files gives grain a
fast random-access source that needs no TensorFlow at training time.

Every record has the same features:
  image:    uint16 (H, W), integer grey levels round(pixels * (2**bits - 1)),
            stored ZLIB-compressed so 8- to 16-bit images round-trip exactly.
  bits:     int32, significant bits of the source image.
  filename: path relative to the split folder; records are shuffled when they
            are written, so this is the only link back to the source file.
  height, width: int32.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import pathlib
import re
import shutil
import socket
import tarfile
import threading
import types
import urllib.parse
import urllib.request
from typing import Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from jaxsr import errors
from jaxsr.io import files
from jaxsr.io.images import ImageReadError, list_images, read_image
from jaxsr.io.levels import to_levels

_log = logging.getLogger(__name__)

VALIDATION_SPLIT = "validation"
_ARRAY_RECORD = "array_record"
# tfds derives a checksums-file location from the builder's module path, and
# for modules inside a package that step imports the `importlib_resources`
# backport, which tfds 4.9 only declares for Python < 3.9. These builders have
# no checksums file, so they opt out of the lookup.
_NO_CODE_PATH = None


class DatasetUnavailableError(errors.UserError):
  """The dataset's files could neither be found locally nor downloaded."""


def _features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(
          shape=(None, None), dtype=np.uint16,
          encoding=tfds.features.Encoding.ZLIB),
      "bits": tfds.features.Scalar(dtype=np.int32),
      "filename": tfds.features.Text(),
      "height": tfds.features.Scalar(dtype=np.int32),
      "width": tfds.features.Scalar(dtype=np.int32),
  })


def _example(pixels: np.ndarray, bits: int, filename: str) -> dict:
  """Turns decoded [0, 1] pixels back into the integer levels they came from."""
  if not 1 <= bits <= 16:
    raise ValueError(f"{filename}: {bits}-bit images do not fit in uint16")
  levels = to_levels(pixels, bits).astype(np.uint16)
  return {
      "image": levels,
      "bits": np.int32(bits),
      "filename": filename,
      "height": np.int32(levels.shape[0]),
      "width": np.int32(levels.shape[1]),
  }


def _read(path: str | os.PathLike, filename: str, strict: bool):
  """Reads one file; None (and a warning) for an unreadable one unless strict."""
  try:
    radiograph = read_image(path)
  except ImageReadError as e:
    if strict:
      raise
    _log.warning("skipping unreadable image %s", e)
    return None
  return _example(radiograph.pixels, radiograph.bits, filename)


def record_to_radiograph(record: Mapping[str, np.ndarray]):
  """Returns (pixels float32 in [0, 1], bits, filename) for one stored record."""
  bits = int(record["bits"])
  pixels = np.asarray(record["image"], np.float32) / np.float32(2**bits - 1)
  filename = record["filename"]
  if isinstance(filename, np.ndarray):
    filename = filename.item()
  if isinstance(filename, bytes):
    filename = filename.decode("utf-8")
  return pixels, bits, str(filename)


def load_split(name_or_builder, split: str, data_dir=None):
  """Random-access source of one prepared split (records are feature dicts).

  `name_or_builder` is a builder instance or a dataset name such as
  "xray_folder" or "nih_chest_xray14_sample/archives_1"; names that no class
  defines are read from `data_dir` alone.
  """
  if isinstance(name_or_builder, tfds.core.DatasetBuilder):
    builder = name_or_builder
  else:
    try:
      builder = tfds.builder(
          str(name_or_builder), data_dir=data_dir, try_gcs=False)
    except tfds.core.registered.DatasetNotFoundError:
      raise FileNotFoundError(
          f"no dataset {name_or_builder!r} in {data_dir}; build it with "
          "tools/build_arrayrecord.py") from None
  if not builder.is_prepared():
    raise FileNotFoundError(
        f"dataset {builder.name} is not prepared in {builder.data_dir}; build "
        "it with tools/build_arrayrecord.py")
  return builder.as_data_source(split=split)


def _prepare(builder: tfds.core.DatasetBuilder, **download_config) -> None:
  # No GCS mirror exists for these datasets; asking for one only costs time.
  config = tfds.download.DownloadConfig(
      try_download_gcs=False, **download_config)
  builder.download_and_prepare(download_config=config)


# ----------------------------------------------------------------------------
# A folder of the user's radiographs.


class XrayFolder(tfds.core.GeneratorBasedBuilder):
  """Radiographs from a local folder: `train_dir`, and `eval_dir` if given.

  The eval folder becomes the "validation" split. Unreadable files are skipped
  with a warning, or raise ImageReadError with `strict=True`.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  code_path = _NO_CODE_PATH

  def __init__(self, *, train_dir=None, eval_dir=None, strict: bool = False,
               **kwargs):
    kwargs.setdefault("file_format", _ARRAY_RECORD)
    self._train_dir = train_dir
    self._eval_dir = eval_dir
    self._strict = strict
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # DatasetInfo(builder=self) rather than dataset_info_from_configs: the
    # latter looks for metadata files beside this module.
    metadata = tfds.core.MetadataDict()
    if self._train_dir is not None:
      metadata["train_dir"] = os.path.abspath(self._train_dir)
      metadata["eval_dir"] = (
          os.path.abspath(self._eval_dir) if self._eval_dir else None)
    return tfds.core.DatasetInfo(
        builder=self,
        description="Radiographs from a local folder, as integer grey levels.",
        features=_features(),
        metadata=metadata,
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    if self._train_dir is None:
      raise ValueError(f"{self.name}: train_dir is needed to build it")
    splits = {"train": self._train_dir}
    if self._eval_dir:
      splits[VALIDATION_SPLIT] = self._eval_dir
    return {s: self._generate_examples(d) for s, d in splits.items()}

  def _generate_examples(self, folder) -> Iterator[tuple[str, dict]]:
    folder = pathlib.Path(folder)
    found = 0
    for path in list_images(folder, recursive=True):
      filename = pathlib.Path(path).relative_to(folder).as_posix()
      example = _read(path, filename, self._strict)
      if example is not None:
        found += 1
        yield filename, example
    if not found:
      raise ValueError(f"{folder}: no readable radiographs")


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def xray_folder_builder(name: str = "xray_folder", **kwargs) -> XrayFolder:
  """An XrayFolder builder whose dataset is called `name` in data_dir.

  Other names let one data_dir hold several folders; they are read back by
  name without any class (tfds reads the stored dataset_info.json).
  """
  if not _NAME_RE.match(name):
    raise ValueError(
        f"dataset name {name!r}: use lower case letters, digits and _")
  if name == XrayFolder.name:
    return XrayFolder(**kwargs)
  cls = types.new_class(
      "XrayFolder_" + name, (XrayFolder,), {"skip_registration": True},
      lambda ns: ns.update(name=name, __module__=__name__))
  return cls(**kwargs)


def prepare_xray_folder(train_dir, data_dir, eval_dir=None,
                        name: str = "xray_folder", strict: bool = False,
                        overwrite: bool = False) -> XrayFolder:
  """Builds (or reuses) the dataset and returns its prepared builder.

  Raises ImageReadError (a ValueError) for a missing folder or one without
  images, or with strict=True for the first unreadable file; ValueError when
  data_dir already holds a dataset of that name built from other folders.
  """
  for folder in (train_dir, eval_dir):
    if folder is not None:
      list_images(folder, recursive=True)  # Fails early, with a clear message.
  builder = xray_folder_builder(
      name, train_dir=train_dir, eval_dir=eval_dir, strict=strict,
      data_dir=data_dir)
  sources = {"train_dir": os.path.abspath(train_dir),
             "eval_dir": eval_dir and os.path.abspath(eval_dir)}
  mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
  if builder.is_prepared():
    # builder.info was just read back from disk: it says what is stored.
    stored = builder.info.metadata
    if overwrite:
      mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD
    elif any(stored.get(k) != v for k, v in sources.items()):
      raise ValueError(
          f"{builder.data_dir} was built from {stored.get('train_dir')} "
          f"(eval {stored.get('eval_dir')}); use another name or overwrite")
  builder.info.metadata.update(sources)
  _prepare(builder, download_mode=mode)
  return builder


# ----------------------------------------------------------------------------
# NIH ChestX-ray14.

# images_001.tar.gz ... images_012.tar.gz, in order, as listed in NIH's
# batch_download_zips.py (distributed with the dataset on the NIH box page).
NIH_IMAGE_URLS = (
    "https://nihcc.box.com/shared/static/vfk49d74nhbxq3nqjg0900w5nvkorp5c.gz",
    "https://nihcc.box.com/shared/static/i28rlmbvmfjbl8p2n3ril0pptcmcu9d1.gz",
    "https://nihcc.box.com/shared/static/f1t00wrtdk94satdfb9olcolqx20z2jp.gz",
    "https://nihcc.box.com/shared/static/0aowwzs5lhjrceb3qp67ahp0rd1l1etg.gz",
    "https://nihcc.box.com/shared/static/v5e3goj22zr6h8tzualxfsqlqaygfbsn.gz",
    "https://nihcc.box.com/shared/static/asi7ikud9jwnkrnkj99jnpfkjdes7l6l.gz",
    "https://nihcc.box.com/shared/static/jn1b4mw4n6lnh74ovmcjb8y48h8xj07n.gz",
    "https://nihcc.box.com/shared/static/tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j.gz",
    "https://nihcc.box.com/shared/static/upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj.gz",
    "https://nihcc.box.com/shared/static/l6nilvfa9cg3s28tqv1qc1olm3gnz54p.gz",
    "https://nihcc.box.com/shared/static/hhq8fkdgvcari67vfhs7ppg2w6ni4jze.gz",
    "https://nihcc.box.com/shared/static/ioqwiy20ihqwyr8pf4c24eazhh281pbu.gz",
)
NIH_VALIDATION_PERCENT = 10
_NIH_PNG_RE = re.compile(r"^(\d{8})_\d{3}\.png$")
_GZIP_MAGIC = b"\x1f\x8b"


def nih_archive_name(index: int) -> str:
  """File name of the index-th (1-based) NIH image archive."""
  return f"images_{index:03d}.tar.gz"


def nih_split(filename: str) -> str:
  """'train' or 'validation' for an NIH image, decided by its patient id.

  A stable hash (not Python's salted hash()) keeps the split identical across
  runs and machines, and all images of one patient on the same side.
  """
  match = _NIH_PNG_RE.match(os.path.basename(filename))
  if not match:
    raise ValueError(f"{filename}: not an NIH image name (NNNNNNNN_NNN.png)")
  digest = hashlib.sha256(match.group(1).encode("ascii")).digest()
  bucket = int.from_bytes(digest[:4], "big") % 100
  return VALIDATION_SPLIT if bucket < NIH_VALIDATION_PERCENT else "train"


def _resolve(host: str, port: int, timeout: float) -> None:
  """getaddrinfo ignores socket timeouts; run it in a thread so it cannot hang."""
  outcome = {}

  def target():
    try:
      socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
      outcome["ok"] = True
    except OSError as e:
      outcome["error"] = e

  thread = threading.Thread(target=target, daemon=True)
  thread.start()
  thread.join(timeout)
  if "error" in outcome:
    raise outcome["error"]
  if not outcome:
    raise TimeoutError(f"name lookup of {host} timed out after {timeout:g} s")


def _download(url: str, dest: pathlib.Path, timeout: float) -> None:
  """One attempt, no retries: offline machines should fail in seconds."""
  parts = urllib.parse.urlsplit(url)
  if parts.scheme in ("http", "https"):
    default_port = 443 if parts.scheme == "https" else 80
    _resolve(parts.hostname or "", parts.port or default_port, timeout)
  request = urllib.request.Request(url, headers={"User-Agent": "jaxsr"})
  _log.info("downloading %s to %s", url, dest)

  def write_to(tmp):
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as f:
      shutil.copyfileobj(response, f, 1 << 20)
    with open(tmp, "rb") as f:
      if f.read(2) != _GZIP_MAGIC:
        raise OSError(f"{url} did not return a .tar.gz archive")

  files.write_atomically(dest, write_to, suffix=".part")


def _extract_pngs(archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
  """Extracts the NIH PNGs once; file names only, so no path can escape dest."""
  done = dest / ".complete"
  if done.exists():
    return dest
  dest.mkdir(parents=True, exist_ok=True)
  _log.info("extracting %s to %s", archive, dest)
  with tarfile.open(archive, "r:*") as tar:
    for member in tar:
      name = os.path.basename(member.name)
      if not member.isfile() or not _NIH_PNG_RE.match(name):
        continue
      with tar.extractfile(member) as src, open(dest / name, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
  done.touch()
  return dest


def _nih_pngs(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.rglob("*.png") if _NIH_PNG_RE.match(p.name))


@dataclasses.dataclass(eq=False)
class NihSampleConfig(tfds.core.BuilderConfig):
  """How many of the 12 NIH image archives (about 2 GB each) to use."""
  num_archives: int = 1


class NihChestXray14Sample(tfds.core.GeneratorBasedBuilder):
  """The first NIH ChestX-ray14 image archive(s), split by patient."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  code_path = _NO_CODE_PATH
  BUILDER_CONFIGS = [
      NihSampleConfig(
          name=f"archives_{n}", num_archives=n,
          description=f"NIH image archives 1 to {n}")
      for n in range(1, len(NIH_IMAGE_URLS) + 1)
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put images_001.tar.gz (and further archives) from "
      "https://nihcc.app.box.com/v/ChestXray-NIHCC, or the PNGs extracted "
      "from them, in the manual directory.")

  def __init__(self, *, num_archives: int | None = None,
               urls: Sequence[str] | None = None, timeout: float = 20.0,
               **kwargs):
    """`urls` replaces NIH_IMAGE_URLS (a mirror); `timeout` is per attempt."""
    if num_archives is not None:
      kwargs["config"] = f"archives_{num_archives}"
    kwargs.setdefault("file_format", _ARRAY_RECORD)
    self._urls = tuple(urls) if urls is not None else NIH_IMAGE_URLS
    self._timeout = timeout
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "NIH ChestX-ray14 chest radiographs (1024x1024, 8-bit PNG), "
            "provided by the NIH Clinical Center, "
            "https://nihcc.app.box.com/v/ChestXray-NIHCC. Only the first "
            "image archive(s) are used; 10% of patients (by a hash of the "
            "patient id) form the validation split."),
        features=_features(),
        homepage="https://nihcc.app.box.com/v/ChestXray-NIHCC",
        citation=(
            "@inproceedings{wang2017chestxray8,\n"
            "  title={ChestX-ray8: Hospital-scale Chest X-ray Database and "
            "Benchmarks on Weakly-Supervised Classification and Localization "
            "of Common Thorax Diseases},\n"
            "  author={Wang, Xiaosong and Peng, Yifan and Lu, Le and Lu, "
            "Zhiyong and Bagheri, Mohammadhadi and Summers, Ronald M.},\n"
            "  booktitle={IEEE Conference on Computer Vision and Pattern "
            "Recognition (CVPR)},\n"
            "  pages={3462--3471},\n"
            "  year={2017}\n}"),
    )

  def _split_generators(self, dl_manager):
    folders = self._image_folders(
        pathlib.Path(dl_manager._manual_dir),  # pylint: disable=protected-access
        pathlib.Path(dl_manager.download_dir))
    return {
        "train": self._generate_examples(folders, "train"),
        VALIDATION_SPLIT: self._generate_examples(folders, VALIDATION_SPLIT),
    }

  def _image_folders(self, manual_dir: pathlib.Path,
                     download_dir: pathlib.Path) -> list[pathlib.Path]:
    """Folders of PNGs: from archives in manual_dir, loose PNGs, or download."""
    n = self.builder_config.num_archives
    names = [nih_archive_name(i) for i in range(1, n + 1)]
    cache = download_dir / "nih_chest_xray14"
    local = [manual_dir / a for a in names if (manual_dir / a).is_file()]
    if len(local) < n and manual_dir.is_dir() and _nih_pngs(manual_dir):
      _log.info("using the NIH PNGs already extracted in %s", manual_dir)
      return [manual_dir]
    archives = []
    for index, name in enumerate(names):
      path = manual_dir / name
      if not path.is_file():
        path = cache / name
        if not path.is_file():
          cache.mkdir(parents=True, exist_ok=True)
          self._fetch(index, path, manual_dir)
      archives.append(path)
    return [_extract_pngs(a, cache / a.name.split(".")[0]) for a in archives]

  def _fetch(self, index: int, dest: pathlib.Path,
             manual_dir: pathlib.Path) -> None:
    if index >= len(self._urls):
      reason = f"no URL for {dest.name}"
    else:
      try:
        _download(self._urls[index], dest, self._timeout)
        return
      except (OSError, ValueError, http.client.HTTPException) as e:
        reason = f"{type(e).__name__}: {e}".replace("\n", " ")
    raise DatasetUnavailableError(
        f"could not download NIH ChestX-ray14 ({reason}); set "
        "--config.data.train_dir=/path/to/radiographs (and "
        f"--config.data.eval_dir) or place {dest.name} in {manual_dir}")

  def _generate_examples(self, folders, split):
    for folder in folders:
      for path in _nih_pngs(folder):
        if nih_split(path.name) == split:
          example = _read(path, path.name, strict=False)
          if example is not None:
            yield path.name, example


def prepare_nih_sample(data_dir, manual_dir=None, num_archives: int = 1,
                       **kwargs) -> NihChestXray14Sample:
  """Builds (or reuses) the NIH sample and returns its prepared builder.

  Raises DatasetUnavailableError when the archives are neither in manual_dir
  (default <data_dir>/downloads/manual) nor downloadable.
  """
  builder = NihChestXray14Sample(
      num_archives=num_archives, data_dir=data_dir, **kwargs)
  _prepare(builder, manual_dir=manual_dir)
  return builder
