"""A tiny PNG writer shared by the examples (no imaging library needed)."""
import struct
import zlib
from pathlib import Path

import torch


def write_png(path, pixels):
    """Writes a (H, W) grey or (H, W, 3) RGB uint8 tensor as an 8-bit PNG (a filter byte 0 before each row)."""
    height, width = pixels.shape[:2]
    colour_type = 2 if pixels.dim() == 3 else 0
    rows = torch.cat([torch.zeros(height, 1, dtype=torch.uint8), pixels.reshape(height, -1)], 1)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">2I5B", width, height, 8, colour_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                           + chunk(b"IDAT", zlib.compress(rows.numpy().tobytes())) + chunk(b"IEND", b""))


def to_pixels(points, side, extent):
    """(column, row) pixel coordinates of 2-D points in [-extent, extent]^2, y up."""
    pixel = ((points + extent) / (2 * extent) * (side - 2)).round().long().clamp(0, side - 2)
    return pixel[:, 0], side - 2 - pixel[:, 1]


def scatter(points, colours, panel, extent=3.0):
    """Draws 2x2-pixel dots of (n, 3) uint8 `colours` at `points` in [-extent, extent]^2 onto the
    square (side, side, 3) `panel`, y up."""
    column, row = to_pixels(points, panel.shape[0], extent)
    for dr in (0, 1):
        for dc in (0, 1):
            panel[row + dr, column + dc] = colours


def segments(starts, ends, darkness, panel, extent=3.0, colour=(0, 0, 0)):
    """Draws straight segments from `starts` to `ends` (n, 2) onto `panel`, each blended towards
    `colour` by its `darkness` in [0, 1] (alpha blending, so that faint links stay faint)."""
    side = panel.shape[0]
    c0, r0 = to_pixels(starts, side, extent)
    c1, r1 = to_pixels(ends, side, extent)
    steps = int(max((c1 - c0).abs().max().item(), (r1 - r0).abs().max().item(), 1)) + 1
    t = torch.linspace(0, 1, steps)[:, None]
    columns = (c0[None] + t * (c1 - c0)[None]).round().long().reshape(-1)
    rows = (r0[None] + t * (r1 - r0)[None]).round().long().reshape(-1)
    alpha = darkness.float().clamp(0, 1)[None].expand(steps, -1).reshape(-1, 1)
    canvas = panel.float()
    target = torch.tensor(colour, dtype=torch.float32)
    canvas[rows, columns] = canvas[rows, columns] * (1 - alpha) + target * alpha
    panel.copy_(canvas.round().to(torch.uint8))
