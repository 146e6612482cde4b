"""Rendering what the reports show: the Jinja2 environment of the templates (autoescaped) and
matplotlib figures as inline PNGs."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape


def environment() -> Environment:
    """The templates of this folder, autoescaped, with the reports' filters."""
    env = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else (f"{n:,.3f}" if isinstance(n, float) else n)
    env.filters["json"] = lambda v: json.dumps(v, indent=2, default=str)
    env.filters["details_tables"] = details_tables
    return env


def png(figure) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def details_tables(details: dict) -> dict:
    """A global stage's summary as tables: scalars in one key/value table; each mapping of
    mappings (e.g. per source) as its own table with the inner keys as columns."""
    scalars, tables = {}, {}
    for key, value in details.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            columns = list(dict.fromkeys(k for v in value.values() for k in v))
            tables[key] = {"columns": columns, "rows": {name: [v.get(c) for c in columns] for name, v in value.items()}}
        elif isinstance(value, dict):
            tables[key] = {"columns": ["value"], "rows": {k: [v] for k, v in value.items()}}
        else:
            scalars[key] = value
    return {"scalars": scalars, "tables": tables}
