"""Incremental parser for strace's text output (``strace -f -ttt -T -yy -o FILE``).

strace has no machine-readable output, so this turns its lines into :class:`TraceEvent` values
as the text arrives, in chunks of any size. What it understands:

- line prefixes: ``123 `` (``-f`` with ``-o``), ``[pid   123] `` (``-f`` on stderr), or none;
  ``-ttt`` timestamps (``-tt``/``-t`` wall-clock times become seconds since midnight);
- calls split by another process's output — ``read(3,  <unfinished ...>`` and, any number of
  lines later, ``<... read resumed>"abc", 64) = 3`` — merged per pid into one event;
- arguments split at top-level commas only: quotes with escapes, ``[] {} ()`` nesting, ``-yy``
  fd decorations ``3</tmp/a, b>`` (which may contain commas and ``->``), ``/* ... */`` comments;
- return values with errno, message, ``-yy`` decoration and ``(Timeout)``-style extras, and
  ``-T`` durations;
- signals (``--- SIGCHLD {...} ---``), exits (``+++ exited with 0 +++``), kills
  (``+++ killed by SIGKILL (core dumped) +++``) and ``strace: Process 123 attached`` notes;
- calls cut short: still unfinished when their process was killed or when the text ends (a
  killed strace leaves the last call half-written, without even ``<unfinished ...>``).

A line it cannot read becomes an ``unparsed`` event carrying the text; it never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sysops.tracing.categories import SYSCALL_CATEGORY, category_of

KINDS: tuple[str, ...] = ("syscall", "signal", "exit", "killed", "unparsed", "info")

# Calls that end their thread or process: strace prints "= ?" for them because they never
# return, which is not a call cut short.
NO_RETURN_SYSCALLS = frozenset({"exit", "exit_group"})

_UNFINISHED_SUFFIX = " <unfinished ...>"
_DETACHED_SUFFIX = " <detached ...>"
_DETACHED_LINE = "<detached ...>"
# On stderr (strace -p), a note can land in the middle of a call's line; see _call.
_NOTE_INSIDE_LINE = "strace: Process "

_PREFIX = re.compile(
    r"(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?"
    r"(?:(\d+\.\d+|\d\d:\d\d:\d\d(?:\.\d+)?)\s+)?"
)
# A whole call with -f -o and -ttt -T, plain arguments (no string, bracket, decoration or
# comment), a plain numeric return and its duration: parsed by one match (see _parse_line).
_SIMPLE_CALL = re.compile(
    r"(\d+) (\d+\.\d+) ([a-z_][a-z0-9_]*)\(([^\"\[\]{}()<>/]*)\)\s+= (-?\d+) <(\d+\.\d+)>\Z"
)
_RESUMED = re.compile(r"<\.\.\. (\w+) resumed>(.*)\Z", re.S)
_SIGNAL = re.compile(r"--- (stopped by )?(SIG\w+)(?: (.*))? ---\Z", re.S)
_EXITED = re.compile(r"\+\+\+ exited with (-?\d+) \+\+\+\Z")
_KILLED = re.compile(r"\+\+\+ killed by (SIG\w+)( \(core dumped\))? \+\+\+\Z")
_SUPERSEDED = re.compile(r"\+\+\+ superseded by execve in pid (\d+) \+\+\+\Z")
_PROCESS_NOTE = re.compile(r"strace: Process (\d+) (\w+)")
_RETURN = re.compile(
    r"(?P<value>-?\d+|0x[0-9a-fA-F]+|\?)"
    r"(?P<fd><.*>)?"
    r"(?: (?P<errno>E[A-Z0-9_]+) \((?P<errmsg>[^()]*(?:\([^()]*\)[^()]*)*)\))?"
    r"(?: \((?P<extra>.*)\))?\Z",
    re.S,
)
_DURATION = re.compile(r"\d+\.\d+\Z")
# Anything that makes a plain split at commas unsafe.
_NEEDS_TOKENIZER = re.compile(r'["\[{(<]|/\*')
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|/\*.*?\*/|[\[\]{}()<>,]', re.S)
_CLOSERS = {"]": "[", "}": "{", ")": "("}
# The fast way to split arguments: one regex match per top-level argument, nesting unrolled to
# a fixed depth (Python's re has no recursion). Brackets nest freely; inside "<...>" a ">"
# closes, elsewhere it is an ordinary character ("->", "=>"). Possessive quantifiers (Python
# 3.11+) keep unbalanced text from backtracking exponentially. split_args checks the result and
# hands text it cannot match exactly (deeper nesting, comments) to the tokenizer.
_ARG_NESTING_DEPTH = 5
_STRING = r'"(?:[^"\\]++|\\.)*+"'


def _nested_group(depth: int) -> str:
    inner = _STRING if depth == 1 else f"{_STRING}|{_nested_group(depth - 1)}"
    return (
        rf'(?:[\[{{(](?:{inner}|[^"<\[\]{{}}()]++)*+[\]}})]'
        rf'|<(?:{inner}|[^"<>\[\]{{}}()]++)*+>)'
    )


_ARGUMENT = re.compile(
    rf'(?:{_STRING}|{_nested_group(_ARG_NESTING_DEPTH)}|[^,"<\[\]{{}}()]++)++', re.S
)
_FD_DECORATION = re.compile(r"(?:-?\d+|AT_FDCWD)<(.*)>\Z", re.S)
# -yy appends the device numbers of device files: "/dev/null<char 1:3>". The path is the news.
_DEVICE_SUFFIX = re.compile(r"<(?:char|block) \d+:\d+>\Z")
_C_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.S)
_SIMPLE_ESCAPES = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "a": 7, "b": 8, "e": 27}


@dataclass(slots=True)
class TraceEvent:
    """One thing strace reported: a syscall (both halves merged), a signal, an exit or a note.

    ``kind`` is one of :data:`KINDS`. ``name`` is the syscall or signal name (``exit`` events
    are named ``exit``; ``info`` events name the note, e.g. ``attached``). ``args`` holds the
    raw top-level arguments as strace printed them; for signals it is the siginfo text (or
    ``["stopped"]`` for a group-stop), for kills ``["core dumped"]`` when a core was written.
    ``ret`` is the raw return text without the duration (``-1 ENOENT (No such file or
    directory)``, ``0 (Timeout)``, ``3</dev/null>``); ``retval`` its number (the exit status for
    ``exit`` events). ``fd_paths`` maps an argument index, or ``"ret"``, to the decoded ``-yy``
    decoration of a top-level descriptor. ``ts`` is the start of the call in seconds (None on
    notes strace prints without a timestamp); ``duration_s`` comes from ``-T``. ``cut_short``
    marks calls that never returned (their process was killed, or the trace ended first) and
    kills. ``harness`` marks what the worker did for itself rather than for the experiment
    (set by :class:`sysops.tracing.filter.MarkerFilter`). ``seq`` numbers events in the order
    the parser emits them, which for a split call is when its second half arrives.
    """

    seq: int
    pid: int | None
    ts: float | None
    kind: str
    name: str
    args: list[str] = field(default_factory=list)
    ret: str | None = None
    retval: int | None = None
    errno: str | None = None
    errmsg: str | None = None
    duration_s: float | None = None
    fd_paths: dict[int | str, str] = field(default_factory=dict)
    category: str = "other"
    cut_short: bool = False
    raw: str = ""
    harness: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``fd_paths`` keys become strings, as JSON requires; ``harness``
        only when true."""
        return {
            "seq": self.seq,
            "pid": self.pid,
            "ts": self.ts,
            "kind": self.kind,
            "name": self.name,
            "args": list(self.args),
            "ret": self.ret,
            "retval": self.retval,
            "errno": self.errno,
            "errmsg": self.errmsg,
            "duration_s": self.duration_s,
            "fd_paths": {str(key): path for key, path in self.fd_paths.items()},
            "category": self.category,
            "cut_short": self.cut_short,
            "raw": self.raw,
            # Only where set: most events are the experiment's, and storage is per event.
            **({"harness": True} if self.harness else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceEvent:
        """The inverse of :meth:`to_dict` (argument-index keys become ints again)."""
        fields = dict(data)
        fields["args"] = list(fields.get("args", ()))
        fields["fd_paths"] = {
            (int(key) if str(key).lstrip("-").isdigit() else key): path
            for key, path in (fields.get("fd_paths") or {}).items()
        }
        return cls(**fields)


@dataclass(slots=True)
class _Pending:
    """The first half of a call printed as ``<unfinished ...>``."""

    name: str
    args_text: str
    ts: float | None
    raw: str


class TraceParser:
    """Turns strace text into events, chunk by chunk.

    >>> parser = TraceParser()
    >>> events = parser.feed('7 1.5 close(3</tmp/x>) = 0 <0.000002>\\n7 1.6 read(3, ')
    >>> [(e.name, e.retval, e.fd_paths) for e in events]
    [('close', 0, {0: '/tmp/x'})]
    >>> [(e.name, e.args, e.cut_short) for e in parser.close()]
    [('read', ['3'], True)]
    """

    def __init__(self) -> None:
        self._partial = ""
        self._pending: dict[int | None, _Pending] = {}
        # The pid whose half-printed call a note interrupted; its "<detached ...>" comes alone.
        self._interrupted_pid: int | None = None
        self._seq = 0
        self.lines_seen = 0

    def feed(self, text: str) -> list[TraceEvent]:
        """Parse the complete lines in ``text`` (plus what earlier chunks left unfinished)."""
        if "\n" not in text:
            self._partial += text
            return []
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        events: list[TraceEvent] = []
        for line in lines:
            self._parse_line(line, events, at_close=False)
        return events

    def close(self) -> list[TraceEvent]:
        """Flush the end of the text: a last line without newline, then calls never resumed.

        Both are calls cut short, e.g. by a kill that took strace down with the tracee.
        """
        events: list[TraceEvent] = []
        if self._partial:
            line, self._partial = self._partial, ""
            self._parse_line(line, events, at_close=True)
        for pid in list(self._pending):
            events.append(self._cut_short(pid))
        return events

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _parse_line(self, line: str, events: list[TraceEvent], *, at_close: bool) -> None:
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip():
            return
        self.lines_seen += 1
        simple = _SIMPLE_CALL.match(line)
        if simple is not None:
            # The commonest line by far in a big trace (getppid() = 1 <0.000002>): one regex,
            # and the same event the general path below would make.
            pid, ts, name, args_text, ret, duration = simple.groups()
            self._seq += 1
            events.append(
                TraceEvent(
                    self._seq,
                    int(pid),
                    float(ts),
                    "syscall",
                    name,
                    [arg.strip() for arg in args_text.split(",")] if args_text else [],
                    ret,
                    int(ret),
                    None,
                    None,
                    float(duration),
                    {},
                    SYSCALL_CATEGORY.get(name, "other"),
                    False,
                    line,
                )
            )
            return
        try:
            self._dispatch(line, events, at_close)
        except Exception:  # a surprising line must not stop a live trace
            events.append(self._unparsed(line, None, None))

    def _dispatch(self, line: str, events: list[TraceEvent], at_close: bool) -> None:
        match = _PREFIX.match(line)
        pid_text = match.group(1) or match.group(2)
        pid = int(pid_text) if pid_text else None
        ts_text = match.group(3)
        ts = _parse_ts(ts_text) if ts_text else None
        rest = line[match.end() :]
        first = rest[:1]

        if first == "<" and rest.startswith("<... "):
            self._resumed(line, rest, pid, ts, events, at_close)
        elif first == "-" and rest.startswith("--- "):
            events.append(self._signal(line, rest, pid, ts))
        elif first == "+" and rest.startswith("+++ "):
            self._exit(line, rest, pid, ts, events)
        elif first == "s" and rest.startswith("strace: "):
            events.append(self._note(line, rest, pid, ts))
        elif rest.strip() == _DETACHED_LINE and self._interrupted_pid in self._pending:
            pending = self._pending.pop(self._interrupted_pid)
            events.append(
                self._incomplete(
                    pending.name,
                    pending.args_text,
                    self._interrupted_pid,
                    pending.ts,
                    f"{pending.raw}\n{line}",
                )
            )
        else:
            self._call(line, rest, pid, ts, events, at_close)

    def _call(
        self,
        line: str,
        rest: str,
        pid: int | None,
        ts: float | None,
        events: list[TraceEvent],
        at_close: bool,
    ) -> None:
        open_at = rest.find("(")
        name = rest[:open_at]
        if open_at <= 0 or not name.isidentifier():
            events.append(self._unparsed(line, pid, ts))
            return
        body = rest[open_at + 1 :]
        if body.endswith(_UNFINISHED_SUFFIX):
            if pid in self._pending:
                # strace never leaves two calls of one thread open; if it seems to, keep both.
                events.append(self._cut_short(pid))
            self._pending[pid] = _Pending(name, body[: -len(_UNFINISHED_SUFFIX)], ts, line)
            return
        if body.endswith(_DETACHED_SUFFIX):
            events.append(self._incomplete(name, body[: -len(_DETACHED_SUFFIX)], pid, ts, line))
            return
        event = self._complete(name, body, pid, ts, line)
        if event is None:
            note_at = body.find(_NOTE_INSIDE_LINE)
            if note_at >= 0 and not at_close:
                # strace -p on stderr: "read(3, strace: Process 7 detached", then the note's
                # other lines, then " <detached ...>" alone. Keep the call open until then.
                self._pending[pid] = _Pending(name, body[:note_at], ts, line)
                self._interrupted_pid = pid
                events.append(self._note(body[note_at:], body[note_at:], pid, None))
                return
            event = (
                self._incomplete(name, body, pid, ts, line)
                if at_close
                else self._unparsed(line, pid, ts)
            )
        events.append(event)

    def _resumed(
        self,
        line: str,
        rest: str,
        pid: int | None,
        ts: float | None,
        events: list[TraceEvent],
        at_close: bool,
    ) -> None:
        match = _RESUMED.match(rest)
        if match is None:
            events.append(self._unparsed(line, pid, ts))
            return
        name, tail = match.group(1), match.group(2)
        pending = self._pending.get(pid)
        if pending is not None and pending.name != name:
            events.append(self._cut_short(pid))
            pending = None
        if pending is None:
            # The first half is missing (the text started mid-call): keep what there is.
            pending = _Pending(name, "", ts, "")
        else:
            del self._pending[pid]
        raw = f"{pending.raw}\n{line}" if pending.raw else line
        if tail.endswith(_UNFINISHED_SUFFIX):
            # Interrupted again while printing the rest: still waiting for the return.
            self._pending[pid] = _Pending(
                name, pending.args_text + tail[: -len(_UNFINISHED_SUFFIX)], pending.ts, raw
            )
            return
        if tail.startswith(_UNFINISHED_SUFFIX):
            # "<... read resumed> <unfinished ...>) = ?": the process died inside the call.
            body = pending.args_text.rstrip().rstrip(",") + tail[len(_UNFINISHED_SUFFIX) :]
        else:
            body = pending.args_text + tail
        event = self._complete(name, body, pid, pending.ts, raw)
        if event is None:
            event = (
                self._incomplete(name, body, pid, pending.ts, raw)
                if at_close
                else self._unparsed(raw, pid, pending.ts)
            )
        events.append(event)

    def _complete(
        self, name: str, body: str, pid: int | None, ts: float | None, raw: str
    ) -> TraceEvent | None:
        """A call with its return value, or None if ``body`` has none."""
        equals_at = body.rfind(" = ")
        if equals_at < 0:
            return None
        head = body[:equals_at].rstrip()
        if not head.endswith(")"):
            return None
        ret = body[equals_at + 3 :]
        duration_s = None
        if ret.endswith(">"):
            # -T appends " <seconds>"; -yy decorations never contain " <" (strace escapes '<').
            space_at = ret.rfind(" <")
            if space_at >= 0 and _DURATION.match(ret, space_at + 2, len(ret) - 1):
                duration_s = float(ret[space_at + 2 : -1])
                ret = ret[:space_at]
        args = split_args(head[:-1])
        # Most calls carry no -yy decoration: no need to look at each argument.
        fd_paths = _fd_paths(args) if ">" in head else {}

        retval = errno = errmsg = None
        if ret.isdigit():
            retval = int(ret)
        else:
            match = _RETURN.match(ret)
            if match is not None:
                value = match.group("value")
                if value != "?":
                    retval = int(value, 16) if value.startswith("0x") else int(value)
                errno = match.group("errno")
                errmsg = match.group("errmsg")
                decoration = match.group("fd")
                if decoration is not None:
                    fd_paths["ret"] = _decoration_path(decoration[1:-1])
        cut_short = ret == "?" and name not in NO_RETURN_SYSCALLS
        return TraceEvent(
            self._next_seq(),
            pid,
            ts,
            "syscall",
            name,
            args,
            ret,
            retval,
            errno,
            errmsg,
            duration_s,
            fd_paths,
            SYSCALL_CATEGORY.get(name, "other"),  # category_of, inlined: once per event
            cut_short,
            raw,
        )

    def _incomplete(
        self, name: str, args_text: str, pid: int | None, ts: float | None, raw: str
    ) -> TraceEvent:
        """A call that never returned: only its arguments (as far as strace printed them)."""
        args = split_args(args_text.rstrip().rstrip(","))
        return TraceEvent(
            self._next_seq(),
            pid,
            ts,
            "syscall",
            name,
            args,
            fd_paths=_fd_paths(args),
            category=category_of(name),
            cut_short=True,
            raw=raw,
        )

    def _cut_short(self, pid: int | None) -> TraceEvent:
        pending = self._pending.pop(pid)
        return self._incomplete(pending.name, pending.args_text, pid, pending.ts, pending.raw)

    def _signal(self, line: str, rest: str, pid: int | None, ts: float | None) -> TraceEvent:
        match = _SIGNAL.match(rest)
        if match is None:
            return self._unparsed(line, pid, ts)
        stopped, name, siginfo = match.groups()
        args = ["stopped"] if stopped else ([siginfo] if siginfo else [])
        return TraceEvent(
            self._next_seq(), pid, ts, "signal", name, args, category="signal", raw=line
        )

    def _exit(
        self, line: str, rest: str, pid: int | None, ts: float | None, events: list[TraceEvent]
    ) -> None:
        match = _EXITED.match(rest)
        if match is not None:
            # Whatever this process still had open will never return.
            if pid in self._pending:
                events.append(self._cut_short(pid))
            status = int(match.group(1))
            events.append(
                TraceEvent(
                    self._next_seq(),
                    pid,
                    ts,
                    "exit",
                    "exit",
                    [],
                    str(status),
                    status,
                    category="process",
                    raw=line,
                )
            )
            return
        match = _KILLED.match(rest)
        if match is not None:
            if pid in self._pending:
                events.append(self._cut_short(pid))
            args = ["core dumped"] if match.group(2) else []
            events.append(
                TraceEvent(
                    self._next_seq(),
                    pid,
                    ts,
                    "killed",
                    match.group(1),
                    args,
                    category="process",
                    cut_short=True,
                    raw=line,
                )
            )
            return
        match = _SUPERSEDED.match(rest)
        if match is not None:
            # A non-leader thread called execve: its call resumes under the leader's pid.
            thread_pid = int(match.group(1))
            if thread_pid in self._pending:
                if pid in self._pending:
                    events.append(self._cut_short(pid))
                self._pending[pid] = self._pending.pop(thread_pid)
            events.append(
                TraceEvent(
                    self._next_seq(),
                    pid,
                    ts,
                    "info",
                    "superseded",
                    [str(thread_pid)],
                    category="process",
                    raw=line,
                )
            )
            return
        events.append(self._unparsed(line, pid, ts))

    def _note(self, line: str, rest: str, pid: int | None, ts: float | None) -> TraceEvent:
        message = rest[len("strace: ") :]
        match = _PROCESS_NOTE.match(rest)
        if match is not None:
            # The note is about the process it names, whatever line it was printed on.
            return TraceEvent(
                self._next_seq(),
                int(match.group(1)),
                ts,
                "info",
                match.group(2),
                [message],
                raw=line,
            )
        return TraceEvent(self._next_seq(), pid, ts, "info", "strace", [message], raw=line)

    def _unparsed(self, raw: str, pid: int | None, ts: float | None) -> TraceEvent:
        return TraceEvent(self._next_seq(), pid, ts, "unparsed", "", raw=raw)


def parse_text(text: str) -> list[TraceEvent]:
    """All events of a complete strace output (feed then close)."""
    parser = TraceParser()
    return parser.feed(text) + parser.close()


def split_args(text: str) -> list[str]:
    """Split strace's argument text at top-level commas.

    Commas inside quotes, ``[] {} ()``, ``-yy`` decorations ``<...>`` and ``/* */`` comments do
    not split. A ``>`` closes only a ``<`` (``TCP:[a->b]`` and ``{...} => {...}`` stay intact).
    """
    if not text:
        return []
    if _NEEDS_TOKENIZER.search(text) is None:
        return [part.strip() for part in text.split(",")]
    pieces = _ARGUMENT.findall(text)
    if ",".join(pieces) == text and "/*" not in text:
        return [piece.strip() for piece in pieces]
    return _split_args_slowly(text)


def _split_args_slowly(text: str) -> list[str]:
    """split_args by walking every quote, bracket and comma: any depth, comments respected."""
    args: list[str] = []
    stack: list[str] = []
    start = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if len(token) != 1:
            continue  # a whole string or comment: nothing inside it counts
        if token == ",":
            if not stack:
                args.append(text[start : match.start()].strip())
                start = match.end()
        elif token in "[{(<":
            stack.append(token)
        elif token == ">":
            if stack and stack[-1] == "<":
                stack.pop()
        elif stack and stack[-1] == _CLOSERS[token]:
            stack.pop()
    args.append(text[start:].strip())
    return args


def _fd_paths(args: list[str]) -> dict[int | str, str]:
    paths: dict[int | str, str] = {}
    for index, arg in enumerate(args):
        if arg.endswith(">"):
            match = _FD_DECORATION.match(arg)
            if match is not None:
                paths[index] = _decoration_path(match.group(1))
    return paths


def _parse_ts(text: str) -> float:
    if ":" not in text:
        return float(text)
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _decoration_path(text: str) -> str:
    """The path (or socket, pipe, anon_inode) of a -yy fd decoration, without device numbers."""
    if text.endswith(">"):
        text = _DEVICE_SUFFIX.sub("", text)
    return _unescape(text)


def _unescape(text: str) -> str:
    """Decode strace's C-style escapes (``\\303\\274``, ``\\x3c``, ``\\n``) into text."""
    if "\\" not in text:
        return text

    def byte_of(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "x" and len(code) > 1:
            value = int(code[1:], 16)
        elif code[0] in "01234567":
            value = int(code, 8) & 0xFF
        else:
            value = _SIMPLE_ESCAPES.get(code, ord(code) if ord(code) < 256 else 0x3F)
        return chr(value)

    # Escapes stand for bytes: collect them as latin-1 code points, then decode as UTF-8.
    latin1 = _C_ESCAPE.sub(byte_of, text)
    return latin1.encode("latin-1", "replace").decode("utf-8", "backslashreplace")
