"""Run by tests/test_distributed.py under torchrun (2 CPU processes) and under plain python (1 process).

Usage: dist_check.py OUT_DIR WEIGHTS TASK_SPEC. Writes, from the main process only, OUT_DIR/stream.json (every
rank's training batches, and whether a second pass gave the same) and OUT_DIR/eval.json + pool_logits.npy (the
evaluation of the stored weights through the engine's gathering code path).
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark.engine import Engine, evaluate_views, prepare_task  # noqa: E402
from benchmark.registry import get_method, get_task  # noqa: E402
from benchmark.runner import make_accelerator  # noqa: E402
from benchmark.sampling import BudgetBatchSampler, ShardedBatchSampler  # noqa: E402
from benchmark.task import collate  # noqa: E402

BUDGET, BATCH, SEED = 1001, 64, 3  # 1001 = 7 full steps of 2 x 64 + a last step of 105 split 53 / 52
EVAL_BATCH = 256  # 2300 pool examples: 9 batches, so the second process gets a padded last batch


def main(out: Path, weights: str, task_spec: str) -> None:
    acc = make_accelerator()
    task = get_task(task_spec)
    task.eval_batch_size = EVAL_BATCH
    prepared = prepare_task(task)

    method = get_method("oversample:beta=1")
    method.setup(prepared.train)

    def my_batches():
        inner = BudgetBatchSampler(method, prepared.train, BUDGET, BATCH, SEED)
        shard = ShardedBatchSampler(inner, acc.num_processes, acc.process_index)
        return [list(map(int, b)) for b in shard], len(shard), int(inner.draw_counts.sum())

    mine, n_steps, drawn = my_batches()
    again, _, _ = my_batches()
    per_rank = gather_object([{"rank": acc.process_index, "batches": mine, "len": n_steps, "same_again": mine == again,
                               "drawn": drawn}])
    full = [list(map(int, b)) for b in BudgetBatchSampler(method, prepared.train, BUDGET, BATCH, SEED)]

    model = task.build_model()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    pool_dl = DataLoader(prepared.data.pool.dataset, batch_size=task.eval_batch_size, shuffle=False,
                         collate_fn=collate)
    model, pool_dl = acc.prepare(model, pool_dl)
    model.eval()
    logits, _ = Engine(acc, out / "unused", quiet=True)._predict(model, pool_dl)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        stream = {"num_processes": acc.num_processes, "ranks": sorted(per_rank, key=lambda r: r["rank"]),
                  "single_stream": full}
        (out / "stream.json").write_text(json.dumps(stream))
        np.save(out / "pool_logits.npy", logits)
        ev = evaluate_views(get_method("none"), task.multi_label, logits, prepared.data.pool.labels, prepared.views)
        (out / "eval.json").write_text(json.dumps(ev))
    acc.wait_for_everyone()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
