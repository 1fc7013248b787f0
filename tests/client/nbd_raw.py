"""A raw NBD client for the gateway's shell tests (tests/client/cli/nbd_gateway_*.sh).

  nbd_raw.py write-then-wait SOCKET EXPORT PAYLOAD
      NBD_OPT_GO, one write of PAYLOAD at 0 (no FUA, no flush); prints "sent",
      waits for a line on stdin, then prints the reply ("reply MAGIC ERROR COOKIE")
      and "eof" when the server then closes the connection.
  nbd_raw.py bad-input SOCKET EXPORT SIZE
      Options and requests the protocol or the export refuse, each answered with
      the right error while the connection goes on; prints "ok" or exits non-zero.
  nbd_raw.py block-status SOCKET EXPORT SIZE
      For a blank EXPORT of SIZE bytes, nothing written in its first MiB:
      NBD_CMD_BLOCK_STATUS's rules (structured replies first, EINVAL past the
      end, of length 0, with a bad flag or without base:allocation; REQ_ONE
      answers one extent); prints "ok".
  nbd_raw.py conformance SOCKET EXPORT
      proto.md's transmission rules beside bad-input's, for a blank EXPORT:
      NBD_CMD_DISC answers every request sent before it; flags a command does
      not take and zero lengths are EINVAL, a write refused for its flags
      still takes its payload (the stream stays in step); NBD_CMD_CACHE (not
      advertised) is EINVAL; FUA is taken by write, trim, write-zeroes and
      flush; prints "ok".
  nbd_raw.py write-zeroes SOCKET EXPORT SIZE
      NBD_CMD_WRITE_ZEROES's rules for an EXPORT of SIZE bytes whose first MiB
      holds no zeros (its last 4 KiB may be zeroed): fast zero advertised; fast
      zero with NO_HOLE fails ENOTSUP at once and changes nothing; unknown or
      misplaced flags and bad ranges fail EINVAL/ENOSPC; FAST_ZERO, NO_HOLE
      and FUA each zero; prints "ok".
  nbd_raw.py no-memory SOCKET EXPORT
      For a gateway whose allocations above 16 MiB fail: a 32 MiB read and a
      32 MiB write get ENOMEM, twice (their bytes are given back), and the
      connection goes on (a 4 KiB read); prints "ok".
"""
import errno
import socket
import struct
import sys

OPT_MAGIC = 0x49484156454F5054
REQ_MAGIC = 0x25609513
REPLY_MAGIC = 0x67446698
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
ERR_UNSUP, ERR_INVALID, ERR_UNKNOWN = (1 << 31) + 1, (1 << 31) + 3, (1 << 31) + 6
REP_META_CONTEXT = 4
STRUCTURED, SET_META = 8, 10
READ, WRITE, DISC, BLOCK_STATUS = 0, 1, 2, 7
REQ_ONE = 1 << 3


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.recvn(18)  # NBDMAGIC, IHAVEOPT, handshake flags
        self.s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes

    def recvn(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                sys.exit("the server closed the connection")
            b += c
        return b

    def option(self, opt, data=b""):
        """Sends an option; returns its replies [(type, data)] up to the final one."""
        self.s.sendall(struct.pack(">QII", OPT_MAGIC, opt, len(data)) + data)
        replies = []
        while True:
            _, got, kind, length = struct.unpack(">QIII", self.recvn(20))
            assert got == opt, (got, opt)
            replies.append((kind, self.recvn(length)))
            if kind == REP_ACK or kind & (1 << 31):
                return replies

    def go(self, name):
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        return self.option(7, data)

    def send(self, kind, cookie, offset, length, flags=0, payload=b""):
        self.s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, flags, kind, cookie, offset, length)
                       + payload)

    def chunk(self):
        """One structured reply chunk: (flags, type, cookie, payload)."""
        magic, flags, kind, cookie, length = struct.unpack(">IHHQI", self.recvn(20))
        assert magic == 0x668E33EF, hex(magic)
        return flags, kind, cookie, self.recvn(length) if length else b""

    def reply(self):
        magic, error, cookie = struct.unpack(">IIQ", self.recvn(16))
        assert magic == REPLY_MAGIC, hex(magic)
        return error, cookie


def write_then_wait(path, export, payload_file):
    c = Client(path)
    assert c.go(export.encode())[-1][0] == REP_ACK
    payload = open(payload_file, "rb").read()
    c.send(WRITE, 42, 0, len(payload), payload=payload)
    print("sent", flush=True)
    sys.stdin.readline()
    error, cookie = c.reply()
    print("reply", hex(REPLY_MAGIC), error, cookie, flush=True)
    print("eof" if c.s.recv(1) == b"" else "more", flush=True)


def bad_input(path, export, size):
    c = Client(path)
    assert c.option(99)[-1][0] == ERR_UNSUP
    assert c.option(3, b"x")[-1][0] == ERR_INVALID  # NBD_OPT_LIST takes no data
    assert c.option(7, b"\0\0")[-1][0] == ERR_INVALID  # malformed GO
    assert c.go(b"no-such-export")[-1][0] == ERR_UNKNOWN
    assert c.go(export.encode())[-1][0] == REP_ACK
    expect = {}
    # A read above the maximum block (32 MiB): EINVAL, no buffer, goes on.
    c.send(READ, 1, 0, 64 << 20)
    expect[1] = errno.EINVAL
    c.send(99, 2, 0, 0)  # an unknown command
    expect[2] = errno.EINVAL
    c.send(READ, 3, 0, 4096, flags=1 << 5)  # a flag reads do not take
    expect[3] = errno.EINVAL
    c.send(READ, 4, size, 4096)  # past the end
    expect[4] = errno.EINVAL
    c.send(WRITE, 5, size, 512, payload=b"\1" * 512)  # a write past the end
    expect[5] = errno.ENOSPC
    c.send(READ, 6, 1, 512)  # not sector-aligned
    expect[6] = errno.EINVAL
    # Many reads in flight at once, each answered once, with its data.
    for cookie in range(100, 164):
        c.send(READ, cookie, (cookie - 100) * 4096, 4096)
        expect[cookie] = 0
    while expect:
        error, cookie = c.reply()
        assert cookie in expect, cookie
        assert error == expect[cookie], (cookie, error, expect[cookie])
        if cookie >= 100 and error == 0:
            c.recvn(4096)
        del expect[cookie]
    # A write above the maximum block cannot be skipped: EINVAL, then the end.
    c.send(WRITE, 7, 0, 64 << 20)
    assert c.reply() == (errno.EINVAL, 7)
    assert c.s.recv(1) == b""
    print("ok")


def meta_data(name, queries):
    return (struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries)) +
            b"".join(struct.pack(">I", len(q)) + q for q in queries))


def block_status(path, export, size):
    name = export.encode()
    base = meta_data(name, [b"base:allocation"])
    c = Client(path)
    assert c.option(SET_META, base)[-1][0] == ERR_INVALID  # structured replies first
    assert c.option(STRUCTURED)[-1][0] == REP_ACK
    assert c.option(SET_META, base)[-1][0] == REP_ACK
    assert c.option(SET_META, base)[0][0] == REP_META_CONTEXT
    assert c.go(name)[-1][0] == REP_ACK
    done_error = (1, (1 << 15) + 1)  # NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR
    for cookie, offset, length, flags in ((1, size - 4096, 8192, 0), (2, size, 512, 0),
                                          (3, 0, 0, 0), (4, 0, 4096, 1)):
        c.send(BLOCK_STATUS, cookie, offset, length, flags)
        f, kind, got, payload = c.chunk()
        assert (f, kind, got) == done_error + (cookie,), (cookie, f, kind, got)
        assert struct.unpack(">I", payload[:4])[0] == errno.EINVAL, cookie
    c.send(BLOCK_STATUS, 5, 0, 1 << 20, REQ_ONE)
    f, kind, got, payload = c.chunk()
    assert (f, kind, got) == (1, 5, 5), (f, kind, got)
    assert len(payload) == 12, payload  # the context id, one extent
    length, state = struct.unpack(">II", payload[4:])
    assert 0 < length <= 1 << 20 and state == 3, (length, state)  # hole, zero
    # Without base:allocation, block status is an unknown command.
    c = Client(path)
    assert c.option(STRUCTURED)[-1][0] == REP_ACK
    assert c.go(name)[-1][0] == REP_ACK
    c.send(BLOCK_STATUS, 6, 0, 4096)
    f, kind, got, payload = c.chunk()
    assert (f, kind, got) == done_error + (6,) and payload[:4] == struct.pack(">I", errno.EINVAL)
    print("ok")


def conformance(path, export):
    FLUSH, TRIM, CACHE, WRITE_ZEROES = 3, 4, 5, 6
    FUA, NO_HOLE, DF = 1, 2, 4
    data = bytes(range(256)) * 256  # 64 KiB
    c = Client(path)
    assert c.go(export.encode())[-1][0] == REP_ACK
    # 16 writes, a flush and a disconnect in one send: every write and the
    # flush answered once, then the end (no reply to the disconnect).
    m = b"".join(struct.pack(">IHHQQI", REQ_MAGIC, 0, WRITE, 100 + i, i * 65536, 65536) + data
                 for i in range(16))
    m += struct.pack(">IHHQQI", REQ_MAGIC, 0, FLUSH, 200, 0, 0)
    m += struct.pack(">IHHQQI", REQ_MAGIC, 0, DISC, 300, 0, 0)
    c.s.sendall(m)
    seen = set()
    for _ in range(17):
        error, cookie = c.reply()
        assert error == 0 and cookie not in seen and (100 <= cookie < 116 or cookie == 200), \
            (error, cookie)
        seen.add(cookie)
    assert c.s.recv(1) == b"", "no end after the disconnect"

    c = Client(path)
    assert c.go(export.encode())[-1][0] == REP_ACK
    other = b"\x77" * 4096
    cookie = 10
    for kind, flags, length, payload in (
            (WRITE, NO_HOLE, 4096, True), (WRITE, REQ_ONE, 4096, True), (WRITE, DF, 4096, True),
            (WRITE, 1 << 9, 4096, True), (TRIM, NO_HOLE, 4096, False), (FLUSH, REQ_ONE, 0, False),
            (READ, REQ_ONE, 4096, False), (READ, DF, 4096, False), (CACHE, 0, 4096, False),
            (READ, 0, 0, False), (WRITE, 0, 0, False), (TRIM, 0, 0, False),
            (WRITE_ZEROES, 0, 0, False)):
        c.send(kind, cookie, 0, length, flags, other[:length] if payload else b"")
        got = c.reply()
        assert got == (errno.EINVAL, cookie), (kind, flags, length, got)
        cookie += 1
    c.send(READ, cookie, 0, 1 << 20)  # in step, and nothing refused was written
    assert c.reply() == (0, cookie)
    assert c.recvn(1 << 20) == data * 16
    for kind, payload in ((WRITE, True), (TRIM, False), (WRITE_ZEROES, False), (FLUSH, False)):
        cookie += 1
        c.send(kind, cookie, 4096 if kind != FLUSH else 0, 4096 if kind != FLUSH else 0, FUA,
               other if payload else b"")
        assert c.reply() == (0, cookie), kind
    c.send(READ, 999, 0, 8192)
    assert c.reply() == (0, 999)
    assert c.recvn(8192) == data[:4096] + b"\0" * 4096
    print("ok")


def write_zeroes(path, export, size):
    WRITE_ZEROES, FUA, NO_HOLE, DF, FAST_ZERO = 6, 1, 2, 4, 16
    c = Client(path)
    name = export.encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    info = [d for kind, d in c.option(7, data) if kind == REP_INFO and d[:2] == b"\0\0"]
    flags = struct.unpack(">H", info[0][10:12])[0]
    assert flags & (1 << 6) and flags & (1 << 11), hex(flags)  # write zeroes, fast zero

    def read(offset, length):
        c.send(READ, 999, offset, length)
        assert c.reply() == (0, 999)
        return c.recvn(length)

    head = read(0, 1 << 20)
    for cookie, flags, offset, length, error in (
            (1, FAST_ZERO | NO_HOLE, 0, 1 << 20, 95),  # NBD_ENOTSUP: it would write data
            (2, FAST_ZERO | NO_HOLE | FUA, 0, 4096, 95),
            (3, DF, 0, 4096, errno.EINVAL),
            (4, 1 << 5, 0, 4096, errno.EINVAL),
            (5, 1 << 15, 0, 4096, errno.EINVAL),
            (6, 0, 100, 4096, errno.EINVAL),
            (7, 0, 0, 100, errno.EINVAL),
            (8, FAST_ZERO, size, 512, errno.ENOSPC),
            (9, NO_HOLE, size - 512, 1024, errno.ENOSPC)):
        c.send(WRITE_ZEROES, cookie, offset, length, flags)
        got = c.reply()
        assert got == (error, cookie), (got, error, cookie)
    for bad_flag in (FAST_ZERO, NO_HOLE):  # not a read's flags
        c.send(READ, 10, 0, 4096, bad_flag)
        assert c.reply() == (errno.EINVAL, 10)
    assert read(0, 1 << 20) == head  # nothing changed
    for cookie, flags, offset in ((11, FAST_ZERO, 0), (12, NO_HOLE, 8192), (13, FUA, 65536),
                                  (14, NO_HOLE | FUA, (1 << 20) - 4096)):
        c.send(WRITE_ZEROES, cookie, offset, 4096, flags)
        assert c.reply() == (0, cookie), cookie
        assert read(offset, 4096) == b"\0" * 4096, cookie
    assert read(4096, 4096) == head[4096:8192]
    print("ok")


def no_memory(path, export):
    c = Client(path)
    assert c.go(export.encode())[-1][0] == REP_ACK
    big = 32 << 20
    for cookie in (1, 2):
        c.send(READ, cookie, 0, big)
        assert c.reply() == (errno.ENOMEM, cookie)
        c.send(WRITE, 10 + cookie, 0, big, payload=b"\7" * big)
        assert c.reply() == (errno.ENOMEM, 10 + cookie)
    c.send(READ, 3, 0, 4096)
    assert c.reply() == (0, 3)
    c.recvn(4096)
    print("ok")


if __name__ == "__main__":
    if sys.argv[1] == "write-then-wait":
        write_then_wait(*sys.argv[2:5])
    elif sys.argv[1] == "no-memory":
        no_memory(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "block-status":
        block_status(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "conformance":
        conformance(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "write-zeroes":
        write_zeroes(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "bad-input":
        bad_input(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
