"""The official COCO keypoint scorer, run exactly as a user would run it on json files: the
reference the evaluator and ``stnet score`` are compared with."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["pycocotools_stats"]


def pycocotools_stats(gt: str | Path | dict[str, Any], results_path: str | Path,
                      sigmas: np.ndarray | None = None) -> np.ndarray:
    """``COCOeval(gt, results, "keypoints").stats`` (AP, AP50, ... ARL); ``gt`` a path or a parsed
    annotation dict; ``sigmas`` replace pycocotools' own (COCO's) when given."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, dict):
            coco = COCO()
            coco.dataset = json.loads(json.dumps(gt))
            coco.createIndex()
        else:
            coco = COCO(str(gt))
        ev = COCOeval(coco, coco.loadRes(str(results_path)), "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)
