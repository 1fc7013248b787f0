# Sourced by the bench scripts (compare.sh, check-generator.sh): small
# helpers they share. Needs /usr/bin/python3.

# size_bytes SIZE: 512M, 1G, 4k or plain bytes, printed as bytes.
size_bytes() {
  /usr/bin/python3 -c 'import sys; s=sys.argv[1].lower(); m={"k":1<<10,"m":1<<20,"g":1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))' "$1"
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago (a server
# started right after takes it; good enough for a benchmark).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
