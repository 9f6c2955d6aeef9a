"""Peak memory of the function under the emulator, read from /proc (Linux only).

The REPORT line's "Max Memory Used" is not measured by the Runtime Interface Emulator, so we
read the resident-set high-water mark (VmHWM) of the runtime process itself: the
`python -m awslambdaric` child of the emulator. Writing "5" to /proc/<pid>/clear_refs resets
the high-water mark, so each invocation can be measured on its own in a warm environment.
"""

from __future__ import annotations

from pathlib import Path

from devtools.rie import EmulatedFunction

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    found = []
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def runtime_pid(fn: EmulatedFunction) -> int:
    """The awslambdaric process the emulator started (it exists after the first invoke)."""
    proc = fn._proc  # the emulator process, only to find its child
    if proc is None:
        raise RuntimeError("the emulator is not running")
    for pid in children(proc.pid):
        cmdline = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        if b"awslambdaric" in cmdline:
            return pid
    raise RuntimeError("no awslambdaric process under the emulator (invoke once first)")


def _status_kb(pid: int, field: str) -> int:
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmHWM") / 1024.0


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024.0


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    (PROC / str(pid) / "clear_refs").write_text("5")


__all__ = ["peak_rss_mb", "reset_peak", "rss_mb", "runtime_pid"]
