package spin.bench;

import java.util.ArrayList;
import java.util.List;
import spin.backend.Backend;
import spin.backend.DType;
import spin.backend.StepGradient;
import spin.backend.Tensor;

/**
 * The one list of kernel benchmarks, shared by the JMH benchmark ({@code tests/java/spin/bench/
 * KernelBenchmark}), its CI test and {@code spin bench kernels}: each drives Backend ops, so on a
 * {@code CudaBackend} it times our kernels and cuBLASLt through the same Java path training uses.
 * Activations are in the backend's compute dtype (BF16 on a GPU); statistics, logits, parameter
 * gradients and optimizer state are F32, as in training.
 *
 * <p>Names are stable across scales ({@code attention.causal.t2048.fwd} names the case whose T is
 * 2048 at scale 1 and 2048 / s at scale s); the shape column gives the sizes actually run.
 */
public final class KernelCases {
    private KernelCases() {}

    /** The matrices of one decoder layer and the lm_head, as HF stores them: [out, in]. */
    private record Linear(String name, int in, int out) {}

    /** An AdamW step's F32 operands over {@code n} parameters, and the step the benchmarks time. */
    private record AdamwShard(Backend backend, Tensor param, Tensor grad, Tensor m, Tensor v) {
        static AdamwShard of(Operands o, int n) {
            return new AdamwShard(o.backend, o.filled(DType.F32, 0.5f, n), o.filled(DType.F32, 0.01f, n),
                    o.filled(DType.F32, 0f, n), o.filled(DType.F32, 0f, n));
        }

        void step(Tensor computeCopy, StepGradient gradient) {
            backend.adamwStep(param, grad, m, v, computeCopy, gradient, 1e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
        }
    }

    /** Every case at {@code s}, activations in {@code activations} (the backend's compute dtype). */
    public static List<KernelCase> all(KernelShapes s, DType activations) {
        List<KernelCase> cases = new ArrayList<>();
        int a = activations.byteSize();
        long n = s.rows();
        String rows = "N=" + s.rows() + " ";
        int qkvRows = (s.heads() + 2 * s.kvHeads()) * s.headDim();
        // qkv: the stacked q/k/v product the model runs; qo: the o projection (and q alone).
        for (Linear l : List.of(new Linear("qkv", s.hidden(), qkvRows), new Linear("qo", s.hidden(), s.hidden()),
                new Linear("gate_up", s.hidden(), s.ffn()),
                new Linear("down", s.ffn(), s.hidden()), new Linear("lm_head", s.hidden(), s.vocab()))) {
            String shape = rows + l.in() + "x" + l.out() + " " + activations.name().toLowerCase();
            double flops = 2.0 * n * l.in() * l.out();
            // The lm_head writes fp32 logits from bf16 operands, as the model does.
            DType outType = l.name().equals("lm_head") ? DType.F32 : activations;
            cases.add(new KernelCase("matmul." + l.name() + ".fwd", shape, KernelCase.Work.flops(flops, activations), b -> {
                Operands o = new Operands(b);
                Tensor in = o.filled(activations, 0.01f, s.rows(), l.in());
                Tensor w = o.filled(activations, 0.02f, l.out(), l.in());
                Tensor out = o.filled(outType, 0f, s.rows(), l.out());
                return o.body(() -> b.matmulForward(out, in, w));
            }));
            // Backward: dIn = dOut · W and dWeight += dOut^T · in, two products of the forward's size.
            cases.add(new KernelCase("matmul." + l.name() + ".bwd", shape, KernelCase.Work.flops(2 * flops, activations), b -> {
                Operands o = new Operands(b);
                Tensor in = o.filled(activations, 0.01f, s.rows(), l.in());
                Tensor w = o.filled(activations, 0.02f, l.out(), l.in());
                Tensor dOut = o.filled(activations, 0.001f, s.rows(), l.out());
                Tensor dIn = o.filled(activations, 0f, s.rows(), l.in());
                Tensor dW = o.filled(DType.F32, 0f, l.out(), l.in());
                return o.body(() -> b.matmulBackward(dIn, dW, dOut, in, w));
            }));
        }
        for (int window : new int[] {0, s.window()}) {
            for (int i = 0; i < s.sequenceLengths().size(); i++) {
                int t = s.sequenceLengths().get(i);
                int batch = s.attentionTokens() / t;
                String id = "attention." + (window == 0 ? "causal" : "window") + ".t" + KernelShapes.FULL_SEQUENCE_LENGTHS.get(i);
                String shape = "B=" + batch + " T=" + t + " H=" + s.heads() + " KVH=" + s.kvHeads() + " D=" + s.headDim()
                        + (window == 0 ? " causal" : " window " + window) + " " + activations.name().toLowerCase();
                double forward = attentionFlops(batch, t, s.heads(), s.headDim(), window);
                cases.add(new KernelCase(id + ".fwd", shape, KernelCase.Work.flops(forward, activations),
                        b -> attention(b, s, batch, t, window, activations, false)));
                cases.add(new KernelCase(id + ".fwdbwd", shape, KernelCase.Work.flops(3.5 * forward, activations),
                        b -> attention(b, s, batch, t, window, activations, true)));
            }
        }
        long nc = n * s.hidden();
        String rowsHidden = rows + "C=" + s.hidden() + " " + activations.name().toLowerCase();
        cases.add(new KernelCase("rmsnorm.fwd", rowsHidden, KernelCase.Work.bytes(2.0 * nc * a + (double) s.hidden() * a + 4 * n), b -> {
            Operands o = new Operands(b);
            Tensor in = o.filled(activations, 0.5f, s.rows(), s.hidden());
            Tensor w = o.filled(activations, 1f, s.hidden());
            Tensor out = o.filled(activations, 0f, s.rows(), s.hidden());
            Tensor rstd = o.filled(DType.F32, 0f, s.rows());
            return o.body(() -> b.rmsnormForward(out, rstd, in, w, 1e-5f));
        }));
        cases.add(new KernelCase("rmsnorm.bwd", rowsHidden,
                KernelCase.Work.bytes(3.0 * nc * a + (double) s.hidden() * (a + 8) + 4 * n), b -> {
            Operands o = new Operands(b);
            Tensor in = o.filled(activations, 0.5f, s.rows(), s.hidden());
            Tensor w = o.filled(activations, 1f, s.hidden());
            Tensor dOut = o.filled(activations, 0.01f, s.rows(), s.hidden());
            Tensor dIn = o.filled(activations, 0f, s.rows(), s.hidden());
            Tensor dW = o.filled(DType.F32, 0f, s.hidden());
            Tensor rstd = o.filled(DType.F32, 1f, s.rows());
            return o.body(() -> b.rmsnormBackward(dIn, dW, dOut, in, w, rstd));
        }));
        // The residual add and the norm after it, unfused (add reads a and b and writes the sum, the
        // norm reads it back) and fused (one pass): the same rows, so the times show the saving.
        for (boolean fused : new boolean[] {false, true}) {
            double bytes = (fused ? 4.0 : 6.0) * nc * a + (double) s.hidden() * a + 4 * n;
            cases.add(new KernelCase(fused ? "add_rmsnorm.fwd" : "add_then_rmsnorm.fwd", rowsHidden, KernelCase.Work.bytes(bytes), b -> {
                Operands o = new Operands(b);
                Tensor x = o.filled(activations, 0.5f, s.rows(), s.hidden());
                Tensor y = o.filled(activations, 0.25f, s.rows(), s.hidden());
                Tensor w = o.filled(activations, 1f, s.hidden());
                Tensor sum = o.filled(activations, 0f, s.rows(), s.hidden());
                Tensor out = o.filled(activations, 0f, s.rows(), s.hidden());
                Tensor rstd = o.filled(DType.F32, 0f, s.rows());
                return o.body(fused ? () -> b.addRmsnormForward(sum, out, rstd, x, y, w, 1e-5f) : () -> {
                    b.add(sum, x, y);
                    b.rmsnormForward(out, rstd, sum, w, 1e-5f);
                });
            }));
        }
        // RoPE over one sequence of N positions: rotating q and k in place (the unfused twin), and
        // fused with the split of the stacked q/k/v rows, which reads every row once and writes q,
        // k rotated and v copied (what the model runs: its product then needs no separate q, k, v).
        long qk = n * (s.heads() + s.kvHeads()) * s.headDim(), qkv = n * qkvRows;
        String ropeShape = rows + "H=" + s.heads() + " KVH=" + s.kvHeads() + " D=" + s.headDim() + " " + activations.name().toLowerCase();
        for (boolean fused : new boolean[] {false, true}) {
            for (boolean backward : new boolean[] {false, true}) {
                String name = (fused ? "qkv_rope" : "rope") + (backward ? ".bwd" : ".fwd");
                // Positions: read once by the fused launch, once per launch by the twin's two.
                double bytes = fused ? 2.0 * qkv * a + 4 * n : 2.0 * qk * a + 8 * n;
                cases.add(new KernelCase(name, ropeShape, KernelCase.Work.bytes(bytes), b -> {
                    Operands o = new Operands(b);
                    Tensor q = o.filled(activations, 0.5f, 1, s.rows(), s.heads(), s.headDim());
                    Tensor k = o.filled(activations, 0.5f, 1, s.rows(), s.kvHeads(), s.headDim());
                    Tensor positions = o.held(b.fromHost(iota(s.rows()), 1, s.rows()));
                    if (fused) {
                        Tensor v = o.filled(activations, 0.5f, 1, s.rows(), s.kvHeads(), s.headDim());
                        Tensor stacked = o.filled(activations, 0.5f, s.rows(), qkvRows);
                        return o.body(backward ? () -> b.qkvRopeBackward(stacked, q, k, v, positions, 1e6f)
                                : () -> b.qkvRopeForward(q, k, v, stacked, positions, 1e6f));
                    }
                    return o.body(backward ? () -> {
                        b.ropeBackward(q, q, positions, 1e6f);
                        b.ropeBackward(k, k, positions, 1e6f);
                    } : () -> {
                        b.ropeForward(q, q, positions, 1e6f);
                        b.ropeForward(k, k, positions, 1e6f);
                    });
                }));
            }
        }
        long nf = n * s.ffn();
        String rowsFfn = rows + "F=" + s.ffn() + " " + activations.name().toLowerCase();
        cases.add(new KernelCase("swiglu.fwd", rowsFfn, KernelCase.Work.bytes(3.0 * nf * a), b -> {
            Operands o = new Operands(b);
            Tensor gate = o.filled(activations, 0.5f, s.rows(), s.ffn());
            Tensor up = o.filled(activations, 0.25f, s.rows(), s.ffn());
            Tensor out = o.filled(activations, 0f, s.rows(), s.ffn());
            return o.body(() -> b.swigluForward(out, gate, up));
        }));
        cases.add(new KernelCase("swiglu.bwd", rowsFfn, KernelCase.Work.bytes(5.0 * nf * a), b -> {
            Operands o = new Operands(b);
            Tensor gate = o.filled(activations, 0.5f, s.rows(), s.ffn());
            Tensor up = o.filled(activations, 0.25f, s.rows(), s.ffn());
            Tensor dOut = o.filled(activations, 0.01f, s.rows(), s.ffn());
            Tensor dGate = o.filled(activations, 0f, s.rows(), s.ffn());
            Tensor dUp = o.filled(activations, 0f, s.rows(), s.ffn());
            return o.body(() -> b.swigluBackward(dGate, dUp, dOut, gate, up));
        }));
        // The fused log-softmax gather reads fp32 logits once (forward) and writes dLogits in the
        // compute dtype (backward), the lm_head's dOut.
        long nv = n * s.vocab();
        String logitsShape = rows + "V=" + s.vocab() + " f32 logits";
        cases.add(new KernelCase("logprob.fwd", logitsShape, KernelCase.Work.bytes(4.0 * nv + 16 * n), b -> {
            Operands o = new Operands(b);
            Tensor logits = o.filled(DType.F32, 0.1f, s.rows(), s.vocab());
            Tensor labels = o.held(b.fromHost(labels(s.rows(), s.vocab()), s.rows()));
            Tensor logp = o.filled(DType.F32, 0f, s.rows());
            Tensor lse = o.filled(DType.F32, 0f, s.rows());
            return o.body(() -> b.logprobForward(logp, lse, logits, labels));
        }));
        cases.add(new KernelCase("logprob.bwd", logitsShape + ", d " + activations.name().toLowerCase(),
                KernelCase.Work.bytes((4.0 + a) * nv + 12 * n), b -> {
            Operands o = new Operands(b);
            Tensor logits = o.filled(DType.F32, 0.1f, s.rows(), s.vocab());
            Tensor labels = o.held(b.fromHost(labels(s.rows(), s.vocab()), s.rows()));
            Tensor lse = o.filled(DType.F32, (float) Math.log(s.vocab()) + 0.1f, s.rows());
            Tensor dLogp = o.filled(DType.F32, -1f / s.rows(), s.rows());
            Tensor dLogits = o.filled(activations, 0f, s.rows(), s.vocab());
            return o.body(() -> b.logprobBackward(dLogits, dLogp, logits, labels, lse));
        }));
        // The per-row logit sums of the model's forward (SPIN's logits/* metrics): one fp32 read.
        cases.add(new KernelCase("row_sum.fwd", logitsShape, KernelCase.Work.bytes(4.0 * nv + 4 * n), b -> {
            Operands o = new Operands(b);
            Tensor logits = o.filled(DType.F32, 0.1f, s.rows(), s.vocab());
            Tensor sums = o.filled(DType.F32, 0f, s.rows());
            return o.body(() -> b.rowSumForward(sums, logits));
        }));
        long p = s.parameters();
        String shard = "P=" + p + " f32";
        // AdamW reads param, grad and both moments and writes param and the moments: 7 fp32 passes.
        cases.add(new KernelCase("adamw.step", shard, KernelCase.Work.bytes(28.0 * p), b -> {
            Operands o = new Operands(b);
            AdamwShard adamw = AdamwShard.of(o, s.parameters());
            return o.body(() -> adamw.step(null, StepGradient.AS_IS));
        }));
        // The step and the bf16 compute copy the next pass multiplies by: a cast after the step reads
        // the master back (4 + 2 bytes more per parameter); written in the step's pass, 2 bytes more.
        for (boolean fused : new boolean[] {false, true}) {
            cases.add(new KernelCase(fused ? "adamw.step_bf16" : "adamw.step_then_cast", shard,
                    KernelCase.Work.bytes((fused ? 30.0 : 34.0) * p), b -> {
                Operands o = new Operands(b);
                AdamwShard adamw = AdamwShard.of(o, s.parameters());
                Tensor copy = o.held(b.allocate(DType.BF16, s.parameters()));
                return o.body(fused ? () -> adamw.step(copy, StepGradient.AS_IS) : () -> {
                    adamw.step(null, StepGradient.AS_IS);
                    b.cast(copy, adamw.param());
                });
            }));
        }
        // The step with clipping's factor (a device scalar) and the gradient's zeroing: a scale pass
        // before the step (read + write) and a fill after it (a write), 12 bytes more per parameter;
        // in the step's pass, the factor applied as it reads and a zero written back, 4 bytes more.
        for (boolean fused : new boolean[] {false, true}) {
            cases.add(new KernelCase(fused ? "adamw.step_clip_zero" : "adamw.step_clip_then_zero", shard,
                    KernelCase.Work.bytes((fused ? 32.0 : 40.0) * p), b -> {
                Operands o = new Operands(b);
                AdamwShard adamw = AdamwShard.of(o, s.parameters());
                StepGradient clipAndZero = new StepGradient(o.filled(DType.F32, 0.5f, 1), true);
                return o.body(fused ? () -> adamw.step(null, clipAndZero) : () -> {
                    b.scale(adamw.grad(), 0.5f);
                    adamw.step(null, StepGradient.AS_IS);
                    b.fill(adamw.grad(), 0f);
                });
            }));
        }
        for (boolean narrowing : new boolean[] {true, false}) {
            cases.add(new KernelCase(narrowing ? "cast.f32_to_bf16" : "cast.bf16_to_f32", "P=" + p,
                    KernelCase.Work.bytes(6.0 * p), b -> {
                Operands o = new Operands(b);
                Tensor f32 = o.filled(DType.F32, 0.5f, s.parameters());
                Tensor bf16 = o.held(b.allocate(DType.BF16, s.parameters()));
                b.cast(bf16, f32);
                return o.body(narrowing ? () -> b.cast(bf16, f32) : () -> b.cast(f32, bf16));
            }));
        }
        return List.copyOf(cases);
    }

    /** The stable names of {@link #all}, which do not depend on the scale or the dtype. */
    public static List<String> names() {
        return all(KernelShapes.mistral7b(KernelShapes.TINY_SCALE), DType.F32).stream().map(KernelCase::name).toList();
    }

    /** The case called {@code name}; an unknown name is an error listing the known ones. */
    public static KernelCase named(String name, KernelShapes s, DType activations) {
        return all(s, activations).stream().filter(c -> c.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no kernel case \"" + name + "\"; known: " + names()));
    }

    /**
     * Attention FLOPs by the usual convention (FlashAttention's, and tools/bench_torch_gpu.py's):
     * 4·B·H·D per visible query-key pair (two products of D multiply-adds), the visible pairs
     * T²/2 causal, T·W - W²/2 with a window W shorter than T. The backward is 2.5x the forward.
     */
    public static double attentionFlops(int batch, int t, int heads, int headDim, int window) {
        double pairs = window == 0 || window >= t ? (double) t * t / 2 : (double) t * window - (double) window * window / 2;
        return 4.0 * batch * heads * headDim * pairs;
    }

    private static KernelCase.Body attention(Backend b, KernelShapes s, int batch, int t, int window, DType activations,
            boolean backward) {
        Operands o = new Operands(b);
        Tensor q = o.filled(activations, 0.1f, batch, t, s.heads(), s.headDim());
        Tensor k = o.filled(activations, 0.1f, batch, t, s.kvHeads(), s.headDim());
        Tensor v = o.filled(activations, 0.2f, batch, t, s.kvHeads(), s.headDim());
        int[] ones = new int[batch * t];
        java.util.Arrays.fill(ones, 1);
        Tensor mask = o.held(b.fromHost(ones, batch, t));
        Tensor out = o.filled(activations, 0f, batch, t, s.heads(), s.headDim());
        Tensor lse = o.filled(DType.F32, 0f, batch, s.heads(), t);
        if (!backward) {
            return o.body(() -> b.attentionForward(out, lse, q, k, v, mask, window));
        }
        Tensor dOut = o.filled(activations, 0.01f, batch, t, s.heads(), s.headDim());
        Tensor dq = o.filled(activations, 0f, batch, t, s.heads(), s.headDim());
        Tensor dk = o.filled(activations, 0f, batch, t, s.kvHeads(), s.headDim());
        Tensor dv = o.filled(activations, 0f, batch, t, s.kvHeads(), s.headDim());
        return o.body(() -> {
            b.attentionForward(out, lse, q, k, v, mask, window);
            b.attentionBackward(dq, dk, dv, dOut, q, k, v, mask, out, lse, window);
        });
    }

    private static int[] iota(int n) {
        int[] values = new int[n];
        for (int i = 0; i < n; i++) {
            values[i] = i;
        }
        return values;
    }

    private static int[] labels(int n, int vocab) {
        int[] values = new int[n];
        for (int i = 0; i < n; i++) {
            values[i] = (int) ((i * 7919L) % vocab);
        }
        return values;
    }

    /** The tensors of one case, closed with its body (and on a failed setup). */
    private static final class Operands {
        private final Backend backend;
        private final List<Tensor> tensors = new ArrayList<>();

        Operands(Backend backend) {
            this.backend = backend;
        }

        Tensor held(Tensor t) {
            tensors.add(t);
            return t;
        }

        /**
         * A tensor of {@code value} everywhere. Constant operands are enough: none of these kernels'
         * running time depends on the values (no data-dependent branches but NaN and mask checks).
         * Backend.fill sets F32 only, so a BF16 tensor is filled through an F32 one and a cast.
         */
        Tensor filled(DType dtype, float value, int... shape) {
            try {
                Tensor t = held(backend.allocate(dtype, shape));
                if (dtype == DType.F32) {
                    backend.fill(t, value);
                } else {
                    try (Tensor wide = backend.allocate(DType.F32, shape)) {
                        backend.fill(wide, value);
                        backend.cast(t, wide);
                    }
                }
                return t;
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        KernelCase.Body body(Runnable run) {
            return new KernelCase.Body() {
                @Override
                public void run() {
                    run.run();
                }

                @Override
                public void close() {
                    Operands.this.close();
                }
            };
        }

        void close() {
            for (Tensor t : tensors) {
                t.close();
            }
            tensors.clear();
        }
    }
}
