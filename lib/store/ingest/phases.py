"""Phase timings of one ingest, logged at DEBUG (bench/ingest_probe.py prints them)."""

from __future__ import annotations

import time


class Phases:
    """Wall time and CPU time of the whole process (every thread) spent in each phase."""

    def __init__(self) -> None:
        self.last, self.last_cpu = time.perf_counter(), time.process_time()
        self.spent: list[tuple[str, float, float]] = []

    def mark(self, phase: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.spent.append((phase, now - self.last, cpu - self.last_cpu))
        self.last, self.last_cpu = now, cpu

    def __str__(self) -> str:
        return ", ".join(f"{phase} {wall:.2f}s (CPU {cpu:.2f})" for phase, wall, cpu in self.spent)
