"""Shared bits of the benchmark suites: the machine description, tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return info


def write(name: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    out = (out_dir or RESULTS) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"suite": name, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), **payload}
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return out


def table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in ("measure", "value", "goal", "met"):
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    Console().print(t)
