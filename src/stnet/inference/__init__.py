"""Running a pose model on whole images: :class:`~stnet.inference.estimator.PoseEstimator`
(``estimator.py``), the model it runs (``model.py``: any model reference -> network or graph, with
its card) and image loading (``images.py``). Import ``PoseEstimator`` from ``stnet``."""
