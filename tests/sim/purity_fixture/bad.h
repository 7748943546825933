// Fixture: must be rejected by check_pure.cmake (test consensus_purity_check_rejects).
#include <thread>
