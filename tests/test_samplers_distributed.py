"""The library sampler in a plain DDP script under torchrun (2 CPU processes, gloo): each rank trains on a
disjoint part of one global stream, with equal lengths, and the realized class prior follows the formula."""
import json
import subprocess
import sys

import numpy as np
import pytest

from benchmark.samplers import OversamplingSampler
from conftest import ROOT
from test_distributed import LAUNCH_TIMEOUT, cpu_env


@pytest.mark.distributed
def test_torchrun_two_ranks_take_disjoint_equal_parts_of_one_stream(tmp_path):
    out = tmp_path / "ranks.json"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "tests" / "ddp_sampler_script.py"), str(out)], capture_output=True, text=True,
                       env=cpu_env(), timeout=LAUNCH_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = sorted(json.loads(out.read_text()), key=lambda d: d["rank"])
    assert [d["rank"] for d in ranks] == [0, 1]
    # 9001 samples over 2 ranks: 4501 each, the stream continued by one draw rather than padded with a repeat
    assert [d["len"] for d in ranks] == [4501, 4501] and [d["steps"] for d in ranks] == [71, 71]
    targets = np.repeat(np.arange(4), [600, 200, 50, 10])
    reference = OversamplingSampler(targets, beta=0.5, num_samples=9001, seed=7, rank=0, world_size=2)
    drawn = []
    for epoch in range(2):
        stream = reference.global_indices(epoch)
        assert stream.size == 9002
        for d in ranks:  # rank r trained on positions r, r + 2, ... of the one global stream: disjoint, all of it
            assert d["seen"][epoch] == stream[d["rank"]::2].tolist()
        drawn += ranks[0]["seen"][epoch] + ranks[1]["seen"][epoch]
    assert ranks[0]["seen"][0] != ranks[0]["seen"][1]  # set_epoch reshuffles and redraws the rounding
    # the realized prior: class j is drawn ∝ n_j · (n_max / n_j)^β
    n = np.array([600, 200, 50, 10])
    want = n * (n.max() / n) ** 0.5
    np.testing.assert_allclose(np.bincount(targets[drawn], minlength=4) / len(drawn), want / want.sum(), atol=0.01)
