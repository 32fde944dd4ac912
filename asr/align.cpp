// Word alignment for scoring, with NIST sclite's costs and tie-breaking, so that counts of
// correct words, substitutions, deletions and insertions equal sclite's. Built on first use
// by asr/native.py and called through ctypes from asr/align.py (which holds the same
// algorithm in Python, used when no compiler is found).
//
// Costs: a correct word 0, an insertion or deletion 3, a substitution 4. At each cell a
// substitution (or match) wins when it is no dearer than both others, then a deletion when
// strictly cheaper than the insertion, else the insertion. The trace runs back from the
// last cell. Words are integer ids.

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace {

enum Op : int8_t { CORRECT = 0, SUBSTITUTION = 1, DELETION = 2, INSERTION = 3 };
enum Back : int8_t { DIAGONAL = 0, UP = 1, LEFT = 2 };  // UP: deletion, LEFT: insertion

constexpr int32_t SUB_COST = 4, INS_DEL_COST = 3;

// One pair: ref (R,), hyp (H,) -> ops in order, returns their number (<= R + H).
int align(const int32_t* ref, int R, const int32_t* hyp, int H, std::vector<int32_t>& cost,
          std::vector<int8_t>& back, int8_t* ops) {
    const int W = H + 1;
    cost.assign(static_cast<size_t>(R + 1) * W, 0);
    back.assign(static_cast<size_t>(R + 1) * W, DIAGONAL);
    for (int b = 1; b <= H; ++b) cost[b] = INS_DEL_COST * b, back[b] = LEFT;
    for (int a = 1; a <= R; ++a) {
        int32_t* row = &cost[static_cast<size_t>(a) * W];
        const int32_t* above = row - W;
        int8_t* row_back = &back[static_cast<size_t>(a) * W];
        row[0] = INS_DEL_COST * a;
        row_back[0] = UP;
        for (int b = 1; b <= H; ++b) {
            const int32_t sub = above[b - 1] + (ref[a - 1] == hyp[b - 1] ? 0 : SUB_COST);
            const int32_t del = above[b] + INS_DEL_COST;
            const int32_t ins = row[b - 1] + INS_DEL_COST;
            const bool take_del = del < ins;  // written branch-free: the compiler uses cmov
            const int32_t gap = take_del ? del : ins;
            const bool take_sub = sub <= gap;
            row[b] = take_sub ? sub : gap;
            row_back[b] = take_sub ? DIAGONAL : (take_del ? UP : LEFT);
        }
    }
    int n = 0;
    for (int a = R, b = H; a > 0 || b > 0; ++n) {
        switch (back[static_cast<size_t>(a) * W + b]) {
            case DIAGONAL:
                ops[n] = ref[a - 1] == hyp[b - 1] ? CORRECT : SUBSTITUTION, --a, --b;
                break;
            case UP:
                ops[n] = DELETION, --a;
                break;
            default:
                ops[n] = INSERTION, --b;
        }
    }
    for (int i = 0; i < n / 2; ++i) std::swap(ops[i], ops[n - 1 - i]);
    return n;
}

}  // namespace

extern "C" {

// N pairs: pair i is ref[ref_offsets[i]:ref_offsets[i+1]] against hyp[hyp_offsets[i]:...].
// The ops of all pairs are written one after another into `ops` (room for the total of
// R + H over the pairs), pair i's number of ops into counts[i]. Op codes: 0 correct,
// 1 substitution, 2 deletion, 3 insertion. `threads` share the pairs.
void asr_align_batch(int64_t N, const int64_t* ref_offsets, const int32_t* ref, const int64_t* hyp_offsets,
                     const int32_t* hyp, int8_t* ops, int32_t* counts, int threads) {
    // each pair first writes at its own room, ref_offsets[i] + hyp_offsets[i]
    auto work = [&](int64_t begin, int64_t end) {
        std::vector<int32_t> cost;
        std::vector<int8_t> back;
        for (int64_t i = begin; i < end; ++i) {
            const int64_t r0 = ref_offsets[i], h0 = hyp_offsets[i];
            counts[i] = align(ref + r0, static_cast<int>(ref_offsets[i + 1] - r0), hyp + h0,
                              static_cast<int>(hyp_offsets[i + 1] - h0), cost, back, ops + r0 + h0);
        }
    };
    threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, N)));
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, N * t / threads, N * (t + 1) / threads);
    work(0, N / threads);
    for (auto& thread : pool) thread.join();
    // then the ops close up, in order
    int8_t* out = ops;
    for (int64_t i = 0; i < N; ++i) {
        std::memmove(out, ops + ref_offsets[i] + hyp_offsets[i], counts[i]);
        out += counts[i];
    }
}

}  // extern "C"
