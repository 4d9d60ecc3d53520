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
