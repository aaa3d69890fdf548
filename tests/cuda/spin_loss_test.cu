// spin_row_sum_forward/backward and spin_spin_loss_forward/backward (kernels/spin_loss.cu) against
// host references: the row sums bit for bit against a double sum in increasing t (the CPU op's
// order); the loss statistics and gradients against SpinLoss.java's formulas evaluated in double.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

// worst_ratio for fp64 results.
double worst_ratio64(const std::vector<double>& expected, const std::vector<double>& actual, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
        const double ratio = std::fabs(actual[i] - expected[i]) / (atol + rtol * std::fabs(expected[i]));
        if (!(ratio <= worst)) worst = std::isnan(ratio) ? INFINITY : ratio;
    }
    return worst;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

void check_row_sum(int B, int T) {
    const std::vector<float> in = random_floats(static_cast<size_t>(B) * T, 3.0f);
    const std::vector<float> d_out = random_floats(B);
    std::vector<double> out_ref(B);
    std::vector<float> out_bits(B);
    for (int b = 0; b < B; ++b) {
        double sum = 0;
        for (int t = 0; t < T; ++t) sum += in[static_cast<size_t>(b) * T + t];
        out_ref[b] = sum;
        out_bits[b] = static_cast<float>(sum);
    }
    float* in_d = device_copy(in);
    float* d_out_d = device_copy(d_out);
    float* out_d = device_poisoned<float>(B);
    float* d_in_d = device_poisoned<float>(in.size());
    must(spin_row_sum_forward(nullptr, out_d, in_d, B, T), "spin_row_sum_forward");
    must(spin_row_sum_backward(nullptr, d_in_d, d_out_d, B, T), "spin_row_sum_backward");
    const std::vector<float> out = host_copy(out_d, B);
    const std::vector<float> d_in = host_copy(d_in_d, in.size());
    size_t out_wrong = 0, d_in_wrong = 0;
    for (int b = 0; b < B; ++b) out_wrong += !same_bits(out[b], out_bits[b]);
    for (size_t i = 0; i < d_in.size(); ++i) d_in_wrong += !same_bits(d_in[i], d_out[i / T]);
    const double ratio = worst_ratio(out_ref, out, 0, 1e-6);
    report(out_wrong == 0 && d_in_wrong == 0 && ratio <= 1,
           "spin_row_sum_forward/backward B=%d T=%d: worst ratio %.2f, %zu sums differ from the double sum in "
           "increasing t, %zu gradients wrong",
           B, T, ratio, out_wrong, d_in_wrong);
    for (float* p : {in_d, d_out_d, out_d, d_in_d}) cudaFree(p);
}

struct Pairs {
    std::vector<float> policy_real, policy_generated, opponent_real, opponent_generated;
};

// Summed sequence log-probs around -200, the policy a little off the opponent, so that z spans
// both sides of the hinge's margin and the sigmoid's middle.
Pairs make_pairs(int B) {
    Pairs p;
    for (int i = 0; i < B; ++i) {
        const float opponent_real = -200.0f + 50.0f * uniform();
        const float opponent_generated = -200.0f + 50.0f * uniform();
        p.opponent_real.push_back(opponent_real);
        p.opponent_generated.push_back(opponent_generated);
        p.policy_real.push_back(opponent_real + 8.0f * uniform());
        p.policy_generated.push_back(opponent_generated + 8.0f * uniform());
    }
    return p;
}

double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

void check_spin_loss(int B, float beta, int type, float loss_scale) {
    const Pairs p = make_pairs(B);
    // SpinLoss.forward and backward, each formula in double as written there.
    double loss = 0, reward_real = 0, reward_generated = 0, accuracy = 0, logp_real = 0, logp_generated = 0;
    std::vector<double> grad_ref(B);
    for (int i = 0; i < B; ++i) {
        const double real = beta * (static_cast<double>(p.policy_real[i]) - p.opponent_real[i]);
        const double generated = beta * (static_cast<double>(p.policy_generated[i]) - p.opponent_generated[i]);
        const double z = real - generated;
        loss += type == SPIN_LOSS_SIGMOID ? softplus(-z) : std::fmax(0.0, 1 - z);
        reward_real += real;
        reward_generated += generated;
        accuracy += real > generated ? 1 : 0;
        logp_real += p.policy_real[i];
        logp_generated += p.policy_generated[i];
        const double zb = beta * ((static_cast<double>(p.policy_real[i]) - p.policy_generated[i]) -
                                  (static_cast<double>(p.opponent_real[i]) - p.opponent_generated[i]));
        const double d_loss_d_z = type == SPIN_LOSS_SIGMOID ? -1.0 / (1.0 + std::exp(zb)) : (1 - zb > 0 ? -1.0 : 0.0);
        const float scale_beta = loss_scale * beta;
        grad_ref[i] = scale_beta * d_loss_d_z / B;
    }
    const std::vector<double> stats_ref = {loss / B,         reward_real / B, reward_generated / B,
                                           accuracy / B,     (reward_real - reward_generated) / B,
                                           logp_real / B,    logp_generated / B};

    float* pr = device_copy(p.policy_real);
    float* pg = device_copy(p.policy_generated);
    float* orr = device_copy(p.opponent_real);
    float* og = device_copy(p.opponent_generated);
    double* stats_d = device_poisoned<double>(SPIN_LOSS_STATS);
    float* d_real_d = device_poisoned<float>(B);
    float* d_generated_d = device_poisoned<float>(B);
    must(spin_spin_loss_forward(nullptr, stats_d, pr, pg, orr, og, B, beta, type), "spin_spin_loss_forward");
    must(spin_spin_loss_backward(nullptr, d_real_d, d_generated_d, pr, pg, orr, og, B, beta, type, loss_scale),
         "spin_spin_loss_backward");
    const std::vector<double> stats = host_copy(stats_d, SPIN_LOSS_STATS);
    const std::vector<float> d_real = host_copy(d_real_d, B);
    const std::vector<float> d_generated = host_copy(d_generated_d, B);
    size_t not_negated = 0;
    for (int i = 0; i < B; ++i) not_negated += !same_bits(d_generated[i], -d_real[i]);
    // Same order, same formulas: only exp/log1p's last bits may differ between libms.
    const double stats_ratio = worst_ratio64(stats_ref, stats, 1e-15, 1e-13);
    // Rounded once from double: the float nearest the reference, give or take that last bit.
    const double grad_ratio = worst_ratio(grad_ref, d_real, 1e-30, 2.5e-7);
    report(stats_ratio <= 1 && grad_ratio <= 1 && not_negated == 0,
           "spin_spin_loss_forward/backward B=%d beta=%g %s lossScale=%g: worst ratios stats %.2f dPolicyReal %.2f, "
           "%zu dPolicyGenerated not -dPolicyReal (loss %.6f, accuracy %.3f)",
           B, beta, type == SPIN_LOSS_SIGMOID ? "sigmoid" : "hinge", loss_scale, stats_ratio, grad_ratio, not_negated,
           stats[0], stats[3]);
    for (void* q : {static_cast<void*>(pr), static_cast<void*>(pg), static_cast<void*>(orr), static_cast<void*>(og),
                    static_cast<void*>(stats_d), static_cast<void*>(d_real_d), static_cast<void*>(d_generated_d)}) {
        cudaFree(q);
    }
}

void check_spin_loss_arguments() {
    float* f = device_poisoned<float>(4);
    double* stats = device_poisoned<double>(SPIN_LOSS_STATS);
    const bool ok = spin_spin_loss_forward(nullptr, stats, f, f, f, f, 4, 0.1f, 2) == SPIN_ERR_INVALID_ARG &&
                    spin_spin_loss_forward(nullptr, nullptr, f, f, f, f, 4, 0.1f, 0) == SPIN_ERR_INVALID_ARG &&
                    spin_spin_loss_backward(nullptr, f, nullptr, f, f, f, f, 4, 0.1f, 1, 1.0f) == SPIN_ERR_INVALID_ARG &&
                    spin_spin_loss_backward(nullptr, f, f, f, f, f, f, -1, 0.1f, 1, 1.0f) == SPIN_ERR_INVALID_ARG &&
                    spin_row_sum_forward(nullptr, f, nullptr, 1, 4) == SPIN_ERR_INVALID_ARG &&
                    spin_row_sum_backward(nullptr, f, f, 1, -4) == SPIN_ERR_INVALID_ARG &&
                    spin_row_sum_forward(nullptr, nullptr, nullptr, 0, 4) == SPIN_OK &&
                    spin_row_sum_backward(nullptr, nullptr, nullptr, 4, 0) == SPIN_OK &&
                    spin_spin_loss_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 0.1f, 0) == SPIN_OK;
    report(ok, "spin_row_sum / spin_spin_loss reject NULL tensors, bad sizes and types, accept empty problems");
    // T = 0: every row sums to 0 (the input may then be NULL).
    must(spin_row_sum_forward(nullptr, f, nullptr, 4, 0), "spin_row_sum_forward");
    const std::vector<float> zeros = host_copy(f, 4);
    report(zeros[0] == 0 && zeros[1] == 0 && zeros[2] == 0 && zeros[3] == 0, "spin_row_sum_forward T=0 gives zeros");
    cudaFree(f);
    cudaFree(stats);
}

}  // namespace

SPIN_KERNEL_CHECKS(spin_loss) {
    // One row, one long row, rows past the 128-thread block, a single column.
    const int shapes[][2] = {{1, 1}, {1, 4097}, {3, 257}, {130, 17}, {300, 1}};
    for (const auto& shape : shapes) check_row_sum(shape[0], shape[1]);
    for (int type : {SPIN_LOSS_SIGMOID, SPIN_LOSS_HINGE}) {
        check_spin_loss(1, 0.1f, type, 1.0f);
        check_spin_loss(7, 0.1f, type, 0.25f);
        check_spin_loss(300, 0.5f, type, 1.0f);
        check_spin_loss(2000, 0.1f, type, 0.125f);
    }
    check_spin_loss_arguments();
}
