#include "tests/sim/linearizability.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <unordered_set>

namespace atlas::sim {

namespace {

// Doubly-linked list of call/return events, as in Lowe's presentation of WGL.
struct Node {
  int op = -1;
  bool is_call = false;
  int match = -1;  // For a call: index of its return node.
  int prev = -1;
  int next = -1;
};

struct Key {
  std::vector<uint64_t> bits;
  std::string state;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = std::hash<std::string>()(k.state);
    for (uint64_t w : k.bits) h = (h ^ w) * 0x100000001b3ULL;
    return static_cast<size_t>(h);
  }
};

LinearizabilityResult CheckKey(const std::vector<const Operation*>& ops, uint64_t max_steps) {
  LinearizabilityResult result;
  const int n = static_cast<int>(ops.size());
  // Events: (time, kind) with calls before returns only when times differ (times are unique).
  struct Ev {
    uint64_t time;
    int op;
    bool call;
  };
  std::vector<Ev> evs;
  for (int i = 0; i < n; ++i) {
    evs.push_back({ops[i]->invoke, i, true});
    const uint64_t ret = ops[i]->completed ? ops[i]->ret : std::numeric_limits<uint64_t>::max();
    evs.push_back({ret, i, false});
  }
  std::stable_sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
    if (a.time != b.time) return a.time < b.time;
    return a.call && !b.call;  // Only unknown-outcome returns tie (at +inf).
  });
  // Node 0 is the head sentinel.
  std::vector<Node> nodes(evs.size() + 1);
  std::vector<int> call_node(n), ret_node(n);
  for (size_t i = 0; i < evs.size(); ++i) {
    Node& nd = nodes[i + 1];
    nd.op = evs[i].op;
    nd.is_call = evs[i].call;
    nd.prev = static_cast<int>(i);
    nd.next = i + 1 < evs.size() ? static_cast<int>(i + 2) : -1;
    (evs[i].call ? call_node : ret_node)[evs[i].op] = static_cast<int>(i + 1);
  }
  nodes[0].next = evs.empty() ? -1 : 1;
  for (int i = 0; i < n; ++i) nodes[call_node[i]].match = ret_node[i];

  auto lift = [&](int c) {
    const int r = nodes[c].match;
    nodes[nodes[c].prev].next = nodes[c].next;
    if (nodes[c].next >= 0) nodes[nodes[c].next].prev = nodes[c].prev;
    nodes[nodes[r].prev].next = nodes[r].next;
    if (nodes[r].next >= 0) nodes[nodes[r].next].prev = nodes[r].prev;
  };
  auto unlift = [&](int c) {
    const int r = nodes[c].match;
    nodes[nodes[r].prev].next = r;
    if (nodes[r].next >= 0) nodes[nodes[r].next].prev = r;
    nodes[nodes[c].prev].next = c;
    if (nodes[c].next >= 0) nodes[nodes[c].next].prev = c;
  };

  std::vector<uint64_t> bits((n + 63) / 64, 0);
  std::string state;  // "" = key absent.
  std::unordered_set<Key, KeyHash> cache;
  std::vector<std::pair<int, std::string>> stack;  // (call node, state before)
  int entry = nodes[0].next;
  size_t deepest = 0;
  int deepest_block = -1;  // The return that blocked the longest linearized prefix.
  while (nodes[0].next >= 0) {
    if (++result.steps > max_steps) {
      result.inconclusive = true;
      return result;
    }
    if (entry < 0) {
      // Cannot happen: the last event is a return, handled below.
      result.ok = false;
      result.detail = "internal: ran off the event list";
      return result;
    }
    const Node& nd = nodes[entry];
    if (nd.is_call) {
      const Operation& op = *ops[nd.op];
      // A compare-and-set of unknown outcome may be linearized anywhere: it applies if the key
      // holds its expected value there, and otherwise was refused (or never ran). Not running
      // at all is covered too: it may be linearized last, after every other operation.
      const bool unknown_cas = op.is_cas && !op.completed;
      const bool legal = unknown_cas ? true
                         : op.is_cas ? (state == op.expected) == op.cas_applied
                         : op.is_write ? true
                                       : op.value == state;
      if (legal) {
        const bool applies = op.is_cas ? (unknown_cas ? state == op.expected : op.cas_applied)
                                       : op.is_write;
        std::string next_state = applies ? op.value : state;
        bits[nd.op / 64] |= (1ULL << (nd.op % 64));
        Key key{bits, next_state};
        if (cache.insert(key).second) {
          stack.push_back({entry, state});
          state = std::move(next_state);
          lift(entry);
          entry = nodes[0].next;
          continue;
        }
        bits[nd.op / 64] &= ~(1ULL << (nd.op % 64));
      }
      entry = nd.next;
    } else {
      if (stack.size() >= deepest) {
        deepest = stack.size();
        deepest_block = nd.op;
      }
      if (stack.empty()) {
        result.ok = false;
        const Operation& op = *ops[deepest_block >= 0 ? deepest_block : nd.op];
        const std::string what =
            op.is_cas ? "cas(" + op.expected + "->" + op.value +
                            (op.cas_applied ? ")" : ") refused")
            : op.is_write ? "put(" + op.value + ")"
                          : "get()->" + op.value;
        result.detail = "key " + op.key + ": after " + std::to_string(deepest) +
                        " ops, no linearization before the return of " + what +
                        " by client " + std::to_string(op.client) +
                        " [invoke " + std::to_string(op.invoke) + ", return " +
                        std::to_string(op.ret) + "]";
        return result;
      }
      auto [c, before] = stack.back();
      stack.pop_back();
      state = before;
      bits[nodes[c].op / 64] &= ~(1ULL << (nodes[c].op % 64));
      unlift(c);
      entry = nodes[c].next;
    }
  }
  return result;
}

}  // namespace

LinearizabilityResult CheckLinearizable(const std::vector<Operation>& history,
                                        uint64_t max_steps) {
  // Values are unique per write, so a write of unknown outcome whose value nothing observed
  // can be linearized as "never happened": drop it (it only inflates the search). Observing
  // a value: a read returning it, or a compare-and-set that applied expecting it. A refused
  // compare-and-set observes only that the key held something else, which any write may
  // explain: on such a key no write of unknown outcome is dropped. One kept because it was
  // observed did happen: a compare-and-set kept for that reason must have applied.
  std::map<std::string, std::set<std::string>> observed;
  std::set<std::string> refusals;  // keys with a refused compare-and-set
  for (const Operation& op : history) {
    if (!op.is_write && !op.is_cas) observed[op.key].insert(op.value);
    if (op.is_cas && op.completed && op.cas_applied) observed[op.key].insert(op.expected);
    if (op.is_cas && op.completed && !op.cas_applied) refusals.insert(op.key);
  }
  std::map<std::string, std::vector<const Operation*>> by_key;
  for (const Operation& op : history) {
    const bool writes = op.is_write || op.is_cas;
    if (writes && !op.completed && !refusals.contains(op.key) &&
        !observed[op.key].contains(op.value)) {
      continue;
    }
    by_key[op.key].push_back(&op);
  }
  LinearizabilityResult total;
  for (auto& [key, ops] : by_key) {
    LinearizabilityResult r = CheckKey(ops, max_steps);
    total.steps += r.steps;
    if (r.inconclusive) total.inconclusive = true;
    if (!r.ok) {
      total.ok = false;
      total.detail = r.detail;
      return total;
    }
  }
  return total;
}

}  // namespace atlas::sim
