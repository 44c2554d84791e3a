from typing import Any

def run_ops(
    fd: int,
    op: str,
    buffer: Any,
    block_bytes: int,
    file_bytes: int,
    first_op: int,
    latencies: Any,
) -> tuple[int, int]: ...
