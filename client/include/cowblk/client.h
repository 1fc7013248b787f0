// cowblk::Client: a connection to one cowblkd server (a pool of gRPC
// channels, TLS, a bearer token) and the administrative calls: volumes,
// images, health. Volume I/O goes through cowblk::Volume (volume.h), which a
// Client opens.
//
//   auto client = cowblk::Client::Create({.target = "127.0.0.1:7800"});
//   if (!client.ok()) ...
//   auto volume = client->OpenVolume("disk0");
//
// Errors are absl::Status values whose codes are the server's gRPC codes
// (NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT, ...; see docs/cowblkd.md);
// a server that cannot be reached is UNAVAILABLE, a call that ran out of
// time DEADLINE_EXCEEDED. No function throws.
//
// Thread-safety: a Client is a cheap handle (copies share the connections);
// every method may be called from any thread at once. The connections close
// when the last copy, and the last Volume opened through it, are gone.

#ifndef COWBLK_CLIENT_INCLUDE_COWBLK_CLIENT_H_
#define COWBLK_CLIENT_INCLUDE_COWBLK_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cowblk/export.h"
#include "cowblk/image_upload.h"
#include "cowblk/types.h"
#include "cowblk/volume.h"

namespace cowblk {

namespace internal {
class ClientCore;
}

struct ClientOptions {
  // The server: "host:port", or any gRPC target ("dns:///host:port",
  // "unix:/path").
  std::string target = "127.0.0.1:7800";

  // TLS is used when `tls` is true or any of the files is set.
  bool tls = false;
  // CA certificates (PEM) that the server certificate must chain to; empty:
  // the system's roots.
  std::string tls_ca_file;
  // A client certificate chain and its key (PEM), for mutual TLS. Both or
  // neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // The name the server certificate must carry, when it differs from the
  // host in `target` (tests, or dialling an address).
  std::string tls_server_name;

  // A bearer token sent with every call (`authorization: Bearer TOKEN`);
  // empty: none. Without TLS it travels in clear text.
  std::string token;

  // gRPC channels, each its own TCP connection (channel arguments differ so
  // gRPC does not share them). Volumes spread their streams over them.
  int channels = 2;

  // The default time limit of every call, I/O included.
  std::chrono::milliseconds deadline{30000};
  // The time limit of one UploadImage (which moves a whole image).
  std::chrono::milliseconds upload_deadline{std::chrono::hours(1)};
  // Upper bound of the wait between two attempts to reach a server that is
  // down (gRPC's reconnect backoff, and the library's own between streams).
  std::chrono::milliseconds max_backoff{2000};

  // Keepalive: a channel whose connection received nothing for
  // `keepalive_time` pings the server, and a ping not answered within
  // `keepalive_timeout` closes the connection. Its streams and calls then
  // end UNAVAILABLE (volume I/O is sent again on a new connection, see
  // volume.h), instead of waiting out their deadlines on a connection that
  // died without a FIN or RST (a stopped server, a network cut). Idle
  // channels are pinged too. cowblkd refuses pings more often than every
  // 10 s on a connection it sends nothing on (GOAWAY after the third):
  // keep `keepalive_time` above that (the default leaves room for timer
  // jitter). A dead connection costs at most keepalive_time +
  // keepalive_timeout after its last byte received (20 s, inside the
  // default `deadline`). 0: no keepalive (then Volume::Close() may wait
  // for ever for a stream whose write is stuck on a silent connection).
  // Both at most 24 h; `keepalive_timeout` must be positive.
  std::chrono::milliseconds keepalive_time{15000};
  std::chrono::milliseconds keepalive_timeout{5000};
};

// Returns the token in `path`: its first line, without surrounding blanks.
// Fails if the file cannot be read or holds no token.
COWBLK_EXPORT absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

class COWBLK_EXPORT Client {
 public:
  // Checks the options, reads the TLS files and makes the channels; it does
  // not connect (the first call does). Fails INVALID_ARGUMENT on bad options
  // and NOT_FOUND (or the errno's code) on unreadable files.
  static absl::StatusOr<Client> Create(const ClientOptions& options);

  ~Client();
  Client(const Client&);
  Client& operator=(const Client&);
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  const ClientOptions& options() const;

  // ---- Volumes --------------------------------------------------------

  // Opens volume `name` for I/O (it must exist). See volume.h.
  absl::StatusOr<std::unique_ptr<Volume>> OpenVolume(const std::string& name,
                                                     const VolumeOptions& options = {});

  // Creates a blank (all-zero) volume of `size_bytes`, a multiple of 512.
  absl::StatusOr<VolumeInfo> CreateVolume(const std::string& name, uint64_t size_bytes);
  // Creates a volume layered over image `image`, of the image's size.
  absl::StatusOr<VolumeInfo> CreateVolumeFromImage(const std::string& name,
                                                   const std::string& image);
  absl::StatusOr<VolumeInfo> GetVolume(const std::string& name);
  // Every volume the token can see, in name order (all pages).
  absl::StatusOr<std::vector<VolumeInfo>> ListVolumes();
  // Deletes a volume and its data. Its in-flight requests fail.
  absl::Status DeleteVolume(const std::string& name);
  // Merges the volume (its writes over its image) into a new image `image`:
  // the volume at one moment during the call (every write acknowledged
  // before it, none sent after it), while it serves on. Past the call's
  // deadline the server stops and leaves no image.
  absl::StatusOr<ImageInfo> CommitVolume(const std::string& name, const std::string& image);
  // Makes volume `name` a copy of volume `source` at one moment during the
  // call (a new COW file over the same image); the source serves on.
  // ALREADY_EXISTS, NOT_FOUND, FAILED_PRECONDITION as CommitVolume.
  absl::StatusOr<VolumeInfo> CloneVolume(const std::string& source, const std::string& name);
  // Grows a blank volume to `size_bytes` keeping its data; the server
  // closes it meanwhile (open Volumes see UNAVAILABLE and open it again).
  // FAILED_PRECONDITION: smaller, or a volume over an image.
  absl::StatusOr<VolumeInfo> ResizeVolume(const std::string& name, uint64_t size_bytes);
  // Takes back a volume in VolumeState::kError whose image's mtime changed
  // (a copy without times) or whose recorded image path moved, as
  // `qemu-img rebase -u`: the server records `image` (empty: the image the
  // volume is over) with its current mtime in the volume's header, never
  // touching data, and opens the volume again. The caller vouches that the
  // image's content is unchanged. FailedPrecondition for a volume that is
  // open or an image of another size. Admin only.
  absl::StatusOr<VolumeInfo> RebaseVolume(const std::string& name, const std::string& image = "");
  // Which ranges of [offset, offset+length) live in the COW file; length 0
  // means to the end. The ranges are consecutive and cover the request:
  // the server answers at most 10000 a call, and this follows its pages.
  absl::StatusOr<std::vector<AllocationRange>> GetAllocation(const std::string& name,
                                                             uint64_t offset = 0,
                                                             uint64_t length = 0);

  // ---- Images ---------------------------------------------------------

  // Called as an upload or a copy moves bytes: the total so far.
  using ProgressFn = std::function<void(uint64_t bytes)>;
  // Fills `buf` with up to `size` bytes; returns how many, 0 at the end.
  using ReadFn = std::function<absl::StatusOr<size_t>(char* buf, size_t size)>;

  // Uploads the file at `path` as image `name` (the image appears only once
  // complete). `progress` may be null.
  absl::StatusOr<ImageInfo> UploadImage(const std::string& name, const std::string& path,
                                        const ProgressFn& progress = nullptr);
  // Starts an upload of image `name` of `size` bytes (0: not known) that
  // the caller feeds data and zero ranges, in order (image_upload.h).
  absl::StatusOr<std::unique_ptr<ImageUpload>> StartImageUpload(const std::string& name,
                                                                uint64_t size = 0);
  // Uploads what `read` returns until it returns 0 (a pipe, a socket).
  absl::StatusOr<ImageInfo> UploadImageFrom(const std::string& name, const ReadFn& read,
                                            const ProgressFn& progress = nullptr);
  absl::StatusOr<ImageInfo> GetImage(const std::string& name);
  // Every image, in name order (all pages).
  absl::StatusOr<std::vector<ImageInfo>> ListImages();
  // Deletes an image; FAILED_PRECONDITION while a volume uses it.
  absl::Status DeleteImage(const std::string& name);

  // ---- Snapshots ------------------------------------------------------

  // Takes snapshot `name` of volume `volume`: an image of the volume at one
  // moment during the call (as CommitVolume's), with its source and time
  // recorded. CreateVolumeFromImage(v, name) makes a volume from it.
  // ALREADY_EXISTS: an image or snapshot `name` exists. Admin only.
  absl::StatusOr<SnapshotInfo> CreateSnapshot(const std::string& volume, const std::string& name);
  absl::StatusOr<SnapshotInfo> GetSnapshot(const std::string& name);
  // Every snapshot (all pages), or those of `volume` when it is not empty.
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(const std::string& volume = "");
  // Deletes a snapshot; while volumes use its image, it is hidden and the
  // image goes with the last of them. NOT_FOUND when there is none.
  absl::Status DeleteSnapshot(const std::string& name);

  // ---- Health ---------------------------------------------------------

  // The server's version, data directory (capacity, free bytes), volume
  // count and NBD export address.
  absl::StatusOr<ServerInfo> GetServerInfo();

  // grpc.health.v1 Check of `service` ("" is the whole server).
  absl::StatusOr<HealthState> Health(const std::string& service = "");

 private:
  explicit Client(std::shared_ptr<internal::ClientCore> core);

  std::shared_ptr<internal::ClientCore> core_;
};

}  // namespace cowblk

#endif  // COWBLK_CLIENT_INCLUDE_COWBLK_CLIENT_H_
