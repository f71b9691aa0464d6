"""Reference values of Almost Stochastic Order from deepsig (Ulmer et al. 2022) for
tests/fixtures/aso.json: the violation ratio (deterministic) and epsilon_min (bootstrapped, so
nerlab is compared within a tolerance). Run in a venv with `pip install deepsig`:

    python scripts/aso_reference.py > tests/fixtures/aso.json
"""
import json

import numpy as np
from deepsig.aso import aso, compute_violation_ratio

rng = np.random.default_rng(7)
cases = [
    ([0.81, 0.83, 0.80, 0.84, 0.82], [0.79, 0.80, 0.78, 0.81, 0.80]),
    ([0.70, 0.72, 0.69], [0.71, 0.70, 0.73]),
    ([0.5, 0.6, 0.7, 0.8], [0.55, 0.65, 0.75, 0.85, 0.95, 0.45]),
    (list(rng.normal(0.8, 0.02, 10)), list(rng.normal(0.79, 0.02, 10))),
]
out = []
for a, b in cases:
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    out.append({
        "a": a,
        "b": b,
        "violation_ratio": float(compute_violation_ratio(scores_a=np.array(a), scores_b=np.array(b), dt=0.005)),
        "eps_min": float(aso(a, b, confidence_level=0.95, num_bootstrap_iterations=20000,
                             show_progress=False, seed=1)),
    })
print(json.dumps(out, indent=1))
