"""The commands of ``vnnlib-solver`` (see ``vnnlib_solver``): ``verify`` (decide a query) and ``supports``."""
from __future__ import annotations

import logging
import sys

import onnx

from frontends.load import check_model_on_spec, load_model
from frontends.onnx.files import read_model_bytes
from frontends.onnx.loader import SUPPORTED
from frontends.vnnlib.files import read_spec_text
from frontends.vnnlib.v1 import parse_vnnlib
from frontends.vnnlib.v2 import detect_version, parse_query
from verifier.api import verify_problem
from verifier.cli.guard import END_RESERVE_S
from verifier.ir.deadline import Deadline
from verifier.ir.errors import DeadlineExpired, VerifierError
from verifier.ir.problem import Problem
from verifier.ir.result import Verdict
from verifier.settings import VerifyOptions

log = logging.getLogger("verifier.vnnlib2")

ELEMENT_TYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
                      9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


GRAPH_VALUE_ONLY_EXCLUDED = {"Gather", "Concat", "Cast"}  # supported on constants only


class UsageError(Exception):
    pass


def _supports_answers() -> dict[str, list[str]]:
    try:
        max_opset = str(onnx.defs.onnx_opset_version())
    except Exception:
        max_opset = "21"
    return {
        "onnx-opset-versions": ["7", max_opset],
        "onnx-element-types": ["real"],
        "onnx-operators": sorted(SUPPORTED - GRAPH_VALUE_ONLY_EXCLUDED),
        "onnx-operators-unsat-proofs": [],
        "vnnlib-versions": ["1.0", "2.0"],
        "hidden-node-theories": ["NH"],
        "multiple-input-output-theories": ["SIO"],
        "multiple-network-theories": ["SNET"],
        "multiple-node-comparison-theories": ["SNC"],
        "arithmetic-complexity-theories": ["BND", "COUT"],
        "optimised-disjunctive-reasoning": ["false"],
        "serialise-assignments": ["false"],
        "unsat-proofs": ["false"],
    }


# ----------------------------------------------------------------------------- verify
def _network_args(items: list[str]) -> dict[str, str]:
    nets: dict[str, str] = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--network {it!r}: expected NAME=PATH")
        if name in nets:
            raise UsageError(f"--network {name} given twice")
        nets[name] = path
    return nets


def _onnx_io_types(data: bytes) -> tuple[str | None, str | None, list | None, list | None]:
    """(input element type, output element type, input shape, output shape) of the serialised ONNX model."""
    m = onnx.load_from_string(data)
    inits = {i.name for i in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in inits]

    def info(v):
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        return ELEMENT_TYPE_NAMES.get(t.elem_type, str(t.elem_type)), shape

    it, ishape = info(ins[0]) if ins else (None, None)
    ot, oshape = info(m.graph.output[0]) if m.graph.output else (None, None)
    return it, ot, ishape, oshape


def _check_types(query, data: bytes, floats_as_real: bool) -> None:
    net = query.network
    decls = [net.inputs[0], net.outputs[0]]
    if all(d.is_real for d in decls):
        return
    it, ot, _, _ = _onnx_io_types(data)
    for d, actual in zip(decls, (it, ot)):
        if not d.is_real and actual is not None and d.dtype != actual:
            raise UsageError(f"{d.name} is declared {d.dtype} but the model's {d.kind} is {actual}")
    if not floats_as_real:
        bad = next(d for d in decls if not d.is_real)
        raise UsageError(f"{bad.name} is declared {bad.dtype}: this solver supports the 'real' element type only "
                         "(analysis in real arithmetic); declare Real, or pass --treat-floats-as-real to consent")


def _check_shapes(query, data: bytes) -> None:
    net = query.network
    try:
        _, _, ishape, oshape = _onnx_io_types(data)
    except Exception:
        return
    for d, shape in ((net.inputs[0], ishape), (net.outputs[0], oshape)):
        if shape and all(isinstance(s, int) and s > 0 for s in shape) and tuple(shape) != d.shape:
            log.warning("%s is declared with shape %s, the model's %s has %s (same size: elements are matched in "
                        "row-major order)", d.name, list(d.shape), d.kind, shape)


def _assignment_lines(decl_shapes: list[tuple[str, str, tuple]], values: list) -> list[str]:
    lines = []
    for (name, dtype, shape), vals in zip(decl_shapes, values):
        lines.append(f"{name} {dtype} [{','.join(str(s) for s in shape)}]")
        lines += [repr(float(v)) for v in vals]
    return lines


def cmd_verify(args) -> int:
    timeout = float(args.timeout) if args.timeout is not None else 86400.0
    since_start = getattr(args, "since_process_start", False)
    deadline = Deadline.since_process_start(max(0.0, timeout - END_RESERVE_S)) if since_start else Deadline(timeout)
    try:
        nets = _network_args(args.network)
        text, spec_path = read_spec_text(args.query, deadline=deadline)  # the default limits (no --set here)
        version = detect_version(text)
        query = parse_query(text, spec_path, deadline=deadline) if version == "2.0" else None
        if query is not None:
            name = query.network.name
            extra = sorted(set(nets) - {name})
            if extra:
                raise UsageError(f"--network {extra[0]}: the query declares no network of that name "
                                 f"(it declares {name})")
            if name not in nets:
                raise UsageError(f"the query declares network {name}: give its model with --network {name}=PATH")
            model_path = nets[name]
        else:
            if len(nets) != 1:
                raise UsageError(f"a VNN-LIB 1.0 query needs exactly one --network NAME=PATH (got {len(nets)})")
            model_path = next(iter(nets.values()))
        if args.serialise_assignments:
            log.warning("--serialise-assignments is not supported (see `supports --serialise-assignments`); "
                        "the assignment is printed on stdout")
        if args.unsat_proofs:
            log.warning("--unsat-proofs is not supported (see `supports --unsat-proofs`); no proof is written")
        data = read_model_bytes(model_path)  # read once: the type checks, the graph and the reference
        if query is not None:
            _check_types(query, data, args.treat_floats_as_real)
        model = load_model(data, str(model_path))  # the static load-time check, then the graph
        graph = model.graph
        if query is not None:
            _check_shapes(query, data)
            spec = query.to_spec(graph.n_inputs, graph.n_outputs, deadline=deadline)
        else:
            spec = parse_vnnlib(text, spec_path, graph.n_inputs, graph.n_outputs, deadline=deadline)
        check_model_on_spec(model, spec)  # the graph's forward pass against onnxruntime on points of the spec
    except DeadlineExpired as e:  # the time limit passed while the query was read: a verdict, not an error
        print(f"timed out: {e}", file=sys.stderr)
        sys.stdout.write("timed-out\n")
        sys.stdout.flush()
        return 0
    except (UsageError, VerifierError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # an ONNX file onnx cannot read, and the like
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    options = VerifyOptions(method=args.method, timeout=timeout, verbose=args.verbose)
    problem = Problem(graph, spec, str(model_path), str(spec_path), reference=model.reference)
    result = verify_problem(problem, options, deadline)
    print(result.summary(), file=sys.stderr)
    if result.verdict is Verdict.ERROR:
        print(f"error: {result.message or 'verification failed'}", file=sys.stderr)
        return 1
    word = {Verdict.SAT: "sat", Verdict.UNSAT: "unsat", Verdict.UNKNOWN: "unknown",
            Verdict.TIMEOUT: "timed-out"}[result.verdict]
    lines = [word]
    if result.verdict is Verdict.SAT:
        cex = result.counterexample
        if query is not None:
            i, o = query.network.inputs[0], query.network.outputs[0]
            decls = [(i.name, i.dtype, i.shape), (o.name, o.dtype, o.shape)]
        else:
            decls = [("X", "Real", (spec.n_inputs,)), ("Y", "Real", (spec.n_outputs,))]
        lines += _assignment_lines(decls, [cex.x, cex.y])
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return 0


def cmd_supports(args) -> int:
    answers = _supports_answers()
    asked = [k for k in answers if getattr(args, k.replace("-", "_"))]
    if len(asked) != 1:
        print("error: name exactly one capability, e.g. `supports --vnnlib-versions`", file=sys.stderr)
        return 2
    for line in answers[asked[0]]:
        print(line)
    return 0
