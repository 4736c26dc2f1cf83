"""Compare input-splitting heuristics on a few ACAS Xu instances: boxes bounded and time."""
import sys
import time

import torch

sys.path.insert(0, ".")
from frontends.load import load_problem
from verifier.bab.common import RegionTask
from verifier.bab.input_split import input_split_region
from verifier.ir.deadline import Deadline
from verifier.settings import BaBSettings, BoundSettings

B = "../shared/benchmarks/acasxu"
cases = [a.split(":") for a in sys.argv[2:]] or [("1_1", "prop_4"), ("1_1", "prop_3"), ("3_3", "prop_1")]
modes = sys.argv[1].split(",") if len(sys.argv) > 1 else ["smear", "best"]
torch.set_num_threads(1)
for net, prop in cases:
    p = load_problem(f"{B}/onnx/ACASXU_run2a_{net}_batch_2000.onnx", f"{B}/vnnlib/{prop}.vnnlib")
    for mode in modes:
        st = {}
        t = time.time()
        mode_, _, it = mode.partition("@")
        s = BaBSettings(input_branching=mode_, input_alpha_iters=int(it or 0))
        outs = [input_split_region(RegionTask(p, lo, hi, idx, s, BoundSettings()), Deadline(60), st).status
                for lo, hi, idx in p.spec.regions()]
        print(f"{net} {prop} {mode:6s} {outs} boxes={st.get('domains')} calls={st.get('bound_calls')} "
              f"{time.time() - t:.1f}s", flush=True)
