#!/usr/bin/env python3
"""PyTorch peers of spin's GPU kernels, timed on the same GPU in the same run (tools/gpu-check.sh).

Mistral-7B shapes (C 4096, F 14336, H 32, KVH 8, D 128, V 32000) at N = batch x tokens rows:
fp32 and bf16 linear layers (forward, and the two backward products), SDPA attention forward and
backward (torch picks flash or memory-efficient kernels), RMSNorm as HF computes it, and the
log-softmax gather. Prints one line per op: median milliseconds over --iters timed runs after a
warm-up (CUDA events), and TFLOP/s or GB/s beside it.
"""
import argparse

import torch
import torch.nn.functional as F


def timed(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2048, help="N = batch x tokens")
    ap.add_argument("--seq", type=int, default=2048, help="tokens per sequence for attention")
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    dev = torch.device("cuda")
    n, c, f, v = args.rows, 4096, 14336, 32000
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, N={n}")

    def report(name, ms, flops=None, bytes_moved=None):
        extra = ""
        if flops is not None:
            extra = f"{flops / ms / 1e9:8.1f} TFLOP/s"
        if bytes_moved is not None:
            extra = f"{bytes_moved / ms / 1e6:8.1f} GB/s"
        print(f"{name:48s} {ms:9.3f} ms  {extra}")

    for dtype in (torch.float32, torch.bfloat16):
        tag = "fp32" if dtype == torch.float32 else "bf16"
        torch.backends.cuda.matmul.allow_tf32 = False
        for out_features, in_features, label in ((c, c, "q/o proj"), (f, c, "gate/up proj"), (c, f, "down proj"),
                                                 (v, c, "lm_head")):
            x = torch.randn(n, in_features, device=dev, dtype=dtype)
            w = torch.randn(out_features, in_features, device=dev, dtype=dtype)
            dy = torch.randn(n, out_features, device=dev, dtype=dtype)
            flops = 2.0 * n * in_features * out_features
            report(f"linear {tag} {label} forward", timed(lambda: x @ w.t(), args.iters), flops)
            report(f"linear {tag} {label} dIn", timed(lambda: dy @ w, args.iters), flops)
            report(f"linear {tag} {label} dWeight", timed(lambda: dy.t() @ x, args.iters), flops)
            del x, w, dy

    b, h, kvh, d, t = max(1, n // args.seq), 32, 8, 128, args.seq
    for dtype in (torch.bfloat16, torch.float32):
        tag = "fp32" if dtype == torch.float32 else "bf16"
        q = torch.randn(b, h, t, d, device=dev, dtype=dtype, requires_grad=True)
        k = torch.randn(b, kvh, t, d, device=dev, dtype=dtype, requires_grad=True)
        vv = torch.randn(b, kvh, t, d, device=dev, dtype=dtype, requires_grad=True)
        flops = 4.0 * b * h * t * t * d / 2  # causal
        fwd = lambda: F.scaled_dot_product_attention(q, k, vv, is_causal=True, enable_gqa=True)
        report(f"SDPA {tag} causal GQA forward (B={b} T={t})", timed(fwd, args.iters), flops)
        out = fwd()
        grad = torch.randn_like(out)
        report(f"SDPA {tag} causal GQA backward", timed(lambda: torch.autograd.grad(out, (q, k, vv), grad,
                                                                                 retain_graph=True), args.iters),
               2.5 * flops)
        del q, k, vv, out, grad

    x = torch.randn(n, c, device=dev)
    w = torch.randn(c, device=dev)

    def rmsnorm():
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    report("RMSNorm fp32 forward (HF)", timed(rmsnorm, args.iters), bytes_moved=2.0 * n * c * 4)
    logits = torch.randn(n, v, device=dev)
    labels = torch.randint(0, v, (n,), device=dev)
    report("log-softmax gather fp32 (logits -> logp)",
           timed(lambda: torch.log_softmax(logits, -1).gather(1, labels[:, None]), args.iters),
           bytes_moved=1.0 * n * v * 4)


if __name__ == "__main__":
    main()
