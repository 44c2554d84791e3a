"""The plain C loop a benchmark compares against: compiled here from its source text, so the
peer is as independent of the extension under test as a few lines of C can be."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def build_peer(directory: Path, source_text: str) -> Path:
    """Compile ``source_text`` with ``cc -O2`` into ``directory/peer``; exits without cc."""
    compiler = shutil.which("cc")
    if compiler is None:
        raise SystemExit("no C compiler (cc) on PATH")
    source, binary = directory / "peer.c", directory / "peer"
    source.write_text(source_text)
    subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
    return binary
