"""ONNX front end: ``loader`` (model -> layer graph), ``reference`` (the onnxruntime executor), ``files``.

The loader folds constant nodes (``fold``) and turns each other node into graph nodes with its op
handler (``registry``; the handlers live in ``handlers_affine``, ``handlers_activation``,
``handlers_pool`` and ``handlers_shape``, and work on a ``context.LoadContext``).
Nothing is imported here, so that ``frontends.onnx.reference`` can be used without torch.
"""
