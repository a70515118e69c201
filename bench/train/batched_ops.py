"""Timings of the single operations a batched training step is made of, on
the GPU (CUDA events, mean of 20 after 3 warm-up calls): what a hidden
layer of K networks costs in each way ATen offers, and the input layer in
float32 against the split bf16 product hisdf uses (with its error against
float64). These are the figures docs/results.md quotes for the batched
step's design.

    python3 bench/train/batched_ops.py [--models 32] [--batch 10000] [--width 512]
"""
import argparse

import torch


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=32)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--width", type=int, default=512)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev, bf = "cuda", torch.bfloat16
    k, b, n = args.models, args.batch, args.width
    h = torch.randn(k, b, n, device=dev, dtype=bf)
    w = torch.randn(k, n, n, device=dev, dtype=bf) * 0.05
    bias = torch.randn(k, n, device=dev, dtype=bf)
    d = torch.randn(k, b, n, device=dev, dtype=bf)
    gw = torch.empty(k, n, n, device=dev)
    gb = torch.empty(k, n, device=dev)
    x = torch.rand(k, b, 3, device=dev) * 2 - 1
    w3 = torch.randn(k, n, 3, device=dev)
    b3 = torch.randn(k, n, device=dev)
    rows = [
        ("hidden: bmm alone", lambda: torch.bmm(h, w.transpose(1, 2))),
        ("hidden: baddbmm, bias broadcast", lambda: torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))),
        ("hidden: baddbmm + relu_", lambda: torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2)).relu_()),
        ("hidden: relu_ alone", lambda: h.clone().relu_()),
        ("backward: threshold_backward", lambda: torch.ops.aten.threshold_backward(d, h, 0.0)),
        ("backward: weight gradient, bmm to float32", lambda: torch.bmm(d.transpose(1, 2), h, out_dtype=torch.float32, out=gw)),
        ("backward: bias gradient, sum to float32", lambda: torch.sum(d, 1, dtype=torch.float32, out=gb)),
        ("backward: input gradient, bmm", lambda: torch.bmm(d, w)),
        ("input layer: float32 baddbmm + relu + cast", lambda: torch.baddbmm(b3.unsqueeze(1), x, w3.transpose(1, 2)).relu_().to(bf)),
    ]

    def split(t):
        hi = t.to(bf)
        return hi, (t - hi.float()).to(bf)

    def split_input_layer():
        x_hi, x_lo = split(x)
        w_hi, w_lo = split(w3)
        b_hi, b_lo = split(b3.unsqueeze(-1))
        pad = 16 - 11
        points = torch.cat([x_hi, x_lo, x_hi, torch.ones(k, b, 2, device=dev, dtype=bf),
                            torch.zeros(k, b, pad, device=dev, dtype=bf)], 2)
        weights = torch.cat([w_hi, w_hi, w_lo, b_hi, b_lo, torch.zeros(k, n, pad, device=dev, dtype=bf)], 2)
        return torch.bmm(points, weights.transpose(1, 2)).relu_()

    rows.append(("input layer: split bf16 product (with packing) + relu_", split_input_layer))
    for name, fn in rows:
        print(f"{timed(fn):9.1f} us  {name}")
    ref = (torch.bmm(x.double(), w3.double().transpose(1, 2)) + b3.double().unsqueeze(1)).relu()
    scale = ref.abs().max().item()
    for name, got in [("split bf16", split_input_layer()),
                      ("float32 then bf16", torch.baddbmm(b3.unsqueeze(1), x, w3.transpose(1, 2)).relu_().to(bf))]:
        print(f"input layer {name}: largest error / largest value {(got.double() - ref).abs().max().item() / scale:.2e}")


if __name__ == "__main__":
    main()
