"""A plain DDP training loop with the library sampler: launched by tests/test_samplers_distributed.py under
`torchrun --nproc_per_node 2` (CPU, gloo). Usage: ddp_sampler_script.py OUT.json"""
import json
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from benchmark.samplers import OversamplingSampler

dist.init_process_group("gloo")
targets = np.repeat(np.arange(4), [600, 200, 50, 10])  # a long-tailed 4-class training set
data = TensorDataset(torch.arange(len(targets)), torch.as_tensor(targets))
sampler = OversamplingSampler(targets, beta=0.5, num_samples=9001, seed=7)  # rank / world size from dist
loader = DataLoader(data, batch_size=64, sampler=sampler)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
seen = []
for epoch in range(2):
    sampler.set_epoch(epoch)
    seen.append([])
    for idx, y in loader:  # DDP syncs every step: unequal step counts would hang here
        loss = torch.nn.functional.cross_entropy(model(idx[:, None].float() / len(targets)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen[-1] += idx.tolist()
ranks = [None] * dist.get_world_size()
dist.all_gather_object(ranks, {"rank": dist.get_rank(), "len": len(sampler), "steps": len(loader), "seen": seen})
if dist.get_rank() == 0:
    with open(sys.argv[1], "w") as f:
        json.dump(ranks, f)
dist.destroy_process_group()
