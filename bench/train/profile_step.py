"""Where the time of hisdf's single-network bf16 step goes: the same ATen
operations src/train/mixed.rs issues for one network (fp32 input layer with
bias+ReLU in the cuBLASLt epilogue, bf16 hidden layers the same way, the
hand-written backward pass: ReLU mask, two products, the bias gradient as a
product with a column of ones per layer;
fused Adam over one flat buffer; the bf16 copy of the weights), run eagerly
under torch.profiler, kernel times summed by kind per step. It models the
step to find what to fuse; the step itself is timed by bench_train.

    python3 bench/train/profile_step.py [--steps 50] [--depth 8] [--width 512]
"""
import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from torch_reference import capture


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--width", type=int, default=512)
    args = ap.parse_args()
    dev = torch.device("cuda")
    b, w = args.batch, args.width
    dims = [3] + [w] * args.depth + [1]
    sizes = [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]
    numel = sum(o * i + o for o, i in sizes)
    master = torch.randn(numel, device=dev) * 0.02
    grads = torch.zeros_like(master)
    low = master.to(torch.bfloat16)
    views, lows, gviews, off = [], [], [], 0
    for o, i in sizes:
        for shape in ((o, i), (o,)):
            n = shape[0] * (shape[1] if len(shape) > 1 else 1)
            views.append(master[off:off + n].view(shape))
            lows.append(low[off:off + n].view(shape))
            gviews.append(grads[off:off + n].view(shape))
            off += n
    exp_avg, exp_avg_sq = torch.zeros_like(master), torch.zeros_like(master)
    step_t = torch.zeros((), device=dev)
    points = torch.rand(250000, 3, device=dev) * 2 - 1
    sdf = points.norm(dim=1) - 0.5
    lr = torch.tensor(1e-3, device=dev)
    ones = torch.ones(b, 1, device=dev, dtype=torch.bfloat16)

    def step():
        idx = torch.randint(0, points.shape[0], (b,), device=dev)
        x, s = points[idx], sdf[idx]
        acts = [torch._addmm_activation(views[1], x, views[0].t()).to(torch.bfloat16)]
        for l in range(1, len(sizes) - 1):
            acts.append(torch._addmm_activation(lows[2 * l + 1], acts[-1], lows[2 * l].t()))
        o = torch.mm(acts[-1], lows[-2].t(), out_dtype=torch.float32) + views[-1]
        f = torch.tanh(o.squeeze(-1))
        fl = f.detach().requires_grad_(True)
        d = 0.1
        diff = s.clamp(-d, d) - fl.clamp(-d, d)
        loss = (diff.abs()).mean()
        loss.backward()
        d_o = (fl.grad * (1 - f * f)).unsqueeze(-1)
        d_o_low = d_o.to(torch.bfloat16)
        torch.mm(d_o_low.t(), acts[-1], out_dtype=torch.float32, out=gviews[-2])
        torch.sum(d_o, 0, out=gviews[-1])
        d_h = d_o_low.mm(lows[-2])
        for l in range(len(sizes) - 2, 0, -1):
            d_z = torch.ops.aten.threshold_backward(d_h, acts[l], 0.0)
            torch.mm(d_z.t(), acts[l - 1], out_dtype=torch.float32, out=gviews[2 * l])
            torch.mm(d_z.t(), ones, out_dtype=torch.float32, out=gviews[2 * l + 1].unsqueeze(-1))
            d_h = d_z.mm(lows[2 * l])
        d_z = torch.ops.aten.threshold_backward(d_h, acts[0], 0.0)
        x_low = x.to(torch.bfloat16)
        torch.mm(d_z.t(), x_low, out_dtype=torch.float32, out=gviews[0])
        torch.mm(d_z.t(), ones, out_dtype=torch.float32, out=gviews[1].unsqueeze(-1))
        torch._fused_adam_([master], [grads], [exp_avg], [exp_avg_sq], [], [step_t],
                           lr=lr, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           amsgrad=False, maximize=False)
        low.copy_(master)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
    kinds = defaultdict(float)
    counts = defaultdict(int)
    total = 0.0
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        name = e.name
        us = e.device_time if hasattr(e, "device_time") else e.cuda_time
        kinds[name[:90]] += us
        counts[name[:90]] += 1
        total += us
    print(f"kernel time per step: {total / args.steps:.1f} us, "
          f"{sum(counts.values()) / args.steps:.0f} kernels per step")
    for name, us in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{us / args.steps:8.1f} us {counts[name] / args.steps:5.1f}x  {name}")

    # The same step in a CUDA graph: kernel time plus the gaps between them.
    graph = capture(step)
    for _ in range(20):
        graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        for _ in range(100):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 100)
    times.sort()
    print(f"replica in a CUDA graph: {times[len(times) // 2]:.3f} ms per step (median of 10 x 100)")


if __name__ == "__main__":
    main()
