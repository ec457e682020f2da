"""Draw kefu-dashboard.json's panels from a real Prometheus, without Grafana (which neither Debian nor PyPI packages).

Every panel's queries go to Prometheus's HTTP API (``/api/v1/query_range``) exactly as written in the dashboard, with
its variables replaced as Grafana would with "All" selected (``$instance`` and ``$tenant`` by ``.*``,
``$__rate_interval`` by --rate-interval); each series is drawn with the panel's legend format and unit, the panels in
the dashboard's order, three to a row. This is what the PNG in OPERATIONS.md ("Monitoring") was drawn with, from the
scrapes of a loaded server (``bench/monitoring_demo.py``)::

    python systemd/grafana/render.py --prometheus http://127.0.0.1:9090 --minutes 5 --out dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLUMNS = 3
UNITS = {"s": "seconds", "bytes": "MiB", "Bps": "KiB/s", "ops": "per second", "percentunit": "share", "short": ""}
"""Grafana's unit ids (fieldConfig.defaults.unit) as axis labels."""
SCALES = {"bytes": 1 / 2**20, "Bps": 1 / 2**10}
"""Byte units drawn in MiB and KiB, as Grafana would show them."""


def expand(expr: str, rate_interval: str) -> str:
    """The query with the dashboard's variables replaced (every instance and tenant)."""
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?(instance|tenant)\}?", ".*", expr)


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """The matrix Prometheus answers for `expr` (ValueError with its error if it refuses the query)."""
    if not prometheus.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {prometheus}")
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as response:  # noqa: S310
        answer = json.load(response)
    if answer.get("status") != "success":
        raise ValueError(f"{expr}: {answer.get('error')}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: {{label}} replaced by the series' label value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or str(labels)


def render(
    dashboard: dict[str, Any], prometheus: str, start: float, end: float, out: Path, *, rate_interval: str
) -> int:
    """Draw every timeseries panel into `out`; the number of series drawn."""
    import matplotlib  # noqa: PLC0415 - only this script needs it

    matplotlib.use("Agg")
    import matplotlib.dates as mdates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [p for p in dashboard["panels"] if p["type"] == "timeseries"]
    rows = math.ceil(len(panels) / COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(6.2 * COLUMNS, 3.1 * rows), squeeze=False)
    step = max(5.0, (end - start) / 240)
    drawn = 0
    for ax, panel in zip(axes.flat, panels, strict=False):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        scale = SCALES.get(unit, 1.0)
        for target in panel["targets"]:
            for series in query_range(prometheus, expand(target["expr"], rate_interval), start, end, step):
                times = [datetime.fromtimestamp(float(t)) for t, _ in series["values"]]
                values = [float(v) * scale for _, v in series["values"]]
                ax.plot(times, values, linewidth=1.4, label=legend(target.get("legendFormat", ""), series["metric"]))
                drawn += 1
        ax.set_title(panel["title"], fontsize=11, loc="left")
        ax.set_ylabel(UNITS.get(unit, unit), fontsize=8)
        top = max((max(line.get_ydata(), default=0) for line in ax.lines), default=0)  # type: ignore[type-var]
        ax.set_ylim(0, 1.25 * float(top) if top else 1)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(end))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if end - start < 3600 else "%H:%M"))
        if ax.lines:
            ax.legend(fontsize=7, loc="best", ncol=2, framealpha=0.6)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    title = f"{dashboard['title']}: its {len(panels)} panels from Prometheus query_range (not rendered by Grafana)"
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return drawn


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--dashboard", type=Path, default=HERE / "kefu-dashboard.json")
    parser.add_argument("--minutes", type=float, default=10.0, help="the time range drawn, ending now")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval becomes (4 scrape intervals)")
    parser.add_argument("--out", type=Path, default=HERE / "dashboard.png")
    args = parser.parse_args(argv)
    end = time.time()
    dashboard = json.loads(args.dashboard.read_text())
    drawn = render(dashboard, args.prometheus, end - 60 * args.minutes, end, args.out, rate_interval=args.rate_interval)
    print(f"{args.out}: {drawn} series")


if __name__ == "__main__":
    main()
