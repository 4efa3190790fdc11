"""Where a backbone's weights can be fetched from, in the order `semseg-weights fetch` tries them:

- `gluoncv`: GluonCV's model store (`<repo>gluon/models/<model>-<short hash>.zip`, the repository of GluonCV's
  model_store.py or MXNET_GLUON_REPO, as GluonCV itself), checked against GluonCV's SHA-1;
- `huggingface`: timm's copies of the same weights on the Hugging Face Hub (`model.safetensors` of
  `timm/resnet50s.gluon_in1k` or `timm/resnet101s.gluon_in1k`, at HF_ENDPOINT, as huggingface_hub), and the
  authors' DINOv2 there (`facebook/dinov2-small`, `facebook/dinov2-base`);
- `authors`: DINOv2's authors' own files (`dinov2_vits14_pretrain.pth`; reading them needs PyTorch);
- `url`: the builder's own copy, SEMSEG_WEIGHTS_URL/<the store's file name> (`https://...`, or `s3://...` where
  boto3 or the AWS CLI is installed), in any format `semseg-weights import` reads.

Each source hands back the file it got and where from (address, revision or ETag), or a SourceError that says why
not. Downloads stream to a temporary file with a progress bar on a terminal (tqdm), with a timeout per read.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from semseg.contract.options import default
from semseg.engines.weights import AUTHORS_URL, STORE_SHA1, Backbone

HUB_FILE = "model.safetensors"
CHUNK = 1 << 20
NAMES = ("gluoncv", "huggingface", "authors", "url")  # the sources, in the order fetch tries them


class SourceError(Exception):
    """A source did not give a usable file: the message says why (for the list of every source's failure)."""


@dataclass(frozen=True)
class Fetched:
    path: Path  # the file as fetched (GluonCV's: the .params in its zip)
    address: str
    revision: str  # a commit, an ETag or a checksum: what identifies the version fetched


class Source(Protocol):
    @property
    def name(self) -> str:
        """As --sources names it."""

    def carries(self, backbone: Backbone) -> bool:
        """Whether this source publishes `backbone` at all (fetch passes over one that does not)."""

    def address(self, backbone: Backbone) -> str:
        """Where this source looks for `backbone`."""

    def get(self, backbone: Backbone, folder: Path, timeout: float) -> Fetched:
        """The file of `backbone`, downloaded into `folder`; SourceError when there is none that is right."""


@dataclass(frozen=True)
class GluonCVStore:
    repository: str = default("MXNET_GLUON_REPO")  # GluonCV 0.10.5's apache_repo_url
    sha1: Mapping[str, str] = field(default_factory=lambda: dict(STORE_SHA1))  # GluonCV model -> its file's SHA-1
    name: str = "gluoncv"

    def carries(self, backbone: Backbone) -> bool:
        return not backbone.vit

    def address(self, backbone: Backbone) -> str:
        return f"{self.repository.rstrip('/')}/gluon/models/{self._stem(backbone)}.zip"

    def get(self, backbone: Backbone, folder: Path, timeout: float) -> Fetched:
        archive = download(self.address(backbone), folder / "store.zip", timeout)
        try:
            with zipfile.ZipFile(archive.path) as opened:
                target = folder / f"{self._stem(backbone)}.params"
                target.write_bytes(opened.read(target.name))
        except (zipfile.BadZipFile, KeyError) as exc:
            raise SourceError(f"not GluonCV's zip of {self._stem(backbone)}.params ({exc})") from None
        expected = self.sha1[backbone.model]
        found = file_hash(target, "sha1")
        if found != expected:
            raise SourceError(f"SHA-1 {found} is not GluonCV's {expected}")
        return Fetched(target, archive.address, f"sha1:{found}")

    def _stem(self, backbone: Backbone) -> str:
        return f"{backbone.model}-{self.sha1[backbone.model][:8]}"


@dataclass(frozen=True)
class HuggingFaceHub:
    endpoint: str = default("HF_ENDPOINT")
    revision: str = "main"
    name: str = "huggingface"

    def carries(self, backbone: Backbone) -> bool:
        return True

    def address(self, backbone: Backbone) -> str:
        return f"{self.endpoint.rstrip('/')}/{backbone.hub_repository}/resolve/{self.revision}/{HUB_FILE}"

    def get(self, backbone: Backbone, folder: Path, timeout: float) -> Fetched:
        return download(self.address(backbone), folder / HUB_FILE, timeout)


@dataclass(frozen=True)
class BuilderURL:
    base: str  # SEMSEG_WEIGHTS_URL
    name: str = "url"

    def carries(self, backbone: Backbone) -> bool:
        return True

    def address(self, backbone: Backbone) -> str:
        return f"{self.base.rstrip('/')}/{backbone.file_name}" if self.base else ""

    def get(self, backbone: Backbone, folder: Path, timeout: float) -> Fetched:
        if not self.base:
            raise SourceError("SEMSEG_WEIGHTS_URL is not set")
        address = self.address(backbone)
        if address.startswith("s3://"):
            return s3_download(address, folder / backbone.file_name, timeout)
        return download(address, folder / backbone.file_name, timeout)


@dataclass(frozen=True)
class DINOv2Authors:
    base: str = AUTHORS_URL
    name: str = "authors"

    def carries(self, backbone: Backbone) -> bool:
        return backbone.vit

    def address(self, backbone: Backbone) -> str:
        return backbone.authors_file.replace(AUTHORS_URL, self.base.rstrip("/"), 1)

    def get(self, backbone: Backbone, folder: Path, timeout: float) -> Fetched:
        return download(self.address(backbone), folder / f"{backbone.model}_pretrain.pth", timeout)


def download(address: str, target: Path, timeout: float) -> Fetched:
    """`address` (http or https) streamed to `target`; SourceError for an HTTP error, no answer within `timeout`
    seconds (per read), or a failed connection."""
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not sys.stderr.isatty())
            with bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            headers = response.headers
    except urllib.error.HTTPError as exc:
        raise SourceError(f"HTTP {exc.code} {exc.reason}") from None
    except (TimeoutError, socket.timeout):
        raise SourceError(f"no answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise SourceError(f"no answer within {timeout:g} s") from None
        raise SourceError(f"cannot connect: {reason}") from None
    except OSError as exc:
        raise SourceError(f"{type(exc).__name__}: {exc}") from None
    revision = headers.get("X-Repo-Commit") or headers.get("ETag") or ""
    return Fetched(target, address, revision.strip('"'))


def s3_download(address: str, target: Path, timeout: float) -> Fetched:
    """An s3:// object with boto3, else with the AWS CLI; SourceError where neither is installed or it fails."""
    bucket, _, key = address.removeprefix("s3://").partition("/")
    try:
        import boto3
    except ImportError:
        boto3 = None
    if boto3 is not None:
        try:
            head = boto3.client("s3").head_object(Bucket=bucket, Key=key)
            boto3.client("s3").download_file(bucket, key, str(target))
        except Exception as exc:  # noqa: BLE001 - botocore's errors are many
            raise SourceError(f"{type(exc).__name__}: {exc}") from None
        return Fetched(target, address, str(head.get("ETag", "")).strip('"'))
    if shutil.which("aws") is None:
        raise SourceError("an s3:// address needs boto3 or the AWS CLI, and this environment has neither")
    done = subprocess.run(
        ["aws", "s3", "cp", "--only-show-errors", address, str(target)],
        capture_output=True, text=True, timeout=max(timeout * 10, 600), check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SourceError(f"aws s3 cp failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return Fetched(target, address, f"sha256:{file_hash(target, 'sha256')}")


def file_hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as opened:
        while chunk := opened.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
