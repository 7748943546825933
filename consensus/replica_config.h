// The Replica's settings (every limit, units last) and its probe counters; see replica.h.
#ifndef ATLAS_CONSENSUS_REPLICA_CONFIG_H_
#define ATLAS_CONSENSUS_REPLICA_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "consensus/quorum.h"
#include "consensus/types.h"

namespace atlas::consensus {

// Which members hold replica read leases on an object (TABLE READS; docs/consensus.md
// §Replica read leases): none; every member that reads it; or, AUTO, those whose reads
// dominate its writes, as the owner judges them.
enum class LeaseReads : uint8_t { kOff, kLocal, kAuto };

// ---------------------------------------------------------------------------------------------
// Configuration.

struct ReplicaConfig {
  NodeId id = kNoNode;
  Topology topology;
  QuorumSpec quorum;
  // Epoch of `topology`/`quorum` (ClusterConfig::epoch of `atlas.nodes`). Later
  // configurations arrive through Replica::SetConfig.
  uint64_t epoch = 1;

  Tick heartbeat_ticks = 50;          // Owner commit notices and node heartbeats.
  Tick peer_timeout_ticks = 300;      // A peer unheard for this long is suspect.
  Tick resend_ticks = 400;            // Retransmit unanswered phase-1/phase-2/confirm rounds.
  Tick request_timeout_ticks = 4000;  // Client requests fail after this long.
  Tick steal_backoff_ticks = 100;     // Base of the randomized backoff after losing a steal.
  int64_t tick_ms = 1;                // A tick of the host's clock (sweeper turns, Sweep).
  // Owner read leases (docs/consensus.md §Owner read leases): an owner asks for lease_ms, an
  // acceptor grants up to lease_ms (promising no other node for that long of its clock); 0
  // turns leases off. Every node's monotonic clock must run within clock_drift_ppm of real
  // time (the owner's lease is shortened by that much on both sides). A restarted acceptor
  // holds other nodes' Prepares for restart_guard_ms (-1: lease_ms): the longest lease its
  // previous incarnation may have granted, which the host remembers across restarts.
  int64_t lease_ms = 0;
  int64_t clock_drift_ppm = 10'000;
  int64_t restart_guard_ms = -1;
  // Replica read leases (docs/consensus.md §Replica read leases): a member that serves a
  // read of an object it does not own asks the owner for a lease of lease_ms, and under it
  // answers reads from its own replica; the owner then counts a write chosen only with every
  // live holder's ack. Needs lease_ms > 0, and the same setting on every node: with it, a
  // lease that covers holders binds acceptors against every Prepare, and a restarted acceptor
  // holds every Prepare (its previous owner's too) for its restart guard.
  bool holder_leases = false;
  // Members ask for leases on every object they read, in this mode (the simulator); otherwise
  // only on those the host named (Replica::SetLeaseReads: TABLE READS LOCAL or AUTO).
  LeaseReads lease_reads_everywhere = LeaseReads::kOff;
  // Whether `command` may change what a read of `key` returns (keys and commands are the
  // host's business; Read's key). A holder's read of a key waits only for the accepted
  // entries that may (docs/consensus.md §Replica read leases). Unset: every command may.
  std::function<bool(const Command& command, std::string_view key)> may_write;

  size_t window_slots = 32;               // Phase-2 pipelining: slots in flight per object.
  // Q2 first: Accepts go at once to the owner's Q2 and to members interested in the object
  // (they forwarded a write or asked for a read index within interest_ticks); the other
  // members get them batched, after lazy_flush_ticks (or window_slots slots, or before
  // anything carries the commit index to them). False: every member at once.
  bool q2_first = true;
  Tick lazy_flush_ticks = 10;
  // A learner behind a reported commit index waits this long (without progress) before it
  // asks a peer for catch-up: a lazy flush arrives first.
  Tick catchup_grace_ticks = 20;
  Tick interest_ticks = 200;
  size_t batch_commands_max = 64;         // Commands per slot.
  size_t proposals_max = 4096;            // Queued proposals per object.
  size_t pending_requests_max = 1 << 16;  // Client requests in progress on this node.
  size_t reads_max = 4096;                // Reads waiting per object.
  size_t catchup_entries_max = 128;       // Entries per catch-up response.
  size_t catchup_bytes_max = 4 << 20;     // Command bytes per catch-up response (>= 1 entry).
  size_t catchup_burst = 4;               // Catch-up responses answering one request.
  size_t catchups_max = 4;                // Objects a learner catches up at once (memory).
  // What this node sends as catch-up (log entries and snapshot chunks, every learner
  // together), in bytes per tick; 0: no limit. A joining node then cannot take the links and
  // the disk from foreground writes, nor make a sender read more than it can send. A request
  // over the budget waits for it (one per learner and object, at most catchup_waiting_max);
  // after a quiet spell the budget allows one full burst at once.
  size_t catchup_bytes_per_tick = 0;
  size_t catchup_waiting_max = 256;
  size_t catchup_backlog_max = 0;  // SetInboundBacklog; 0: no limit
  // Objects per page of the directory a node that started empty asks a peer for (0: no scan).
  // The next page is asked for once fewer catch-ups than this wait in the queue.
  size_t directory_objects_max = 4096;
  // Idle objects an owner re-anchors at once after a membership change (an object with writes
  // waiting re-anchors at once, its first write in the anchor's slot). Few: their rate then
  // follows the commit latency, and foreground writes keep most of the node (64 measured a
  // foreground p99 of 2.2 s while 31,600 tables re-anchored; 4: 30 ms).
  size_t reanchors_max = 4;
  // Resting objects woken per tick after a membership change (each one's quorums changed):
  // spread over ticks, a million of them do not stall the node thread or fill its memory.
  size_t config_wakes_per_tick = 256;
  size_t forward_window_max = 1 << 12;    // Out-of-order forward sequence numbers per origin.
  // A forward window restarted for a new incarnation of its origin keeps this many sequence
  // numbers below the one that restarted it open: that incarnation's first forwards may have
  // overtaken each other (see TakeForward).
  uint64_t forward_reorder_slack = 64;
  int route_attempts_max = 3;             // Routings of one request before it fails NOT_OWNER.
  // This incarnation's forward sequence numbers start above this one. A restarted node must
  // not reuse the numbers it forwarded with before (an owner would drop its forwards as
  // duplicates): the host passes something that grows across restarts (its start time, µs).
  uint64_t forward_seq_base = 0;
  Slot snapshot_interval_slots = 64;      // Ask for a snapshot after this many applied slots,
  uint64_t snapshot_interval_bytes = 2 << 20;  // or after this many bytes of commands.
  Slot log_tail_slots = 16;               // Entries kept below a snapshot for cheap catch-up.
  size_t snapshot_chunk_bytes = 4 << 20;  // Catch-up snapshots travel in chunks of this size.
  size_t snapshots_served_max = 4;        // Snapshots held in memory for transfers at once.
  Tick snapshot_serve_idle_ticks = 4000;  // A transfer nobody asked to continue is dropped.
  // Heartbeats carry a digest of every object's commit index and believed owner once per
  // cycle (replica_digest.cc); peers whose digest differs swap the range's commit indexes. Up
  // to this many objects, the digest covers all of them every heartbeat_full_every-th
  // heartbeat; above it, each heartbeat's covers a rolling window of at most this many, so
  // the work per heartbeat stays bounded however many tables a node holds (the cycle
  // lengthens instead).
  size_t heartbeat_objects_max = 256;
  uint64_t heartbeat_full_every = 10;     // Heartbeats per digest cycle (at least).
  // Ownerless objects the reconfiguration sweeper steals per heartbeat (see Sweep).
  size_t sweep_steals_max = 2;
  // Candidates the sweeper looks at per heartbeat, from where it stopped: after a membership
  // change every follower copy waits in its index until its owner re-anchors it.
  size_t sweep_checks_max = 1024;
  // Objects with nothing in progress rest in a compact encoding (replica_rest.cc), woken by
  // whatever touches them next; Tick looks at this many awake objects for that.
  bool rest_idle_objects = true;
  size_t rest_checks_per_tick = 256;
  Tick rest_retry_ticks = 200;  // An idle object whose state did not encode is tried again.

  // TEST ONLY: an acceptor that forgets its promises on restart (a known protocol bug, used to
  // prove that the simulator's checkers catch it). Never set outside tests.
  bool test_forget_promises_on_restart = false;
  // TEST ONLY: serve every read from the local applied state with no ballot confirmation
  // (stale follower reads; proves the linearizability checker has teeth).
  bool test_unsafe_local_reads = false;
  // TEST ONLY: quorums in the latest configuration only (no joint quorums, no anchors in
  // phase 1): the naive reconfiguration the simulator's checkers must catch.
  bool test_latest_config_only = false;
  // TEST ONLY: the node's own promise and acceptance count at once, not at Advance: with
  // pipelined syncs a value commits before the owner's copy is on disk.
  bool test_count_own_ack_before_persist = false;
  // TEST ONLY: the Accepts waiting for lazy members count as acked by them (docs/consensus.md
  // §Q2 first): a value commits before a Q2 holds it.
  bool test_count_lazy_as_acked = false;
  // TEST ONLY: an accepted entry does not raise must_sync (learned ones never do, docs/
  // consensus.md §Q2 first): its ack leaves before the entry is durable.
  bool test_ack_unsynced_accepts = false;
  // TEST ONLY: with a LogSource, entries leave memory once written even if not applied, not
  // even chosen (docs/consensus.md §Ready contract): a Promise omits accepted values.
  bool test_evict_accepted = false;
  // TEST ONLY: an object rests without checking that its encoding gives its state back.
  bool test_rest_without_round_trip = false;
  // TEST ONLY: an object at rest forgets its promise (an encoding that omits a field).
  bool test_rest_forgets_promise = false;
  // TEST ONLY: every report of a resting object's commit index leaves it at rest, also one
  // that would teach it something (ReportLeavesAtRest does not look).
  bool test_reports_never_wake = false;
  // TEST ONLY: digests leave commit indexes out (docs/consensus.md §Idle objects): a learner
  // that missed an idle object's last commit notice is never told.
  bool test_digest_without_commit = false;
  // TEST ONLY: a lease holder keeps answering reads from its replica after its lease ended.
  bool test_holder_reads_expired = false;
  // TEST ONLY: the owner counts a write chosen on a Q2 alone, without its lease holders' acks.
  bool test_commit_without_holders = false;
  // TEST ONLY: a holder's read of a key waits for no accepted entry (as if none wrote it).
  bool test_holder_reads_skip_accepted = false;
};

// Probe counters: prove that rare paths were exercised (FoundationDB-style coverage probes).
struct Probes {
  uint64_t steals_started = 0;
  uint64_t steals_won = 0;
  uint64_t steals_preempted = 0;          // Duelling proposers: our phase 1 lost.
  uint64_t steal_during_phase2 = 0;       // We were preempted with slots in flight.
  uint64_t steals_preempted_by_learning = 0;  // Owner learned values of a higher ballot.
  uint64_t recovered_uncommitted = 0;     // Phase 1 re-proposed an accepted value.
  uint64_t recovered_noop = 0;            // Phase 1 filled a gap with a no-op.
  uint64_t snapshots_installed = 0;       // Learner caught up from a snapshot.
  uint64_t snapshots_refused = 0;         // A received snapshot did not decode (StagedDecodes).
  uint64_t installs_resumed = 0;          // Installs a restart redid (ResumeInstall).
  uint64_t snapshot_chunks = 0;           // Snapshot chunks received (> 1 per large snapshot).
  uint64_t catchup_entries = 0;
  uint64_t catchups_queued = 0;           // A catch-up waited for a free slot.
  uint64_t catchups_throttled = 0;        // Sender: a request waited for the rate budget.
  uint64_t catchups_held = 0;             // Learner: a request held back by its backlog.
  uint64_t directory_pages = 0;           // Directory pages received (a node started empty).
  uint64_t directory_reports = 0;         // Objects those pages reported.
  uint64_t digests_differed = 0;          // A heartbeat's range digest differed from ours.
  uint64_t ranges_received = 0;           // Replies to our RangeRequests.
  uint64_t forwards = 0;
  uint64_t lazy_flushes = 0;             // Batched Accepts to members outside the Q2.
  uint64_t forward_rejects = 0;
  uint64_t read_rounds = 0;
  uint64_t reads_without_round = 0;       // Owner in every Q1: nothing to confirm.
  uint64_t reads_on_lease = 0;            // Reads released by the owner's read lease.
  uint64_t leases_granted = 0;            // Owner: a Q2 granted (or renewed) its lease.
  uint64_t prepares_held = 0;             // Acceptor: a Prepare waited for a lease to end.
  uint64_t holders_granted = 0;           // Owner: a replica read lease granted (or renewed).
  uint64_t reads_on_holder_lease = 0;     // Holder: a read answered from its own replica.
  uint64_t holders_refused = 0;           // Owner: an AUTO ask refused (writes dominate).
  uint64_t commits_held_for_holders = 0;  // Owner: a Q2 had acked, a holder had not yet.
  uint64_t moves_suggested = 0;
  uint64_t accept_resends = 0;
  // Reconfiguration.
  uint64_t reanchors_committed = 0;       // An owner's anchor entry committed.
  uint64_t joint_phase1 = 0;              // A steal needed a Q1 in more than one configuration.
  uint64_t fence_rejections = 0;          // An acceptor refused a lower-epoch proposer.
  uint64_t settles_reached = 0;           // Settled() became true for a new epoch.
  uint64_t sweeper_steals = 0;            // Steals started to re-anchor an ownerless object.
  uint64_t anchor_acks_deferred = 0;      // An anchor ack waited for the acceptor's catch-up.
  // Objects at rest (replica_rest.cc).
  uint64_t objects_rested = 0;            // An idle object was encoded and its state freed.
  uint64_t objects_woken = 0;             // A resting object was decoded for use.
};

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_REPLICA_CONFIG_H_
