"""Plain-text (markdown pipe) tables shaped like the paper's: pure formatting, no I/O.

* :func:`format_coco_table` - Table V (AP, AP50, AP75, APM, APL, AR) from COCO stats given as
  fractions, exactly as pycocotools returns them; printed x100 with one decimal like the paper.
* :func:`format_pckh_table` - Tables VI/VII (Head ... Ankle, Mean) from percentages.
* :func:`format_pck_table` - a per-joint PCK table (LSP) from percentages.

Values COCOeval reports as ``-1`` (no ground truth in that area range) and NaN print as ``-``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from .metrics import PART_COLUMNS

__all__ = ["COCO_KEYS", "TABLE_V_KEYS", "format_table", "format_coco_table", "format_pckh_table",
           "format_pck_table"]

#: pycocotools' ``stats`` order for keypoints.
COCO_KEYS = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
#: The columns of the paper's Table V.
TABLE_V_KEYS = ("AP", "AP50", "AP75", "APM", "APL", "AR")
_PRETTY = {"AP50": "AP^50", "AP75": "AP^75", "APM": "AP^M", "APL": "AP^L",
           "AR50": "AR^50", "AR75": "AR^75", "ARM": "AR^M", "ARL": "AR^L"}


def _cell(value: float | None, scale: float) -> str:
    if value is None or not math.isfinite(value) or value == -1:
        return "-"
    return f"{value * scale:.1f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Markdown pipe table with columns padded to a common width."""
    cols = list(zip(*([list(header)] + [list(r) for r in rows])))
    widths = [max(len(c) for c in col) for col in cols]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def format_coco_table(metrics: Mapping[str, float], *, name: str = "predictions",
                      boxes: str | None = None, sigmas: str | None = None,
                      extra_ar: bool = True) -> str:
    """Table V row(s) for COCO keypoint stats (fractions as pycocotools gives them).

    ``boxes`` says which person boxes the predictions came from (ground truth or a detector
    file) and is printed in the title, because AP differs by several points between the two.
    """
    title = "COCO keypoints, OKS AP (pycocotools COCOeval)"
    facts = []
    if boxes is not None:
        facts.append(f"boxes: {boxes}")
    if sigmas is not None:
        facts.append(f"sigmas: {sigmas}")
    if facts:
        title += " - " + "; ".join(facts)
    keys = TABLE_V_KEYS + (COCO_KEYS[6:] if extra_ar else ())
    header = ["Method"] + [_PRETTY.get(k, k) for k in keys]
    row = [name] + [_cell(metrics.get(k), 100.0) for k in keys]
    return title + "\n" + format_table(header, [row])


def format_pckh_table(rows: Mapping[str, Mapping[str, float]], *, title: str | None = None) -> str:
    """Table VI layout: one row per label (e.g. ``"PCKh@0.5"``), columns Head ... Ankle, Mean.

    Values are percentages (what :class:`MPIIEvaluator` returns).
    """
    header = ["Method"] + list(PART_COLUMNS)
    body = [[label] + [_cell(vals.get(c), 1.0) for c in PART_COLUMNS] for label, vals in rows.items()]
    text = format_table(header, body)
    return (title + "\n" + text) if title else text


def format_pck_table(per_joint: Sequence[float], joint_names: Sequence[str], *, mean: float,
                     counts: Sequence[int] | None = None, label: str = "PCK@0.2",
                     parts: Mapping[str, float] | None = None, title: str | None = None) -> str:
    """Per-joint PCK (percent): one row per joint plus Mean; optionally the Table VI-style
    part summary underneath."""
    if len(per_joint) != len(joint_names):
        raise ValueError(f"format_pck_table: {len(per_joint)} values for {len(joint_names)} joints")
    header = ["Joint", label] + (["visible"] if counts is not None else [])
    body = []
    for i, (n, v) in enumerate(zip(joint_names, per_joint)):
        body.append([n, _cell(v, 1.0)] + ([str(int(counts[i]))] if counts is not None else []))
    body.append(["Mean", _cell(mean, 1.0)] + ([str(int(sum(counts)))] if counts is not None else []))
    text = format_table(header, body)
    if parts is not None:
        text += "\n\n" + format_pckh_table({label: parts})
    return (title + "\n" + text) if title else text
