package spin.backend.cpu;

import spin.backend.SpinLossStats;
import spin.backend.SpinLossType;

/** SPIN loss math on host arrays of per-sequence log-probs; double precision throughout. */
final class SpinLoss {
    private SpinLoss() {}

    static SpinLossStats forward(float[] policyReal, float[] policyGenerated, float[] opponentReal,
            float[] opponentGenerated, float beta, SpinLossType type) {
        int b = requireSameLength(policyReal, policyGenerated, opponentReal, opponentGenerated);
        double loss = 0, rewardReal = 0, rewardGenerated = 0, accuracy = 0, logpReal = 0, logpGenerated = 0;
        for (int i = 0; i < b; i++) {
            double real = beta * ((double) policyReal[i] - opponentReal[i]);
            double generated = beta * ((double) policyGenerated[i] - opponentGenerated[i]);
            double z = real - generated;
            loss += switch (type) {
                case SIGMOID -> softplus(-z);
                case HINGE -> Math.max(0, 1 - z);
            };
            rewardReal += real;
            rewardGenerated += generated;
            accuracy += real > generated ? 1 : 0;
            logpReal += policyReal[i];
            logpGenerated += policyGenerated[i];
        }
        return new SpinLossStats(loss / b, rewardReal / b, rewardGenerated / b, accuracy / b,
                (rewardReal - rewardGenerated) / b, logpReal / b, logpGenerated / b);
    }

    /** d(lossScale * loss)/d(policyReal[i]); the generated log-prob's gradient is its negation. */
    static float[] backward(float[] policyReal, float[] policyGenerated, float[] opponentReal,
            float[] opponentGenerated, float beta, SpinLossType type, float lossScale) {
        int b = requireSameLength(policyReal, policyGenerated, opponentReal, opponentGenerated);
        float[] grad = new float[b];
        for (int i = 0; i < b; i++) {
            double z = beta * (((double) policyReal[i] - policyGenerated[i]) - ((double) opponentReal[i] - opponentGenerated[i]));
            double dLossDz = switch (type) {
                case SIGMOID -> -1.0 / (1.0 + Math.exp(z));
                case HINGE -> 1 - z > 0 ? -1.0 : 0.0;
            };
            grad[i] = (float) (lossScale * beta * dLossDz / b);
        }
        return grad;
    }

    /** log(1 + e^x) without overflow. */
    private static double softplus(double x) {
        return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
    }

    private static int requireSameLength(float[]... arrays) {
        int n = arrays[0].length;
        for (float[] a : arrays) {
            if (a.length != n) {
                throw new IllegalArgumentException("SPIN loss inputs must all have the batch length " + n + ", got " + a.length);
            }
        }
        if (n == 0) {
            throw new IllegalArgumentException("SPIN loss needs at least one pair");
        }
        return n;
    }
}
