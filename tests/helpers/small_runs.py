"""Parameters of a small syscall-cost run that its form accepts, for tests of stored runs."""

SYSCALL_COST_SMALL = {
    "call": "getppid",
    "layers": ["native"],
    "iterations": 1000,
    "repetitions": 5,
    "warmup": 0,
}
