// Always-on invariant checks for the consensus core (see docs/consensus.md, "Invariants").
// A failed check is a programmer error: the process must stop rather than run on a state that
// violates a protocol invariant (TigerBeetle/FoundationDB style: assertions stay on in release).
#ifndef ATLAS_CONSENSUS_CHECK_H_
#define ATLAS_CONSENSUS_CHECK_H_

namespace atlas::consensus {

// Reports the failed condition on stderr and aborts. Never returns.
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);

}  // namespace atlas::consensus

#define ATLAS_CHECK(condition)                                                     \
  do {                                                                             \
    if (!(condition)) ::atlas::consensus::CheckFailed(__FILE__, __LINE__, #condition); \
  } while (false)

#endif  // ATLAS_CONSENSUS_CHECK_H_
