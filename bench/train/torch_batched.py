"""The strongest PyTorch peer of hisdf's batched step (K networks trained at
once), as a skilled PyTorch user writes it: the K networks' weights stacked
as [K, in, out] parameters, every layer one torch.baddbmm, the K losses
summed (each the mean over its own batch), the whole step (batch draw,
forward, curriculum loss, backward, Adam) captured once with
torch.cuda.graph, Adam(fused=True, capturable=True), TF32 matmuls, and
optionally the forward under torch.autocast(bfloat16). Each network draws
its own batch from the same samples (the .npy bench_train wrote), as
bench_train --models K does.

Prints one JSON line like torch_graph.py, plus ms per shape-step.
"""
import argparse
import json
import math
import time

import numpy as np
import torch

from torch_reference import STAGES, capture


class Batched(torch.nn.Module):
    """K independent ReLU MLPs (tanh output), PyTorch's default Linear
    initialisation drawn for each."""

    def __init__(self, k, depth, width):
        super().__init__()
        dims = [3] + [width] * depth + [1]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            bound = 1 / math.sqrt(fan_in)
            self.weights.append(torch.nn.Parameter(torch.empty(k, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(torch.nn.Parameter(torch.empty(k, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x):
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            x = torch.relu(x) if i < last else torch.tanh(x)
        return x.squeeze(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
    ap.add_argument("--models", type=int, default=8)
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
    k = args.models
    model = Batched(k, args.depth, args.width).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3, device=dev), fused=True, capturable=True)
    d = args.clamp
    eps = torch.zeros((), device=dev)
    lam = torch.zeros((), device=dev)
    loss_sum = torch.zeros(k, device=dev)

    def step():
        idx = torch.randint(0, points.shape[0], (k, args.batch), device=dev)
        x, s = points[idx], sdf[idx]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16):
            f = model(x)
        f = f.float().clamp(-d, d)
        s = s.clamp(-d, d)
        diff = s - f
        w = 1 + lam * torch.sign(s) * torch.sign(diff)
        rows = (w * (diff.abs() - eps).clamp(min=0)).mean(dim=1)
        opt.zero_grad(set_to_none=False)
        rows.sum().backward()
        opt.step()
        loss_sum.add_(rows.detach())

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
    for it in range(4, args.iterations):
        set_stage(it)
        graph.replay()
        if (it + 1) % window == 0:
            losses.append(loss_sum[0].item() / window)
            loss_sum.zero_()
            t1 = time.perf_counter()
            times.append((t1 - t0) / window)
            t0 = t1
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    ms = 1e3 * float(np.median(times[1:]))
    print(json.dumps({
        "impl": f"pytorch-batched-graph-{'bf16-autocast' if args.bf16 else 'tf32'}-x{k}",
        "models": k,
        "ms_per_iteration": ms,
        "ms_per_shape_step": ms / k,
        "total_s": total,
        "final_loss": losses[-1],
        "iterations": args.iterations,
        "device": torch.cuda.get_device_name(),
    }))


if __name__ == "__main__":
    main()
