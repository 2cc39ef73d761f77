"""Which files an asset is made of, and the one place where a name written inside an asset becomes a file.

An asset is its main file plus the files it references (OBJ material libraries and their textures, glTF
buffers and images). Every reference is resolved by `SourceResolver.find` and every file is read through
`SourceResolver.read`, by the readers and by `source_files` (source_files.py) alike, so the ingest stage's
cache key (which hashes `source_files`) covers exactly the files the readers open.

References stay inside the asset's folder (the main file's folder and its subfolders): no file outside it is
ever opened. An absolute path, a drive letter or `..` that leaves the folder is looked up by its base name
inside the folder only (exporters write the paths of the machine they ran on); URIs with a scheme (`file:`,
`http:`), symbolic links that lead out, and outside references with no file of their name inside are refused
with an AssetError that names the reference as written and says nothing about the file outside (whether it
exists is never looked at).
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from dreamedit3d_core.ingest.asset import AssetError
from dreamedit3d_core.ingest.limits import IngestLimits, check_count

_DRIVE = re.compile(r"^[A-Za-z]:")  # C:\textures\wood.png, C:wood.png
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # RFC 3986; one letter is a drive, not a scheme
_PATH_URI = re.compile(r"^(file:|[A-Za-z][A-Za-z0-9+.-]+://)", re.IGNORECASE)  # URIs written where a path belongs


@dataclass(frozen=True)
class SourceFile:
    """One file of an asset: `relative` is its posix path relative to the asset's folder ("textures/wood.png")."""

    relative: str
    path: Path


class SourceResolver:
    """Finds the files an asset references and reads them; `opened` lists every file read, main file first.
    `limits` are the asset's size limits: `read` checks a file's size before reading it, and the readers
    check the rest against the same object. `timeout_s`, where given, is a wall-clock budget: `find`, `read`
    and the readers' line loops (`check_time`) refuse the asset once it is spent, so work done with an asset
    outside the reader's own process (listing its files for a cache key) is bounded in time too."""

    def __init__(self, main: Path, limits: IngestLimits | None = None, timeout_s: float | None = None) -> None:
        main = Path(main)
        self.limits = limits or IngestLimits()
        self.timeout_s = timeout_s
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.main = SourceFile(relative=main.name, path=main)
        self.root = main.parent
        self._real_root = Path(os.path.realpath(self.root))
        self._contents: dict[str, bytes] = {}
        self.opened: list[SourceFile] = []

    def find(
        self, spellings: Sequence[str], referrer: SourceFile, what: str, *, uri: bool = False
    ) -> SourceFile | None:
        """The file a reference names, or None where no such file exists.

        `spellings` are ways of reading one reference, most literal first (an MTL texture statement with and
        without its options); `referrer` is the file the reference is written in (relative names start at its
        folder); `what` names the reference in messages ("texture", "buffer"); `uri=True` percent-decodes a glTF
        URI. Each spelling is tried as written, then by its base name in the referrer's folder (exporters often
        write paths of the machine they ran on). Backslashes are separators. A spelling that points outside the
        folder (an absolute path, `..` leaving it) is tried by its base name only, inside the folder; when
        nothing is found that way, the reference is refused.
        """
        self.check_time()
        folder = posixpath.dirname(referrer.relative)
        as_written: list[tuple[str, str]] = []  # (spelling, the name it gives relative to the referrer's folder)
        base_names: list[tuple[str, str]] = []
        outside: tuple[str, str] | None = None  # (spelling, why) of the first spelling that points outside
        for spelling in spellings:
            name, why = self._checked_name(spelling, referrer, what, uri)
            name = posixpath.normpath(name or ".")
            if why is None and posixpath.normpath(posixpath.join(folder, name)).split("/")[0] == "..":
                why = "'..' leaves the folder"
            if why is not None:
                outside = outside or (spelling, why)
            elif name != ".":
                as_written.append((spelling, name))
            base_names.append((spelling, posixpath.basename(name)))
        tried: set[str] = set()
        for spelling, name in as_written + base_names:
            relative = posixpath.normpath(posixpath.join(folder, name))
            if relative in tried or name in ("", ".", ".."):
                continue
            tried.add(relative)
            path = self.root / relative
            # realpath never needs the target to exist, so the decision does not depend on files outside
            if not Path(os.path.realpath(path)).is_relative_to(self._real_root):
                raise self._outside(spelling, "a symbolic link leads out of the folder", referrer=referrer, what=what)
            try:
                if path.is_file():
                    return SourceFile(relative=relative, path=path)
            except OSError:  # a name too long for the file system names no file
                continue
        if outside is not None:
            raise self._outside(*outside, referrer=referrer, what=what)
        return None

    def read(self, file: SourceFile) -> bytes:
        """The file's bytes (read once, then served again; its size checked first); records it in `opened`."""
        self.check_time()
        if file.relative not in self._contents:
            try:
                size = file.path.stat().st_size
                check_count(self.limits, "max_file_bytes", size, self._where(file), "bytes")
                self._contents[file.relative] = file.path.read_bytes()
            except OSError as error:
                raise AssetError(f"{self.main.relative}: cannot read {file.relative!r} ({error.strerror})") from None
            self.opened.append(file)
        return self._contents[file.relative]

    def check_time(self) -> None:
        """Refuse the asset once the time budget is spent (no budget: never)."""
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise AssetError(
                f"{self.main.relative}: reading the asset's references took longer than {self.timeout_s:g} s "
                "(ingest.timeout_s), so it is refused"
            )

    def _checked_name(self, spelling: str, referrer: SourceFile, what: str, uri: bool) -> tuple[str, str | None]:
        """The spelling as a posix name, and why it points outside the folder (None when it does not).
        URIs with a scheme can only name something elsewhere: they are refused at once."""
        name = spelling.strip()
        if uri:
            if _URI_SCHEME.match(name) and not _DRIVE.match(name):
                raise self._outside(spelling, "a URI with a scheme, not a relative path", referrer=referrer, what=what)
            name = unquote(name)
        elif _PATH_URI.match(name):
            raise self._outside(spelling, "a URI, not a relative path", referrer=referrer, what=what)
        name = name.replace("\\", "/")
        if "\0" in name:
            raise AssetError(f"{self._where(referrer)}: {what} {spelling!r} is not a valid file name")
        if name.startswith("/") or _DRIVE.match(name):
            return _DRIVE.sub("", name).lstrip("/"), "an absolute path"
        return name, None

    def _where(self, referrer: SourceFile) -> str:
        if referrer.relative == self.main.relative:
            return self.main.relative
        return f"{self.main.relative}: {referrer.relative}"

    def _outside(self, spelling: str, reason: str, *, referrer: SourceFile, what: str) -> AssetError:
        return AssetError(
            f"{self._where(referrer)}: {what} {spelling!r} is outside the asset's folder ({reason}) and no file of "
            "its name is in the folder; references must name files in the main file's folder or its subfolders"
        )
