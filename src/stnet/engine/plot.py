"""``stnet plot RUN_DIR``: training loss and validation metric vs epoch -> ``RUN_DIR/curves.png``."""
from __future__ import annotations

from pathlib import Path

from stnet.io import atomic_write, refuse_overwrite

from .logger import read_metrics

__all__ = ["plot_run"]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    recs = read_metrics(run_dir)
    if not recs:
        raise ValueError(f"{run_dir}/metrics.jsonl has no epoch records yet")
    out = Path(out) if out is not None else run_dir / "curves.png"
    refuse_overwrite({"--out": out}, {"metrics file": run_dir / "metrics.jsonl"})
    epochs = [r["epoch"] for r in recs]
    loss = [r.get("train_loss") for r in recs]
    val = [(r["epoch"], r["metric"]) for r in recs if r.get("metric") is not None]
    name = next((r.get("metric_name") for r in recs if r.get("metric_name")), "val metric")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(epochs, loss, "o-", color="tab:blue")
    a1.set_xlabel("epoch")
    a1.set_ylabel("train loss")
    a1.set_yscale("log")
    a1.set_title("training loss")
    a1.grid(alpha=0.3)
    if val:
        a2.plot([e for e, _ in val], [m for _, m in val], "o-", color="tab:orange")
    a2.set_xlabel("epoch")
    a2.set_ylabel(name)
    a2.set_title(f"validation {name}")
    a2.grid(alpha=0.3)
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    try:
        with atomic_write(out, suffix=".png") as tmp:  # a full disk leaves the old PNG, not a cut one
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out
