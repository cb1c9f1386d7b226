"""What the numbers were measured on: CPU, GPU, versions, date and load average."""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any


def machine() -> dict[str, Any]:
    import torch  # here, not at the top: the start-up timing reads this without training

    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measured_on(m: dict[str, Any]) -> str:
    """One sentence: when and on what, with the load average at the start."""
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    load = " ".join(map(str, m["load_average_start"]))
    return (
        f"Measured {m['date']} on {m['cpu']} ({m['cpu_count']} CPUs), torch {m['torch']}{gpu}; "
        f"load average at start {load}."
    )
