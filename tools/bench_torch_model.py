#!/usr/bin/python3
"""Straightforward PyTorch CPU peer for the engine's benchmarks (DESIGN.md section 10).

Runs the SAME Mistral implementation as tools/mistral_reference.py, in float32, with
plain eager PyTorch (nn.Linear / matmul attention / F.cross_entropy, no compile, no
fused kernels, no tricks).

Usage (Debian's python, which has torch):

    # training: forward + backward, loss = mean token cross-entropy (labels = inputs, shifted)
    /usr/bin/python3 tools/bench_torch_model.py --preset small --batch 4 --seq 256 --threads 2 --iters 5

    # greedy generation with a KV cache: prefill --prompt-len tokens, then --new-tokens steps
    /usr/bin/python3 tools/bench_torch_model.py --mode generate --preset small --batch 1 \\
        --prompt-len 32 --new-tokens 64 --threads 2 --iters 3

Reported figures are medians over --iters timed runs after one untimed warm-up run:
  train:    tokens/s = batch * seq / (forward + backward seconds); gradients are reset
            (set to None) between runs, no optimizer step.
  generate: prefill tokens/s = batch * prompt_len / prefill seconds (logits only for the
            last position, as HF generate does); decode tokens/s = batch * new_tokens /
            seconds of the new_tokens single-token steps (each step: forward of one token
            per row against the cache, lm_head, argmax). torch.no_grad().

Threads: torch.set_num_threads(--threads); OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set
to --threads before torch loads (unless already set), because Debian's torch calls the
system BLAS (libblas.so.3, OpenBLAS when libopenblas0-pthread is installed), whose thread
pool torch.set_num_threads does not control. OMP_WAIT_POLICY defaults to PASSIVE: torch's
OpenMP pool and OpenBLAS's pthread pool are separate, and with both spin-waiting on the
same 2 cores the run oversubscribes (measured here: small-preset training 2.8-3.1 s/iter
instead of ~2.0 s; batch-1 decode steps jumping from ~23 ms to ~130 ms once the cache
passes 64 keys). Set OMP_WAIT_POLICY=ACTIVE yourself to see the out-of-the-box behaviour. The BLAS actually loaded (from
/proc/self/maps), torch's build BLAS_INFO, and a 1024^3 sgemm GFLOP/s figure are printed
beside the result: a comparison counts only with OpenBLAS active.

Presets (same shapes as the Java engine's):
  small: vocab 32000, hidden 512, intermediate 1408, 6 layers, 8 heads, 2 kv heads,
         head_dim 64, sliding_window 4096, eps 1e-5, theta 10000
  tiny:  vocab 512, hidden 64, intermediate 192, 2 layers, 4 heads, 2 kv heads,
         head_dim 16, sliding_window 128

--verify (generate mode) also checks once that cached decoding reproduces the logits of a
full no-cache forward over the same tokens.
"""

import argparse
import os
import statistics
import sys
import time


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PyTorch CPU peer benchmark for the Mistral model")
    ap.add_argument("--mode", choices=("train", "generate"), default="train")
    ap.add_argument("--preset", choices=("tiny", "small"), default="small")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256, help="train: tokens per row")
    ap.add_argument("--prompt-len", type=int, default=32, help="generate: prompt tokens per row")
    ap.add_argument("--new-tokens", type=int, default=64, help="generate: decode steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true", help="generate: check the KV cache once")
    args = ap.parse_args(argv)
    for k in ("batch", "seq", "prompt_len", "new_tokens", "threads", "iters"):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1")
    return args


def blas_report(torch):
    lines = [f"torch {torch.__version__}, threads {torch.get_num_threads()} "
             f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
             f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
             f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')})"]
    for ln in torch.__config__.show().splitlines():
        for part in ln.split(","):
            if "BLAS" in part or "LAPACK" in part or "MKL" in part:
                lines.append("torch config: " + part.strip().lstrip("- "))
    libs = []
    with open("/proc/self/maps") as f:
        for ln in f:
            fields = ln.split()
            if len(fields) >= 6 and ("blas" in fields[-1].lower() or "mkl" in fields[-1].lower()):
                if fields[-1] not in libs:
                    libs.append(fields[-1])
    lines.append("loaded BLAS libraries: " + (", ".join(libs) if libs else "(none found in /proc/self/maps)"))
    try:
        real = [os.path.realpath(p) for p in libs]
        if real != libs:
            lines.append("  resolved: " + ", ".join(real))
    except OSError:
        pass
    return lines


def sgemm_gflops(torch, n=1024, reps=5):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def bench_train(torch, F, model, args, vocab):
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, vocab, (args.batch, args.seq), generator=gen)

    def step():
        model.zero_grad(set_to_none=True)
        logits, _ = model(ids)
        loss = F.cross_entropy(logits[:, :-1, :].reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        return loss.item()

    loss0 = step()  # warm-up
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    tok = args.batch * args.seq
    print(f"train: batch {args.batch} seq {args.seq}: loss {loss0:.4f}; per iter "
          + " ".join(f"{t:.3f}s" for t in times))
    print(f"RESULT mode=train preset={args.preset} batch={args.batch} seq={args.seq} "
          f"threads={args.threads} median_s={med:.4f} tokens_per_s={tok / med:.1f}")


def greedy_generate(torch, model, prompt, new_tokens):
    """Returns (tokens [B, new_tokens], prefill seconds, decode seconds)."""
    t0 = time.perf_counter()
    logits, cache = model(prompt, logits_last_only=True)
    nxt = logits[:, -1, :].argmax(-1, keepdim=True)
    t1 = time.perf_counter()
    out = [nxt]
    for _ in range(new_tokens):
        logits, cache = model(nxt, past_key_values=cache)
        nxt = logits[:, -1, :].argmax(-1, keepdim=True)
        out.append(nxt)
    t2 = time.perf_counter()
    # out[0] came from the prefill; the new_tokens timed steps produced out[1:]
    return torch.cat(out, dim=1), t1 - t0, t2 - t1


def bench_generate(torch, model, args, vocab):
    gen = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, vocab, (args.batch, args.prompt_len), generator=gen)
    with torch.no_grad():
        if args.verify:
            toks, _, _ = greedy_generate(torch, model, prompt, min(args.new_tokens, 8))
            full = torch.cat((prompt, toks[:, :-1]), dim=1)
            ref_logits, _ = model(full)
            ref_next = ref_logits[:, args.prompt_len - 1:, :].argmax(-1)
            ok = torch.equal(ref_next, toks)
            print(f"verify: cached greedy tokens == full-forward argmax: {ok}")
            if not ok:
                raise SystemExit("KV-cache verification failed")
        greedy_generate(torch, model, prompt, args.new_tokens)  # warm-up
        pre, dec = [], []
        for _ in range(args.iters):
            _, tp, td = greedy_generate(torch, model, prompt, args.new_tokens)
            pre.append(tp)
            dec.append(td)
    mp, md = statistics.median(pre), statistics.median(dec)
    print("generate: prefill " + " ".join(f"{t:.4f}s" for t in pre)
          + " | decode " + " ".join(f"{t:.3f}s" for t in dec))
    print(f"RESULT mode=generate preset={args.preset} batch={args.batch} prompt_len={args.prompt_len} "
          f"new_tokens={args.new_tokens} threads={args.threads} "
          f"prefill_tokens_per_s={args.batch * args.prompt_len / mp:.1f} "
          f"decode_tokens_per_s={args.batch * args.new_tokens / md:.1f}")


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mistral_reference import PRESETS, MistralConfig, MistralForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = MistralConfig(**PRESETS[args.preset])
    model = MistralForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():  # HF-like init: N(0, 0.02), norms at 1
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    model.train(args.mode == "train")

    for ln in blas_report(torch):
        print(ln)
    print(f"sgemm 1024^3 fp32: {sgemm_gflops(torch):.1f} GFLOP/s")
    nparams = sum(p.numel() for p in model.parameters())
    print(f"preset {args.preset}: {nparams / 1e6:.2f}M params, float32, "
          f"layers {cfg.num_hidden_layers}, hidden {cfg.hidden_size}, heads {cfg.num_attention_heads}/"
          f"{cfg.num_key_value_heads}, head_dim {cfg.head_dim}, vocab {cfg.vocab_size}")
    if args.mode == "train":
        bench_train(torch, F, model, args, cfg.vocab_size)
    else:
        bench_generate(torch, model, args, cfg.vocab_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
