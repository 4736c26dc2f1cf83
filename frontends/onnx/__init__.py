"""ONNX front end: ``loader`` (model -> layer graph), ``reference`` (the onnxruntime executor), ``files``.

Nothing is imported here, so that ``frontends.onnx.reference`` can be used without torch.
"""
