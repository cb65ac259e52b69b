"""A Markdown table from bench.run JSON summaries.

.venv/bin/python -m bench.report var/bench/all-*/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def row(summary: dict[str, Any]) -> str:
    figures, latency, audit = summary["figures"], summary["latency_ms"], summary["audit"]
    start, confirm = latency["checkout_start"], latency["payment_confirmation"]
    cpu = summary.get("cpu_ms_per_order", {})
    stack_cpu = sum(v or 0 for k, v in cpu.items() if k not in ("machine", "loadgen"))
    extra = ""
    if "seats" in summary:
        extra = f"conflicts {summary['conflicts']}, unsold while wanted {summary['seats']['unsold_while_wanted']}"
    cells = [
        summary["workload"],
        summary["api"],
        str(summary["clients"]),
        str(figures["paid_orders"]),
        str(figures["orders_per_s"]),
        str(figures["tickets_per_s"]),
        f"{start.get('p50')} / {start.get('p99')}",
        f"{confirm.get('p50')} / {confirm.get('p99')}",
        str(summary["responses"].get("checkout_start 429", 0)),
        str(audit["oversold"]),
        str(audit["double_sold_seats"]),
        str(summary["deadlocks"]["postgres"]),
        "yes" if audit["ledger_balanced"] else "NO",
        f"{stack_cpu:.0f}",
        "yes" if summary.get("clean") else "NO",
        extra,
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| workload | api | clients | paid orders | orders/s | tickets/s | checkout start p50 / p99 ms "
    "| payment confirmation p50 / p99 ms | 429s | oversold | double-sold seats | deadlocks | ledger "
    "| stack CPU ms/order | audit clean | notes |\n" + "|---" * 16 + "|"
)


def main(paths: list[str]) -> int:
    print(HEADER)
    for path in paths:
        print(row(json.loads(Path(path).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
