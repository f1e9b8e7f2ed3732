"""Writing a network as a deployable graph, with its model card inside.

``onnx.py`` (:func:`~stnet.export.onnx.export_onnx`: heatmaps, or keypoints + scores decoded in the
graph), ``openvino.py`` (:func:`~stnet.export.openvino.export_openvino`: the same graph as an
OpenVINO IR) and ``check.py`` (:func:`~stnet.export.check.check_export`: an exported file against
PyTorch). This layer knows networks, codecs and cards; it never imports what runs models
(``stnet.backends``, ``stnet.inference``).
"""
