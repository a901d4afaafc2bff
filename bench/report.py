"""The run's report: a table per scenario on stdout, one JSON file, a PNG plot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def save_results(name: str, results: dict[str, Any]) -> Path:
    """Write a side benchmark's results to bench/results/<name>-<time>.json; print the path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(__file__).resolve().parent / "results" / f"{name}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"-> {out}")
    return out


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _part(row: Row) -> dict[str, Any]:
    """The delivery figures of a row: its listeners', else its pollers'."""
    return row.get("listeners") or row.get("pollers") or {}


def _lat(key: str) -> Callable[[Row], str]:
    return lambda r: fmt(_part(r).get("latency_ms", {}).get(key))


def _p(key: str, digits: int = 1) -> Callable[[Row], str]:
    return lambda r: fmt(_part(r).get(key), digits)


def _r(key: str, digits: int = 1) -> Callable[[Row], str]:
    return lambda r: fmt(r.get(key), digits)


DELIVERY = [
    ("expected", _p("expected")),
    ("received", _p("received")),
    ("lost", _p("lost")),
    ("dup", _p("duplicates")),
    ("ooo", _p("out_of_order")),
    ("p50 ms", _lat("p50")),
    ("p95 ms", _lat("p95")),
    ("p99 ms", _lat("p99")),
    ("max ms", _lat("max")),
]
COST = [
    ("deliv/s", _p("deliveries_per_s")),
    ("srv CPU s", _r("server_cpu_s", 2)),
    ("CPU ms/1k deliv", _p("cpu_ms_per_1000_deliveries")),
    ("RSS MiB", _r("peak_rss_mib")),
    ("cli CPU s", _r("client_cpu_s", 2)),
]
COLUMNS: dict[str, list[tuple[str, Callable[[Row], str]]]] = {
    "fanout": [
        ("target", _r("target")),
        ("listeners", _r("listeners_n")),
        ("conn", _p("connected")),
        ("msgs", _r("messages")),
        *DELIVERY,
        *COST,
    ],
    "throughput": [
        ("target", _r("target")),
        ("msgs", _r("messages")),
        ("msg/s", _r("messages_per_s")),
        ("refused", lambda r: fmt(sum(r.get("senders", {}).get("refused", {}).values()))),
        *DELIVERY,
        *COST,
    ],
    "idle": [
        ("target", _r("target")),
        ("clients", _r("clients")),
        ("conn", _p("connected")),
        ("idle CPU s/s", _r("idle_cpu_per_s", 3)),
        ("idle RSS MiB", lambda r: fmt(sum((r.get("idle_rss_mib") or {}).values()))),
        ("KiB/socket", _r("kib_per_idle_socket")),
        ("trickle msgs", _r("messages")),
        *DELIVERY,
        ("srv CPU s", _r("server_cpu_s", 2)),
        ("requests", _p("requests")),
    ],
    "catchup": [
        ("target", _r("target")),
        ("events", _r("events")),
        ("processed", lambda r: fmt(r.get("processed", r.get("events")))),
        ("drain s", _r("drain_seconds", 2)),
        ("events/s", _r("events_per_s")),
        ("srv CPU s", _r("server_cpu_s", 2)),
        ("CPU ms/1k events", _r("cpu_ms_per_1000_events")),
        ("exactly once", lambda r: fmt(r.get("exactly_once"))),
    ],
}
COLUMNS["scaleout"] = COLUMNS["fanout"]
COLUMNS["mux"] = [
    ("target", _r("target")),
    ("sockets", _r("sockets")),
    ("subs", _r("subscriptions")),
    ("deliveries", _r("deliveries")),
    ("wrong", _r("mismatches")),
    ("srv CPU s", _r("server_cpu_s", 2)),
    ("CPU ms/1k deliv", _r("cpu_ms_per_1000_deliveries", 2)),
    ("RSS added MiB", _r("rss_added_mib")),
    ("KiB/sub", _r("kib_per_subscription", 2)),
]


def _head(key: str, digits: int = 1) -> Callable[[Row], str]:
    return lambda r: fmt((r.get("headline_ms") or {}).get(key), digits)


def _ready(r: Row) -> str:
    """When half and 95% of the listeners were ready, s after the storm (or the drop)."""
    ready = r.get("ready_after_s") or {}
    return f"{fmt(ready.get('p50'), 2)}/{fmt(ready.get('p95'), 2)}"


def _by_window(r: Row) -> str:
    """p99 per window (from-to s: ms), e.g. "0-1:350 1-2:40 ..."."""
    cells = []
    for w in r.get("latency_by_window") or []:
        if w["samples"]:
            if w["from_s"] is None:
                span = f"<{w['to_s']:g}"
            elif w["to_s"] is None:
                span = f">{w['from_s']:g}"
            else:
                span = f"{w['from_s']:g}-{w['to_s']:g}"
            cells.append(f"{span}:{fmt(w['p99'], 0)}")
    return " ".join(cells) or "-"


def _storm_columns(did: str, when: str, origin: str, extra: list) -> list:
    """A storm's columns: ``did`` (connect, reconnect), the headline's messages ``when``, the
    windows' ``origin``."""
    return [
        ("target", _r("target")),
        ("sockets", _r("sockets")),
        ("ready", _p("connected")),
        (f"{did} s", _r("phase_seconds", 2)),
        ("ready s p50/p95", _ready),
        (f"CPU ms/{did}", _r("cpu_ms_per_connect", 2)),
        ("msgs", _r("messages")),
        *DELIVERY[:5],  # expected ... out of order
        *extra,
        (f"p50 ms {when}", _head("p50")),
        (f"p99 ms {when}", _head("p99")),
        ("p99 ready-only", lambda r: fmt((r.get("headline_ready_ms") or {}).get("p99"))),
        (f"p99 by window (s after {origin}: ms)", _by_window),
    ]


COLUMNS["connect_storm"] = _storm_columns("connect", "from 1s", "the first connect", [])
COLUMNS["reconnect_wave"] = _storm_columns(
    "reconnect", "in wave", "the drop", [("missed (no resume)", _p("missed_without_resume"))]
)


def table(rows: list[Row], scenario: str) -> str:
    columns = COLUMNS[scenario]
    head = [name for name, _ in columns]
    body = [[get(r) for _, get in columns] for r in rows if "error" not in r]
    widths = [max(len(cell) for cell in col) for col in zip(head, *body, strict=True)]
    lines = [" | ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    lines[:0] = [
        " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    lines += [f"{r.get('target')}: ERROR {r['error']}" for r in rows if "error" in r]
    return "\n".join(lines)


def problems(rows: list[Row]) -> list[str]:
    """Lines naming every delivery problem: lost, duplicated, reordered, refused, closed."""
    out = []
    for r in rows:
        if "error" in r:
            continue
        name = f"{r['scenario']} {r['target']}" + (
            f" n={r['listeners_n']}" if "listeners_n" in r else ""
        )
        for kind in ("listeners", "pollers"):
            part = r.get(kind)
            if not part:
                continue
            issues = {
                "not connected": part["clients"] - part["connected"],
                "lost": part["lost"],
                "duplicates": part["duplicates"],
                "out of order": part["out_of_order"],
                "unexpected seqs": part["unexpected_seqs"],
                "clients with gaps": part["clients_with_gaps"],
                "closed by server": part["closed_by_server"],
                "other frames": part["other_frames"],
            }
            shown = {k: v for k, v in issues.items() if v}
            if shown:
                out.append(f"{name} ({kind}): {shown}")
        senders = r.get("senders") or {}
        if senders.get("refused") or senders.get("disconnected"):
            out.append(
                f"{name} (senders): refused {senders['refused']}, "
                f"disconnected {senders['disconnected']}"
            )
        if senders and senders.get("confirmed", 0) < senders.get("sent", 0):
            out.append(
                f"{name} (senders): {senders['sent'] - senders['confirmed']} posts never confirmed"
            )
        if r.get("connect_failures"):
            out.append(f"{name}: connect failures {r['connect_failures']}")
        if r.get("mismatches"):
            out.append(f"{name}: exactly-once check failed {r['mismatches']}")
    return out


def has_problems(rows: list[Row]) -> bool:
    return bool(problems(rows))


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def plot(rows: list[Row], path: Path) -> Path | None:
    """Latency percentiles against listeners (fan-out), Parley and raw, log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: pip install -e '.[bench]' for the plot)")
        return None
    points: dict[str, list[tuple[int, dict]]] = {}
    for r in rows:
        if "error" in r or not _part(r):
            continue
        # Fan-out, plus the scale-out runs on two processes (its other rows repeat fan-out's).
        if r.get("scenario") == "fanout" or (r.get("servers") or 1) > 1:
            label = r["target"]
            points.setdefault(label, []).append((r["listeners_n"], _part(r)["latency_ms"]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"p50": "-", "p95": "--", "p99": ":"}
    for (label, pts), color in zip(sorted(points.items()), plt.cm.tab10.colors, strict=False):
        pts.sort()
        xs = [n for n, _ in pts]
        for key, style in styles.items():
            ys = [lat[key] for _, lat in pts]
            if any(y is not None for y in ys):
                ax.plot(xs, ys, style, marker="o", color=color, label=f"{label} {key}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("listeners in one room")
    ax.set_ylabel("fan-out latency, send → receive (ms)")
    ax.set_title("Fan-out latency percentiles (one sender, 20 msg/s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_storms(rows: list[Row], path: Path) -> Path | None:
    """p99 latency by when the message was sent, relative to the first connect (connect_storm)
    and to the drop (reconnect_wave), Parley and raw, log scale."""
    storms = [s for s in ("connect_storm", "reconnect_wave") if _storm_rows(rows, s)]
    if not storms:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(storms), figsize=(6 * len(storms), 4.5), squeeze=False)
    for ax, scenario in zip(axes[0], storms, strict=True):
        for r, color in zip(_storm_rows(rows, scenario), plt.cm.tab10.colors, strict=False):
            windows = [w for w in r["latency_by_window"] if w["samples"]]
            points = [(_start(w), w["p99"]) for w in windows]
            if windows:  # the last window's step runs to its end
                last = windows[-1]
                end = last["to_s"] if last["to_s"] is not None else 2 * max(_start(last), 1)
                points.append((end, last["p99"]))
            ax.step(*zip(*points, strict=True), where="post", color=color, label=r["target"])
        ax.set_yscale("log")
        what = "first connect" if scenario == "connect_storm" else "drop"
        ax.set_xlabel(f"message sent, s after the {what}")
        ax.set_ylabel("p99 latency, send → receive (ms)")
        ax.set_title(f"{scenario} ({_storm_rows(rows, scenario)[0].get('sockets')} sockets)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _start(window: dict) -> float:
    """Where a window starts on the plot (the one open to the past: 1 s before its end)."""
    return window["from_s"] if window["from_s"] is not None else window["to_s"] - 1


def _storm_rows(rows: list[Row], scenario: str) -> list[Row]:
    return [
        r
        for r in rows
        if r.get("scenario") == scenario and "error" not in r and r.get("latency_by_window")
    ]
