"""The PNG of ``routeiq eval --plot``: quality against premium share.

matplotlib is a training/evaluation dependency (the ``train`` extra), imported only
inside :func:`write_plot` with the non-interactive Agg backend; nothing on the serving
path imports this module. Without matplotlib, :func:`require_matplotlib` raises a
one-line ``ToolError`` before any work is done.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from extproc.routing.eval_report import Evaluation
from extproc.routing.scoring import ToolError

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def require_matplotlib() -> None:
    """Fail early, in one line, when matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ToolError(
            "--plot needs matplotlib, which is not installed "
            "(pip install 'routeiq[train]' or pip install matplotlib)"
        )


def write_plot(ev: Evaluation, path: Path, title: str | None = None) -> None:
    """Router curve (fine thresholds, RouteLLM's 11 points marked), random and oracle
    lines, both models' quality, the config's operating point and the calibration points."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        _curves(ax, ev)
        _points(ax, ev)
        ax.set_xlabel("premium (strong model) calls, %")
        ax.set_ylabel("quality (mean score)")
        ax.set_xlim(0, 100)
        ax.set_title(title or f"{ev.pair.strong} vs {ev.pair.weak}, {ev.report.n} prompts")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        try:
            fig.savefig(path, dpi=110)
        except OSError as exc:
            raise ToolError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)


def _curves(ax: Axes, ev: Evaluation) -> None:
    r = ev.report
    ax.plot(
        100 * ev.fine.share, ev.fine.quality, color="tab:blue", label=f"router (APGR {r.apgr:.3f})"
    )
    ax.plot(100 * r.curve.share, r.curve.quality, "o", color="tab:blue", markersize=4)
    ax.plot(
        100 * ev.random.share, ev.random.quality, "--", color="grey", label="random (APGR 0.500)"
    )
    ax.plot(
        100 * ev.oracle.share,
        ev.oracle.quality,
        ":",
        color="tab:green",
        label=f"oracle (APGR {r.oracle_apgr:.3f})",
    )
    ax.axhline(r.gap.strong, color="tab:red", linewidth=0.8, label=f"always {ev.pair.strong}")
    ax.axhline(r.gap.weak, color="black", linewidth=0.8, label=f"always {ev.pair.weak}")


def _points(ax: Axes, ev: Evaluation) -> None:
    r = ev.report
    if r.default is not None:
        ax.plot(
            100 * r.default.share,
            r.default.quality,
            "*",
            color="tab:orange",
            markersize=14,
            label="config's operating point",
        )
    for c in r.calibration:
        ax.plot(100 * c.point.share, c.point.quality, "x", color="tab:purple")
        ax.annotate(
            f"asked {100 * c.asked:.0f}%",
            (100 * c.point.share, c.point.quality),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
