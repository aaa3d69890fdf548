#!/usr/bin/env python3
"""PyTorch peers of spin's kernel benchmarks, timed on the same GPU in the same run (tools/gpu-check.sh).

Prints the table of `spin bench kernels` (spin.bench.KernelBench): the same markdown columns
(kernel | shape | ms | rate | % of peak) and, for every peer of a spin case, the same row name
(spin.bench.KernelCases), so the two reports line up row for row in docs/PERFORMANCE.md. Mistral-7B
shapes (C 4096, F 14336, V 32000, H 32, KVH 8, D 128) at N = 4096 rows for the GEMMs and the
per-token ops, attention at B*T = 16384 tokens; --tiny divides them as spin's --scale 64 does.

Beyond spin's rows it times what a training or generation step costs in PyTorch itself: one
Mistral-7B decoder layer forward + backward (transformers' MistralDecoderLayer, SDPA, bf16;
tokens/s and MFU), the training step of a few-layer MistralForCausalLM at Mistral-7B widths
(forward, token log-probs, backward; spin bench train's peer), and batched greedy generation (HF generate with a static cache) on a random
Mistral-7B-width model of few layers. Every figure is the median of --runs runs, each timed alone
(CUDA events on a GPU) after warm-up runs. Each peer runs in its own try/except: one that cannot
run (no flash kernel, no transformers, out of memory) prints "skipped: <reason>" in its row and
the others go on.

    python3 tools/bench_torch_gpu.py                       # on a GPU, full shapes
    python3 tools/bench_torch_gpu.py --device cpu --tiny   # smoke run on a CPU (times are not GPU figures)
"""
import argparse
import statistics
import time
import traceback

import torch
import torch.nn.functional as F

# Set when the flash kernel refused enable_gqa and k/v were repeated instead (reported under the table).
GQA_REPEATED = False

# The peaks of spin.bench.DevicePeaks (datasheet, dense): bf16 and fp32 TFLOP/s, HBM TB/s.
PEAKS = {"H200 SXM": (989.0, 67.0, 4.8), "H100 SXM": (989.0, 67.0, 3.35)}


def peaks_of(name):
    n = name.upper()
    if "H200" in n and "NVL" not in n:
        return "H200 SXM", PEAKS["H200 SXM"]
    if "H100" in n and "NVL" not in n and ("SXM" in n or "HBM3" in n):
        return "H100 SXM", PEAKS["H100 SXM"]
    return None, None


def attention_flops(batch, t, heads, head_dim, window):
    """spin.bench.KernelCases.attentionFlops: 4*B*H*D per visible pair, T^2/2 causal, T*W - W^2/2 windowed."""
    pairs = t * t / 2 if window == 0 or window >= t else t * window - window * window / 2
    return 4.0 * batch * heads * head_dim * pairs


class Bench:
    def __init__(self, args):
        self.args = args
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        name = torch.cuda.get_device_name() if self.cuda else "cpu"
        self.device_name = name
        self.peak_name, self.peaks = peaks_of(name)
        self.dtype = torch.bfloat16 if self.cuda else torch.float32

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def median_ms(self, fn, setup=None):
        """Median milliseconds of --runs runs of fn, each timed alone, after --warmups runs; setup
        (untimed) runs before each, e.g. to zero gradients."""
        for _ in range(self.args.warmups):
            if setup:
                setup()
            fn()
        self.sync()
        times = []
        for _ in range(self.args.runs):
            if setup:
                setup()
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def row(self, name, shape, ms, rate, unit, fraction):
        frac = "-" if fraction is None else f"{100 * fraction:.1f}%"
        print(f"| {name} | {shape} | {ms:.4f} | {rate:.1f} {unit} | {frac} |", flush=True)

    def peer(self, name, shape, body):
        """Runs body() -> (ms, work dict) and prints its row, or a "skipped: reason" row."""
        try:
            ms, work = body()
        except Exception as e:  # noqa: BLE001 - any failure of one peer must leave the others running
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160]
            print(f"| {name} | {shape} | skipped: {reason} | - | - |", flush=True)
            if self.args.verbose:
                traceback.print_exc()
            return
        finally:
            if self.cuda:
                torch.cuda.empty_cache()
        if "flops" in work:
            rate = work["flops"] / ms / 1e9
            peak = None if self.peaks is None else (self.peaks[0] if work.get("bf16", True) else self.peaks[1])
            self.row(name, shape, ms, rate, "TFLOP/s", None if peak is None else rate / peak)
        elif "bytes" in work:
            rate = work["bytes"] / ms / 1e6
            self.row(name, shape, ms, rate, "GB/s", None if self.peaks is None else rate / (self.peaks[2] * 1e3))
        else:
            self.row(name, shape, ms, work["tokens"] / ms * 1e3, "tokens/s",
                     None if self.peaks is None or "mfu_flops" not in work
                     else work["mfu_flops"] / ms / 1e9 / self.peaks[0])

    def randn(self, *shape, dtype=None, grad=False):
        return torch.randn(*shape, device=self.dev, dtype=dtype or self.dtype, requires_grad=grad)


def sdpa_context(bench):
    """Flash attention only on a GPU (the peer the issue asks for: no silent fallback to another
    kernel); on a CPU, the math kernel, for smoke runs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel(SDPBackend.FLASH_ATTENTION if bench.cuda else SDPBackend.MATH)


def kernels(b, s):
    a = b.dtype
    dt = "bf16" if a == torch.bfloat16 else "f32"
    esize = 2 if a == torch.bfloat16 else 4
    n, c, f, v = s["rows"], s["hidden"], s["ffn"], s["vocab"]
    h, kvh, d = s["heads"], s["kv_heads"], s["head_dim"]

    for label, i, o in (("qkv", c, (h + 2 * kvh) * d), ("qo", c, c), ("gate_up", c, f), ("down", f, c), ("lm_head", c, v)):
        shape = f"N={n} {i}x{o} {dt}"

        def fwd(i=i, o=o):
            x, w = b.randn(n, i), b.randn(o, i)
            return b.median_ms(lambda: torch.matmul(x, w.t())), {"flops": 2.0 * n * i * o}

        def bwd(i=i, o=o):
            x, w, dy = b.randn(n, i), b.randn(o, i), b.randn(n, o)
            return b.median_ms(lambda: (torch.matmul(dy, w), torch.matmul(dy.t(), x))), {"flops": 4.0 * n * i * o}

        b.peer(f"matmul.{label}.fwd", shape, fwd)
        b.peer(f"matmul.{label}.bwd", shape, bwd)

    tokens, window = s["attention_tokens"], s["window"]
    for kind in ("causal", "window"):
        for full_t, t in zip((512, 1024, 2048, 4096), s["seq_lens"]):
            batch = tokens // t
            w = 0 if kind == "causal" else window
            shape = (f"B={batch} T={t} H={h} KVH={kvh} D={d} " + ("causal" if w == 0 else f"window {w}") + f" {dt}")
            flops = attention_flops(batch, t, h, d, w)

            def attend(q, k, vv, t=t, w=w):
                if w and w < t:
                    # Flash SDPA takes no band mask; spin's T <= W rows never need one.
                    raise RuntimeError(f"window {w} < T {t} needs a mask, which the flash kernel does not take")
                global GQA_REPEATED
                with sdpa_context(b):
                    if not GQA_REPEATED:
                        try:
                            return F.scaled_dot_product_attention(q, k, vv, is_causal=True, enable_gqa=True)
                        except RuntimeError:
                            GQA_REPEATED = True
                    group = q.shape[1] // k.shape[1]
                    return F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), vv.repeat_interleave(group, 1),
                                                          is_causal=True)

            def forward(batch=batch, t=t, attend=attend, flops=flops):
                q, k, vv = b.randn(batch, h, t, d), b.randn(batch, kvh, t, d), b.randn(batch, kvh, t, d)
                return b.median_ms(lambda: attend(q, k, vv)), {"flops": flops}

            def forward_backward(batch=batch, t=t, attend=attend, flops=flops):
                q, k, vv = b.randn(batch, h, t, d, grad=True), b.randn(batch, kvh, t, d, grad=True), b.randn(batch, kvh, t, d, grad=True)
                dout = b.randn(batch, h, t, d)

                def step():
                    attend(q, k, vv).backward(dout)

                def clear():
                    q.grad = k.grad = vv.grad = None

                return b.median_ms(step, setup=clear), {"flops": 3.5 * flops}

            name = f"attention.{kind}.t{full_t}"
            b.peer(name + ".fwd", shape, forward)
            b.peer(name + ".fwdbwd", shape, forward_backward)

    def rmsnorm(x, weight):  # HF MistralRMSNorm
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)
        return weight * x32.to(x.dtype)

    rows_hidden = f"N={n} C={c} {dt}"

    def rms_fwd():
        x, w = b.randn(n, c), b.randn(c)
        return b.median_ms(lambda: rmsnorm(x, w)), {"bytes": 2.0 * n * c * esize + c * esize + 4 * n}

    def rms_bwd():
        x, w, dy = b.randn(n, c, grad=True), b.randn(c, grad=True), b.randn(n, c)
        y = rmsnorm(x, w)
        return (b.median_ms(lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True)),
                {"bytes": 3.0 * n * c * esize + c * (esize + 8) + 4 * n})

    def add_rms_fwd():
        x, y, w = b.randn(n, c), b.randn(n, c), b.randn(c)

        def run():
            h = x + y
            return h, rmsnorm(h, w)

        return b.median_ms(run), {"bytes": 6.0 * n * c * esize + c * esize + 4 * n}

    b.peer("rmsnorm.fwd", rows_hidden, rms_fwd)
    b.peer("rmsnorm.bwd", rows_hidden, rms_bwd)
    # HF's residual add then the post-attention norm, eager: the peer of both add_then_rmsnorm.fwd and
    # the fused add_rmsnorm.fwd (torch has no fused kernel for the pair).
    b.peer("add_then_rmsnorm.fwd", rows_hidden, add_rms_fwd)

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def rope_tables():
        inv = 1.0 / (1e6 ** (torch.arange(0, d, 2, device=b.dev, dtype=torch.float32) / d))
        ang = torch.arange(n, device=b.dev, dtype=torch.float32)[:, None] * inv[None, :]
        emb = torch.cat((ang, ang), dim=-1)
        return emb.cos().to(a)[None, :, None, :], emb.sin().to(a)[None, :, None, :]

    rope_shape = f"N={n} H={h} KVH={kvh} D={d} {dt}"
    qk_bytes = 2.0 * n * (h + kvh) * d * esize + 8 * n

    def rope_fwd():
        cos, sin = rope_tables()
        q, k = b.randn(1, n, h, d), b.randn(1, n, kvh, d)
        return b.median_ms(lambda: (q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin)), {"bytes": qk_bytes}

    def rope_bwd():
        cos, sin = rope_tables()
        q, k = b.randn(1, n, h, d, grad=True), b.randn(1, n, kvh, d, grad=True)
        out = (q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin)
        grads = (b.randn(1, n, h, d), b.randn(1, n, kvh, d))
        return b.median_ms(lambda: torch.autograd.grad(out, (q, k), grads, retain_graph=True)), {"bytes": qk_bytes}

    b.peer("rope.fwd", rope_shape, rope_fwd)
    b.peer("rope.bwd", rope_shape, rope_bwd)

    # The stacked q/k/v rows split and rotated (v made contiguous), as spin's qkv_rope rows run it.
    stacked_bytes = 2.0 * n * (h + 2 * kvh) * d * esize + 4 * n

    def split_rotate(qkv, cos, sin):
        q, k, v = qkv.view(1, n, h + 2 * kvh, d).split((h, kvh, kvh), dim=2)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v.contiguous()

    def qkv_rope_fwd():
        cos, sin = rope_tables()
        qkv = b.randn(n, (h + 2 * kvh) * d)
        return b.median_ms(lambda: split_rotate(qkv, cos, sin)), {"bytes": stacked_bytes}

    def qkv_rope_bwd():
        cos, sin = rope_tables()
        qkv = b.randn(n, (h + 2 * kvh) * d, grad=True)
        out = split_rotate(qkv, cos, sin)
        grads = (b.randn(1, n, h, d), b.randn(1, n, kvh, d), b.randn(1, n, kvh, d))
        return b.median_ms(lambda: torch.autograd.grad(out, (qkv,), grads, retain_graph=True)), {"bytes": stacked_bytes}

    b.peer("qkv_rope.fwd", rope_shape, qkv_rope_fwd)
    b.peer("qkv_rope.bwd", rope_shape, qkv_rope_bwd)

    rows_ffn = f"N={n} F={f} {dt}"

    def swiglu_fwd():
        g, u = b.randn(n, f), b.randn(n, f)
        return b.median_ms(lambda: F.silu(g) * u), {"bytes": 3.0 * n * f * esize}

    def swiglu_bwd():
        g, u, dy = b.randn(n, f, grad=True), b.randn(n, f, grad=True), b.randn(n, f)
        y = F.silu(g) * u
        return b.median_ms(lambda: torch.autograd.grad(y, (g, u), dy, retain_graph=True)), {"bytes": 5.0 * n * f * esize}

    b.peer("swiglu.fwd", rows_ffn, swiglu_fwd)
    b.peer("swiglu.bwd", rows_ffn, swiglu_bwd)

    logits_shape = f"N={n} V={v} f32 logits"

    def labels():
        return (torch.arange(n, device=b.dev) * 7919) % v

    def logprob_fwd():
        logits, lab = b.randn(n, v, dtype=torch.float32), labels()
        return (b.median_ms(lambda: torch.log_softmax(logits, -1).gather(1, lab[:, None])),
                {"bytes": 4.0 * n * v + 16 * n})

    def logprob_bwd():
        logits, lab = b.randn(n, v, dtype=torch.float32, grad=True), labels()
        logp = torch.log_softmax(logits, -1).gather(1, lab[:, None])
        dlogp = torch.full_like(logp, -1.0 / n)
        return (b.median_ms(lambda: torch.autograd.grad(logp, logits, dlogp, retain_graph=True)),
                {"bytes": (4.0 + 4) * n * v + 12 * n})

    b.peer("logprob.fwd", logits_shape, logprob_fwd)
    b.peer("logprob.bwd", logits_shape + (", d f32 (autograd)"), logprob_bwd)

    def row_sum_fwd():
        logits = b.randn(n, v, dtype=torch.float32)
        return b.median_ms(lambda: logits.sum(-1, dtype=torch.float64)), {"bytes": 4.0 * n * v + 4 * n}

    b.peer("row_sum.fwd", logits_shape, row_sum_fwd)

    p = s["parameters"]

    def adamw():
        param = torch.nn.Parameter(torch.full((p,), 0.5, device=b.dev))
        param.grad = torch.full((p,), 0.01, device=b.dev)
        opt = torch.optim.AdamW([param], lr=1e-5, weight_decay=0.01, fused=b.cuda)
        return b.median_ms(opt.step), {"bytes": 28.0 * p}

    b.peer("adamw.step", f"P={p} f32" + (" fused" if b.cuda else ""), adamw)

    def cast(narrowing):
        def run():
            x32 = torch.full((p,), 0.5, device=b.dev)
            x16 = x32.to(torch.bfloat16)
            return b.median_ms((lambda: x32.to(torch.bfloat16)) if narrowing else (lambda: x16.to(torch.float32))), {"bytes": 6.0 * p}
        return run

    b.peer("cast.f32_to_bf16", f"P={p}", cast(True))
    b.peer("cast.bf16_to_f32", f"P={p}", cast(False))


def mistral_config(s, layers):
    from transformers import MistralConfig
    config = MistralConfig(hidden_size=s["hidden"], intermediate_size=s["ffn"], num_attention_heads=s["heads"],
                           num_key_value_heads=s["kv_heads"], head_dim=s["head_dim"], vocab_size=s["vocab"],
                           num_hidden_layers=layers, sliding_window=s["window"], rope_theta=1e6,
                           max_position_embeddings=max(4096, s["seq_lens"][-1]))
    config._attn_implementation = "sdpa"
    return config


def decoder_layer(b, s):
    """One MistralDecoderLayer forward + backward at B*T = attention_tokens, T = 4096 (scaled)."""
    t = s["seq_lens"][-1]
    batch = s["attention_tokens"] // t
    shape = f"B={batch} T={t} C={s['hidden']} F={s['ffn']} sdpa {'bf16' if b.cuda else 'f32'}"

    def run():
        from transformers.models.mistral.modeling_mistral import MistralDecoderLayer, MistralRotaryEmbedding
        config = mistral_config(s, 1)
        layer = MistralDecoderLayer(config, layer_idx=0).to(device=b.dev, dtype=b.dtype)
        rotary = MistralRotaryEmbedding(config=config, device=b.dev)
        x = b.randn(batch, t, s["hidden"], grad=True)
        positions = torch.arange(t, device=b.dev)[None, :].expand(batch, t)
        cos_sin = rotary(x, positions)
        dy = b.randn(batch, t, s["hidden"])

        def step():
            with sdpa_context(b):
                out = layer(x, attention_mask=None, position_ids=positions, position_embeddings=cos_sin)
            out = out[0] if isinstance(out, tuple) else out
            out.backward(dy)

        def clear():
            layer.zero_grad(set_to_none=True)
            x.grad = None

        params = sum(p.numel() for p in layer.parameters())
        tokens = batch * t
        # 6 FLOPs per parameter and token (forward 2, backward 4) plus attention's fwd + bwd.
        flops = 6.0 * params * tokens + 3.5 * attention_flops(batch, t, s["heads"], s["head_dim"], 0)
        return b.median_ms(step, setup=clear), {"tokens": tokens, "mfu_flops": flops}

    b.peer("decoder_layer.fwdbwd", shape, run)


def training_step(b, s, layers, batch, t):
    """MistralForCausalLM of `layers` layers at Mistral-7B widths: forward, each token's log-prob of the
    next one (SPIN's per-sequence sums come from these), backward; the peer of `spin bench train
    --preset mistral-7b --layers L --batch B --seq-len T`. FLOPs as spin.bench.TrainingFlops counts them."""
    t = max(1, t // s["scale"])
    shape = f"layers={layers} B={batch} T={t} C={s['hidden']} sdpa {'bf16' if b.cuda else 'f32'}"

    def run():
        from transformers import MistralForCausalLM
        torch.manual_seed(0)
        model = MistralForCausalLM(mistral_config(s, layers)).to(device=b.dev, dtype=b.dtype)
        ids = torch.randint(0, s["vocab"], (batch, t), device=b.dev)

        def step():
            with sdpa_context(b):
                logits = model(input_ids=ids).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            (-logp.sum() / logp.numel()).backward()

        per_layer = (s["hidden"] * s["heads"] * s["head_dim"] * 2 + 2 * s["hidden"] * s["kv_heads"] * s["head_dim"]
                     + 3 * s["hidden"] * s["ffn"])
        matrices = layers * per_layer + s["hidden"] * s["vocab"]
        flops = 6.0 * matrices * batch * t + 3.5 * layers * attention_flops(batch, t, s["heads"], s["head_dim"], 0)
        ms = b.median_ms(step, setup=lambda: model.zero_grad(set_to_none=True))
        del model
        return ms, {"tokens": batch * t, "mfu_flops": flops}

    b.peer("train.step", shape, run)


def generation(b, s, layers):
    """HF generate, greedy, static cache: prompts of 32 random tokens, 64 new tokens (EOS ignored)."""
    prompt, new = 32, 64
    for batch in s["gen_batches"]:
        shape = f"layers={layers} C={s['hidden']} prompt {prompt} new {new} static cache"

        def run(batch=batch):
            from transformers import MistralForCausalLM
            torch.manual_seed(0)
            model = MistralForCausalLM(mistral_config(s, layers)).to(device=b.dev, dtype=b.dtype).eval()
            ids = torch.randint(0, s["vocab"], (batch, prompt), device=b.dev)
            mask = torch.ones_like(ids)

            def gen():
                with torch.no_grad():
                    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                         do_sample=False, cache_implementation="static", pad_token_id=0)
                if out.shape[1] != prompt + new:
                    raise RuntimeError(f"generated {out.shape[1] - prompt} tokens, not {new}")

            ms = b.median_ms(gen)
            del model
            return ms, {"tokens": batch * new}

        b.peer(f"generate.greedy.b{batch}", shape, run)


def shapes(tiny):
    scale = 64 if tiny else 1
    heads = min(scale, 8)
    return {"rows": 4096 // scale, "hidden": 4096 // scale, "ffn": 14336 // scale, "vocab": 32000 // scale,
            "heads": 32 // heads, "kv_heads": 8 // heads, "head_dim": 128, "attention_tokens": 16384 // scale,
            "seq_lens": [t // scale for t in (512, 1024, 2048, 4096)], "window": 4096 // scale,
            "parameters": (1 << 27) // scale, "gen_batches": (1, 4) if tiny else (1, 32, 256), "scale": scale}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="spin's --scale 64 shapes (smoke runs)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per figure; the median is printed")
    ap.add_argument("--warmups", type=int, default=2)
    ap.add_argument("--gen-layers", type=int, default=2, help="decoder layers of the generation model")
    ap.add_argument("--train-layers", type=int, default=2, help="decoder layers of the training-step model")
    ap.add_argument("--train-batch", type=int, default=2, help="sequences of the training step")
    ap.add_argument("--train-seq-len", type=int, default=2048, help="tokens per sequence of the training step")
    ap.add_argument("--only", default="kernels,layer,train,generate",
                    help="comma list of: kernels, layer, train, generate")
    ap.add_argument("--verbose", action="store_true", help="print the traceback of a skipped peer")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("skipped: torch sees no CUDA device (use --device cpu --tiny for a smoke run)")
    b = Bench(args)
    s = shapes(args.tiny)
    try:
        import transformers
        tf = f"transformers {transformers.__version__}"
    except Exception as e:  # noqa: BLE001
        tf = f"no transformers ({type(e).__name__})"
    print(f"torch {torch.__version__}, {tf}, on {b.device_name}, Mistral-7B shapes"
          + ("" if s["scale"] == 1 else f" / {s['scale']}")
          + f", median of {args.runs} run(s) after {args.warmups} warm-up(s), "
          + ("timed by CUDA events" if b.cuda else "host wall time (not GPU figures)"))
    if b.peaks:
        print(f"peaks of {b.peak_name}: {b.peaks[0]:.0f} TFLOP/s dense bf16, {b.peaks[1]:.0f} TFLOP/s fp32, "
              f"{b.peaks[2]:.2f} TB/s HBM")
    else:
        print(f"no peak figures for {b.device_name}: no % of peak")
    print("| kernel | shape | ms | rate | % of peak |")
    print("| --- | --- | ---: | ---: | ---: |")
    parts = set(args.only.split(","))
    if "kernels" in parts:
        kernels(b, s)
    if "layer" in parts:
        decoder_layer(b, s)
    if "train" in parts:
        training_step(b, s, args.train_layers, args.train_batch, args.train_seq_len)
    if "generate" in parts:
        generation(b, s, args.gen_layers)
    if GQA_REPEATED:
        print("note: SDPA refused enable_gqa with the flash kernel here, so attention rows repeat k/v to H heads "
              "inside the timed region (as HF's repeat_kv does)")


if __name__ == "__main__":
    main()
