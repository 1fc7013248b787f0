# make_pki.sh DIR: a throwaway PKI in DIR for the TLS tests, EC P-256 keys
# (the whole set in well under a second), valid for a day. `ca` signs the
# server certificate (IP:127.0.0.1 and DNS:localhost) and `client`;
# `other-ca` signs `intruder`, a client certificate `ca` does not vouch
# for. Each NAME is NAME.pem with its key in NAME.key. Used by pki.h and by
# the shell tests (tests/client/cli/tls_and_tokens.sh).
set -e
cd "$1"
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.pem" -days 1 -subj "/CN=$1"
}
# leaf NAME CA EXTENSIONS
leaf() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$1"
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
    -days 1 -extfile "$1.ext" -out "$1.pem"
}
ca ca
ca other-ca
leaf server ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf client ca extendedKeyUsage=clientAuth
leaf intruder other-ca extendedKeyUsage=clientAuth
