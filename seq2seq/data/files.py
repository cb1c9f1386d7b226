"""Reading corpus files: plain or gzip, strict UTF-8, local paths or URLs downloaded once."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from seq2seq.paths import DOWNLOADS

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"


class RemoteFileMissing(FileNotFoundError):
    """The server answered, but has no such file (HTTP 404)."""


def is_url(location: str) -> bool:
    return location.split("://", 1)[0] in ("http", "https", "file")


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file (UTF-8 unless `encoding` says otherwise), gzip-compressed or not,
    without their line endings.

    Lines are split on "\\n" only: `str.splitlines` would also split on characters such as
    U+2028 that can occur inside a sentence and shift every later line of a parallel file.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}:{line}: not valid {encoding.upper()} ({error.reason}, byte "
            f"{raw[error.start]:#04x}); convert the file to {encoding.upper()}"
        ) from None
    lines = text.removeprefix("\ufeff").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def fetch(url: str, cache_dir: Path, timeout: float = 60.0) -> Path:
    """A local copy of `url`, downloaded into `cache_dir/downloads` on first use.

    Raises `RemoteFileMissing` when the server has no such file and `ConnectionError` when the
    server cannot be reached (offline).
    """
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    target = Path(cache_dir) / DOWNLOADS / f"{digest}-{url.rsplit('/', 1)[-1]}"
    if target.exists():
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            # said once the server has the file, not for a probe of a name it lacks (a source
            # tries `<file>.gz` before `<file>`)
            log.info("downloading %s...", url)
            payload = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise RemoteFileMissing(url) from None
        raise ConnectionError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, FileNotFoundError):  # file:// URL to a missing file
            raise RemoteFileMissing(url) from None
        raise ConnectionError(f"cannot download {url}: {error.reason}") from None
    except OSError as error:  # timeouts and resets raised outside URLError
        raise ConnectionError(f"cannot download {url}: {error}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    partial.write_bytes(payload)
    os.replace(partial, target)  # atomic, so a concurrent run never reads half a file
    log.info("downloaded %s to %s", url, target)
    return target
