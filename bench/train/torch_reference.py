"""The paper's training loop in plain PyTorch (eager), as the reference that
hisdf's libtorch loop is timed against. Same samples (read from the .npy the
Rust benchmark wrote), same batch size, network, loss, schedule and Adam.

Prints one JSON line: seconds per iteration (median over windows of 100),
total seconds, and the mean loss of the last 100 iterations.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn

STAGES = [(0, 0.025, 0.0), (200, 0.01, 0.1), (600, 0.0025, 0.2), (1000, 0.0, 0.5), (5000, 0.0, 0.8)]


def capture(step):
    """One call of `step` captured as a CUDA graph, after three warm-up calls
    on a side stream (as the PyTorch CUDA-graph documentation prescribes):
    the peers' whole-step graphs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


def network(depth, width):
    layers, fan_in = [], 3
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    layers += [nn.Linear(fan_in, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
    ap.add_argument("--iterations", type=int, default=15000)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--loss", choices=["curriculum", "l1"], default="curriculum")
    ap.add_argument("--clamp", type=float, default=0.1)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = torch.from_numpy(np.load(args.samples)).to(dev)
    points, sdf = data[:, :3].contiguous(), data[:, 3].contiguous()
    model = network(args.depth, args.width).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = None
    if args.loss == "l1":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=200, threshold=1e-4)
    d = args.clamp
    window, times, losses = 100, [], []
    loss_sum = torch.zeros((), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    t0 = start
    for it in range(args.iterations):
        idx = torch.randint(0, points.shape[0], (args.batch,), device=dev)
        x, s = points[idx], sdf[idx]
        f = model(x).squeeze(-1)
        f, s = f.clamp(-d, d), s.clamp(-d, d)
        diff = s - f
        if args.loss == "l1":
            loss = diff.abs().mean()
        else:
            _, eps, lam = [st for st in STAGES if st[0] <= it][-1]
            k = 1 + lam * torch.sign(s) * torch.sign(diff)
            loss = (k * (diff.abs() - eps).clamp(min=0)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step(loss.item())
        loss_sum += loss.detach()
        if (it + 1) % window == 0:
            losses.append(loss_sum.item() / window)
            loss_sum.zero_()
            t1 = time.perf_counter()
            times.append((t1 - t0) / window)
            t0 = t1
    sync()
    total = time.perf_counter() - start
    print(json.dumps({
        "impl": "pytorch-eager" + ("-tf32" if args.tf32 else ""),
        "ms_per_iteration": 1e3 * float(np.median(times)),
        "total_s": total,
        "final_loss": losses[-1],
        "iterations": args.iterations,
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
    }))


if __name__ == "__main__":
    main()
