"""Typed settings of a run, in frozen dataclasses (no global configuration, no torch).

``VerifyOptions`` holds everything a run reads: the method, the budget, the device, and the bound
(``BoundSettings``), attack (``AttackSettings``) and branch-and-bound (``BaBSettings``) settings, and
``auto``'s planner (``PlanSettings``).
"""
from verifier.settings.bab import BaBSettings
from verifier.settings.bounds import METHODS, BoundSettings
from verifier.settings.inputs import LimitSettings, ModelCheckSettings
from verifier.settings.options import AttackSettings, VerifyOptions
from verifier.settings.plan import PlanSettings

__all__ = ["AttackSettings", "BaBSettings", "BoundSettings", "LimitSettings", "METHODS", "ModelCheckSettings",
           "PlanSettings", "VerifyOptions"]
