// CPU engine of asr.decode.batch_beam: the same CTC prefix beam search with word n-gram
// shallow fusion, one utterance at a time per thread, with no per-frame tensor overhead.
// Built on first use by asr/decode/native.py and called through ctypes; the search, the
// scores and the ARPA backoff below mirror the torch engine (see batch_beam.py), and the
// tests check that both engines give the same n-best lists.
//
// Differences in mechanics only: identical prefixes are found through a prefix trie (exact,
// no hashing), the word-end LM score is computed lazily when first needed, and every
// extension goes on to the merge and lexicon checks (no pre-selection).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();
constexpr int MAX_ORDER = 10;

inline float log_add(float a, float b) {
    if (a < b) std::swap(a, b);
    if (!(b - a >= -30.0f)) return a;  // also b = -inf; exp(-30) is below float precision
    return a + std::log1p(std::exp(b - a));
}

// The n-gram tables of asr.lm.NgramLM: per order, sorted int64 keys with natural-log
// probabilities and backoffs (borrowed from the caller, which keeps them alive).
struct NgramTables {
    int order = 0;  // 0: no LM
    int64_t base = 0;
    int32_t unk = 0, eos = 0;
    const int64_t* keys[MAX_ORDER] = {};
    const float* log_probs[MAX_ORDER] = {};
    const float* backoffs[MAX_ORDER] = {};
    int64_t sizes[MAX_ORDER] = {};

    // Position of `key` among the k-grams, or -1.
    int64_t find(int k, int64_t key) const {
        const int64_t* begin = keys[k - 1];
        const int64_t* end = begin + sizes[k - 1];
        const int64_t* it = std::lower_bound(begin, end, key);
        return (it != end && *it == key) ? it - begin : -1;
    }

    // Natural-log P(word | context), context = order-1 word ids, oldest first, left-padded.
    float log_prob(const int32_t* context, int32_t word) const {
        float logp = log_probs[0][word];
        int64_t ngram_key = word, context_key = 0, power = 1;  // power = base ** (k - 2)
        for (int k = 2; k <= order; ++k) {
            const int64_t older = context[order - k];
            context_key += older * power;
            power *= base;
            ngram_key += older * power;
            const int64_t ctx = find(k - 1, context_key);
            const float backoff = ctx >= 0 ? backoffs[k - 2][ctx] : 0.0f;
            const int64_t pos = find(k, ngram_key);
            logp = pos >= 0 ? log_probs[k - 1][pos] : logp + backoff;
        }
        return logp;
    }
};

// The LM's spellable words as a trie over tokens; node 0 is the root (the empty word).
struct Lexicon {
    std::vector<int32_t> first_child;  // (nodes + 1,) CSR offsets into child_*
    std::vector<int32_t> child_token, child_node;  // sorted by token within a node
    std::vector<int32_t> word;  // (nodes,) LM word id spelled by the node, or -1
    std::vector<float> best_unigram;  // (nodes,) max unigram log-prob of the words below the node

    void build(int n_words, const int32_t* word_ids, const int64_t* offsets, const int32_t* tokens,
               const float* unigram) {
        std::vector<std::vector<std::pair<int32_t, int32_t>>> children(1);
        word.assign(1, -1);
        for (int w = 0; w < n_words; ++w) {
            int32_t node = 0;
            for (int64_t i = offsets[w]; i < offsets[w + 1]; ++i) {
                auto& kids = children[node];
                auto it = std::find_if(kids.begin(), kids.end(),
                                       [&](const auto& kid) { return kid.first == tokens[i]; });
                if (it != kids.end()) {
                    node = it->second;
                } else {
                    const auto created = static_cast<int32_t>(children.size());
                    kids.emplace_back(tokens[i], created);
                    children.emplace_back();
                    word.push_back(-1);
                    node = created;
                }
            }
            if (node != 0 && word[node] < 0) word[node] = word_ids[w];  // first spelling wins
        }
        best_unigram.assign(children.size(), NEG_INF);
        for (auto node = static_cast<int32_t>(children.size()) - 1; node >= 0; --node) {  // leaves up
            if (word[node] >= 0 && unigram) best_unigram[node] = std::max(best_unigram[node], unigram[word[node]]);
            for (const auto& [token, kid] : children[node])
                best_unigram[node] = std::max(best_unigram[node], best_unigram[kid]);
        }
        first_child.assign(1, 0);
        for (auto& kids : children) {
            std::sort(kids.begin(), kids.end());
            for (const auto& [token, node] : kids) {
                child_token.push_back(token);
                child_node.push_back(node);
            }
            first_child.push_back(static_cast<int32_t>(child_token.size()));
        }
    }

    int32_t child(int32_t node, int32_t token) const {
        const int32_t* tokens = child_token.data();
        const int32_t* it = std::lower_bound(tokens + first_child[node], tokens + first_child[node + 1], token);
        return (it != tokens + first_child[node + 1] && *it == token) ? child_node[it - tokens] : -1;
    }
};

struct Settings {
    int beam = 10;
    int top_k = 10;  // candidate tokens per frame
    float token_min_logp = -10.0f;  // ... with at least this log-prob
    float blank_skip_logp = 0.0f;  // frames with blank log-prob above this collapse (0: never)
    float alpha = 0.5f, beta = 1.0f, oov_penalty = -5.0f;
    int32_t separator = -1;
    bool lookahead = false;
    bool recombine = false;  // keep only the best of hypotheses with the same LM state
    float beam_threshold = std::numeric_limits<float>::infinity();  // drop those further below the best
};

// One step of a 64-bit hash over small ints (splitmix64's finaliser).
inline uint64_t hash_step(uint64_t h, int64_t value) {
    uint64_t x = h + 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(value);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// For each distinct 64-bit key, the position of the best-scoring entry (open addressing).
class BestPerKey {
  public:
    void reset(int n) {
        size_t size = 16;
        while (size < 2 * static_cast<size_t>(n)) size *= 2;
        keys_.assign(size, 0);
        slots_.assign(size, -1);
    }
    // The slot holding `key`'s best entry so far (-1: none yet); write the winner into it.
    int32_t& slot(uint64_t key) {
        size_t i = key & (keys_.size() - 1);
        while (slots_[i] >= 0 && keys_[i] != key) i = (i + 1) & (keys_.size() - 1);
        keys_[i] = key;
        return slots_[i];
    }

  private:
    std::vector<uint64_t> keys_;
    std::vector<int32_t> slots_;
};

struct Token {
    float logp;
    int32_t id;
};

// The top_k non-blank tokens of a frame (V,) with log-prob >= min_logp, best first.
void frame_candidates(const float* lp, int V, int top_k, float min_logp, std::vector<Token>& out) {
    out.clear();
    for (int32_t v = 1; v < V; ++v) {
        if (!(lp[v] >= min_logp)) continue;
        if (static_cast<int>(out.size()) == top_k && lp[v] <= out.back().logp) continue;
        if (static_cast<int>(out.size()) == top_k) out.pop_back();
        auto it = out.end();
        while (it != out.begin() && (it - 1)->logp < lp[v]) --it;
        out.insert(it, {lp[v], v});
    }
}

struct Hyp {
    float pb, pnb;  // log-scores of the prefix's alignments ending in blank / in its last token
    float fusion;  // alpha * LM + beta * words + OOV penalties so far
    int32_t prefix;  // node of the prefix trie: equal nodes <=> equal label sequences
    int32_t path;  // node of the emission history (token + frame), for backtracking; -1: none
    int32_t last;  // last token, -1 for the empty prefix
    int32_t lex;  // lexicon node of the partial word (0: no partial word, -1: left the lexicon)
    bool end_ready;  // end_gain and end_context are computed
    float end_gain;  // fusion gain of ending the partial word here
    int32_t context[MAX_ORDER], end_context[MAX_ORDER];  // LM word ids, oldest first
};

struct Candidate {
    float score;
    int32_t index;  // < n_hyps: stay on that hypothesis; else extension index + n_hyps
};

struct Extension {
    float pnb, fusion;
    int32_t parent, token, lex;
    uint64_t state;
};

struct Decoder {
    NgramTables lm;
    Lexicon lexicon;
    Settings settings;

    bool has_lm() const { return lm.order > 0; }

    // What the future scores of a hypothesis depend on: its LM context, partial word (the
    // lexicon node; all words off the lexicon end as <unk>) and last token.
    uint64_t state(const int32_t* context, int32_t lex, int32_t last) const {
        uint64_t h = hash_step(hash_step(0, lex), last);
        for (int i = 0; i < lm.order - 1; ++i) h = hash_step(h, context[i]);
        return h;
    }

    // The LM look-ahead of a partial word: alpha * the best unigram log-prob of the words it
    // starts (of <unk> once it left the lexicon); 0 with no partial word or look-ahead off.
    float ahead(int32_t lex) const {
        if (!settings.lookahead || lex == 0) return 0.0f;
        return settings.alpha * (lex > 0 ? lexicon.best_unigram[lex] : lm.log_probs[0][lm.unk]);
    }

    void ensure_word_end(Hyp& h) const {
        if (h.end_ready) return;
        const int n = lm.order - 1;
        std::copy(h.context, h.context + n, h.end_context);
        h.end_gain = 0.0f;
        if (h.lex != 0) {  // a partial word: score it and shift it into the context
            const int32_t id = (h.lex > 0 && lexicon.word[h.lex] >= 0) ? lexicon.word[h.lex] : lm.unk;
            h.end_gain = settings.alpha * lm.log_prob(h.context, id) + settings.beta;
            if (n > 0) {
                std::copy(h.context + 1, h.context + n, h.end_context);
                h.end_context[n - 1] = id;
            }
        }
        h.end_ready = true;
    }

    // One utterance: log-probs (T, V) -> n-best written to out_* (frames: where each token starts).
    void search(int T, int V, const float* log_probs, const int32_t* start_context, int n_best,
                float* out_scores, int32_t* out_count, int32_t* out_len, int32_t* out_tokens,
                int32_t* out_frames, int max_len) const {
        const int K = settings.beam;
        const int32_t sep = settings.separator;
        std::vector<int32_t> prefix_parent{-1};  // the prefix trie; node 0: the empty prefix
        std::unordered_map<uint64_t, int32_t> prefix_child;
        std::vector<int32_t> path_parent, path_token, path_frame;  // the emission history
        std::vector<int32_t> live_stamp{-1}, live_slot{0};  // prefix node -> slot on frame t

        Hyp start{};
        start.pb = 0.0f;
        start.pnb = NEG_INF;
        start.path = start.last = -1;
        std::copy(start_context, start_context + std::max(lm.order - 1, 0), start.context);
        std::vector<Hyp> hyps{start}, next;
        std::vector<float> stay_pb, stay_pnb, merged_pnb;  // merged: the extension that is a stay
        std::vector<int32_t> merged_from;
        std::vector<int32_t> first_kid, next_kid;
        std::vector<Extension> exts;
        std::vector<Candidate> cands;
        std::vector<Token> tokens;
        std::vector<uint64_t> stay_state;
        BestPerKey best;
        const bool recombine = has_lm() && settings.recombine;

        for (int t = 0; t < T; ++t) {
            const float* lp = log_probs + static_cast<int64_t>(t) * V;
            const bool skip = settings.blank_skip_logp < 0.0f;
            if (skip && lp[0] > settings.blank_skip_logp) {
                // a run of near-certain blanks: one blank-only step with the run's blank log-prob
                float run = lp[0];
                while (t + 1 < T && log_probs[static_cast<int64_t>(t + 1) * V] > settings.blank_skip_logp)
                    run += log_probs[static_cast<int64_t>(++t) * V];
                for (Hyp& h : hyps) {
                    h.pb = log_add(h.pb, h.pnb) + run;
                    h.pnb = NEG_INF;
                }
                continue;
            }
            frame_candidates(lp, V, settings.top_k, settings.token_min_logp, tokens);
            const int n = static_cast<int>(hyps.size());
            // stay on the prefix: emit blank, or repeat the last token
            stay_pb.resize(n);
            stay_pnb.resize(n);
            for (int i = 0; i < n; ++i) {
                const Hyp& h = hyps[i];
                stay_pb[i] = log_add(h.pb, h.pnb) + lp[0];
                stay_pnb[i] = h.last >= 0 ? h.pnb + lp[h.last] : NEG_INF;
                live_stamp[h.prefix] = t;
                live_slot[h.prefix] = i;
            }
            // hypotheses whose prefix is another hypothesis plus one token: merge targets
            first_kid.assign(n, -1);
            next_kid.assign(n, -1);
            for (int j = 0; j < n; ++j) {
                const int32_t parent = prefix_parent[hyps[j].prefix];
                if (parent >= 0 && live_stamp[parent] == t) {
                    const int32_t i = live_slot[parent];
                    next_kid[j] = first_kid[i];
                    first_kid[i] = j;
                }
            }
            // extend by each candidate token; repeating the last token needs a blank in between
            merged_pnb.assign(n, NEG_INF);
            merged_from.assign(n, -1);
            // an extension scoring below the K-th best stay (of distinct LM states when
            // recombining; before merging) cannot be kept
            cands.clear();
            if (recombine) best.reset(n);
            stay_state.resize(n);
            for (int i = 0; i < n; ++i) {
                const Candidate stay{log_add(stay_pb[i], stay_pnb[i]) + hyps[i].fusion, i};
                if (!recombine) {
                    cands.push_back(stay);
                    continue;
                }
                stay_state[i] = state(hyps[i].context, hyps[i].lex, hyps[i].last);
                int32_t& slot = best.slot(stay_state[i]);
                if (slot < 0) {
                    slot = static_cast<int32_t>(cands.size());
                    cands.push_back(stay);
                } else if (stay.score > cands[slot].score) {
                    cands[slot] = stay;
                }
            }
            float floor = NEG_INF;
            for (const Candidate& stay : cands) floor = std::max(floor, stay.score - settings.beam_threshold);
            if (static_cast<int>(cands.size()) >= K) {
                std::nth_element(cands.begin(), cands.begin() + (K - 1), cands.end(),
                                 [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
                floor = std::max(floor, cands[K - 1].score);
            }
            exts.clear();
            for (int i = 0; i < n; ++i) {
                Hyp& h = hyps[i];
                const float acoustic = log_add(h.pb, h.pnb);
                // the most a letter can add to the fusion score: leaving the lexicon may trade the
                // look-ahead for <unk>'s; staying in it never raises the look-ahead
                const float letter_gain = has_lm() && h.lex >= 0
                    ? std::max(0.0f, settings.oov_penalty + ahead(-1) - ahead(h.lex)) : 0.0f;
                for (const Token& cand : tokens) {
                    const int32_t token = cand.id;
                    const float pnb = (token == h.last ? h.pb : acoustic) + cand.logp;
                    if (pnb == NEG_INF) continue;
                    int32_t kid = first_kid[i];
                    while (kid >= 0 && hyps[kid].last != token) kid = next_kid[kid];
                    if (kid >= 0) {  // the extension is already in the beam: merge into its stay
                        merged_pnb[kid] = pnb;
                        merged_from[kid] = i;
                        continue;
                    }
                    // bounds first: most extensions fall below the floor before any lookup
                    const float gain = token != sep ? letter_gain
                        : h.lex != 0 ? std::max(0.0f, settings.beta) - ahead(h.lex) : 0.0f;
                    if (pnb + h.fusion + gain < floor) continue;
                    float fusion = h.fusion;
                    int32_t lex = 0;
                    if (has_lm()) {
                        if (token == sep) {
                            ensure_word_end(h);
                            fusion += h.end_gain - ahead(h.lex);
                        } else {
                            lex = h.lex < 0 ? -1 : lexicon.child(h.lex, token);
                            if (h.lex >= 0 && lex < 0) fusion += settings.oov_penalty;
                            fusion += ahead(lex) - ahead(h.lex);
                        }
                    }
                    if (pnb + fusion < floor) continue;
                    const uint64_t key =
                        recombine ? state(token == sep ? h.end_context : h.context, lex, token) : 0;
                    exts.push_back({pnb, fusion, i, token, lex, key});
                }
            }
            // the best K of the stays (with what merged into them) and the extensions
            cands.clear();
            for (int i = 0; i < n; ++i) {
                const float own = log_add(stay_pb[i], stay_pnb[i]);
                const float score = log_add(own, merged_pnb[i]) + hyps[i].fusion;
                if (score != NEG_INF) cands.push_back({score, i});
            }
            for (int e = 0; e < static_cast<int>(exts.size()); ++e)
                cands.push_back({exts[e].pnb + exts[e].fusion, n + e});
            const auto better = [](const Candidate& a, const Candidate& b) {
                return a.score > b.score || (a.score == b.score && a.index < b.index);
            };
            if (recombine) {  // of the candidates with one LM state only the best goes on
                best.reset(static_cast<int>(cands.size()));
                int kept = 0;
                for (const Candidate& cand : cands) {
                    const uint64_t key = cand.index < n ? stay_state[cand.index] : exts[cand.index - n].state;
                    int32_t& slot = best.slot(key);
                    if (slot < 0) {
                        slot = kept;
                        cands[kept++] = cand;
                    } else if (better(cand, cands[slot])) {
                        cands[slot] = cand;
                    }
                }
                cands.resize(kept);
            }
            float top = NEG_INF;
            for (const Candidate& cand : cands) top = std::max(top, cand.score);
            cands.erase(std::remove_if(cands.begin(), cands.end(), [&](const Candidate& cand) {
                return cand.score < top - settings.beam_threshold; }), cands.end());
            if (static_cast<int>(cands.size()) > K) {
                std::nth_element(cands.begin(), cands.begin() + K, cands.end(), better);
                cands.resize(K);
            }
            next.clear();
            for (const Candidate& cand : cands) {
                if (cand.index < n) {
                    const int i = cand.index;
                    Hyp h = hyps[i];
                    h.pb = stay_pb[i];
                    h.pnb = log_add(stay_pnb[i], merged_pnb[i]);
                    if (merged_pnb[i] > log_add(stay_pb[i], stay_pnb[i])) {
                        // most of the mass arrived by this frame's extension: its token starts here
                        h.path = static_cast<int32_t>(path_parent.size());
                        path_parent.push_back(hyps[merged_from[i]].path);
                        path_token.push_back(h.last);
                        path_frame.push_back(t);
                    }
                    next.push_back(h);
                    continue;
                }
                const Extension& e = exts[cand.index - n];
                const Hyp& parent = hyps[e.parent];
                Hyp h = parent;
                h.pb = NEG_INF;
                h.pnb = e.pnb;
                h.fusion = e.fusion;
                h.last = e.token;
                const uint64_t key = (static_cast<uint64_t>(parent.prefix) << 32) | static_cast<uint32_t>(e.token);
                auto [it, created] = prefix_child.try_emplace(key, static_cast<int32_t>(prefix_parent.size()));
                if (created) {
                    prefix_parent.push_back(parent.prefix);
                    live_stamp.push_back(-1);
                    live_slot.push_back(0);
                }
                h.prefix = it->second;
                h.path = static_cast<int32_t>(path_parent.size());
                path_parent.push_back(parent.path);
                path_token.push_back(e.token);
                path_frame.push_back(t);
                if (has_lm()) {
                    if (e.token == sep) std::copy(parent.end_context, parent.end_context + MAX_ORDER, h.context);
                    h.lex = e.lex;
                    h.end_ready = false;
                }
                next.push_back(h);
            }
            std::swap(hyps, next);
        }

        // final scores: end the partial word, then the sentence
        cands.clear();
        for (int i = 0; i < static_cast<int>(hyps.size()); ++i) {
            Hyp& h = hyps[i];
            float score = log_add(h.pb, h.pnb) + h.fusion;
            if (has_lm()) {
                ensure_word_end(h);
                score += h.end_gain - ahead(h.lex) + settings.alpha * lm.log_prob(h.end_context, lm.eos);
            }
            if (score != NEG_INF) cands.push_back({score, i});
        }
        std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
            return a.score > b.score || (a.score == b.score && a.index < b.index);
        });
        const int count = std::min(n_best, static_cast<int>(cands.size()));
        *out_count = count;
        for (int r = 0; r < count; ++r) {
            out_scores[r] = cands[r].score;
            std::vector<int32_t> tokens, frames;
            for (int32_t p = hyps[cands[r].index].path; p >= 0; p = path_parent[p]) {
                tokens.push_back(path_token[p]);
                frames.push_back(path_frame[p]);
            }
            const int len = std::min(static_cast<int>(tokens.size()), max_len);
            out_len[r] = len;
            for (int j = 0; j < len; ++j) {
                out_tokens[static_cast<int64_t>(r) * max_len + j] = tokens[tokens.size() - 1 - j];
                out_frames[static_cast<int64_t>(r) * max_len + j] = frames[frames.size() - 1 - j];
            }
        }
    }
};

}  // namespace

extern "C" {

// A decoder over the LM tables (order 0: no LM) and the lexicon's words (spelled as tokens,
// word w = tokens[offsets[w]:offsets[w+1]]). The tables must outlive the decoder.
void* asr_beam_create(int order, int64_t base, int32_t unk, int32_t eos, const int64_t* const* keys,
                      const float* const* log_probs, const float* const* backoffs, const int64_t* sizes,
                      int n_words, const int32_t* word_ids, const int64_t* offsets, const int32_t* tokens,
                      int beam, int top_k, float token_min_logp, float blank_skip_logp, float alpha,
                      float beta, float oov_penalty, int32_t separator, int lookahead, int recombine,
                      float beam_threshold) {
    if (order < 0 || order > MAX_ORDER || beam < 1 || top_k < 1) return nullptr;
    auto* decoder = new Decoder;
    decoder->lm.order = order;
    decoder->lm.base = base;
    decoder->lm.unk = unk;
    decoder->lm.eos = eos;
    for (int k = 0; k < order; ++k) {
        decoder->lm.keys[k] = keys[k];
        decoder->lm.log_probs[k] = log_probs[k];
        decoder->lm.backoffs[k] = backoffs[k];
        decoder->lm.sizes[k] = sizes[k];
    }
    decoder->lexicon.build(n_words, word_ids, offsets, tokens, order > 0 ? log_probs[0] : nullptr);
    decoder->settings = {beam, top_k, token_min_logp, blank_skip_logp, alpha, beta, oov_penalty, separator,
                         lookahead != 0, recombine != 0, beam_threshold};
    return decoder;
}

void asr_beam_free(void* decoder) { delete static_cast<Decoder*>(decoder); }

// Decode B utterances, log-probs (B, T, V) row-major with lengths (B,), on `threads` threads;
// start context (order-1,). Outputs: scores (B, n), count (B,), lengths (B, n), tokens and
// their frames (B, n, T).
void asr_beam_decode(const void* handle, int B, int T, int V, const float* log_probs,
                     const int64_t* lengths, const int32_t* start_context, int n_best, int threads,
                     float* out_scores, int32_t* out_count, int32_t* out_len, int32_t* out_tokens,
                     int32_t* out_frames) {
    const auto* decoder = static_cast<const Decoder*>(handle);
    std::atomic<int> next{0};
    auto work = [&]() {
        for (int b = next++; b < B; b = next++) {
            const int64_t out = static_cast<int64_t>(b) * n_best;
            decoder->search(static_cast<int>(lengths[b]), V, log_probs + static_cast<int64_t>(b) * T * V,
                            start_context, n_best, out_scores + out, out_count + b, out_len + out,
                            out_tokens + out * T, out_frames + out * T, T);
        }
    };
    threads = std::max(1, std::min(threads, B));
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) pool.emplace_back(work);
    work();
    for (auto& thread : pool) thread.join();
}

}  // extern "C"
