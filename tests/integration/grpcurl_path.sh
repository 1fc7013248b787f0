# The grpcurl path: a client that knows nothing but server reflection
# (reflection_client.py: no generated stubs, no .proto files) lists, describes
# and calls cowblkd's services, grpc.health.v1.Health included. Tokens are on,
# so the `authorization` header is exercised: reflection and health need none.
# docs/grpcurl.md shows these calls as grpcurl commands.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
PY=/usr/bin/python3  # Debian's: python3-grpcio, python3-protobuf
[ -x "$COWBLK_BIN/cowblkd" ] || fail "no cowblkd in $COWBLK_BIN"
"$PY" -c 'import grpc, google.protobuf' || fail "$PY lacks python3-grpcio or python3-protobuf"

# A short token: cowblkd (server/transport/grpc/auth.cc, Authorizer::FromFile) keeps a
# string_view into a destroyed temporary, so token-file lines longer than 15
# bytes (beyond std::string's inline buffer) are misparsed.
TOKEN=grpcurl
echo "$TOKEN admin" >"$TMP/tokens"
start_server --token-file "$TMP/tokens"
address=$COWBLK_SERVER
# The server's log, for whoever reads the test's output.
show_server_log() { cat "$TMP/server.log" >&2; }
cleanup_hooks="show_server_log"

client() {
  "$PY" "$COWBLK_TESTS/integration/reflection_client.py" -plaintext -max-time 30 "$address" "$@"
}
AUTH="authorization: Bearer $TOKEN"

# --- list and describe: reflection alone, no token needed -----------------
expect_exit 0 client list
for service in cowblk.v1.BlockService cowblk.v1.VolumeService grpc.health.v1.Health \
    grpc.reflection.v1alpha.ServerReflection; do
  grep -qx "$service" "$TMP/out" || { cat "$TMP/out" >&2; fail "list lacks $service"; }
done
expect_exit 0 client list cowblk.v1.BlockService
for method in Session Read Write Flush; do
  grep -qx "cowblk.v1.BlockService.$method" "$TMP/out" ||
    { cat "$TMP/out" >&2; fail "list cowblk.v1.BlockService lacks $method"; }
done

expect_exit 0 client describe cowblk.v1.BlockService.Session
expect_output "cowblk.v1.BlockService.Session is a method:"
expect_output "rpc Session ( stream .cowblk.v1.SessionRequest ) returns ( stream .cowblk.v1.SessionResponse );"
expect_exit 0 client describe cowblk.v1.WriteRequest
expect_output "cowblk.v1.WriteRequest is a message:"
expect_output "message WriteRequest {"
expect_output "  string volume = 1;"
expect_output "  uint64 offset = 2;"
expect_output "  bytes data = 3;"
expect_output "  bool flush = 4;"
expect_exit 0 client describe cowblk.v1.Volume
expect_output "  .cowblk.v1.VolumeState state = 6;"
expect_exit 0 client describe grpc.health.v1.Health
expect_output "rpc Check ( .grpc.health.v1.HealthCheckRequest ) returns ( .grpc.health.v1.HealthCheckResponse );"
# The API's documentation travels with reflection, over v1 and v1alpha.
expect_exit 0 client describe cowblk.v1.BlockService.Session
expect_output "The high-throughput path"
REFLECTION_VERSION=v1 expect_exit 0 client describe cowblk.v1.VolumeService.CommitVolume
expect_output "Merges a volume (its COW data over its image) into a new image"
REFLECTION_VERSION=v1 expect_exit 0 client list
expect_output "grpc.reflection.v1.ServerReflection"
expect_exit 1 client describe cowblk.v1.NoSuchThing
expect_output "cowblk.v1.NoSuchThing"

# --- health: open to everyone ----------------------------------------------
expect_exit 0 client call grpc.health.v1.Health/Check -d '{}'
expect_output '"status": "SERVING"'
expect_exit 0 client call grpc.health.v1.Health/Check -d '{"service": "cowblk.v1.BlockService"}'
expect_output '"status": "SERVING"'

# --- VolumeService ----------------------------------------------------------
# Without a token the API refuses (exit 64 + 16) and creates nothing.
expect_exit 80 client call cowblk.v1.VolumeService/CreateVolume \
  -d '{"name": "demo", "sizeBytes": "1048576"}'
expect_output "Code: Unauthenticated"
expect_exit 0 client -H "$AUTH" call cowblk.v1.VolumeService/CreateVolume \
  -d '{"name": "demo", "sizeBytes": "1048576"}'
expect_output '"name": "demo"'
expect_output '"sizeBytes": "1048576"'
expect_output '"sectorSize": 512'
expect_output '"state": "VOLUME_STATE_READY"'
expect_exit 0 client -H "$AUTH" call cowblk.v1.VolumeService/GetVolume -d '{"name": "demo"}'
expect_output '"name": "demo"'
expect_output '"sizeBytes": "1048576"'
expect_exit 69 client -H "$AUTH" call cowblk.v1.VolumeService/GetVolume -d '{"name": "nope"}'
expect_output "Code: NotFound"

# --- BlockService -------------------------------------------------------------
head -c 4096 /dev/urandom >"$TMP/a.bin"
head -c 512 /dev/urandom >"$TMP/b.bin"
head -c 512 /dev/urandom >"$TMP/c.bin"
a64=$(base64 -w0 "$TMP/a.bin")
b64=$(base64 -w0 "$TMP/b.bin")
c64=$(base64 -w0 "$TMP/c.bin")

# Write is client streaming: two messages from stdin (`-d @`), as grpcurl
# takes them; then a JSON array (reflection_client.py only, not grpcurl).
expect_exit 0 client -H "$AUTH" call cowblk.v1.BlockService/Write -d @ <<EOF
{"volume": "demo", "offset": "0", "data": "$a64"}
{"offset": "8192", "data": "$b64", "flush": true}
EOF
expect_output '"bytesWritten": "4608"'
expect_exit 0 client -H "$AUTH" call cowblk.v1.BlockService/Write \
  -d "[{\"volume\": \"demo\", \"offset\": \"1048064\", \"data\": \"$c64\"}]"
expect_output '"bytesWritten": "512"'
expect_exit 0 client -H "$AUTH" call cowblk.v1.VolumeService/GetVolume -d '{"name": "demo"}'
expect_output '"allocatedBytes": "5120"'

# Read is server streaming: the bytes come back as written, holes as zeros.
# (Offset 0 is a default value, so the JSON of the first chunk omits it.)
data_of() { sed -n 's/^  "data": "\(.*\)"$/\1/p' "$TMP/out" | base64 -d; }
expect_exit 0 client -H "$AUTH" call cowblk.v1.BlockService/Read \
  -d '{"volume": "demo", "offset": "0", "length": "12288"}'
data_of >"$TMP/got.bin"
{
  cat "$TMP/a.bin"
  head -c 4096 /dev/zero
  cat "$TMP/b.bin"
  head -c 3584 /dev/zero
} >"$TMP/want.bin"
cmp "$TMP/got.bin" "$TMP/want.bin" || fail "Read returned other bytes than were written"
expect_exit 0 client -H "$AUTH" call cowblk.v1.BlockService/Read \
  -d '{"volume": "demo", "offset": "1048064", "length": "512"}'
expect_output '"offset": "1048064"'
data_of >"$TMP/got.bin"
cmp "$TMP/got.bin" "$TMP/c.bin" || fail "Read of the last sector returned other bytes"
expect_exit 67 client -H "$AUTH" call cowblk.v1.BlockService/Read \
  -d '{"volume": "demo", "offset": "100", "length": "512"}'
expect_output "Code: InvalidArgument"
expect_output "offset"

expect_exit 0 client -H "$AUTH" call cowblk.v1.BlockService/Flush -d '{"volume": "demo"}'
expect_output "{}"

# Session is bidirectional: a bad request fails alone, the good one is answered.
expect_exit 0 client -H "$AUTH" call cowblk.v1.BlockService/Session -d '
  {"id": "1", "volume": "demo", "op": "OP_READ", "offset": "8192", "length": "512"}
  {"id": "2", "op": "OP_READ", "offset": "8193", "length": "512"}'
expect_output "\"data\": \"$b64\""
expect_output '"id": "2"'
expect_output '"code": 3'

# A batch in one message, as docs/grpcurl.md shows it: each request answered.
expect_exit 0 client -H "$AUTH" call cowblk.v1.BlockService/Session -d '
  {"volume": "demo", "batch": [{"id": "7", "op": "OP_READ", "offset": "8192", "length": "512"}, {"id": "8", "op": "OP_FLUSH"}]}'
expect_output '"id": "7"'
expect_output "\"data\": \"$b64\""
expect_output '"id": "8"'

# --- SIGTERM: drain, flush, exit 0 ---------------------------------------------
stop_server
[ "$SERVER_STATUS" -eq 0 ] ||
  { cat "$TMP/server.log" >&2; fail "cowblkd exited $SERVER_STATUS on SIGTERM"; }
grep -q "event=stopped flush=ok" "$TMP/server.log" ||
  { cat "$TMP/server.log" >&2; fail "cowblkd did not log a clean stop"; }
