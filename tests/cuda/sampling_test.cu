// spin_argmax_rows and spin_sample_rows (kernels/sampling.cu) against host references written
// here from Backend.sampleRows' rule with sorts instead of searches: argmax by a plain scan,
// sampling by sorting the scores for top-k and the candidates for top-p. The reference sums in
// another order than the kernel, so a row may differ where the draw or the top-p cut lies within
// rounding of a boundary between two tokens; the reference measures that distance, and a
// difference counts as wrong unless that distance is below 1e-10 of the row's weight (sums of up
// to 32000 weights differ by far less; a random row lands that close with a probability of about
// 1e-10; exactly tied rows are summed exactly by both).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "harness.h"

using namespace spin_test;

namespace {

void check_argmax(int S, int V) {
    std::vector<float> logits = random_floats(static_cast<size_t>(S) * V, 10.0f);
    // Row 0: the maximum twice (the first must win); row 1: all -inf; row 2: a NaN after the maximum.
    if (S > 0 && V > 3) {
        logits[V - 1] = 100.0f;
        logits[V / 2] = 100.0f;
    }
    if (S > 1) {
        for (int v = 0; v < V; ++v) logits[static_cast<size_t>(V) + v] = -INFINITY;
    }
    if (S > 2) logits[2 * static_cast<size_t>(V) + V - 1] = NAN;
    std::vector<int32_t> expected(S);
    for (int s = 0; s < S; ++s) {
        int best = 0;
        bool nan = false;
        for (int v = 0; v < V; ++v) {
            const float x = logits[static_cast<size_t>(s) * V + v];
            if (std::isnan(x)) nan = true;
            else if (x > logits[static_cast<size_t>(s) * V + best] || std::isnan(logits[static_cast<size_t>(s) * V + best])) best = v;
        }
        expected[s] = nan ? -1 : best;
    }
    float* logits_d = device_copy(logits);
    int32_t* out_d = device_poisoned<int32_t>(S);
    must(spin_argmax_rows(nullptr, out_d, logits_d, S, V), "spin_argmax_rows");
    const std::vector<int32_t> out = host_copy(out_d, S);
    int wrong = 0;
    for (int s = 0; s < S; ++s) wrong += out[s] != expected[s];
    report(wrong == 0, "spin_argmax_rows S=%d V=%d: %d rows wrong", S, V, wrong);
    cudaFree(logits_d);
    cudaFree(out_d);
}

struct Rule {
    double temperature;
    double top_p;
    int top_k;
    double penalty;
};

// One row of spin_sample_rows' inputs.
struct Row {
    std::vector<float> logits;
    std::vector<int32_t> history;  // L entries; the first `length` count
    int length;
    uint64_t stream;
    int draw;
};

uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// SplitMix64 stepped draw + 1 times from `stream`, as java.util.SplittableRandom's algorithm does.
double splitmix_uniform(uint64_t stream, int draw) {
    uint64_t state = stream;
    for (int i = 0; i <= draw; ++i) state += 0x9E3779B97F4A7C15ull;
    return static_cast<double>(mix(state) >> 11) / 9007199254740992.0;
}

struct Expected {
    int token;
    double margin;  // distance of the draw and of the top-p cut to the nearest boundary, over the row's weight
};

Expected reference(const Row& row, int V, const Rule& rule) {
    std::vector<double> score(V);
    for (int v = 0; v < V; ++v) {
        if (std::isnan(row.logits[v])) return {-1, INFINITY};
        score[v] = row.logits[v];
    }
    if (rule.penalty != 1) {
        std::vector<bool> seen(V, false);
        const int length = std::min(std::max(row.length, 0), static_cast<int>(row.history.size()));
        for (int j = 0; j < length; ++j) {
            const int t = row.history[j];
            if (t < 0 || t >= V || seen[t]) continue;
            seen[t] = true;
            score[t] = score[t] < 0 ? score[t] * rule.penalty : score[t] / rule.penalty;
        }
    }
    const int best = static_cast<int>(std::max_element(score.begin(), score.end()) - score.begin());
    const double max = score[best];
    if (rule.temperature == 0 || std::isinf(max)) return {best, INFINITY};
    double threshold = -INFINITY;
    if (rule.top_k > 0 && rule.top_k < V) {
        std::vector<double> sorted = score;
        std::sort(sorted.begin(), sorted.end(), std::greater<double>());
        threshold = sorted[rule.top_k - 1];
    }
    std::vector<double> weight(V);
    double total = 0;
    for (int v = 0; v < V; ++v) {
        weight[v] = score[v] < threshold ? 0 : score[v] == max ? 1 : std::exp((score[v] - max) * (1 / rule.temperature));
        total += weight[v];
    }
    double margin = INFINITY;
    if (rule.top_p < 1) {
        const double limit = rule.top_p * total, dropped = total * (1 - rule.top_p) / V;
        std::vector<int> ranked;
        for (int v = 0; v < V; ++v) {
            if (weight[v] > dropped) ranked.push_back(v);
            else weight[v] = 0;
        }
        std::sort(ranked.begin(), ranked.end(), [&](int a, int b) {
            const float wa = static_cast<float>(weight[a]), wb = static_cast<float>(weight[b]);
            return wa != wb ? wa > wb : a < b;
        });
        double before = 0;
        for (int v : ranked) {
            margin = std::min(margin, std::fabs(before - limit) / total);
            if (before < limit) before += weight[v];
            else weight[v] = 0;
        }
    }
    const double kept = std::accumulate(weight.begin(), weight.end(), 0.0);
    const double u = splitmix_uniform(row.stream, row.draw) * kept;
    double running = 0;
    int token = -1, last = -1;
    for (int v = 0; v < V; ++v) {
        if (weight[v] == 0) continue;
        running += weight[v];
        last = v;
        margin = std::min(margin, std::fabs(u - running) / kept);
        if (token < 0 && u < running) token = v;
    }
    return {token < 0 ? last : token, margin};
}

struct Outcome {
    int wrong;
    int near_boundary;
};

// Runs spin_sample_rows over `rows` (history rows padded to the longest) and compares each row
// with the reference; the ids the kernel chose come back in `chosen`.
Outcome check_rows(const std::vector<Row>& rows, int V, const Rule& rule, std::vector<int32_t>* chosen = nullptr) {
    const int S = static_cast<int>(rows.size());
    int L = 0;
    for (const Row& r : rows) L = std::max(L, static_cast<int>(r.history.size()));
    std::vector<float> logits;
    std::vector<int32_t> history(static_cast<size_t>(S) * L, 0), lengths, streams, draws;
    for (int s = 0; s < S; ++s) {
        logits.insert(logits.end(), rows[s].logits.begin(), rows[s].logits.end());
        std::copy(rows[s].history.begin(), rows[s].history.end(), history.begin() + static_cast<size_t>(s) * L);
        lengths.push_back(rows[s].length);
        streams.push_back(static_cast<int32_t>(static_cast<uint32_t>(rows[s].stream)));
        streams.push_back(static_cast<int32_t>(static_cast<uint32_t>(rows[s].stream >> 32)));
        draws.push_back(rows[s].draw);
    }
    size_t scratch_bytes = 0;
    must(spin_sample_rows_scratch_bytes(S, V, &scratch_bytes), "spin_sample_rows_scratch_bytes");
    float* logits_d = device_copy(logits);
    int32_t* history_d = L > 0 ? device_copy(history) : nullptr;
    int32_t* lengths_d = device_copy(lengths);
    int32_t* streams_d = device_copy(streams);
    int32_t* draws_d = device_copy(draws);
    double* scratch_d = device_poisoned<double>(scratch_bytes / sizeof(double) + 1);
    int32_t* out_d = device_poisoned<int32_t>(S);
    must(spin_sample_rows(nullptr, out_d, scratch_d, logits_d, S, V, streams_d, draws_d, history_d, lengths_d, L,
                          rule.temperature, rule.top_p, rule.top_k, rule.penalty),
         "spin_sample_rows");
    const std::vector<int32_t> out = host_copy(out_d, S);
    Outcome outcome{0, 0};
    for (int s = 0; s < S; ++s) {
        const Expected e = reference(rows[s], V, rule);
        if (out[s] == e.token) continue;
        if (e.margin < 1e-10) {
            ++outcome.near_boundary;
        } else {
            ++outcome.wrong;
            if (outcome.wrong <= 3) std::printf("     row %d: kernel %d, reference %d (margin %g)\n", s, out[s], e.token, e.margin);
        }
    }
    if (chosen) *chosen = out;
    for (void* p : {static_cast<void*>(logits_d), static_cast<void*>(history_d), static_cast<void*>(lengths_d),
                    static_cast<void*>(streams_d), static_cast<void*>(draws_d), static_cast<void*>(scratch_d),
                    static_cast<void*>(out_d)}) {
        cudaFree(p);
    }
    return outcome;
}

uint64_t next_stream(uint64_t& seed) {
    seed += 0x9E3779B97F4A7C15ull;
    return mix(seed);
}

// S rows of random logits with random histories (repeated ids, one id outside [0, V) and one
// length past the row's end, which the kernel skips and clamps as the reference does) and
// streams; the early rows are edge cases: ties at the maximum, a row of -inf, a row with -inf
// holes, a +inf, a NaN.
std::vector<Row> random_rows(int S, int V, float scale, uint64_t seed) {
    std::vector<Row> rows(S);
    for (int s = 0; s < S; ++s) {
        Row& r = rows[s];
        r.logits = random_floats(V, scale);
        const int L = 1 + static_cast<int>(next_stream(seed) % 40);
        for (int j = 0; j < L; ++j) r.history.push_back(static_cast<int32_t>(next_stream(seed) % static_cast<uint64_t>(V)));
        r.length = static_cast<int>(next_stream(seed) % (L + 1));
        r.stream = next_stream(seed);
        r.draw = static_cast<int>(next_stream(seed) % 1000);
    }
    if (S > 1 && V > 3) {
        rows[1].logits[V / 3] = rows[1].logits[V - 1] = 3 * scale;
    }
    if (S > 2) std::fill(rows[2].logits.begin(), rows[2].logits.end(), -INFINITY);
    if (S > 3) {
        for (int v = 0; v < V; v += 3) rows[3].logits[v] = -INFINITY;
        rows[3].history.push_back(V + 5);
        rows[3].history.push_back(-2);
        rows[3].length = static_cast<int>(rows[3].history.size()) + 7;
    }
    if (S > 4) rows[4].logits[V / 2] = INFINITY;
    if (S > 5) rows[5].logits[V - 1] = NAN;
    return rows;
}

void check_rule(int S, int V, const Rule& rule, const char* what) {
    const std::vector<Row> rows = random_rows(S, V, 4.0f, 7u * V + S);
    const Outcome o = check_rows(rows, V, rule);
    report(o.wrong == 0, "spin_sample_rows %s S=%d V=%d (T=%g top_p=%g top_k=%d penalty=%g): %d rows wrong, %d within rounding of a boundary",
           what, S, V, rule.temperature, rule.top_p, rule.top_k, rule.penalty, o.wrong, o.near_boundary);
}

// One row drawn many times (draw numbers 0..S-1 of one stream): the kernel follows the inverse
// CDF across the whole distribution, not only at the few draws of random rows.
void check_many_draws(int S, int V, const Rule& rule) {
    std::vector<Row> rows = random_rows(1, V, 2.0f, 99);
    rows[0].length = 0;
    for (int s = 1; s < S; ++s) {
        rows.push_back(rows[0]);
        rows.back().draw = s;
    }
    const Outcome o = check_rows(rows, V, rule);
    report(o.wrong == 0, "spin_sample_rows one row, %d draws, V=%d top_p=%g top_k=%d: %d wrong, %d within rounding", S, V,
           rule.top_p, rule.top_k, o.wrong, o.near_boundary);
}

// Top-p with exact ties: four tokens share the largest logit, far apart (so in different tiles of
// the block's scans), the others -inf. top_p = 0.5 keeps exactly the two smallest ids of the four
// (the mass before the third is 2 of 4, not below the limit); every draw must land on one of them,
// and both must be drawn.
void check_top_p_ties() {
    const int V = 2000, TIE_DRAWS = 32;
    std::vector<Row> rows;
    Row r;
    r.logits.assign(V, -INFINITY);
    for (int v : {3, 700, 701, 1999}) r.logits[v] = 1.5f;
    r.length = 0;
    r.stream = 0x0123456789abcdefull;
    for (int d = 0; d < TIE_DRAWS; ++d) {
        r.draw = d;
        rows.push_back(r);
    }
    std::vector<int32_t> chosen;
    const Outcome o = check_rows(rows, V, {1.0, 0.5, 0, 1.0}, &chosen);
    const int first = static_cast<int>(std::count(chosen.begin(), chosen.end(), 3));
    const int second = static_cast<int>(std::count(chosen.begin(), chosen.end(), 700));
    report(o.wrong == 0 && o.near_boundary == 0 && first + second == TIE_DRAWS && first > 0 && second > 0,
           "spin_sample_rows top-p ties at the cut keep the smallest ids: %d wrong, ids 3 and 700 drawn %d and %d times of %d",
           o.wrong, first, second, TIE_DRAWS);
}

// The penalty's two branches and its once-per-id rule, where each decides the greedy choice:
// a negative logit is multiplied (-1.0 * 1.5 < -1.2), a positive one divided (2.0 / 1.5 < 1.9),
// and an id named several times is penalised once (2.0 / 1.5 > 1.0, 2.0 / 1.5^3 would not be;
// named twice, still 2.0 / 1.5 < 1.9).
void check_penalty_signs() {
    const std::vector<std::vector<float>> logits = {{-1.0f, -1.2f, -3.0f}, {2.0f, 1.9f, -5.0f}, {2.0f, 1.0f, -5.0f},
                                                    {2.0f, 1.9f, -5.0f}};
    const std::vector<std::vector<int32_t>> history = {{0}, {0}, {0, 0, 0}, {0, 0}};
    const int expected[] = {1, 1, 0, 1};
    std::vector<Row> rows;
    for (size_t i = 0; i < logits.size(); ++i) rows.push_back({logits[i], history[i], static_cast<int>(history[i].size()), 0, 0});
    std::vector<int32_t> chosen;
    const Outcome o = check_rows(rows, 3, {0.0, 1.0, 0, 1.5}, &chosen);
    int wrong = o.wrong;
    for (size_t i = 0; i < rows.size(); ++i) wrong += chosen[i] != expected[i];
    report(wrong == 0, "spin_sample_rows penalises negative logits by multiplying, positive ones by dividing, each id once: %d wrong",
           wrong);
}

// A row's token is the same sampled alone as among others, and the same on a second run.
void check_batch_independence(int S, int V) {
    const Rule rule{0.9, 0.8, 50, 1.2};
    const std::vector<Row> rows = random_rows(S, V, 4.0f, 5);
    std::vector<int32_t> together, again;
    check_rows(rows, V, rule, &together);
    check_rows(rows, V, rule, &again);
    int differ = 0;
    for (int s = 0; s < S; ++s) {
        std::vector<int32_t> alone;
        check_rows({rows[s]}, V, rule, &alone);
        differ += alone[0] != together[s] || again[s] != together[s];
    }
    report(differ == 0, "spin_sample_rows S=%d V=%d: %d rows differ alone, in the batch or on a second run", S, V, differ);
}

void check_rejects_bad_arguments() {
    int32_t one = 0;
    float logit = 0;
    double scratch[2];
    const auto call = [&](int S, int V, int L, double t, double p, int k, double penalty, const int32_t* streams) {
        return spin_sample_rows(nullptr, &one, scratch, &logit, S, V, streams, &one, &one, &one, L, t, p, k, penalty);
    };
    report(call(1, 0, 0, 1, 1, 0, 1, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects V=0");
    report(call(1, 1, -1, 1, 1, 0, 1, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects L<0");
    report(call(1, 1, 0, -1, 1, 0, 1, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects a negative temperature");
    report(call(1, 1, 0, INFINITY, 1, 0, 1, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects an infinite temperature");
    report(call(1, 1, 0, 1, 0, 0, 1, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects top_p = 0");
    report(call(1, 1, 0, 1, 1.5, 0, 1, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects top_p > 1");
    report(call(1, 1, 0, 1, 1, -1, 1, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects top_k < 0");
    report(call(1, 1, 0, 1, 1, 0, 0, &one) == SPIN_ERR_INVALID_ARG, "spin_sample_rows rejects a penalty of 0");
    report(call(1, 1, 0, 1, 1, 0, 1, nullptr) == SPIN_ERR_INVALID_ARG, "spin_sample_rows needs streams when sampling");
    report(call(0, 4, 0, 1, 1, 0, 1, nullptr) == SPIN_OK, "spin_sample_rows does nothing for S=0");
}

}  // namespace

SPIN_KERNEL_CHECKS(sampling) {
    check_argmax(1, 1);
    check_argmax(3, 5);
    check_argmax(5, 257);
    check_argmax(4, 32000);
    report(spin_argmax_rows(nullptr, nullptr, nullptr, 2, 0) == SPIN_ERR_INVALID_ARG, "spin_argmax_rows rejects V=0");
    report(spin_argmax_rows(nullptr, nullptr, nullptr, 0, 4) == SPIN_OK, "spin_argmax_rows does nothing for S=0");

    check_rule(6, 1, {1.0, 0.9, 1, 1.3}, "one token");
    check_rule(8, 5, {0.0, 1.0, 0, 1.5}, "greedy with a penalty");
    check_rule(8, 257, {1.0, 1.0, 0, 1.0}, "temperature only");
    check_rule(8, 1000, {0.7, 1.0, 1, 1.0}, "top-k 1");
    check_rule(8, 1000, {1.3, 1.0, 40, 1.2}, "top-k 40");
    check_rule(8, 1000, {1.0, 1.0, 999, 1.0}, "top-k V-1");
    check_rule(8, 1000, {1.0, 1.0, 5000, 1.0}, "top-k > V");
    check_rule(8, 1000, {0.8, 0.9, 0, 1.0}, "top-p 0.9");
    check_rule(8, 1000, {1.0, 1e-6, 0, 1.0}, "top-p near 0");
    check_rule(8, 1000, {0.8, 0.5, 20, 0.7}, "top-k, top-p and a penalty below 1");
    check_rule(8, 1000, {5e-324, 0.9, 0, 1.0}, "a temperature whose reciprocal overflows");
    check_rule(8, 1000, {1e300, 0.9, 0, 1.0}, "a huge temperature");
    check_rule(6, 32000, {1.0, 0.95, 0, 1.1}, "large vocabulary, top-p");
    check_rule(6, 32000, {0.6, 1.0, 50, 1.1}, "large vocabulary, top-k");
    check_many_draws(32, 300, {1.0, 0.9, 0, 1.0});
    check_many_draws(32, 300, {1.0, 1.0, 30, 1.0});
    check_top_p_ties();
    check_penalty_signs();
    check_batch_independence(7, 777);
    check_rejects_bad_arguments();
}
