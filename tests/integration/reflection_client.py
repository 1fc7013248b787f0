#!/usr/bin/python3
"""A small grpcurl-like client that knows nothing but server reflection.

It uses no generated stubs and no .proto files of the server: every message
type comes from the server's grpc.reflection.v1alpha.ServerReflection service
(cowblkd serves v1 and v1alpha; this client speaks v1alpha unless
REFLECTION_VERSION=v1). Even the reflection protocol's
own messages are built here from a hand-written FileDescriptorProto, because
Debian does not package the reflection proto's generated Python module.

Runs on Debian's Python with python3-grpcio and python3-protobuf:
always call it with /usr/bin/python3.

Usage (flags may go anywhere; grpcurl wants them before the address, and
names the method without a `call` verb):
  reflection_client.py [flags] ADDRESS list [SERVICE]
  reflection_client.py [flags] ADDRESS describe [SYMBOL]
  reflection_client.py [flags] ADDRESS call METHOD [-d JSON | -d @]
Flags: -plaintext, -cacert, -cert, -key, -servername, -authority,
-H 'name: value' (repeatable; sent with reflection requests too), -d,
-emit-defaults, -max-time, -connect-timeout, -max-msg-sz (as in grpcurl).

`describe` prints a symbol (service, method, message, enum, enum value or
field) as proto source, with the .proto comments when the server's
descriptors carry them (source_code_info).

METHOD is `package.Service/Method` (or `package.Service.Method`). The request
is JSON in the protobuf JSON mapping (bytes fields as base64): one object for
unary and server-streaming methods; for client-streaming methods, several
objects one after another or a JSON array. `-d @` reads the JSON from stdin.
Responses are printed as JSON, one object per message.

Exit status: 0 on success, 64 + the gRPC status code when the RPC fails
(as grpcurl does), 1 for other errors (connection, unknown symbol, bad JSON),
2 for bad usage.
"""

import argparse
import json
import os
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

FDP = descriptor_pb2.FieldDescriptorProto

# ---- The reflection protocol (grpc/reflection/v1alpha/reflection.proto) ----

# v1alpha is what every grpcurl speaks; REFLECTION_VERSION=v1 selects v1.
REFLECTION_PACKAGE = "grpc.reflection." + os.environ.get("REFLECTION_VERSION", "v1alpha")
REFLECTION_METHOD = "/" + REFLECTION_PACKAGE + ".ServerReflection/ServerReflectionInfo"


def reflection_file_descriptor():
    """The reflection protocol's messages, written out by hand."""
    f = descriptor_pb2.FileDescriptorProto(
        name="grpc/reflection/v1alpha/reflection.proto",
        package=REFLECTION_PACKAGE,
        syntax="proto3")

    def message(name, fields, oneofs=()):
        m = f.message_type.add(name=name)
        for oneof in oneofs:
            m.oneof_decl.add(name=oneof)
        for spec in fields:
            fname, number, ftype = spec[:3]
            extra = spec[3] if len(spec) > 3 else {}
            field = m.field.add(name=fname, number=number, type=ftype,
                                label=extra.get("label", FDP.LABEL_OPTIONAL))
            if "type_name" in extra:
                field.type_name = "." + REFLECTION_PACKAGE + "." + extra["type_name"]
            if "oneof" in extra:
                field.oneof_index = oneofs.index(extra["oneof"])
            field.json_name = json_name(fname)

    req_oneof = {"oneof": "message_request"}
    resp_oneof = {"oneof": "message_response"}
    message("ServerReflectionRequest", [
        ("host", 1, FDP.TYPE_STRING),
        ("file_by_filename", 3, FDP.TYPE_STRING, req_oneof),
        ("file_containing_symbol", 4, FDP.TYPE_STRING, req_oneof),
        ("file_containing_extension", 5, FDP.TYPE_MESSAGE,
         dict(req_oneof, type_name="ExtensionRequest")),
        ("all_extension_numbers_of_type", 6, FDP.TYPE_STRING, req_oneof),
        ("list_services", 7, FDP.TYPE_STRING, req_oneof),
    ], oneofs=("message_request",))
    message("ExtensionRequest", [
        ("containing_type", 1, FDP.TYPE_STRING),
        ("extension_number", 2, FDP.TYPE_INT32),
    ])
    message("ServerReflectionResponse", [
        ("valid_host", 1, FDP.TYPE_STRING),
        ("original_request", 2, FDP.TYPE_MESSAGE, {"type_name": "ServerReflectionRequest"}),
        ("file_descriptor_response", 4, FDP.TYPE_MESSAGE,
         dict(resp_oneof, type_name="FileDescriptorResponse")),
        ("all_extension_numbers_response", 5, FDP.TYPE_MESSAGE,
         dict(resp_oneof, type_name="ExtensionNumberResponse")),
        ("list_services_response", 6, FDP.TYPE_MESSAGE,
         dict(resp_oneof, type_name="ListServiceResponse")),
        ("error_response", 7, FDP.TYPE_MESSAGE, dict(resp_oneof, type_name="ErrorResponse")),
    ], oneofs=("message_response",))
    message("FileDescriptorResponse", [
        ("file_descriptor_proto", 1, FDP.TYPE_BYTES, {"label": FDP.LABEL_REPEATED}),
    ])
    message("ExtensionNumberResponse", [
        ("base_type_name", 1, FDP.TYPE_STRING),
        ("extension_number", 2, FDP.TYPE_INT32, {"label": FDP.LABEL_REPEATED}),
    ])
    message("ListServiceResponse", [
        ("service", 1, FDP.TYPE_MESSAGE,
         {"label": FDP.LABEL_REPEATED, "type_name": "ServiceResponse"}),
    ])
    message("ServiceResponse", [("name", 1, FDP.TYPE_STRING)])
    message("ErrorResponse", [
        ("error_code", 1, FDP.TYPE_INT32),
        ("error_message", 2, FDP.TYPE_STRING),
    ])
    service = f.service.add(name="ServerReflection")
    service.method.add(
        name="ServerReflectionInfo",
        input_type="." + REFLECTION_PACKAGE + ".ServerReflectionRequest",
        output_type="." + REFLECTION_PACKAGE + ".ServerReflectionResponse",
        client_streaming=True, server_streaming=True)
    return f


def json_name(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def message_class(descriptor):
    """The Python class of a message descriptor (protobuf 3.21 and later)."""
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


class ToolError(Exception):
    """A failure that is not an RPC status: printed, exit status 1."""


class Reflection:
    """Resolves symbols through ServerReflectionInfo into a descriptor pool."""

    def __init__(self, channel, metadata, timeout):
        own = descriptor_pool.DescriptorPool()
        own.Add(reflection_file_descriptor())
        self._request = message_class(
            own.FindMessageTypeByName(REFLECTION_PACKAGE + ".ServerReflectionRequest"))
        response = message_class(
            own.FindMessageTypeByName(REFLECTION_PACKAGE + ".ServerReflectionResponse"))
        self._rpc = channel.stream_stream(
            REFLECTION_METHOD,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString)
        self._metadata = metadata
        self._timeout = timeout
        # The server's files: name -> FileDescriptorProto, and which of them
        # are in the pool already.
        self.pool = descriptor_pool.DescriptorPool()
        self.files = {}
        self._raw = {}
        self._added = set()
        # Fully-qualified symbol -> (kind, FileDescriptorProto, source path, proto).
        self.symbols = {}

    def _ask(self, **request):
        responses = list(self._rpc(iter([self._request(**request)]),
                                   metadata=self._metadata, timeout=self._timeout))
        if len(responses) != 1:
            raise ToolError("reflection answered %d messages to one request" % len(responses))
        resp = responses[0]
        which = resp.WhichOneof("message_response")
        if which == "error_response":
            err = resp.error_response
            raise ToolError("reflection: %s (code %d)" % (err.error_message, err.error_code))
        return resp, which

    def list_services(self):
        resp, which = self._ask(list_services="*")
        if which != "list_services_response":
            raise ToolError("reflection: unexpected answer %s to list_services" % which)
        return sorted(s.name for s in resp.list_services_response.service)

    def _take_files(self, resp, which):
        if which != "file_descriptor_response":
            raise ToolError("reflection: unexpected answer %s to a file request" % which)
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
            if fdp.name not in self.files:
                self.files[fdp.name] = fdp
                self._raw[fdp.name] = raw
                self._index(fdp)

    def _add_to_pool(self, name, seen=()):
        if name in self._added:
            return
        if name in seen:
            raise ToolError("import cycle through " + name)
        if name not in self.files:
            self._take_files(*self._ask(file_by_filename=name))
            if name not in self.files:
                raise ToolError("reflection did not return file " + name)
        for dep in self.files[name].dependency:
            self._add_to_pool(dep, seen + (name,))
        self.pool.AddSerializedFile(self._raw[name])
        self._added.add(name)

    def resolve(self, symbol):
        """Loads the file defining `symbol` (and its imports) into the pool.

        Returns (kind, FileDescriptorProto, path, proto) of the symbol."""
        symbol = symbol.lstrip(".")
        if symbol not in self.symbols:
            try:
                self._take_files(*self._ask(file_containing_symbol=symbol))
            except ToolError as e:
                # Methods and fields: some servers only resolve their parent.
                parent = symbol.rpartition(".")[0]
                try:
                    if not parent:
                        raise
                    self._take_files(*self._ask(file_containing_symbol=parent))
                except ToolError:
                    raise ToolError("cannot resolve symbol %s: %s" % (symbol, e))
        if symbol not in self.symbols:
            raise ToolError("symbol not found: " + symbol)
        entry = self.symbols[symbol]
        self._add_to_pool(entry[1].name)
        return entry

    def _index(self, fdp):
        prefix = fdp.package + "." if fdp.package else ""

        def enum(e, scope, path):
            self.symbols[scope + e.name] = ("enum", fdp, path, e)
            for i, v in enumerate(e.value):
                # Enum values live in the scope enclosing the enum (C++ rules).
                self.symbols.setdefault(scope + v.name, ("enum value", fdp, path + (2, i), v))

        def message(m, scope, path):
            full = scope + m.name
            self.symbols[full] = ("message", fdp, path, m)
            for i, f in enumerate(m.field):
                self.symbols[full + "." + f.name] = ("field", fdp, path + (2, i), f)
            for i, n in enumerate(m.nested_type):
                message(n, full + ".", path + (3, i))
            for i, e in enumerate(m.enum_type):
                enum(e, full + ".", path + (4, i))

        for i, m in enumerate(fdp.message_type):
            message(m, prefix, (4, i))
        for i, e in enumerate(fdp.enum_type):
            enum(e, prefix, (5, i))
        for i, s in enumerate(fdp.service):
            full = prefix + s.name
            self.symbols[full] = ("service", fdp, (6, i), s)
            for j, m in enumerate(s.method):
                self.symbols[full + "." + m.name] = ("method", fdp, (6, i, 2, j), m)


# ---- describe: descriptors printed as proto source ----

SCALARS = {
    FDP.TYPE_DOUBLE: "double", FDP.TYPE_FLOAT: "float", FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64", FDP.TYPE_INT32: "int32", FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32", FDP.TYPE_BOOL: "bool", FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes", FDP.TYPE_UINT32: "uint32", FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64", FDP.TYPE_SINT32: "sint32", FDP.TYPE_SINT64: "sint64",
}


class Printer:
    def __init__(self, fdp):
        self.fdp = fdp
        self.lines = []
        self.comments = {}
        for loc in fdp.source_code_info.location:
            self.comments[tuple(loc.path)] = loc

    def emit(self, depth, text):
        self.lines.append("  " * depth + text)

    def leading(self, depth, path):
        loc = self.comments.get(tuple(path))
        if loc is not None and loc.leading_comments:
            for line in loc.leading_comments.rstrip("\n").split("\n"):
                self.emit(depth, ("//" + line).rstrip())

    def trailing(self, depth, path):
        loc = self.comments.get(tuple(path))
        if loc is not None and loc.trailing_comments:
            for line in loc.trailing_comments.rstrip("\n").split("\n"):
                self.emit(depth, ("//" + line).rstrip())

    def file_header(self):
        loc = self.comments.get((12,))  # the `syntax` statement carries the file comment
        if loc is not None:
            for detached in loc.leading_detached_comments:
                for line in detached.rstrip("\n").split("\n"):
                    self.emit(0, ("//" + line).rstrip())

    def method(self, depth, path, m):
        self.leading(depth, path)
        self.emit(depth, "rpc %s ( %s%s ) returns ( %s%s );" % (
            m.name, "stream " if m.client_streaming else "", m.input_type,
            "stream " if m.server_streaming else "", m.output_type))
        self.trailing(depth, path)

    def service(self, depth, path, s):
        self.leading(depth, path)
        self.emit(depth, "service %s {" % s.name)
        for j, m in enumerate(s.method):
            self.method(depth + 1, path + (2, j), m)
        self.emit(depth, "}")
        self.trailing(depth, path)

    def enum(self, depth, path, e):
        self.leading(depth, path)
        self.emit(depth, "enum %s {" % e.name)
        for i, v in enumerate(e.value):
            self.enum_value(depth + 1, path + (2, i), v)
        self.emit(depth, "}")
        self.trailing(depth, path)

    def enum_value(self, depth, path, v):
        self.leading(depth, path)
        self.emit(depth, "%s = %d;" % (v.name, v.number))
        self.trailing(depth, path)

    def field_type(self, msg, f):
        if f.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM, FDP.TYPE_GROUP):
            if msg is not None and f.label == FDP.LABEL_REPEATED:
                entry = self.map_entry(msg, f)
                if entry is not None:
                    return "map<%s, %s>" % (self.field_type(None, entry.field[0]),
                                            self.field_type(None, entry.field[1]))
            return f.type_name
        return SCALARS.get(f.type, "?")

    @staticmethod
    def map_entry(msg, f):
        short = f.type_name.rsplit(".", 1)[-1]
        for n in msg.nested_type:
            if n.name == short and n.options.map_entry:
                return n
        return None

    def field(self, depth, path, msg, f):
        self.leading(depth, path)
        label = ""
        kind = self.field_type(msg, f)
        if f.label == FDP.LABEL_REPEATED and not kind.startswith("map<"):
            label = "repeated "
        elif f.label == FDP.LABEL_REQUIRED:
            label = "required "
        elif f.proto3_optional or (self.fdp.syntax not in ("proto3",) and
                                   not f.HasField("oneof_index")):
            label = "optional "
        options = []
        if f.HasField("default_value"):
            options.append("default = %s" % f.default_value)
        if f.json_name and f.json_name != json_name(f.name):
            options.append('json_name = "%s"' % f.json_name)
        if f.options.deprecated:
            options.append("deprecated = true")
        if f.options.HasField("packed"):
            options.append("packed = %s" % ("true" if f.options.packed else "false"))
        self.emit(depth, "%s%s %s = %d%s;" % (
            label, kind, f.name, f.number, " [%s]" % ", ".join(options) if options else ""))
        self.trailing(depth, path)

    def message(self, depth, path, m):
        self.leading(depth, path)
        self.emit(depth, "message %s {" % m.name)
        real_oneofs = {}
        for i, f in enumerate(m.field):
            if f.HasField("oneof_index") and not f.proto3_optional:
                real_oneofs.setdefault(f.oneof_index, []).append(i)
        printed_oneofs = set()
        for i, f in enumerate(m.field):
            if f.HasField("oneof_index") and not f.proto3_optional:
                o = f.oneof_index
                if o in printed_oneofs:
                    continue
                printed_oneofs.add(o)
                self.leading(depth + 1, path + (8, o))
                self.emit(depth + 1, "oneof %s {" % m.oneof_decl[o].name)
                for j in real_oneofs[o]:
                    self.field(depth + 2, path + (2, j), m, m.field[j])
                self.emit(depth + 1, "}")
                continue
            self.field(depth + 1, path + (2, i), m, f)
        for i, n in enumerate(m.nested_type):
            if not n.options.map_entry:
                self.message(depth + 1, path + (3, i), n)
        for i, e in enumerate(m.enum_type):
            self.enum(depth + 1, path + (4, i), e)
        for r in m.reserved_range:
            self.emit(depth + 1, "reserved %s;" % (
                str(r.start) if r.end == r.start + 1 else "%d to %d" % (r.start, r.end - 1)))
        if m.reserved_name:
            self.emit(depth + 1, "reserved %s;" % ", ".join('"%s"' % n for n in m.reserved_name))
        self.emit(depth, "}")
        self.trailing(depth, path)


ARTICLES = {"service": "a service", "method": "a method", "message": "a message",
            "enum": "an enum", "enum value": "an enum value", "field": "a field"}


def describe(reflection, symbol):
    kind, fdp, path, proto = reflection.resolve(symbol)
    p = Printer(fdp)
    if kind == "service":
        p.service(0, path, proto)
    elif kind == "method":
        p.method(0, path, proto)
    elif kind == "message":
        p.message(0, path, proto)
    elif kind == "enum":
        p.enum(0, path, proto)
    elif kind == "enum value":
        p.enum_value(0, path, proto)
    elif kind == "field":
        p.field(0, path, parent_message(reflection, symbol), proto)
    return "%s is %s:\n%s" % (symbol.lstrip("."), ARTICLES[kind], "\n".join(p.lines))


def parent_message(reflection, symbol):
    entry = reflection.symbols.get(symbol.lstrip(".").rpartition(".")[0])
    return entry[3] if entry is not None and entry[0] == "message" else None


# ---- call ----

def parse_requests(text):
    """JSON objects one after another, or JSON arrays of them."""
    decoder = json.JSONDecoder()
    out = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise ToolError("bad request JSON: %s" % e)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                raise ToolError("bad request JSON: each message must be a JSON object")
            out.append(item)


def status_name(code):
    if code == grpc.StatusCode.OK:
        return "OK"
    return "".join(w.capitalize() for w in code.name.split("_"))


def call(reflection, channel, method, data, args):
    if "/" in method:
        service, _, name = method.rpartition("/")
    else:
        service, _, name = method.rpartition(".")
    service = service.lstrip(".")
    if not service or not name:
        raise ToolError("method must look like package.Service/Method: " + method)
    reflection.resolve(service)
    full = service + "." + name
    entry = reflection.symbols.get(full)
    if entry is None or entry[0] != "method":
        raise ToolError("service %s has no method %s" % (service, name))
    m = entry[3]
    desc = reflection.pool.FindMethodByName(full)
    request_class = message_class(desc.input_type)
    response_class = message_class(desc.output_type)

    requests = []
    for obj in parse_requests(data if data is not None else ""):
        msg = request_class()
        try:
            json_format.ParseDict(obj, msg)
        except json_format.ParseError as e:
            raise ToolError("bad request for %s: %s" % (desc.input_type.full_name, e))
        requests.append(msg)
    if not m.client_streaming:
        if len(requests) > 1:
            raise ToolError("%s takes one request message, got %d" % (full, len(requests)))
        if not requests:
            requests = [request_class()]

    kwargs = dict(request_serializer=lambda r: r.SerializeToString(),
                  response_deserializer=response_class.FromString)
    path = "/%s/%s" % (service, name)
    call_args = dict(metadata=args.metadata, timeout=args.max_time)
    if m.client_streaming and m.server_streaming:
        responses = channel.stream_stream(path, **kwargs)(iter(requests), **call_args)
    elif m.client_streaming:
        responses = [channel.stream_unary(path, **kwargs)(iter(requests), **call_args)]
    elif m.server_streaming:
        responses = channel.unary_stream(path, **kwargs)(requests[0], **call_args)
    else:
        responses = [channel.unary_unary(path, **kwargs)(requests[0], **call_args)]
    for r in responses:
        print(json_format.MessageToJson(r, indent=2,
                                        including_default_value_fields=args.emit_defaults))
        sys.stdout.flush()


# ---- command line ----

def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="reflection_client.py", allow_abbrev=False,
        description="A grpcurl-like client driven only by server reflection (v1alpha).")
    ap.add_argument("-plaintext", action="store_true", help="no TLS")
    ap.add_argument("-cacert", help="CA certificate (PEM) to verify the server with")
    ap.add_argument("-cert", help="client certificate (PEM), for mutual TLS")
    ap.add_argument("-key", help="client private key (PEM), for mutual TLS")
    ap.add_argument("-servername", help="name to verify the server's certificate against")
    ap.add_argument("-authority", help=":authority pseudo-header (with TLS: the name to verify)")
    ap.add_argument("-H", dest="headers", action="append", default=[],
                    metavar="'NAME: VALUE'", help="metadata for every call (repeatable)")
    ap.add_argument("-d", dest="data", metavar="JSON",
                    help="request message(s) as JSON; '@' reads them from stdin")
    ap.add_argument("-emit-defaults", dest="emit_defaults", action="store_true",
                    help="print fields that hold default values")
    ap.add_argument("-max-time", dest="max_time", type=float, default=None,
                    help="deadline of each call in seconds")
    ap.add_argument("-connect-timeout", dest="connect_timeout", type=float, default=10,
                    help="seconds to wait for the connection (default 10)")
    ap.add_argument("-max-msg-sz", dest="max_msg_sz", type=int, default=4 << 20,
                    help="largest response message in bytes (default 4 MiB)")
    ap.add_argument("address", help="HOST:PORT")
    ap.add_argument("verb", choices=["list", "describe", "call"])
    ap.add_argument("symbol", nargs="?", help="service, symbol or method")
    args = ap.parse_intermixed_args(argv)
    if args.verb == "call" and not args.symbol:
        ap.error("call needs a METHOD")
    if args.verb != "call" and args.data is not None:
        ap.error("-d goes with call")
    if bool(args.cert) != bool(args.key):
        ap.error("-cert and -key go together")
    if args.plaintext and (args.cacert or args.cert):
        ap.error("-plaintext excludes -cacert, -cert and -key")
    args.metadata = []
    for h in args.headers:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            ap.error("-H wants 'name: value', got %r" % h)
        args.metadata.append((name.strip().lower(), value.strip()))
    return args


def read_file(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def open_channel(args):
    options = [("grpc.max_receive_message_length", args.max_msg_sz)]
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
    if args.plaintext:
        return grpc.insecure_channel(args.address, options=options)
    # As in grpcurl, -authority is also the name the certificate is checked against.
    if args.servername or args.authority:
        options.append(("grpc.ssl_target_name_override", args.servername or args.authority))
    creds = grpc.ssl_channel_credentials(root_certificates=read_file(args.cacert),
                                         private_key=read_file(args.key),
                                         certificate_chain=read_file(args.cert))
    return grpc.secure_channel(args.address, creds, options=options)


def main(argv):
    args = parse_args(argv)
    data = args.data
    if data == "@":
        data = sys.stdin.read()
    try:
        channel = open_channel(args)
        try:
            grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            raise ToolError("failed to connect to %s within %gs" %
                            (args.address, args.connect_timeout))
        reflection = Reflection(channel, args.metadata, args.max_time)
        if args.verb == "list" and not args.symbol:
            for name in reflection.list_services():
                print(name)
        elif args.verb == "list":
            kind, _, _, proto = reflection.resolve(args.symbol)
            if kind != "service":
                raise ToolError("%s is not a service" % args.symbol)
            for m in proto.method:
                print(args.symbol.lstrip(".") + "." + m.name)
        elif args.verb == "describe":
            symbols = [args.symbol] if args.symbol else reflection.list_services()
            for s in symbols:
                print(describe(reflection, s))
        else:
            call(reflection, channel, args.symbol, data, args)
    except ToolError as e:
        print("Error: %s" % e, file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        code = e.code()
        print("ERROR:\n  Code: %s\n  Message: %s" % (status_name(code), e.details()),
              file=sys.stderr)
        return 64 + code.value[0]
    except BrokenPipeError:  # e.g. `... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
