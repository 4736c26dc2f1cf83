"""The forward half of the load-time model check: the loaded graph must compute what onnxruntime computes.

Both run on the centre of each input box of the spec (the first ``MAX_CENTRES``) and on
``ModelCheckSettings.points`` seeded random points of their bounding box (infinite bounds clipped to a finite
box), fed the same float32 values. An output differs when ``|ours - ort| > atol * max(1, max |ort|) +
rtol * |ort|`` (a float64 graph against a float32 onnxruntime is well inside that). On a difference the first
node whose output differs is looked for (a copy of the model with every intermediate tensor as an output,
run once at that point) and named in the ``ModelError``.
"""
from __future__ import annotations

import logging

import numpy as np
import onnx
import torch

from verifier.ir.deadline import Deadline
from verifier.ir.errors import ModelError
from verifier.ir.graph import Graph
from verifier.ir.spec import Spec
from verifier.settings.inputs import ModelCheckSettings

from .reference import OnnxReference, open_session

log = logging.getLogger("frontends.onnx")

MAX_CENTRES = 16  # box centres compared at most (a spec may have thousands of boxes)
MAX_SCANNED = 1024  # disjuncts looked at for boxes and the bounding box
BATCH_ELEMENTS = 1 << 22  # input values per forward batch of the graph
SEED = 20240


def finite_box(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box with each infinite bound replaced: one side infinite -> a width of max(1, |other bound|)
    from the finite one; both -> [-1, 1]."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    flo, fhi = np.isfinite(lo), np.isfinite(hi)
    lo2 = np.where(flo, lo, np.where(fhi, hi - np.maximum(1.0, np.abs(np.where(fhi, hi, 0.0))), -1.0))
    hi2 = np.where(fhi, hi, np.where(flo, lo + np.maximum(1.0, np.abs(np.where(flo, lo, 0.0))), 1.0))
    return lo2, hi2


def sample_points(spec: Spec, n_random: int, seed: int = SEED) -> tuple[np.ndarray, list[str]]:
    """float32 points (k, n_inputs) and what each is (for messages): the centres of the first ``MAX_CENTRES``
    distinct input boxes, then ``n_random`` uniform points of their bounding box. At most ``MAX_SCANNED``
    disjuncts (spread over the spec) are looked at, so a spec with a million disjuncts costs no more."""
    d = spec.disjuncts
    picked = [d[i] for i in np.unique(np.linspace(0, len(d) - 1, min(len(d), MAX_SCANNED)).astype(int))] if d else []
    boxes: list[tuple[np.ndarray, np.ndarray]] = []
    for dj in picked:
        if len(boxes) < MAX_CENTRES and not any(np.array_equal(dj.lo, a) and np.array_equal(dj.hi, b)
                                                for a, b in boxes):
            boxes.append((dj.lo, dj.hi))
    pts, what = [], []
    for k, (lo, hi) in enumerate(boxes):
        a, b = finite_box(lo, hi)
        pts.append((a + b) / 2)
        what.append(f"the centre of input box {k}")
    if n_random and picked:  # a spec with no disjunct left has no input box to sample
        a, b = finite_box(np.min([dj.lo for dj in picked], axis=0), np.max([dj.hi for dj in picked], axis=0))
        rng = np.random.default_rng(seed)
        pts.extend(a + rng.random((n_random, a.size)) * (b - a))
        what.extend(f"random point {k} of the input box" for k in range(n_random))
    return np.asarray(pts, dtype=np.float32).reshape(len(pts), spec.n_inputs), what


def excess(ours: np.ndarray, ort: np.ndarray, settings: ModelCheckSettings) -> tuple[float, float]:
    """(max |ours - ort| beyond tolerance (<= 0: within), max |ours - ort|) of one tensor (flat).

    Where onnxruntime's value is not finite (float32 overflow) nothing can be judged; a non-finite value of
    ours where onnxruntime's is finite differs."""
    ours, ort = np.asarray(ours, np.float64).reshape(-1), np.asarray(ort, np.float64).reshape(-1)
    ok = np.isfinite(ort)
    if not ok.any():
        return 0.0, 0.0
    ours, ort = ours[ok], ort[ok]
    diff = np.where(np.isfinite(ours), np.abs(ours - ort), np.inf)
    tol = settings.atol * max(1.0, float(np.max(np.abs(ort)))) + settings.rtol * np.abs(ort)
    return float(np.max(diff - tol)), float(np.max(diff))


def check_forward(graph: Graph, reference: OnnxReference, spec: Spec, settings: ModelCheckSettings,
                  model: onnx.ModelProto | None = None, deadline: Deadline | None = None) -> None:
    """Compare the graph's forward pass with onnxruntime on points of ``spec``; a ModelError naming the first
    differing node (found with ``model``, the graph's ModelProto) where they differ beyond tolerance."""
    if not settings.enabled:
        log.info("model check: skipped (model_check.enabled = false)")
        return
    xs, what = sample_points(spec, settings.points)
    if len(xs) == 0:  # no disjunct left: no point to compare on
        return
    step = max(1, BATCH_ELEMENTS // max(1, xs.shape[1]))
    with torch.no_grad():
        ours = np.concatenate([graph.forward(graph.as_input(xs[k:k + step])).double().cpu().numpy()
                               for k in range(0, len(xs), step)])
    for k, x in enumerate(xs):
        if deadline is not None and deadline.expired():
            log.info("model check: out of time after %d of %d points", k, len(xs))
            return
        y = reference.run(x)
        if y.size != ours.shape[1]:
            raise ModelError(f"onnxruntime's output has {y.size} values, the loaded graph's {ours.shape[1]}",
                             reference.source)
        over, diff = excess(ours[k], y, settings)
        if over > 0:
            raise _difference(graph, model, reference, x, what[k], diff, settings)
    log.info("model check: the graph matches onnxruntime on %d points", len(xs))


def _difference(graph, model, reference, x, where, out_diff, settings) -> ModelError:
    found = first_differing_node(graph, model, x, settings, reference.feeds) if model is not None else None
    out = graph.by_name.get(graph.output_name)
    label, diff = found if found is not None else (out.onnx_node if out is not None else "the output", out_diff)
    return ModelError(f"forward pass differs from onnxruntime at node {label}: max |diff| = {diff:.3g} at {where} "
                      f"(network output max |diff| = {out_diff:.3g}; tolerance model_check.rtol = {settings.rtol:g},"
                      f" atol = {settings.atol:g})", reference.source, nodes=[label])


def first_differing_node(graph: Graph, model: onnx.ModelProto, x: np.ndarray,
                         settings: ModelCheckSettings, feeds=None) -> tuple[str, float] | None:
    """(label, max |diff|) of the first graph node (in topological order) whose value differs from the tensor
    of the same name that onnxruntime computes at ``x``; None when none can be compared or none differs.
    ``feeds`` makes onnxruntime's feeds of ``x`` (default: ``OnnxReference.feeds`` of the model: every network
    input, split from the flat ``x`` as :mod:`frontends.onnx.io_layout` lays them out)."""
    produced = {o for n in model.graph.node for o in n.output}
    names = [n.name for n in graph.nodes if n.name in produced]
    if not names:
        return None
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=t) for t in names if t not in have)
    try:
        session = open_session(probe.SerializeToString(), graph.source)
        if feeds is None:
            feeds = OnnxReference(model.SerializeToString(), graph.source).feeds
        outs = session.run(names, feeds(x))
    except Exception as e:  # a model too large to copy, a tensor onnxruntime cannot expose: name the output only
        log.info("model check: intermediate tensors unavailable (%s)", e)
        return None
    theirs = dict(zip(names, outs))
    with torch.no_grad():
        vals = graph.forward_all(graph.as_input(np.asarray(x)[None]))
    for n in graph.nodes:
        if n.name not in theirs or vals[n.name].numel() != np.size(theirs[n.name]):
            continue
        over, diff = excess(vals[n.name].double().cpu().numpy(), theirs[n.name], settings)
        if over > 0:
            return n.onnx_node or f"'{n.name}'", diff
    return None
