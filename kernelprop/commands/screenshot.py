"""python -m kernelprop.commands.screenshot PAGE.html OUT.png [--size 1280x2400]

Opens a page (the fleet or fuzz dashboard) in headless Chromium (Debian's `chromium`), takes a
screenshot and checks what a person would: the picture is not blank (enough non-white pixels,
several colours) and the browser console stayed silent (the dashboards have no script, so any
console line, an error or a failed load, is a defect). Exit 0 when both hold, 1 when not, 2 when
no Chromium is installed. The PNG is decoded here (zlib + PNG row filters): no imaging package.
"""
from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
MIN_INK = 0.01          # at least 1% of the pixels not (near) white
MIN_COLOURS = 3         # text, table borders and plot colours at the least
CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


@dataclass(frozen=True)
class Screenshot:
    png: Path
    width: int
    height: int
    ink: float                  # fraction of pixels darker than near-white
    colours: int                # distinct RGB colours (capped count)
    console: tuple[str, ...]    # browser console lines (errors, warnings, logs)

    @property
    def blank(self) -> bool:
        return self.ink < MIN_INK or self.colours < MIN_COLOURS

    @property
    def ok(self) -> bool:
        return not self.blank and not self.console


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def decode_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """(width, height, unfiltered rows, bytes per pixel) of an 8-bit RGB/RGBA PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour_type}, "
                         f"interlace {interlace})")
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def measure(png: Path) -> tuple[int, int, float, int]:
    """(width, height, ink fraction, distinct colours up to 1000)."""
    width, height, rows, bpp = decode_png(png.read_bytes())
    ink, colours = 0, set()
    for row in rows:
        for i in range(0, len(row), bpp):
            rgb = row[i:i + 3]
            if min(rgb) < 235:
                ink += 1
            if len(colours) < 1000:
                colours.add(rgb)
    return width, height, ink / max(width * height, 1), len(colours)


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1280, 2400),
               browser: str | None = None, timeout_s: float = 60.0) -> Screenshot:
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kp-chromium-") as profile:
        run = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             f"--window-size={size[0]},{size[1]}", f"--screenshot={out}",
             page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout_s)
    if not out.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot (exit {run.returncode}): "
                           f"{run.stderr[-2000:]}")
    console = tuple(m.group(1) for line in run.stderr.splitlines()
                    if (m := CONSOLE.search(line)))
    width, height, ink, colours = measure(out)
    return Screenshot(png=out, width=width, height=height, ink=ink, colours=colours,
                      console=console)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m kernelprop.commands.screenshot", description=__doc__)
    p.add_argument("page", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--size", default="1280x2400", help="window WIDTHxHEIGHT in px")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    try:
        shot = screenshot(args.page, args.out, size)
    except FileNotFoundError as err:
        print(f"screenshot: {err}", file=sys.stderr)
        return 2
    print(f"{shot.png}: {shot.width}x{shot.height}, {shot.ink:.1%} ink, {shot.colours} colours"
          f"{' (1000 or more)' if shot.colours >= 1000 else ''}; console: "
          + ("; ".join(shot.console) or "silent") + ("" if shot.ok else "  -> FAILED"))
    return 0 if shot.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
