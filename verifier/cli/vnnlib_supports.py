"""The ``supports`` command of ``vnnlib-solver`` (alias ``capabilities``): the capabilities of section 5.4 of
the VNN-LIB 2.0 standard.

``vnnlib-solver supports --FLAG`` names exactly one of the standard's eleven capabilities and prints the answer
on stdout, one item a line: the minimum and maximum version for ``--onnx-opset-versions`` and
``--vnnlib-versions``; one element type, theory or operator a line for the lists; ``true`` or ``false`` for the
two booleans. An empty list prints nothing. A missing, repeated or unknown flag is a usage error (exit 2, one line
on stderr).

Everything answered is data in this module (``ANSWERS``, ``OPERATORS``), so that it stays what the solver does:

- element types: ``real`` only. The bound computations are sound for real arithmetic (with a rounding margin),
  not bit-exact for floating point, and section 5.4.1 asks a solver to report a floating-point type only where
  its analysis is sound for it.
- theories: what ``verify`` decides today (the conformance suite's tests of each pass: see
  ``benchmarks/vnnlib_conformance.py``). Extending the language means adding the theory here with its tests.
- ONNX operators: an operator is claimed only when every valid form of it loads and is analysed; the others
  stay in ``OPERATORS`` with the form that is refused, so that extending the front end means moving an entry.
  A form whose output shape would depend on the values of the network's input (a Reshape target, Squeeze
  axes or Slice starts computed from them) is not counted: the verifier takes networks of fixed shapes, and
  such inputs are folded when they are constant or computed from shapes.
  An operator of the loader that is in neither list is not claimed (``tests/test_vnnlib_solver_cli.py``
  fails until it is decided).

This module imports nothing heavy (no torch, onnx or onnxruntime): ``supports`` answers in a few tens of ms.
"""
from __future__ import annotations

import sys

# the capabilities of section 5.4, in the standard's order
CAPABILITIES = ("onnx-opset-versions", "onnx-element-types", "onnx-operators", "vnnlib-versions",
                "hidden-node-theories", "multiple-input-output-theories", "multiple-network-theories",
                "multiple-node-comparison-theories", "arithmetic-complexity-theories",
                "optimised-disjunctive-reasoning", "serialise-assignments")
# spellings the standard itself uses for the same capability (section 5.4.2's example adds an 's')
CAPABILITY_ALIASES = {"multiple-inputs-output-theories": "multiple-input-output-theories"}
# the command's names: section 5.4 calls it `supports`, section 5.1 `capabilities`
COMMAND_NAMES = ("supports", "capabilities")

# theory identifiers of section 4.1, for the tests: a reported theory must be one of these
STANDARD_THEORIES = {
    "hidden-node-theories": {"NH", "H"},
    "multiple-input-output-theories": {"SIO", "MIO"},
    "multiple-network-theories": {"SNET", "MNET", "MENET", "MINET"},
    "multiple-node-comparison-theories": {"SNC", "MNC"},
    "arithmetic-complexity-theories": {"BND", "OUTC", "LIN", "POLY"},
}

# The loader's op types (frontends.onnx.loader.SUPPORTED): None = claimed (every valid form is handled), else the
# reason it is not claimed. A test checks this table against the loader and the claimed forms against onnxruntime.
OPERATORS: dict[str, str | None] = {
    "Relu": None,
    "Sigmoid": None,
    "Tanh": None,
    "Identity": None,
    "Flatten": None,
    "Transpose": None,
    "Squeeze": None,
    "Unsqueeze": None,
    "Reshape": None,
    "Add": "a constant operand that broadcasts the network value (x[2,1] + c[1,2]) is refused",
    "Sub": "a constant operand that broadcasts the network value is refused",
    "Mul": "a product of two network values is bounded by IBP / CROWN only (McCormick planes): the MILP / LP "
           "encodings and alpha-CROWN refuse it, so only input splitting searches it",
    "Div": "division by a network value is bounded only where the divisor's bounds exclude 0 (elsewhere the bound "
           "passes refuse it: unknown), and by IBP / CROWN only",
    "Gemm": "Gemm(constant A, x), Gemm(x, x) and a non-constant C are refused",
    "MatMul": "an N-D (N > 2) constant and 1-D operands of a product of two network values are refused; that "
              "product is bounded by IBP / CROWN only",
    "Conv": "3-D convolutions and non-constant weights are refused",
    "BatchNormalization": "training mode (batch statistics) and non-constant parameters are refused",
    "MaxPool": "1-D and 3-D pooling, asymmetric pads, auto_pad and the Indices output are not handled",
    "AveragePool": "1-D and 3-D pooling, asymmetric pads and auto_pad are not handled",
    "GlobalAveragePool": "only 2-D spatial inputs are handled",
    "Dropout": "the mask output and training mode are not handled",
    "Constant": "sparse_value is not handled",
    "Shape": "folded to a constant (start / end read); not yet checked in every form",
    "Gather": "non-constant indices are refused",
    "Concat": "not yet checked in every form",
    "Cast": "a cast of a network value to a non-float type (BOOL, INT64, ...) is refused",
    # new in issue 21 part A (tests/test_vnnlib_solver_cli.py FORMS checks the claimed ones)
    "Abs": None,
    "LeakyRelu": None,
    "Neg": None,
    "Sign": "Sign(X) >= 2 over X in [-1, 1] (unsat) is not proved: the run ends at its time limit",
    "Clip": "non-constant min / max are refused",
    "Max": "two network values of different shapes (broadcasting) are refused",
    "Min": "two network values of different shapes (broadcasting) are refused",
    "ReduceSum": "not yet checked in every form",
    "ReduceMean": "not yet checked in every form",
    "Slice": "not yet checked in every form",
    "Split": "not yet checked in every form",
    "Pad": "non-constant pads or value are refused",
    "Resize": "non-constant scales, sizes or roi, and modes that are not a separable linear map, are refused",
    "Upsample": "non-constant scales and modes that are not a separable linear map are refused",
    "ConvTranspose": "not yet checked in every form",
    "ConstantOfShape": "only on constant inputs",
    "Equal": "only on constant inputs (shape arithmetic)",
    "Where": "only on constant inputs (shape arithmetic)",
    "Expand": "only on constant inputs (shape arithmetic)",
    # issue 21, smooth element-wise ops (verifier/ir/ops/smooth.py, periodic.py; tests/test_ops_smooth.py)
    "Sin": None,
    "Cos": None,
    "Softplus": None,
    "HardSigmoid": None,
    "Exp": "an input bound whose exponential overflows the dtype (x > 88 in float32) is refused (unknown)",
    "Log": "an input whose bounds reach 0 or below is refused (unknown)",
    "Sqrt": "an input whose bounds reach below 0 is refused (unknown)",
    "Reciprocal": "an input whose bounds contain 0 is refused (unknown)",
    "Pow": "a non-constant exponent of a network value, an exponent tensor of several values, a base <= 0 to a "
           "network value, and a fractional / negative exponent of an input whose bounds leave the domain are refused",
    "Floor": "bounded by IBP / CROWN only (lines x - 1 and x): the MILP / LP encodings refuse it, so only input "
             "splitting searches it",
    "Softmax": "bounded by IBP / CROWN only (as 1 / sum_j exp(x_j - x_i)): the MILP / LP encodings and alpha-CROWN "
               "refuse it; an exponent whose bound overflows the dtype is refused",
}

ANSWERS: dict[str, list[str]] = {
    "onnx-opset-versions": ["7", "21"],
    "onnx-element-types": ["real"],
    "onnx-operators": sorted(op for op, refused in OPERATORS.items() if refused is None),
    "vnnlib-versions": ["1.0", "2.0"],
    # the language of issue 22 part B (frontends/vnnlib/compose.py, tests/test_vnnlib2_compose.py): hidden nodes,
    # several inputs / outputs, several networks (equal-to, isomorphic-to), constraints over several nodes and
    # linear constraints anywhere; not POLY (a product of variables is refused)
    "hidden-node-theories": ["NH", "H"],
    "multiple-input-output-theories": ["SIO", "MIO"],
    "multiple-network-theories": ["SNET", "MNET", "MENET", "MINET"],
    "multiple-node-comparison-theories": ["SNC", "MNC"],
    "arithmetic-complexity-theories": ["BND", "OUTC", "LIN"],
    "optimised-disjunctive-reasoning": ["false"],
    "serialise-assignments": ["false"],
}


def add_capability_flags(parser) -> None:
    """The capability flags of ``supports`` on the argparse ``parser``: exactly one may be given."""
    group = parser.add_mutually_exclusive_group()
    for k in CAPABILITIES:
        group.add_argument(f"--{k}", dest="capability", action="store_const", const=k,
                           help=f"report the {k.replace('-', ' ')}")
    for alias, k in CAPABILITY_ALIASES.items():
        group.add_argument(f"--{alias}", dest="capability", action="store_const", const=k, help=f"same as --{k}")


def cmd_supports(args) -> int:
    if getattr(args, "capability", None) is None:
        print(f"error: name exactly one capability: --{', --'.join(CAPABILITIES)}", file=sys.stderr)
        return 2
    lines = ANSWERS[args.capability]
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()
    return 0
