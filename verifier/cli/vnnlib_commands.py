"""The ``verify`` command of ``vnnlib-solver`` (see ``vnnlib_solver``; ``supports`` is in ``vnnlib_supports``)."""
from __future__ import annotations

import logging
import sys

import numpy as np
import onnx

from frontends.load import check_model_on_spec, load_model
from frontends.onnx.files import read_model_bytes
from frontends.vnnlib.compose import check_element_types, compose, isomorphism_problems
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

class UsageError(Exception):
    pass


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


def _onnx_io_shapes(data: bytes) -> tuple[list | None, list | None]:
    """(input shape, output shape) of the serialised one-input, one-output ONNX model."""
    m = onnx.load_from_string(data)
    inits = {i.name for i in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in inits]

    def shape(v):
        return [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]

    return (shape(ins[0]) if ins else None), (shape(m.graph.output[0]) if m.graph.output else None)


def _check_shapes(query, data: bytes) -> None:
    net = query.network
    try:
        ishape, oshape = _onnx_io_shapes(data)
    except Exception:
        return
    for d, shape in ((net.inputs[0], ishape), (net.outputs[0], oshape)):
        if shape and all(isinstance(s, int) and s > 0 for s in shape) and tuple(shape) != d.shape:
            log.warning("%s is declared with shape %s, the model's %s has %s (same size: elements are matched in "
                        "row-major order)", d.name, list(d.shape), d.kind, shape)


def _model_paths(query, nets: dict[str, str]) -> dict[str, str]:
    """The model file of each declared network that needs one (all but those declared ``equal-to`` another)."""
    declared = {n.name: n for n in query.networks}
    need = [n.name for n in query.networks if n.equivalence is None or n.equivalence[0] != "equal-to"]
    for name in nets:
        if name not in declared:
            raise UsageError(f"--network {name}: the query declares no network of that name "
                             f"(it declares {', '.join(declared)})")
        if name not in need:
            other = declared[name].equivalence[1]
            raise UsageError(f"--network {name}: network {name} is declared equal-to {other} and takes its model; "
                             f"give none for it")
    for name in need:
        if name not in nets:
            raise UsageError(f"the query declares network {name}: give its model with --network {name}=PATH")
    return {name: nets[name] for name in need}


def _query_model(query, nets: dict[str, str]) -> tuple[bytes, str]:
    """The model of a 2.0 query (serialised) and its name: the network's own file for a plain query, else the
    composition of its networks (:mod:`frontends.vnnlib.compose`). The element types are checked first."""
    paths = _model_paths(query, nets)
    data = {name: read_model_bytes(path) for name, path in paths.items()}
    protos = {name: onnx.load_from_string(b) for name, b in data.items()}
    check_element_types(query, protos)
    for line in isomorphism_problems(query, protos):
        log.warning("%s", line)
    if query.is_plain:
        name = query.network.name
        return data[name], str(paths[name])
    composed = compose(query, protos)
    source = " + ".join(f"{k}={v}" for k, v in paths.items())
    return composed.SerializeToString(), f"{source} (composed for the query)"


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
        if query is None and len(nets) != 1:
            raise UsageError(f"a VNN-LIB 1.0 query needs exactly one --network NAME=PATH (got {len(nets)})")
        if args.serialise_assignments:
            log.warning("--serialise-assignments is not supported (see `supports --serialise-assignments`); "
                        "the assignment is printed on stdout")
        if query is not None:
            data, model_path = _query_model(query, nets)
        else:
            model_path = next(iter(nets.values()))
            data = read_model_bytes(model_path)  # read once: the graph and the reference
        model = load_model(data, str(model_path))  # the static load-time check, then the graph
        graph = model.graph
        if query is not None:
            if query.is_plain:
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
        x, y = np.asarray(cex.x, dtype=np.float64).reshape(-1), np.asarray(cex.y, dtype=np.float64).reshape(-1)
        if query is not None:
            decls = [((d.name, d.dtype, d.shape), v) for d, v in query.values(x, y)]
        else:
            decls = [(("X", "Real", (spec.n_inputs,)), x), (("Y", "Real", (spec.n_outputs,)), y)]
        lines += _assignment_lines([d for d, _ in decls], [v for _, v in decls])
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return 0

