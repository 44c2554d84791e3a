from collections.abc import Sequence

FD_SETSIZE: int

def wait_ns(
    mechanism: str,
    watched: Sequence[int],
    ready_read: Sequence[int],
    ready_write: Sequence[int],
    calls: int,
    warmup: int = 0,
) -> list[int]: ...
def clock_pair_ns(calls: int) -> list[int]: ...
