"""Falsification: the PGD attack (``pgd``) and the validation of counterexamples against onnxruntime
(``validate``): a ``sat`` is only ever printed for a point that ``validate`` accepted."""
from verifier.attack.pgd import pgd_attack
from verifier.attack.validate import clip_to_box_f32, validate_candidate

__all__ = ["clip_to_box_f32", "pgd_attack", "validate_candidate"]
