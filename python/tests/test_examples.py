"""The examples of examples/python run as a user runs them (a child Python, a few steps, one thread):
they exit 0, write a PNG that decodes to the picture they promise, and their printed S_eps falls."""
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"
MNIST = REPO.parent / "shared" / "data" / "mnist"
MNIST_FILES = ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"]


def run_example(script, *arguments):
    # The child inherits PYTHONPATH, so it imports the same sinkhorn package as this process.
    completed = subprocess.run([sys.executable, str(EXAMPLES / script), "--threads", "1", *map(str, arguments)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def printed_losses(output):
    """The S_eps of every `step N ... S_eps V` line, in order."""
    return [float(v) for v in re.findall(r"^step\s+\d+\s.*S_eps\s+(\S+)", output, re.MULTILINE)]


def read_png(path):
    """Checks the signature, every chunk's CRC, IHDR first and IEND last, and that the IDAT data
    inflates to height rows of (1 filter byte + width * channels); returns (width, height, channels, data)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in chunk {kind}"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and len(chunks[0][1]) == 13 and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour_type = struct.unpack(">2I2B", chunks[0][1][:10])
    assert depth == 8 and colour_type in (0, 2)
    channels = 3 if colour_type == 2 else 1
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * channels)
    return width, height, channels, pixels


def test_gradient_flow_moves_the_particles_onto_the_ring(tmp_path):
    picture = tmp_path / "flow.png"
    output = run_example("gradient_flow_2d.py", "--steps", 10, "-n", 300, "--out", picture)
    losses = printed_losses(output)
    assert len(losses) == 11, output  # steps 0..10
    # Ten steps of 0.05 integrate the flow to t = 0.5: S_eps falls by about e^-1 (1.70 -> 0.61 at n = 300).
    assert losses[-1] < 0.6 * losses[0], output
    width, height, channels, pixels = read_png(picture)
    assert (width, height, channels) == (5 * 240, 240, 3)  # snapshots at steps 0, 1, 2, 5, 10
    assert len(set(pixels)) > 10  # a white page with grey and coloured dots, not a blank one


def mnist_images():
    found = [MNIST / (name + suffix) for name in MNIST_FILES for suffix in ("", ".gz")]
    return [path for path in found if path.exists()]


@pytest.mark.skipif(not mnist_images(), reason=f"no MNIST images file in {MNIST}")
def test_mnist_mlp_learns_on_the_real_digits(tmp_path):
    picture = tmp_path / "digits.png"
    output = run_example("mnist_mlp.py", "--data", MNIST, "--steps", 30, "--out", picture)
    losses = printed_losses(output)
    assert len(losses) == 30, output
    # From the untrained sigmoid's grey squares (S_eps ~ 90) to digit-like blurs (~ 25) within 30 steps.
    assert max(losses[-5:]) < 0.5 * losses[0], output
    width, height, channels, pixels = read_png(picture)
    assert (width, height, channels) == (15 * 30, 15 * 30, 1)  # the 15 x 15 lattice of the 2-D latent
    assert len(set(pixels)) > 10


def test_mnist_mlp_reads_a_raw_train_file_and_a_10d_latent(tmp_path):
    # A tiny uncompressed IDX file under the training split's name: the reader's other path.
    n = 250
    images = bytes((i * 7 + j) % 256 for i in range(n) for j in range(28 * 28))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(struct.pack(">4I", 0x803, n, 28, 28) + images)
    output = run_example("mnist_mlp.py", "--data", tmp_path, "--steps", 3, "--latent", 10,
                         "--out", tmp_path / "digits.png")
    assert output.startswith(f"{n} digits from {tmp_path}")
    assert read_png(tmp_path / "digits.png")[:3] == (10 * 30, 10 * 30, 1)  # 100 random latents


def test_mnist_mlp_without_data_says_where_it_looked(tmp_path):
    completed = subprocess.run([sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--data", str(tmp_path)],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode != 0
    assert f"no train-images-idx3-ubyte[.gz] or t10k-images-idx3-ubyte[.gz] in {tmp_path}" in completed.stderr


def test_transport_plan_draws_the_plan_and_the_map(tmp_path):
    picture = tmp_path / "plan.png"
    output = run_example("transport_plan_2d.py", "-n", 60, "-m", 50, "--out", picture)
    assert "status converged" in output, output
    width, height, channels, pixels = read_png(picture)
    assert (width, height, channels) == (600, 300, 3)
    assert len(set(pixels)) > 10


def test_ragged_batch_equals_its_separate_solves(tmp_path):
    picture = tmp_path / "ragged.png"
    output = run_example("ragged_batch.py", "--entries", 3, "--sizes", 20, 80, "--repeats", 1, "--out", picture)
    gaps = re.search(r"values within (\S+), gradients within (\S+)", output)
    assert gaps and float(gaps.group(1)) < 1e-5 and float(gaps.group(2)) < 1e-4, output
    width, height, channels, _ = read_png(picture)
    assert (width, height, channels) == (3 * 200, 200, 3)


def test_barycenter_flow_lowers_its_loss(tmp_path):
    picture = tmp_path / "barycenter.png"
    output = run_example("wasserstein_barycenter.py", "--steps", 6, "-n", 400, "--out", picture)
    losses = printed_losses(output)
    assert len(losses) == 7 and losses[-1] < 0.8 * losses[0], output
    width, height, channels, pixels = read_png(picture)
    assert (width, height, channels) == (4 * 65 * 3, 64 * 3, 1)
    # The right panel (the barycenter) is not blank: particles darken some of its pixels.
    rows = [pixels[r * (1 + width) + 1:(r + 1) * (1 + width)] for r in range(height)]
    assert sum(value < 255 for row in rows for value in row[3 * 65 * 3:]) > 500
