"""Front ends: the files the verifier reads and writes.

``onnx`` (model -> layer graph; the onnxruntime reference executor), ``vnnlib`` (VNN-LIB 1.0 / 2.0 property
-> ``Spec``), ``load`` (both files -> ``Problem``), ``result_file`` (the VNN-COMP result file).
They build on ``verifier.ir`` only.
"""
