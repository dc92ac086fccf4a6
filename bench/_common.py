"""Helpers shared by the benchmarks: figures, JSON results, processes, Ray."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

MAX_QUIET_LOAD = 1.5


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 to 1) rounded to 0.01, or None."""
    ordered = sorted(values)
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def rate(count: int, elapsed_s: float) -> float:
    """Items per second, rounded to a whole number."""
    return round(count / elapsed_s, 0) if elapsed_s > 0 else 0.0


def write_json(path: str | Path, results: Mapping[str, Any]) -> Path:
    """Write results as indented JSON, creating the parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return target


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of the given columns, one line per row."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [
        max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True))
        for line in cells
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB, from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS line for pid {pid}")


def pids_named(fragment: str) -> list[int]:
    """Processes whose command line (a Ray process title, say) contains ``fragment``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if fragment.encode() in cmdline:
            found.append(int(entry.name))
    return found


def pss_kb(pid: int) -> int:
    """Proportional set size in KiB: shared pages split among their users."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise ValueError(f"no Pss line for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by named groups of processes between start and stop."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self._groups = {name: list(pids) for name, pids in groups.items() if pids}
        self._before: dict[str, float] = {}
        self._started = 0.0
        self.used_s: dict[str, float] = {}
        self.elapsed_s = 0.0

    def start(self) -> None:
        """Take the first reading."""
        self._before = {name: self._total(pids) for name, pids in self._groups.items()}
        self._started = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Per group, percent of one core used since ``start``."""
        self.elapsed_s = time.monotonic() - self._started
        self.used_s = {
            name: self._total(pids) - self._before[name]
            for name, pids in self._groups.items()
        }
        return {
            name: round(used / self.elapsed_s * 100, 1)
            for name, used in self.used_s.items()
        }

    @staticmethod
    def _total(pids: Sequence[int]) -> float:
        total = 0.0
        for pid in pids:
            with suppress(FileNotFoundError):  # a replaced worker is gone
                total += cpu_s(pid)
        return total


@contextmanager
def py_spy(pid: int, output: Path | None, *flags: str) -> Iterator[None]:
    """Sample ``pid`` with py-spy into ``output`` (collapsed stacks) meanwhile.

    py-spy ships with the dev tools (``pip install py-spy``); sampling slows
    the process a little, so profiled figures are not benchmark figures.
    """
    if output is None:
        yield
        return
    binary = Path(sys.executable).parent / "py-spy"
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [str(binary), "record", "--pid", str(pid), "--rate", "200"]
    command += ["--format", "raw", "--nonblocking", "--output", str(output)]
    process = subprocess.Popen(
        [*command, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # attaching takes a moment
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def wait_until_quiet(max_load: float = MAX_QUIET_LOAD, patience_s: float = 60) -> float:
    """Wait up to ``patience_s`` for the 1-minute load to drop below ``max_load``.

    Returns the load seen last; a busy machine is reported, not refused.
    """
    deadline = time.monotonic() + patience_s
    load = os.getloadavg()[0]
    while load > max_load and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    if load > max_load:
        note(f"warning: load average {load:.2f} > {max_load}; figures will be low")
    return round(load, 2)


def note(message: str) -> None:
    """A progress line on stderr, so stdout keeps only the summary."""
    print(message, file=sys.stderr, flush=True)


@contextmanager
def local_ray(num_cpus: int = 4, **env: str) -> Iterator[None]:
    """A private local Ray for one benchmark, shut down on exit.

    ``env`` is exported before ``ray.init`` so every Ray process inherits it.
    """
    import ray

    os.environ.update(env)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        yield
    finally:
        ray.shutdown()
        for name in env:
            os.environ.pop(name, None)


class BenchError(Exception):
    """A benchmark could not finish: what was missing and what was seen."""
