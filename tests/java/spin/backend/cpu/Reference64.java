package spin.backend.cpu;

/**
 * Naive fp64 re-implementations of the Mistral ops, written straight from the formulas (HF
 * semantics) without the CPU backend's blocking, online softmax or fused passes. Tests compare the
 * backend's fp32 forward against these and its backward against their finite differences.
 */
final class Reference64 {
    private Reference64() {}

    static double[] embedding(int[] ids, double[] table, int c) {
        double[] out = new double[ids.length * c];
        for (int n = 0; n < ids.length; n++) {
            System.arraycopy(table, ids[n] * c, out, n * c, c);
        }
        return out;
    }

    /** in[N,I] · w[O,I]^T. */
    static double[] matmul(double[] in, double[] w, int rows, int inF, int outF) {
        double[] out = new double[rows * outF];
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < outF; o++) {
                double s = 0;
                for (int i = 0; i < inF; i++) {
                    s += in[r * inF + i] * w[o * inF + i];
                }
                out[r * outF + o] = s;
            }
        }
        return out;
    }

    static double[] rmsnorm(double[] in, double[] w, int rows, int c, double eps) {
        double[] out = new double[in.length];
        for (int r = 0; r < rows; r++) {
            double ms = 0;
            for (int j = 0; j < c; j++) {
                ms += in[r * c + j] * in[r * c + j];
            }
            double inv = 1 / Math.sqrt(ms / c + eps);
            for (int j = 0; j < c; j++) {
                out[r * c + j] = in[r * c + j] * inv * w[j];
            }
        }
        return out;
    }

    /** Rotate-half RoPE on [B,T,H,D] with positions [B,T]. */
    static double[] rope(double[] in, int[] positions, int heads, int d, double theta) {
        double[] out = new double[in.length];
        int half = d / 2;
        for (int bt = 0; bt < positions.length; bt++) {
            for (int h = 0; h < heads; h++) {
                int base = (bt * heads + h) * d;
                for (int i = 0; i < half; i++) {
                    double angle = positions[bt] / Math.pow(theta, 2.0 * i / d);
                    double c = Math.cos(angle), s = Math.sin(angle);
                    double x1 = in[base + i], x2 = in[base + i + half];
                    out[base + i] = x1 * c - x2 * s;
                    out[base + i + half] = x2 * c + x1 * s;
                }
            }
        }
        return out;
    }

    /**
     * Attention by materialising every score row: query i of sequence b sees key j when j <= i,
     * mask[b][j] != 0 and (window == 0 or i - j < window). Output rows with no visible key are 0.
     */
    static double[] attention(double[] q, double[] k, double[] v, int[] mask, int b, int t, int h, int kvh, int d,
            int window) {
        double[] out = new double[q.length];
        double scale = 1 / Math.sqrt(d);
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                int g = hi / (h / kvh);
                for (int i = 0; i < t; i++) {
                    double[] scores = new double[t];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < t; j++) {
                        boolean visible = j <= i && mask[bi * t + j] != 0 && (window == 0 || i - j < window);
                        if (!visible) {
                            scores[j] = Double.NEGATIVE_INFINITY;
                            continue;
                        }
                        double s = 0;
                        for (int c = 0; c < d; c++) {
                            s += q[((bi * t + i) * h + hi) * d + c] * k[((bi * t + j) * kvh + g) * d + c];
                        }
                        scores[j] = s * scale;
                        max = Math.max(max, scores[j]);
                    }
                    if (max == Double.NEGATIVE_INFINITY) {
                        continue;
                    }
                    double denominator = 0;
                    for (int j = 0; j < t; j++) {
                        denominator += Math.exp(scores[j] - max);
                    }
                    for (int j = 0; j < t; j++) {
                        double p = Math.exp(scores[j] - max) / denominator;
                        for (int c = 0; c < d; c++) {
                            out[((bi * t + i) * h + hi) * d + c] += p * v[((bi * t + j) * kvh + g) * d + c];
                        }
                    }
                }
            }
        }
        return out;
    }

    static double[] swiglu(double[] gate, double[] up) {
        double[] out = new double[gate.length];
        for (int i = 0; i < gate.length; i++) {
            out[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
        }
        return out;
    }

    /** log_softmax(logits[n])[labels[n]], 0 for ignored labels. */
    static double[] logprob(double[] logits, int[] labels, int vocab, int ignoreIndex) {
        double[] out = new double[labels.length];
        for (int n = 0; n < labels.length; n++) {
            if (labels[n] == ignoreIndex) {
                continue;
            }
            double sum = 0;
            for (int j = 0; j < vocab; j++) {
                sum += Math.exp(logits[n * vocab + j]);
            }
            out[n] = logits[n * vocab + labels[n]] - Math.log(sum);
        }
        return out;
    }

    static double sigmoidSpinLoss(double[] pr, double[] pg, double[] or, double[] og, double beta) {
        double loss = 0;
        for (int i = 0; i < pr.length; i++) {
            double z = beta * ((pr[i] - pg[i]) - (or[i] - og[i]));
            loss += -Math.log(1 / (1 + Math.exp(-z)));
        }
        return loss / pr.length;
    }

    static double hingeSpinLoss(double[] pr, double[] pg, double[] or, double[] og, double beta) {
        double loss = 0;
        for (int i = 0; i < pr.length; i++) {
            double z = beta * ((pr[i] - pg[i]) - (or[i] - og[i]));
            loss += Math.max(0, 1 - z);
        }
        return loss / pr.length;
    }
}
