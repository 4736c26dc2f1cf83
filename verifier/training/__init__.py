"""Training for verifiability (``verify train``): small MLP / CNN classifiers trained normally, adversarially
(FGSM, PGD; l_inf, l2), with certified losses (IBP, CROWN-IBP on this project's bound code) or Gaussian noise,
optionally with Lipschitz-bounded layers (spectral normalisation, Björck-orthogonal layers, GroupSort / MaxMin),
exported as ONNX that ``verify`` reads.

Public entry points: :func:`train_model` (``verifier.training.loop``), :func:`export_onnx`
(``verifier.training.export``), :func:`load_dataset` (``verifier.training.data``), :func:`bound_graph`
(``verifier.training.plan``) and the accuracies of ``verifier.training.evaluate``."""
from verifier.training.data import Dataset, load_dataset
from verifier.training.export import export_onnx
from verifier.training.loop import EpochRecord, train_model
from verifier.training.plan import bound_graph

__all__ = ["Dataset", "EpochRecord", "bound_graph", "export_onnx", "load_dataset", "train_model"]
