"""A small progress bar for the terminal: count, rate, ETA and live figures (loss, accuracy).

It draws only on a terminal; in a log (CI, a pipe) it prints one summary line when done, so
logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_REDRAW_SECONDS = 0.1


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _scaled(count: float, unit: str) -> str:
    if unit == "B":
        for prefix in ("", "K", "M", "G"):
            if count < 1024 or prefix == "G":
                return f"{count:.1f} {prefix}B" if prefix else f"{int(count)} B"
            count /= 1024
    return f"{int(count)}"


class Progress:
    """``with Progress(total, "train") as bar: bar.update(1, loss=0.3)``.

    ``enabled``: None draws on a terminal and prints one summary line in a log; False is silent.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        # None: live on a terminal, one summary line in a log; False: silent.
        self.silent = enabled is False
        self.live = self.stream.isatty() if enabled is None else enabled
        self.count = 0
        self.figures: dict[str, str] = {}
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1, **figures: float | str) -> None:
        self.count += n
        for key, value in figures.items():
            self.figures[key] = f"{value:.4f}" if isinstance(value, float) else str(value)
        now = time.perf_counter()
        if self.live and now - self._last_draw >= _REDRAW_SECONDS:
            self._last_draw = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()

    def set_figures(self, **figures: float | str) -> None:
        self.update(0, **figures)

    def _line(self, now: float) -> str:
        elapsed = now - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        done = f"{_scaled(self.count, self.unit)}"
        if self.total:
            fraction = min(1.0, self.count / self.total)
            bar = "#" * int(fraction * 20)
            eta = (self.total - self.count) / rate if rate > 0 else 0.0
            head = f"{self.desc} {fraction:4.0%}|{bar:<20}| {done}/{_scaled(self.total, self.unit)}"
            timing = f"[{_clock(elapsed)}<{_clock(eta)}"
        else:
            head = f"{self.desc} {done}"
            timing = f"[{_clock(elapsed)}"
        rate_text = f"{_scaled(rate, self.unit)}/s" if self.unit == "B" else f"{rate:.0f} {self.unit}/s"
        tail = " ".join(f"{k}={v}" for k, v in self.figures.items())
        return f"{head} {timing}, {rate_text}] {tail}".rstrip() + "\033[K"

    def close(self) -> None:
        if self._closed or self.silent:
            return
        self._closed = True
        now = time.perf_counter()
        line = self._line(now)
        if self.live:
            self.stream.write("\r" + line + "\n")
        else:
            self.stream.write(line.replace("\033[K", "") + "\n")
        self.stream.flush()
