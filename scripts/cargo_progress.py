"""Runs a cargo build and says what it is doing, at least every 30 seconds.

    .venv/bin/python scripts/cargo_progress.py [--every 30] [--note TEXT] -- cargo build --bin sender ...

Cargo's own progress bar is drawn only on a terminal, and `--quiet` hides everything, so a
first build (hundreds of crates, several minutes on 2 cores; one crate such as
aws-sdk-dynamodb alone takes minutes) can look hung. This wrapper runs the command with
`--message-format=json-render-diagnostics` and prints instead, on any output:

    [ 120/325] 3m05s  compiling aws-sdk-dynamodb, aws-sdk-sqs

when something finished (at most every 15 s) and, while nothing finishes, a heartbeat every
`--every` seconds (default 30). The total is the number of units cargo will go through
(crates, build scripts, binaries), from `--unit-graph` (RUSTC_BOOTSTRAP=1, read-only; no
total when that fails). Units already built count as done at once, so a second run goes
straight to "up to date". `--note` is printed when the first crate starts compiling (how long a
first build takes), not when everything (or most of it) is up to date. Warnings, errors and cargo's other
messages (a lock it waits for) pass through unchanged; the per-crate `Compiling` lines and
`Finished` are folded into the progress lines and one closing line. The exit status is cargo's.

Works for `cargo build`, `cargo check`, `cargo clippy` (arguments after `--` go to clippy)
and `cargo test --no-run`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter

# Cargo's status verbs for a unit that starts compiling.
STARTED = re.compile(r"^\s*(Compiling|Checking|Documenting)\s+(\S+)\s+v")
# Status lines folded into the progress lines (or not worth showing).
FOLDED = re.compile(r"^\s*(Compiling|Checking|Fresh|Executable|Finished)\b")
PROGRESS_GAP = 15.0


def elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def package_name(package_id: str) -> str:
    """`registry+https://...#tokio@1.48.0` -> tokio; `path+file:///w/shared#sms-shared@0.1.0` ->
    sms-shared; `path+file:///w/functions/sender#0.1.0` -> sender."""
    url, _, fragment = package_id.partition("#")
    if "@" in fragment:
        return fragment.split("@", 1)[0]
    if fragment and not fragment[0].isdigit():
        return fragment
    return url.rstrip("/").rsplit("/", 1)[-1]


def split_at_separator(args: list[str]) -> tuple[list[str], list[str]]:
    """Cargo's arguments and those after `--` (clippy's, the test binaries')."""
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i:]
    return args, []


def unit_graph_command(command: list[str]) -> list[str] | None:
    """The command that prints the unit graph of `command`'s build, or None."""
    head, _ = split_at_separator(command)
    if len(head) < 2:
        return None
    program, sub, rest = head[0], head[1], head[2:]
    if sub == "clippy":
        sub = "check"  # the same units; clippy only wraps rustc
    if sub not in ("build", "check", "test", "run"):
        return None
    if sub == "run":
        sub = "build"
    rest = [a for a in rest if a not in ("--quiet", "-q")]
    return [program, sub, *rest, "--unit-graph", "-Z", "unstable-options"]


def count_units(command: list[str]) -> int | None:
    graph = unit_graph_command(command)
    if graph is None:
        return None
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    try:
        out = subprocess.run(graph, capture_output=True, text=True, env=env, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        return len(json.loads(out.stdout)["units"])
    except (ValueError, KeyError, TypeError):
        return None


def with_json_messages(command: list[str]) -> list[str]:
    head, tail = split_at_separator(command)
    head = [a for a in head if a not in ("--quiet", "-q") and not a.startswith("--message-format")]
    return [*head, "--message-format=json-render-diagnostics", *tail]


class Progress:
    def __init__(self, total: int | None, every: float, note: str | None = None, out=sys.stdout):
        self.total = total
        self.note = note
        self.every = every
        self.out = out
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.done = 0
        self.compiled = 0
        self.running: Counter = Counter()
        self.last_print = self.start
        self.last_done_printed = 0
        self.stopped = threading.Event()
        self.started_any = False

    def line(self) -> str:
        count = f"{self.done:>4}/{self.total}" if self.total else f"{self.done:>4}"
        now = time.monotonic() - self.start
        names = [name for name, n in self.running.items() if n > 0]
        doing = f"compiling {', '.join(names[:3])}" if names else "compiling, linking"
        if len(names) > 3:
            doing += f" (+{len(names) - 3})"
        return f"    [{count}] {elapsed(now):>6}  {doing}"

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            if self.compiled == 0 and not self.running:
                return  # nothing is being compiled: no progress to show
            changed = self.done != self.last_done_printed
            if force or (changed and now - self.last_print >= PROGRESS_GAP) or now - self.last_print >= self.every:
                print(self.line(), file=self.out, flush=True)
                self.last_print = now
                self.last_done_printed = self.done

    def started(self, name: str) -> None:
        with self.lock:
            first = self.compiled == 0 and not self.running and not self.started_any
            self.started_any = True
            self.running[name] += 1
        # The note is about a first build: not when most units were already up to date when
        # the first one started (cargo reports those first), as after a code change.
        if first and self.note and (not self.total or self.done < self.total / 2):
            print(f"    {self.note}", file=self.out, flush=True)
        self.emit(force=first)  # the first crate to compile: say so at once

    def finished(self, name: str, fresh: bool, build_script: bool = False) -> None:
        with self.lock:
            self.done += 1
            if not fresh:
                self.compiled += 1
            # Cargo names a package once ("Compiling x"); its build script is built and run
            # before the crate itself, which is still compiling after that.
            if not build_script and self.running[name] > 0:
                self.running[name] -= 1
        self.emit()

    def heartbeat(self) -> None:
        while not self.stopped.wait(1.0):
            self.emit()


def pump(proc: subprocess.Popen, on_text, on_message) -> None:
    """Feeds the child's lines to the handlers in the order cargo wrote them. stderr is merged
    into stdout (one pipe keeps the order: cargo says `Compiling x` before it reports x's
    artifact; two pipes read by two threads could take them in either order): a line that is a
    JSON message with a `reason` is cargo's, any other line its text."""
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        try:
            message = json.loads(line) if line.startswith("{") else None
        except ValueError:
            message = None
        if isinstance(message, dict) and "reason" in message:
            on_message(message)
        else:
            on_text(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--every", type=float, default=30.0, help="seconds between heartbeats")
    parser.add_argument("--note", help="printed when something starts compiling (not when all is up to date)")
    parser.add_argument("--quiet", action="store_true", help="print nothing when everything is up to date")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- cargo ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    progress = Progress(count_units(command), args.every, args.note)
    proc = subprocess.Popen(with_json_messages(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def on_text(line: str) -> None:
        started = STARTED.match(line)
        if started:
            progress.started(started.group(2))
        elif not FOLDED.match(line):
            print(line, file=sys.stderr, flush=True)

    def on_message(message: dict) -> None:
        reason = message.get("reason")
        if reason == "compiler-artifact":
            kinds = (message.get("target") or {}).get("kind") or []
            progress.finished(package_name(message.get("package_id", "")), bool(message.get("fresh")),
                              build_script="custom-build" in kinds)
        elif reason == "build-script-executed":
            progress.finished(package_name(message.get("package_id", "")), True, build_script=True)

    beat = threading.Thread(target=progress.heartbeat, daemon=True)
    beat.start()
    try:
        pump(proc, on_text, on_message)
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        code = proc.wait()
    progress.stopped.set()
    took = elapsed(time.monotonic() - progress.start)
    if code == 0 and progress.compiled:
        print(f"    built in {took}: {progress.compiled} units compiled, {progress.done - progress.compiled} already up to date",
              flush=True)
    elif code == 0 and not args.quiet:
        print(f"    up to date ({took})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
