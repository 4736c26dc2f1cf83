"""Probe ReLU-splitting settings on a few mnist_fc / oval21 instances: outcome, domains, time."""
import sys
import time

import torch

sys.path.insert(0, ".")
from frontends.load import load_problem
from verifier.bab.common import RegionTask
from verifier.bab.relu_split import relu_split_region
from verifier.ir.deadline import Deadline
from verifier.settings import BaBSettings, BoundSettings

torch.set_num_threads(1)
bench, T = "../shared/benchmarks", float(sys.argv[1])
for arg in sys.argv[3:]:
    folder, net, prop = arg.split(":")
    p = load_problem(f"{bench}/{folder}/onnx/{net}.onnx", f"{bench}/{folder}/vnnlib/{prop}.vnnlib")
    for it in [int(v) for v in sys.argv[2].split(",")]:
        st = {}
        t = time.time()
        s = BaBSettings(relu_alpha_iters=it)
        outs = [relu_split_region(RegionTask(p, lo, hi, idx, s, BoundSettings()), Deadline(T), st).status
                for lo, hi, idx in p.spec.regions()]
        print(f"{net} {prop} iters={it} {outs} root={st.get('root_bound'):.4g} domains={st.get('domains')} "
              f"{time.time() - t:.1f}s", flush=True)
