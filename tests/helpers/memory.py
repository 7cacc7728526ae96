"""Peak memory of a command, sampled from outside: anonymous resident memory (RssAnon: heap, numpy and torch
buffers), which is what a corpus held in Python objects would grow. Memory-mapped file pages (the Arrow cache,
the token stream) are page cache the kernel can drop, so they are left out."""

from __future__ import annotations

import subprocess
import sys
import time


def rss_anon_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))


def peak_rss_anon_mib(
    argv: list[str], env: dict, timeout: float = 900
) -> tuple[float, subprocess.CompletedProcess]:
    """Run `argv`, sampling its RssAnon every 5 ms: `(peak MiB, the finished process)`."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, started = 0, time.monotonic()
    while process.poll() is None:
        try:
            peak = max(peak, rss_anon_kib(process.pid))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            pass  # between exit and reaping
        if time.monotonic() - started > timeout:
            process.kill()
        time.sleep(0.005)
    out, err = process.communicate()
    return peak / 1024, subprocess.CompletedProcess(argv, process.returncode, out, err)


def hfgpt_command() -> list[str]:
    return [sys.executable, "-m", "hfgpt"]
