"""Unpacking a user's .zip with every member checked first: nothing may land outside the
target folder, and a zip bomb is refused before anything is unpacked (by the sizes and the
compression ratio its directory declares), with the bytes really written counted as well
in case the directory lies."""
from __future__ import annotations

import re
import stat
import zipfile
import zlib
from pathlib import Path

from .errors import DatasetError

MAX_TOTAL_BYTES = 2 * 2 ** 30
MAX_MEMBERS = 200_000
# Image files hardly compress (PNG and JPEG already are); 100:1 over many megabytes is a bomb.
MAX_RATIO = 100
RATIO_MIN_BYTES = 64 * 2 ** 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_COPY_CHUNK = 1 << 20


def member_parts(name: str) -> list[str] | None:
    """The path components a member would be written to; None for members that are skipped
    (folders, macOS resource forks, hidden files). Raises DatasetError for unsafe names."""
    # Zips made on Windows may use backslashes; treat them as separators so "..\\x" is caught too.
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise DatasetError(f"zip member {name!r} has an absolute path: refused")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatasetError(f"zip member {name!r} points outside its folder ('..'): refused")
    if norm.endswith("/") or not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return None
    return parts


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _check_not_a_bomb(name: str, planned: list) -> None:
    declared = sum(info.file_size for info, _ in planned)
    if declared > MAX_TOTAL_BYTES:
        raise DatasetError(f"{name} looks like a zip bomb: it unpacks to {_size(declared)}, more than the "
                           f"{_size(MAX_TOTAL_BYTES)} allowed; refused before unpacking")
    compressed = max(1, sum(info.compress_size for info, _ in planned))
    if declared > RATIO_MIN_BYTES and declared / compressed > MAX_RATIO:
        raise DatasetError(f"{name} looks like a zip bomb: {_size(declared)} compressed into "
                           f"{_size(compressed)} ({declared / compressed:,.0f}:1, images allow at most "
                           f"{MAX_RATIO}:1); refused before unpacking")


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def extract_zip(path: Path, dest: Path) -> int:
    """Extract the regular files of zip `path` into the existing folder `dest`; returns how many.

    All members are checked before anything is written, so a refused zip leaves nothing half done.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DatasetError(f"{path.name} is not a readable zip file ({err})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise DatasetError(f"{path.name} has {len(infos):,} members, more than the {MAX_MEMBERS:,} allowed")
        planned = []
        for info in infos:
            parts = member_parts(info.filename)
            if _is_symlink(info):
                raise DatasetError(f"zip member {info.filename!r} is a symbolic link: refused")
            if parts is not None and not info.is_dir():
                planned.append((info, parts))
        _check_not_a_bomb(path.name, planned)
        root = dest.resolve()
        written = 0
        for info, parts in planned:
            target = root.joinpath(*parts)
            # Belt and braces after the name checks: the resolved target must stay inside dest.
            if not target.resolve().is_relative_to(root):
                raise DatasetError(f"zip member {info.filename!r} points outside its folder: refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    # zipfile already stops at the declared size (and then fails the CRC); counting
                    # the bytes written too keeps the cap from resting on that alone.
                    while chunk := src.read(_COPY_CHUNK):
                        written += len(chunk)
                        if written > MAX_TOTAL_BYTES:
                            raise DatasetError(f"{path.name} looks like a zip bomb: it unpacks to more "
                                               f"than the {_size(MAX_TOTAL_BYTES)} allowed")
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
                    OSError) as err:
                raise DatasetError(f"cannot unpack zip member {info.filename!r} ({err})") from None
    return len(planned)
