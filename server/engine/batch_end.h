// Answers that complete together leave together: a transport that wants to
// send the answers of one batch of completions as one message names a
// BatchEndListener in its requests (Request::batch_end), queues answers in
// `done`, and sends them from OnBatchEnd, which the engine calls once after
// the batch (docs/design.md, "Waves").
//
// Thread-safety: both classes are used on one engine thread only.

#ifndef COWBLK_SERVER_ENGINE_BATCH_END_H_
#define COWBLK_SERVER_ENGINE_BATCH_END_H_

#include <vector>

namespace cowblk::engine {

class BatchEndListener {
 public:
  // Called once after each batch of completions in which the engine ran the
  // `done` of a request that names this listener. May submit requests.
  virtual void OnBatchEnd() = 0;

 protected:
  ~BatchEndListener() = default;

 private:
  friend class BatchEnds;
  bool queued_ = false;  // already due at this batch end
};

// The listeners due at the end of the current batch (one per engine).
class BatchEnds {
 public:
  // `l` will be called at the next Run(), once however often it is added.
  // REQUIRES: `l` lives until then.
  void Add(BatchEndListener* l) {
    if (l->queued_) return;
    l->queued_ = true;
    due_.push_back(l);
  }
  // Calls the listeners due, and those that become due meanwhile.
  void Run() {
    while (!due_.empty()) {
      running_.swap(due_);  // both keep their capacity: no allocation per batch
      for (BatchEndListener* l : running_) {
        l->queued_ = false;
        l->OnBatchEnd();
      }
      running_.clear();
    }
  }

 private:
  std::vector<BatchEndListener*> due_;
  std::vector<BatchEndListener*> running_;
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_BATCH_END_H_
