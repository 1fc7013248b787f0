// One GetVolume call of an NBD lane: where the volume's NBD export is now
// (Volume.nbd_port) and the server's epoch of the volume, asked again before
// a connection is dialled after one ended (a restarted server may listen on
// another port). Asynchronous (gRPC's callback API): it never blocks the
// thread that starts it, nor the gRPC thread that completes it.
//
// Lifetime: shared; the lane holds one reference until the answer, the call
// holds one until its callback returned. The NbdLane outlives every call
// into it (its volume's Close() waits for OnLookedUp). The call's context,
// which references the channel, is destroyed before the lane is told, so
// the client's channels are never released last on a gRPC thread.
// Thread-safety: Start() once; Cancel() from any thread at any time.

#ifndef COWBLK_CLIENT_SRC_EXPORT_LOOKUP_H_
#define COWBLK_CLIENT_SRC_EXPORT_LOOKUP_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "client/src/client_core.h"
#include "client/src/transport.h"
#include "cowblk/v1/volume.pb.h"

namespace cowblk::internal {

class NbdLane;

class ExportLookup final : public Link, public std::enable_shared_from_this<ExportLookup> {
 public:
  // A lookup of volume `volume` for `lane`, on `client` (both outlive it).
  // Nothing happens until Start().
  ExportLookup(NbdLane* lane, ClientCore* client, std::string volume);

  // Sends the call; its answer goes to NbdLane::OnLookedUp(), whatever it is.
  void Start() override;
  // Ends the call (CANCELLED) if it has not ended.
  void Cancel() override;

 private:
  void Done(const grpc::Status& status);

  // How long a lookup may take. It is made when the export may have moved
  // (a server restarting): a server still down fails it at once (no
  // wait_for_ready), one that does not answer within this is retried later.
  static constexpr std::chrono::seconds kTimeout{3};

  NbdLane* const lane_;
  ClientCore* const client_;
  v1::GetVolumeRequest request_;
  v1::Volume response_;  // written by gRPC until Done()
  std::mutex mu_;        // guards ctx_ (Cancel() against Done())
  std::unique_ptr<grpc::ClientContext> ctx_;
};

}  // namespace cowblk::internal

#endif  // COWBLK_CLIENT_SRC_EXPORT_LOOKUP_H_
