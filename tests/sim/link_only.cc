// Links the consensus core alone: if it needed anything beyond the standard library and
// Abseil, this target would fail to link (docs/consensus.md, "Purity").
#include "consensus/replica.h"

int main() {
  atlas::consensus::Ballot b{1, 1};
  return b.IsZero() ? 1 : 0;
}
