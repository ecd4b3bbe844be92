// A worker rank's serving loop: tasks from rank 0 in, results back out, in
// batches, sleeping on its doorbell when there is nothing to do.
#include "engine/mpi/rank_serve.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <set>

#include "engine/executor/payload.hpp"
#include "engine/ipc/memfd_store.hpp"
#include "engine/sys/constants.hpp"
#include "engine/mpi/rank_blocks.hpp"
#include "engine/mpi/runtime.hpp"
#include "procpool/mpi.hpp"

namespace procpool::mpi::detail {

namespace {

using procpool::detail::inline_payload_limit;
using procpool::detail::InputBuffer;
using procpool::detail::OutputBuffer;
using procpool::detail::Doorbell;

// A worker rank with nothing to do spins this long on MPI before it sleeps
// on its bell. Not longer: 200 us after a short wait gave 2.5x less
// throughput beside two busy loops (the spin takes the core a rank with
// work needs), and no clear gain without them.
constexpr std::chrono::microseconds rank_spin{20};
// Its sleep's time-out, doubled while idle: a safety net, never the way a
// message is noticed (idle ranks wake at most a few times a second).
constexpr std::chrono::milliseconds first_nap{2};
constexpr std::chrono::milliseconds longest_nap{1000};
// While a message is on its way, it sleeps this long at most, for at most
// expected_for in a row.
constexpr std::chrono::microseconds expected_nap{100};
constexpr std::chrono::milliseconds expected_for{5};
// Within a batch, cancels are looked for again once this long has passed.
constexpr std::chrono::microseconds cancel_check_period{100};
// A result batch is sent once its first result waited this long.
constexpr std::chrono::microseconds batch_delay{200};

// Takes the cancels of `tag` (pool or task ids) that have arrived, ahead of
// messages before them: a task named in one, or of a pool named in one, is dropped.
void take_cancels(MPI_Comm comm, int tag, std::set<std::uint64_t>& cancelled) {
  for (;;) {
    int found = 0;
    MPI_Status status;
    check(MPI_Iprobe(0, tag, comm, &found, &status), "MPI_Iprobe");
    if (found == 0) return;
    std::uint64_t id = 0;
    check(MPI_Recv(&id, sizeof id, MPI_BYTE, 0, tag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
    cancelled.insert(id);
  }
}

// A worker rank's results on their way back: one message holds several
// small ones (see wire.hpp), sent when full, when the tasks it came with are
// done, or when the first waited long enough.
class ResultBatch {
 public:
  // `bells`: rank 0's, or null.
  ResultBatch(MPI_Comm comm, RankBells* bells) : comm_(comm), bells_(bells) {}

  // Takes a result laid out as one record ([header][payload], piece 0), or
  // sends what it holds first if the record does not fit.
  bool fits(std::size_t record) const noexcept { return bytes_.size() + record <= batch_bytes; }
  void add(const char* record, std::size_t size) {
    if (!fits(size)) flush();
    if (count_ == 0) {
      bytes_.resize(sizeof(MessageHeader));
      first_ = std::chrono::steady_clock::now();
    }
    bytes_.insert(bytes_.end(), record, record + size);
    ++count_;
  }
  bool overdue() const noexcept { return count_ != 0 && std::chrono::steady_clock::now() - first_ > batch_delay; }
  void flush() {
    if (count_ == 0) return;
    // One result alone goes as a plain one.
    const char* begin = bytes_.data() + sizeof(MessageHeader);
    if (count_ > 1) {
      begin = bytes_.data();
      MessageHeader header;
      header.task_id = count_;
      header.size = bytes_.size() - sizeof header;
      header.flags = header_batch;
      std::memcpy(bytes_.data(), &header, sizeof header);
    }
    // Not waited for: MPI reports such a send complete only once rank 0
    // has taken it, and the next tasks need not wait for that.
    Sending& sending = sending_.emplace_back();
    check(MPI_Isend(begin, static_cast<int>(bytes_.data() + bytes_.size() - begin), MPI_BYTE, 0, tag_result, comm_,
                    &sending.request),
          "MPI_Isend");
    sending.bytes = std::move(bytes_);
    bytes_ = std::move(spare_);
    bytes_.clear();
    count_ = 0;
    posted();
    reap();
    while (sending_.size() > max_sending) {
      Backoff backoff;
      while (!reap()) backoff.pause();
    }
  }
  // Frees the sends MPI reports complete, in order; whether it freed any.
  bool reap() {
    bool any = false;
    while (!sending_.empty()) {
      int done = 0;
      check(MPI_Test(&sending_.front().request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done == 0) break;
      spare_ = std::move(sending_.front().bytes);
      sending_.pop_front();
      any = true;
    }
    return any;
  }
  // Waits for every send (before the rank leaves).
  void drain() {
    std::vector<MPI_Request> requests;
    for (Sending& s : sending_) requests.push_back(s.request);
    wait_all(requests, "MPI_Testall");
    sending_.clear();
  }
  // After posting a result message (not its pieces): counts it and rings rank 0.
  void posted() noexcept {
    if (bells_ == nullptr) return;
    bells_->posted(0).fetch_add(1);
    bells_->of(0).ring();
  }

 private:
  MPI_Comm comm_;
  RankBells* bells_;
  struct Sending {
    std::vector<char> bytes;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  // Sends out at most this many messages before one must complete.
  static constexpr std::size_t max_sending = 64;
  std::vector<char> bytes_;
  std::vector<char> spare_;  // a sent message's buffer, reused
  std::deque<Sending> sending_;
  std::uint64_t count_ = 0;
  std::chrono::steady_clock::time_point first_;
};


}  // namespace

bool serve(MPI_Comm comm, std::size_t max_message, RankBells& bells, int rank, RemoteBell* remote) {
  const auto pid = static_cast<std::int32_t>(::getpid());
  procpool::detail::MemfdStore spill;
  OutputBuffer out(&spill);
  std::vector<char> message;
  std::vector<char> payload;
  std::vector<MPI_Request> requests;
  std::set<std::uint64_t> cancelled;
  // Tasks cancelled after rank 0 sent them. A cancel follows its task, so
  // one met here in order is late (its task has run); one taken ahead of
  // order names a queued task or is late too; with nothing queued, all are.
  std::set<std::uint64_t> cancelled_tasks;
  // Without a bell (rank 0 on another host), the receive loop polls.
  Doorbell* const mine = bells.mapped() ? &bells.of(rank) : nullptr;
  ResultBatch results(comm, bells.mapped() ? &bells : nullptr);
  // Messages taken, against RankBells::posted(rank): while fewer, more are on their way.
  std::uint64_t taken = 0;
  auto expected_since = std::chrono::steady_clock::time_point{};
  Backoff idle;
  auto nap = first_nap;
  auto last_message = std::chrono::steady_clock::now();
  auto last_cancel_check = std::chrono::steady_clock::time_point{};
  serve_shared_blocks();

  // Runs one task (`data`, header.size bytes) and sends or batches its result.
  const auto run_one = [&](const MessageHeader& header, const char* data, bool check_cancels) {
    // The cancels that overtook this task; looked for once per message, and
    // again within a batch once a task took a while.
    const auto now = std::chrono::steady_clock::now();
    if (check_cancels || now - last_cancel_check > cancel_check_period) {
      take_cancels(comm, tag_cancel, cancelled);
      take_cancels(comm, tag_cancel_task, cancelled_tasks);
      last_cancel_check = now;
    }
    MessageHeader reply;
    reply.task_id = header.task_id;
    reply.pid = pid;
    out.reset(nullptr, 0, inline_payload_limit);
    out.write(&reply, sizeof reply);
    if (cancelled.count(header.pool_id) != 0 || cancelled_tasks.erase(header.task_id) != 0) {
      reply.flags = header_dropped;
    } else {
      procpool::detail::run_payload([&] { return InputBuffer(data, header.size); }, out);
    }
    const MessageHeader shape = layout(out.size() - sizeof reply, inline_payload_limit, max_message);
    reply.size = shape.size;
    reply.piece = shape.piece;
    // The buffer's own bytes (its heap block, or its writable memfd mapping):
    // the header goes into the room left for it at the front.
    char* bytes = const_cast<char*>(out.data());
    if (reply.piece == 0 && out.size() <= batch_bytes - sizeof(MessageHeader)) {
      std::memcpy(bytes, &reply, sizeof reply);
      results.add(bytes, out.size());
      return;
    }
    results.flush();  // in order: the results before it go first
    post_message(comm, 0, tag_result, bytes, reply, bytes + sizeof reply, tag_result_piece, requests);
    results.posted();
    wait_all(requests, "MPI_Testall");
  };

  for (;;) {
    int found = 0;
    MPI_Message handle = MPI_MESSAGE_NULL;
    MPI_Status status;
    // Twice: an MPI_Improbe that finds nothing then progresses MPI, which may
    // bring the message in only for the next one to find. A rank about to
    // sleep must see every message sent before the ring it may have missed.
    const auto probe = [&] {
      for (int i = 0; i < 2 && found == 0; ++i) {
        check(MPI_Improbe(0, MPI_ANY_TAG, comm, &found, &handle, &status), "MPI_Improbe");
      }
      return found != 0;
    };
    if (!probe()) {
      results.reap();
      cancelled_tasks.clear();
      if (mine == nullptr) {
        if (remote == nullptr || std::chrono::steady_clock::now() - last_message < remote_poll_for) {
          idle.pause();
          continue;
        }
        const std::uint64_t rings = remote->rings.load();
        remote->bell.wait(probe, std::chrono::nanoseconds(0), std::chrono::nanoseconds(nap));
        if (remote->rings.load() != rings) {
          // Rung: a message is on its way (UDP may overtake it), so poll again.
          last_message = std::chrono::steady_clock::now();
        } else {
          nap = std::min(2 * nap, longest_nap);
        }
      } else {
        // Asleep until rank 0 rings (after it sends here); the time-out only
        // guards against a ring that came before its message could be seen.
        // Rank 0 has posted a message not seen yet: it is on its way, so the
        // rank only dozes (for a while: a count gone wrong must not keep it
        // from sleeping for good).
        const auto wait_start = std::chrono::steady_clock::now();
        const bool fresh = bells.posted(rank).load() != taken;
        if (!fresh) expected_since = {};
        if (fresh && expected_since == std::chrono::steady_clock::time_point{}) expected_since = wait_start;
        const bool expected = fresh && wait_start - expected_since < expected_for;
        if (!mine->wait(probe, rank_spin,
                        expected ? std::chrono::nanoseconds(expected_nap) : std::chrono::nanoseconds(nap)) &&
            !expected) {
          nap = std::min(2 * nap, longest_nap);
        }
      }
      if (found == 0) continue;
    }
    idle.reset();
    nap = first_nap;
    last_message = std::chrono::steady_clock::now();
    int count = 0;
    check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
    message.resize(static_cast<std::size_t>(count));
    check(MPI_Mrecv(message.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE), "MPI_Mrecv");
    ++taken;
    if (status.MPI_TAG == tag_shutdown) {
      results.drain();
      return !message.empty() && message[0] != 0;
    }
    if (status.MPI_TAG == tag_cancel && message.size() == sizeof(std::uint64_t)) {
      std::uint64_t pool = 0;
      std::memcpy(&pool, message.data(), sizeof pool);
      cancelled.insert(pool);
      continue;
    }
    if (status.MPI_TAG == tag_cancel_task) continue;
    // A shared value, ahead of its first task here; a forget, after its last.
    if (status.MPI_TAG == tag_share) {
      receive_shared_block(comm, message, requests);
      continue;
    }
    if (status.MPI_TAG == tag_forget) {
      forget_shared_block(message);
      continue;
    }
    MessageHeader header;
    if (status.MPI_TAG != tag_task || message.size() < sizeof header) {
      throw Error("procpool::mpi: a worker rank received a message it does not know (tag " +
                  std::to_string(status.MPI_TAG) + ")");
    }
    std::memcpy(&header, message.data(), sizeof header);
    const char* data = message.data() + sizeof header;
    if ((header.flags & header_batch) != 0) {
      if (header.piece != 0 || message.size() != sizeof header + header.size) {
        throw Error("procpool::mpi: a batch of tasks does not match its header");
      }
      std::size_t at = sizeof header;
      for (std::uint64_t i = 0; i < header.task_id; ++i) {
        MessageHeader task;
        if (message.size() - at < sizeof task) throw Error("procpool::mpi: a batch of tasks is cut short");
        std::memcpy(&task, message.data() + at, sizeof task);
        at += sizeof task;
        if (task.piece != 0 || message.size() - at < task.size) {
          throw Error("procpool::mpi: a batch of tasks is cut short");
        }
        run_one(task, message.data() + at, i == 0);
        at += task.size;
        if (results.overdue()) results.flush();
      }
      results.flush();
      continue;
    }
    if (header.piece != 0) {
      if (header.piece > INT_MAX) throw Error("procpool::mpi: a task came in pieces over INT_MAX bytes");
      payload.resize(header.size);
      post_piece_receives(comm, 0, tag_task_piece, header, payload.data(), requests);
      wait_all(requests, "MPI_Testall");
      data = payload.data();
    } else if (message.size() != sizeof header + header.size) {
      throw Error("procpool::mpi: a task's size does not match its header");
    }
    run_one(header, data, true);
    results.flush();
  }
}

}  // namespace procpool::mpi::detail
