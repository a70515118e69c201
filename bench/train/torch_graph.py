"""The strongest PyTorch peer of hisdf's training step, as a skilled PyTorch
user writes it: the whole step (batch draw, forward, curriculum loss,
backward, Adam) captured once with torch.cuda.graph and replayed,
Adam(fused=True, capturable=True), TF32 matmuls, and optionally the forward
under torch.autocast(bfloat16). Same samples (the .npy bench_train wrote),
network (8 x 512 ReLU + tanh, PyTorch's default initialisation), batch and
curriculum (Table 2) as torch_reference.py.

Prints one JSON line like torch_reference.py: median ms per iteration over
windows of 100, total seconds, mean loss of the last window.
"""
import argparse
import json
import time

import numpy as np
import torch

from torch_reference import STAGES, capture, network


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
    ap.add_argument("--iterations", type=int, default=15000)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--clamp", type=float, default=0.1)
    ap.add_argument("--bf16", action="store_true", help="forward under torch.autocast(bfloat16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_float32_matmul_precision("high")
    dev = torch.device("cuda")
    data = torch.from_numpy(np.load(args.samples)).to(dev)
    points, sdf = data[:, :3].contiguous(), data[:, 3].contiguous()
    model = network(args.depth, args.width).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3, device=dev), fused=True, capturable=True)
    d = args.clamp
    eps = torch.zeros((), device=dev)
    lam = torch.zeros((), device=dev)
    loss_sum = torch.zeros((), device=dev)

    def step():
        idx = torch.randint(0, points.shape[0], (args.batch,), device=dev)
        x, s = points[idx], sdf[idx]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16):
            f = model(x).squeeze(-1)
        f = f.float().clamp(-d, d)
        s = s.clamp(-d, d)
        diff = s - f
        k = 1 + lam * torch.sign(s) * torch.sign(diff)
        loss = (k * (diff.abs() - eps).clamp(min=0)).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        loss_sum.add_(loss.detach())

    def set_stage(it):
        _, e, l = [st for st in STAGES if st[0] <= it][-1]
        eps.fill_(e)
        lam.fill_(l)

    set_stage(0)
    graph = capture(step)
    loss_sum.zero_()

    window, times, losses = 100, [], []
    torch.cuda.synchronize()
    start = time.perf_counter()
    t0 = start
    # The warm-up and capture did 4 steps; the loop does the rest.
    for it in range(4, args.iterations):
        set_stage(it)
        graph.replay()
        if (it + 1) % window == 0:
            losses.append(loss_sum.item() / window)
            loss_sum.zero_()
            t1 = time.perf_counter()
            times.append((t1 - t0) / window)
            t0 = t1
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    print(json.dumps({
        "impl": "pytorch-graph-fused-adam-" + ("bf16-autocast" if args.bf16 else "tf32"),
        "ms_per_iteration": 1e3 * float(np.median(times[1:])),
        "total_s": total,
        "final_loss": losses[-1],
        "iterations": args.iterations,
        "device": torch.cuda.get_device_name(),
    }))


if __name__ == "__main__":
    main()
