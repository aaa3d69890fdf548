// Token choice on the device, one block per row of logits [S,V] fp32; out [S] int32. Decoding then
// reads S token ids back instead of S rows of V logits.
//   spin_argmax_rows: the first index of the largest value, as torch.argmax and
//     CpuBackend.argmaxRows choose it (a row of -inf gives 0), or -1 where the row holds a NaN.
//   spin_sample_rows: Backend.sampleRows (java/spin/backend/Backend.java states the semantics;
//     java/spin/backend/cpu/Sampling.java is the host reference): the repetition penalty, then
//     greedy, or temperature, top-k, top-p and an inverse-CDF draw from the row's own
//     counter-based SplitMix64 stream, all in double.
//
// spin_sample_rows keeps a row of V doubles in scratch (the scores, then in place the weights), so
// that its passes read them instead of recomputing exp, and a bitmap of the row's penalised ids.
// Every sum has a fixed order (per-thread partials, then block_sum; running sums in id order over
// one contiguous chunk per thread after a block scan of the chunks' sums) and the only atomics are
// integer ORs into the bitmap, so a row's token does not depend on the schedule or on the other
// rows. Without a sort:
//   top-k: a radix select of the k-th largest score, RADIX_BITS per pass from the top of an
//     order-preserving key, each thread counting digits into its own column;
//   top-p: the same radix select over the float bits of the weights, measuring mass instead of
//     counting, finds the key at which the mass from the top reaches the limit; the candidates
//     tied at that key survive in id order while the mass before them stays below the limit.
// The sums run in another order than the host's, and CUDA's exp may differ from Java's by an ulp:
// a device chooses the CPU's token except where the draw or the top-p cut lies within rounding of
// a boundary between two tokens.
#include <climits>
#include <cstdint>

#include "block_reduce.cuh"
#include "internal.h"

namespace {

constexpr int ARGMAX_BLOCK = 256;
constexpr int SAMPLE_BLOCK = 256;
constexpr int SAMPLE_WARPS = SAMPLE_BLOCK / WARP_SIZE;
constexpr unsigned FULL_MASK = 0xffffffffu;
// SplitMix64's increment, as java/spin/backend/SplitMix64.java.
constexpr uint64_t GOLDEN_GAMMA = 0x9E3779B97F4A7C15ull;
constexpr int RADIX_BITS = 4;
constexpr int RADIX_BINS = 1 << RADIX_BITS;
constexpr int BITMAP_WORD_BITS = 32;

// (value, index) candidates; index -1 is "none yet". The better of two is the valid one, then a
// NaN (so that a NaN anywhere reaches the block's result), then the larger value, then the smaller
// index: the first occurrence of the maximum.
template <class T>
__device__ __forceinline__ bool better(T value, int index, T than_value, int than_index) {
    if (index < 0) return false;
    if (than_index < 0) return true;
    const bool nan = value != value, than_nan = than_value != than_value;
    if (nan != than_nan) return nan;
    if (!nan && value != than_value) return value > than_value;
    return index < than_index;
}

// The block's best candidate by `better`, left in every thread's value and index. A fixed tree in
// shared memory (values, indices: BLOCK entries each, free again after the call) combines them,
// so the result does not depend on the schedule.
template <int BLOCK, class T>
__device__ void block_argmax(T& value, int& index, T* values, int* indices) {
    const int thread = threadIdx.x;
    values[thread] = value;
    indices[thread] = index;
    __syncthreads();
    for (int half = BLOCK / 2; half > 0; half /= 2) {
        if (thread < half) {
            const int other = thread + half;
            if (better(values[other], indices[other], values[thread], indices[thread])) {
                values[thread] = values[other];
                indices[thread] = indices[other];
            }
        }
        __syncthreads();
    }
    value = values[0];
    index = indices[0];
    __syncthreads();
}

// The smallest (LARGEST: the largest) `value` over the block, returned to every thread;
// warp_values holds BLOCK / 32 ints of shared memory, free again after the call.
template <int BLOCK, bool LARGEST>
__device__ int block_extreme(int value, int* warp_values) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        const int other = __shfl_xor_sync(FULL_MASK, value, offset);
        value = LARGEST ? max(value, other) : min(value, other);
    }
    if (threadIdx.x % WARP_SIZE == 0) warp_values[threadIdx.x / WARP_SIZE] = value;
    __syncthreads();
    int result = warp_values[0];
    for (int warp = 1; warp < BLOCK / WARP_SIZE; ++warp) {
        result = LARGEST ? max(result, warp_values[warp]) : min(result, warp_values[warp]);
    }
    __syncthreads();
    return result;
}

// Exclusive prefix sum of `value` over the block in thread order, and the block's total (the
// same bits in every thread). Each warp scans by a fixed shuffle tree; a thread then adds the
// totals of the warps before it in order. warp_totals: BLOCK / 32 doubles of shared memory.
template <int BLOCK>
__device__ double block_exclusive_scan(double value, double* warp_totals, double& block_total) {
    const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    for (int offset = 1; offset < WARP_SIZE; offset *= 2) {
        const double other = __shfl_up_sync(FULL_MASK, value, offset);
        if (lane >= offset) value += other;
    }
    const double lanes_before = __shfl_up_sync(FULL_MASK, value, 1);
    if (lane == WARP_SIZE - 1) warp_totals[warp] = value;
    __syncthreads();
    double warps_before = 0;
    block_total = 0;
    for (int w = 0; w < BLOCK / WARP_SIZE; ++w) {
        if (w == warp) warps_before = block_total;
        block_total += warp_totals[w];
    }
    __syncthreads();
    return lane == 0 ? warps_before : warps_before + lanes_before;
}

// The ids [begin, end) of the contiguous chunk thread t walks in order where a running sum in id
// order is needed (the draw, the top-p ties): chunk t of ceil(V / BLOCK) ids.
template <int BLOCK>
struct Chunk {
    int begin, end;
    __device__ explicit Chunk(int V) {
        const int length = (V + BLOCK - 1) / BLOCK;
        begin = min(V, static_cast<int>(threadIdx.x) * length);
        end = min(V, begin + length);
    }
};

// Scores as unsigned keys in the same order (-0 becomes +0, which it equals; there is no NaN here).
__device__ __forceinline__ uint64_t order_key(double score) {
    const uint64_t bits = static_cast<uint64_t>(__double_as_longlong(score + 0.0));
    return bits >> 63 ? ~bits : bits | 0x8000000000000000ull;
}

__device__ __forceinline__ double from_order_key(uint64_t key) {
    const uint64_t bits = key >> 63 ? key & 0x7fffffffffffffffull : ~key;
    return __longlong_as_double(static_cast<long long>(bits));
}

// Shared memory of select_key: a column of digit measures per thread, their partial sums, the
// digits' totals, and the prefix chosen so far.
template <int BLOCK>
struct SelectScratch {
    static constexpr int PARTS = BLOCK / RADIX_BINS;
    double columns[RADIX_BINS][BLOCK];
    double parts[RADIX_BINS][PARTS];
    double digits[RADIX_BINS];
    uint64_t prefix;
    double above;
};

struct Selected {
    uint64_t key;  // the selected key
    double above;  // the measure of the items whose key is larger
};

// A radix select over the row's items (item(v, key, measure) says whether id v takes part, with
// which KEY_BITS-bit key and measure): the key K with measure(keys > K) < target <= measure(keys
// >= K), or 0 where all of them measure less than the target. With measure 1 and target k, K is
// the k-th largest key; with weights and a mass, K is where the mass from the top reaches it.
// Each pass fixes the next RADIX_BITS bits: every thread adds the measures of its items in the
// current bucket into its own column (no atomics), the columns are added up in a fixed order, and
// thread 0 walks the digits down from the largest.
template <int BLOCK, int KEY_BITS, class Item>
__device__ Selected select_key(int V, double target, const Item& item, SelectScratch<BLOCK>& scratch) {
    static_assert(BLOCK % RADIX_BINS == 0 && KEY_BITS % RADIX_BITS == 0 && KEY_BITS <= 64, "whole digits and parts");
    constexpr int PARTS = SelectScratch<BLOCK>::PARTS;
    const int thread = threadIdx.x;
    uint64_t prefix = 0;
    double above = 0;
    for (int shift = KEY_BITS - RADIX_BITS; shift >= 0; shift -= RADIX_BITS) {
        const uint64_t higher = shift + RADIX_BITS == 64 ? 0 : ~0ull << (shift + RADIX_BITS);
        for (int d = 0; d < RADIX_BINS; ++d) scratch.columns[d][thread] = 0;
        for (int v = thread; v < V; v += BLOCK) {
            uint64_t key;
            double measure;
            if (item(v, key, measure) && (key & higher) == prefix) {
                scratch.columns[(key >> shift) & (RADIX_BINS - 1)][thread] += measure;
            }
        }
        __syncthreads();
        const int digit = thread / PARTS, part = thread % PARTS;
        double sum = 0;
        for (int i = 0; i < RADIX_BINS; ++i) sum += scratch.columns[digit][part * RADIX_BINS + i];
        scratch.parts[digit][part] = sum;
        __syncthreads();
        if (thread < RADIX_BINS) {
            double total = 0;
            for (int p = 0; p < PARTS; ++p) total += scratch.parts[thread][p];
            scratch.digits[thread] = total;
        }
        __syncthreads();
        if (thread == 0) {
            int d = RADIX_BINS - 1;
            double measured = above;
            while (d > 0 && measured + scratch.digits[d] < target) measured += scratch.digits[d--];
            scratch.prefix = prefix | static_cast<uint64_t>(d) << shift;
            scratch.above = measured;
        }
        __syncthreads();
        prefix = scratch.prefix;
        above = scratch.above;
    }
    return {prefix, above};
}

// The words of one row's bitmap of penalised ids. The scratch holds every row's V scores (then
// weights), then every row's bitmap.
__host__ __device__ __forceinline__ size_t bitmap_words(int V) {
    return (static_cast<size_t>(V) + BITMAP_WORD_BITS - 1) / BITMAP_WORD_BITS;
}

__device__ __forceinline__ uint32_t weight_key(double weight) {
    return __float_as_uint(static_cast<float>(weight));
}

// Top-p on the weights in place (HF's TopPLogitsWarper with Backend.sampleRows' ranking: float
// weight descending, ties by id ascending). total is the kept weight.
template <int BLOCK>
__device__ void keep_nucleus(double* weights, int V, double total, double top_p, SelectScratch<BLOCK>& selection,
                             double* warp_sums, int* warp_ints) {
    const double limit = top_p * total;
    const double surely_dropped = total * (1 - top_p) / V;
    // The cut is the largest key whose candidates, with those above it, reach the limit: the
    // candidates above it weigh less, so all survive; those below it do not.
    const Selected selected = select_key<BLOCK, 32>(
            V, limit,
            [&](int v, uint64_t& key, double& measure) {
                measure = weights[v];
                key = weight_key(measure);
                return measure > surely_dropped;
            },
            selection);
    const uint32_t cut = static_cast<uint32_t>(selected.key);
    const double above_cut = selected.above;
    // Candidates tied at the cut survive in id order up to and including the first whose
    // inclusion brings the mass to the limit: the mass before each of them is below it.
    const Chunk<BLOCK> chunk(V);
    double ties = 0;
    for (int v = chunk.begin; v < chunk.end; ++v) {
        const double w = weights[v];
        if (w > surely_dropped && weight_key(w) == cut) ties += w;
    }
    double all_ties;
    double running = above_cut + block_exclusive_scan<BLOCK>(ties, warp_sums, all_ties);
    int reaching = INT_MAX;
    for (int v = chunk.begin; v < chunk.end && reaching == INT_MAX; ++v) {
        const double w = weights[v];
        if (w > surely_dropped && weight_key(w) == cut) {
            running += w;
            if (running >= limit) reaching = v;
        }
    }
    const int last_tie = block_extreme<BLOCK, false>(reaching, warp_ints);
    for (int v = threadIdx.x; v < V; v += BLOCK) {
        const double w = weights[v];
        const uint32_t key = weight_key(w);
        const bool survives = w > surely_dropped && (key > cut || (key == cut && v <= last_tie));
        if (!survives) weights[v] = 0;
    }
}

__device__ __forceinline__ uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Draw `draw` of the stream starting at `stream`: SplitMix64.uniform.
__device__ __forceinline__ double uniform(uint64_t stream, int draw) {
    const uint64_t state = stream + (static_cast<uint64_t>(static_cast<int64_t>(draw)) + 1) * GOLDEN_GAMMA;
    return static_cast<double>(splitmix64_mix(state) >> 11) * 0x1.0p-53;
}

// The first id with a positive weight at which the running sum of the weights in id order exceeds
// r times their total, or the last id with a positive weight where rounding leaves none (as the
// host does). Each thread sums its chunk; a block scan gives each chunk the weight before it.
template <int BLOCK>
__device__ int draw_token(const double* weights, int V, double r, double* warp_sums, int* warp_ints) {
    __syncthreads();  // the weights come from other threads' passes
    const Chunk<BLOCK> chunk(V);
    double own = 0;
    int last = -1;
    for (int v = chunk.begin; v < chunk.end; ++v) {
        const double w = weights[v];
        own += w;
        if (w > 0) last = v;
    }
    double total;
    double running = block_exclusive_scan<BLOCK>(own, warp_sums, total);
    const double u = r * total;
    int chosen = INT_MAX;
    for (int v = chunk.begin; v < chunk.end && chosen == INT_MAX; ++v) {
        const double w = weights[v];
        if (w > 0) {
            running += w;
            if (u < running) chosen = v;
        }
    }
    chosen = block_extreme<BLOCK, false>(chosen, warp_ints);
    return chosen != INT_MAX ? chosen : block_extreme<BLOCK, true>(last, warp_ints);
}

__global__ void __launch_bounds__(ARGMAX_BLOCK) argmax_rows_kernel(int32_t* out, const float* logits, int V) {
    __shared__ float values[ARGMAX_BLOCK];
    __shared__ int indices[ARGMAX_BLOCK];
    const float* row = logits + static_cast<size_t>(blockIdx.x) * V;
    float best = -INFINITY;
    int index = -1;
    for (int v = threadIdx.x; v < V; v += ARGMAX_BLOCK) {
        const float x = row[v];
        if (better(x, v, best, index)) {
            best = x;
            index = v;
        }
    }
    block_argmax<ARGMAX_BLOCK>(best, index, values, indices);
    if (threadIdx.x == 0) out[blockIdx.x] = best != best ? -1 : index;
}

__global__ void __launch_bounds__(SAMPLE_BLOCK)
sample_rows_kernel(int32_t* out, double* scores_all, uint32_t* bitmaps, const float* logits, int V, const int32_t* streams,
                   const int32_t* draws, const int32_t* history, const int32_t* history_lengths, int L,
                   double temperature, double top_p, int top_k, double penalty) {
    __shared__ double values[SAMPLE_BLOCK];
    __shared__ int indices[SAMPLE_BLOCK];
    __shared__ double warp_sums[SAMPLE_WARPS];
    __shared__ int warp_ints[SAMPLE_WARPS];
    __shared__ SelectScratch<SAMPLE_BLOCK> selection;
    const int s = blockIdx.x;
    const float* row = logits + static_cast<size_t>(s) * V;
    double* scores = scores_all + static_cast<size_t>(s) * V;

    // HF's repetition penalty, once per distinct id: the history marks ids in a bitmap (an OR
    // gives the same bits in any order), and each id's score is penalised from its logit.
    const bool penalising = penalty != 1.0;
    const size_t words = bitmap_words(V);
    uint32_t* bitmap = bitmaps + static_cast<size_t>(s) * words;
    if (penalising) {
        for (size_t w = threadIdx.x; w < words; w += SAMPLE_BLOCK) bitmap[w] = 0;
        __syncthreads();
        const int length = min(max(history_lengths[s], 0), L);
        const int32_t* ids = history + static_cast<size_t>(s) * L;
        for (int j = threadIdx.x; j < length; j += SAMPLE_BLOCK) {
            const int t = ids[j];
            if (t >= 0 && t < V) atomicOr(&bitmap[t / BITMAP_WORD_BITS], 1u << (t % BITMAP_WORD_BITS));
        }
        __syncthreads();
    }
    double max_score = -INFINITY;
    int best = -1;
    for (int v = threadIdx.x; v < V; v += SAMPLE_BLOCK) {
        double score = row[v];
        if (penalising && (bitmap[v / BITMAP_WORD_BITS] >> (v % BITMAP_WORD_BITS) & 1u)) {
            score = score < 0 ? score * penalty : score / penalty;
        }
        scores[v] = score;
        if (better(score, v, max_score, best)) {
            max_score = score;
            best = v;
        }
    }
    block_argmax<SAMPLE_BLOCK>(max_score, best, values, indices);
    if (max_score != max_score || temperature == 0 || fabs(max_score) == INFINITY) {
        if (threadIdx.x == 0) out[s] = max_score != max_score ? -1 : best;
        return;
    }

    // Top-k: the k-th largest score, as the largest key that k scores reach from the top.
    const double threshold = top_k > 0 && top_k < V
            ? from_order_key(select_key<SAMPLE_BLOCK, 64>(
                      V, top_k,
                      [&](int v, uint64_t& key, double& measure) {
                          key = order_key(scores[v]);
                          measure = 1;
                          return true;
                      },
                      selection).key)
            : -INFINITY;
    const double inverse_t = 1.0 / temperature;
    double kept = 0;
    for (int v = threadIdx.x; v < V; v += SAMPLE_BLOCK) {
        const double score = scores[v];
        // The maximum weighs 1 even where 1/T overflows (0 * inf would be NaN).
        const double w = score < threshold ? 0.0 : score == max_score ? 1.0 : exp((score - max_score) * inverse_t);
        scores[v] = w;
        kept += w;
    }
    if (top_p < 1) {
        keep_nucleus<SAMPLE_BLOCK>(scores, V, block_sum<SAMPLE_BLOCK>(kept, warp_sums), top_p, selection, warp_sums, warp_ints);
    }
    const uint64_t stream = static_cast<uint64_t>(static_cast<uint32_t>(streams[2 * static_cast<size_t>(s)])) |
                            static_cast<uint64_t>(static_cast<uint32_t>(streams[2 * static_cast<size_t>(s) + 1])) << 32;
    const int token = draw_token<SAMPLE_BLOCK>(scores, V, uniform(stream, draws[s]), warp_sums, warp_ints);
    if (threadIdx.x == 0) out[s] = token;
}

}  // namespace

extern "C" {

int spin_argmax_rows(spin_stream_t stream, int32_t* out, const float* logits, int S, int V) {
    if (S < 0 || V < 1) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_argmax_rows: need S >= 0 and V >= 1, got S=%d V=%d", S, V);
    if (S == 0) return SPIN_OK;
    if (!out || !logits) return spin::fail(SPIN_ERR_INVALID_ARG, "spin_argmax_rows: NULL tensor pointer");
    SPIN_LAUNCH(argmax_rows_kernel, static_cast<unsigned int>(S), ARGMAX_BLOCK, 0, spin::to_cuda(stream), out, logits, V);
    SPIN_LAUNCH_CHECK(argmax_rows_kernel);
    return SPIN_OK;
}

int spin_sample_rows_scratch_bytes(int S, int V, size_t* out) {
    if (S < 0 || V < 1 || !out) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_sample_rows_scratch_bytes: need S >= 0, V >= 1 and an output, got S=%d V=%d",
                          S, V);
    }
    *out = static_cast<size_t>(S) * (static_cast<size_t>(V) * sizeof(double) + bitmap_words(V) * sizeof(uint32_t));
    return SPIN_OK;
}

int spin_sample_rows(spin_stream_t stream, int32_t* out, void* scratch, const float* logits, int S, int V,
                     const int32_t* streams, const int32_t* draws, const int32_t* history,
                     const int32_t* historyLengths, int L, double temperature, double topP, int topK,
                     double repetitionPenalty) {
    if (S < 0 || V < 1 || L < 0) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_sample_rows: need S >= 0, V >= 1 and L >= 0, got S=%d V=%d L=%d", S, V, L);
    }
    if (!(temperature >= 0) || temperature == INFINITY || !(topP > 0 && topP <= 1) || topK < 0 ||
        !(repetitionPenalty > 0) || repetitionPenalty == INFINITY) {
        return spin::fail(SPIN_ERR_INVALID_ARG,
                          "spin_sample_rows: need a finite temperature >= 0, 0 < topP <= 1, topK >= 0 and a finite "
                          "repetitionPenalty > 0, got %g, %g, %d, %g",
                          temperature, topP, topK, repetitionPenalty);
    }
    if (S == 0) return SPIN_OK;
    const bool sampling = temperature > 0, penalising = repetitionPenalty != 1.0;
    if (!out || !scratch || !logits || (sampling && (!streams || !draws)) ||
        (penalising && (!historyLengths || (L > 0 && !history)))) {
        return spin::fail(SPIN_ERR_INVALID_ARG, "spin_sample_rows: NULL tensor pointer");
    }
    double* scores = static_cast<double*>(scratch);
    uint32_t* bitmaps = reinterpret_cast<uint32_t*>(scores + static_cast<size_t>(S) * V);
    SPIN_LAUNCH(sample_rows_kernel, static_cast<unsigned int>(S), SAMPLE_BLOCK, 0, spin::to_cuda(stream), out, scores,
                bitmaps, logits, V, streams, draws, history, historyLengths, L, temperature, topP, topK,
                repetitionPenalty);
    SPIN_LAUNCH_CHECK(sample_rows_kernel);
    return SPIN_OK;
}

}  // extern "C"
