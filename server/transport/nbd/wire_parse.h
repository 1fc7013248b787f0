// The NBD export's parsing of what a client sends, as pure functions over
// bytes: the handshake's client flags, option headers and NBD_OPT_GO/INFO
// data, and the transmission's request headers with the verdict on each
// (submit, refuse, or end the connection). Handshake and Transmission do the
// socket and the store around them; tests/fuzz/nbd_wire_fuzz.cc fuzzes them.
// Library cowblk_nbd_parse (no engine, store or socket; with SocketReader,
// shared by cowblkd's export and the gateway of `cowblk nbd`).
//
// Thread-safety: pure functions.

#ifndef COWBLK_SERVER_TRANSPORT_NBD_WIRE_PARSE_H_
#define COWBLK_SERVER_TRANSPORT_NBD_WIRE_PARSE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/block_range.h"

namespace cowblk::nbd {

// The largest request the export takes (its advertised maximum block size).
inline constexpr uint32_t kMaxBlock = static_cast<uint32_t>(kMaxTransferBytes);
// An option longer than this ends the handshake.
inline constexpr uint32_t kMaxOptionBytes = 64 << 10;

// OK when the client's flags (after the server's hello) are ones cowblkd
// knows; else why the handshake ends.
absl::Status CheckClientFlags(uint32_t client_flags);

struct OptionHeader {
  uint32_t option = 0;
  uint32_t length = 0;  // the option's data that follows, <= kMaxOptionBytes
};
// Parses an option's 16-byte header (magic, option, length); an error (bad
// magic, too long) ends the handshake.
absl::StatusOr<OptionHeader> ParseOptionHeader(const uint8_t* b);

// The export name NBD_OPT_GO or NBD_OPT_INFO asks for (u32 name length, the
// name, u16 count, count u16 information types); nullopt when malformed
// (answered NBD_REP_ERR_INVALID).
std::optional<std::string> ParseInfoOrGoName(const std::string& data);

// NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT's data: u32 name
// length, the export name, u32 query count, each query as u32 length and
// string. nullopt when malformed (answered NBD_REP_ERR_INVALID).
struct MetaContextOption {
  std::string export_name;
  std::vector<std::string> queries;
};
std::optional<MetaContextOption> ParseMetaContextOption(const std::string& data);

// The one metadata context the export has, and its id on the wire.
inline constexpr char kBaseAllocation[] = "base:allocation";
inline constexpr uint32_t kBaseAllocationId = 1;
// Whether `query` selects base:allocation: its name, or (when listing)
// the whole "base:" namespace.
bool SelectsBaseAllocation(const std::string& query, bool listing);

// A transmission request header: kRequestBytes (28) on the wire.
struct RequestHeader {
  uint32_t magic = 0;
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};
RequestHeader ParseRequestHeader(const uint8_t* h);

// What to do with a parsed request.
enum class RequestVerdict {
  kBadMagic,        // end the connection, nothing answered
  kDisconnect,      // NBD_CMD_DISC: end the connection
  kWriteTooLarge,   // a write above kMaxBlock: answer EINVAL, end (its payload cannot be taken)
  kUnknownCommand,  // answer EINVAL and go on (no payload)
  kBadFlags,        // answer EINVAL and go on, after taking a write's payload
  kSubmit,          // a block request for the pipeline
};
// `block_status`: the client selected base:allocation, so NBD_CMD_BLOCK_STATUS
// (with NBD_CMD_FLAG_REQ_ONE) is a command; otherwise it is unknown.
RequestVerdict CheckRequest(const RequestHeader& h, bool block_status = false);

// Bytes of payload after the header the stream carries for `h` (a write's;
// taken even when the write is refused for its flags, to stay in step).
// REQUIRES: CheckRequest(h) is kBadFlags or kSubmit.
uint32_t PayloadBytes(const RequestHeader& h);

// What a server sends in the handshake, as bytes: the greeting (fixed
// newstyle, no zeroes), an option reply, NBD_OPT_EXPORT_NAME's answer
// (`no_zeroes`: the client said NBD_FLAG_C_NO_ZEROES), NBD_OPT_LIST's entry
// for one export, and NBD_OPT_INFO/GO's NBD_INFO_EXPORT and
// NBD_INFO_BLOCK_SIZE (whose maximum is kMaxBlock).
std::string Greeting();
std::string OptionReply(uint32_t option, uint32_t type, const std::string& data);
std::string ExportNameReply(uint64_t size, uint16_t transmission_flags, bool no_zeroes);
std::string ListEntry(const std::string& name);
std::string InfoExport(uint64_t size, uint16_t transmission_flags);
std::string InfoBlockSize(uint32_t minimum, uint32_t preferred);
// NBD_REP_META_CONTEXT's data.
std::string MetaContextEntry(uint32_t id, const std::string& name);

// A transmission reply's header: simple, or (`structured`) one structured
// chunk with NBD_REPLY_FLAG_DONE: NBD_REPLY_TYPE_ERROR when `error` is not
// 0, else by what the reply carries after the header.
enum class ReplyKind {
  kNone,         // nothing (NBD_REPLY_TYPE_NONE)
  kReadData,     // a read's data (NBD_REPLY_TYPE_OFFSET_DATA, at its offset)
  kBlockStatus,  // BlockStatusPayload (NBD_REPLY_TYPE_BLOCK_STATUS)
};
inline constexpr size_t kMaxReplyHeaderBytes = 28;
size_t ReplyHeaderBytes(bool structured, uint32_t error, ReplyKind kind);
// Writes the header of the reply to `cookie` into `out` (room for
// kMaxReplyHeaderBytes), with `data_bytes` of data to follow it (a read's
// from `offset`; none for kNone or an error); returns its size. Allocates
// nothing.
size_t ReplyHeader(uint8_t* out, bool structured, uint32_t error, uint64_t cookie,
                   ReplyKind kind, uint64_t offset, uint32_t data_bytes);

// One extent of a block status reply: `length` bytes in `flags` state
// (kStateHole, kStateZero).
struct Extent {
  uint32_t length = 0;
  uint32_t flags = 0;
};
// NBD_REPLY_TYPE_BLOCK_STATUS's payload: the context id, then the extents.
std::string BlockStatusPayload(uint32_t context_id, const std::vector<Extent>& extents);

// The errno an NBD client gets for a request that failed with `code` (0
// for OK): `read` for NBD_CMD_READ (past the end is EINVAL there, ENOSPC
// for the commands that write), `out_of_memory` when a RESOURCE_EXHAUSTED
// means memory rather than space.
uint32_t ReplyErrnoFor(absl::StatusCode code, bool read, bool out_of_memory);

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_WIRE_PARSE_H_
