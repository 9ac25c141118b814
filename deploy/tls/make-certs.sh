#!/bin/sh
# Makes a test CA and, signed by it, one certificate per node and one client certificate, as
# PEM files for `cairn serve --tls-cert/--tls-key/--tls-client-ca` and the client commands'
# `--tls-ca/--tls-cert/--tls-key`. For trying TLS and mTLS out, not for production: the CA key
# sits beside the certificates, and the keys are readable by every user so that the container's
# unprivileged user (10001) can read them from a bind mount.
#
#   deploy/tls/make-certs.sh [DIR] [NODE_NAME...]
#   deploy/tls/make-certs.sh --client NAME [DIR]
#
# The second form issues one more client certificate, NAME.crt and NAME.key with the common
# name NAME (so the principal User:NAME), under the CA already in DIR, and touches nothing else:
# how a user of a cluster with authorization on gets a certificate for ACLs to name.
# DIR defaults to deploy/tls/certs; node names default to cairn-1 cairn-2 cairn-3. Every node
# certificate is valid for its name, localhost and 127.0.0.1 (subjectAltName): clients and peers
# check the name or address they dial against it, so add the addresses your nodes are reached at
# with CAIRN_CERT_SANS="IP:10.0.0.1,DNS:cairn-1.example.com" (applied to every node).
# Needs openssl. A CA already in DIR (ca.crt and ca.key) is kept, so running the script again
# rotates the node and client certificates under the same CA (the nodes pick them up without a
# restart); the other files are replaced.
set -eu

client=
if [ "${1:-}" = --client ]; then
    [ $# -ge 2 ] || { echo "usage: $0 --client NAME [DIR]" >&2; exit 2; }
    client=$2
    shift 2
fi
dir=${1:-"$(dirname "$0")/certs"}
[ $# -gt 0 ] && shift
nodes=${*:-"cairn-1 cairn-2 cairn-3"}
days=${CAIRN_CERT_DAYS:-365}
extra_sans=${CAIRN_CERT_SANS:-}

if [ -n "$client" ] && { [ ! -f "$dir/ca.key" ] || [ ! -f "$dir/ca.crt" ]; }; then
    # A new CA here would sign a certificate no node trusts.
    echo "error: no CA (ca.crt and ca.key) in $dir; run $0 ${dir} first" >&2
    exit 2
fi
mkdir -p "$dir"
# Readable by the container's user whatever the umask: under umask 077 the directory and the
# certificates would be the owner's only, and every node would stop at start-up unable to read
# its files through the bind mount.
chmod 0755 "$dir"
cd "$dir"

# The CA: EC P-256, self-signed, allowed to sign certificates only.
if [ ! -f ca.key ] || [ ! -f ca.crt ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=Cairn test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
    # The CA certificate is public (nodes and clients load it); its key stays the owner's.
    chmod 0644 ca.crt
    chmod 0600 ca.key
fi

# One certificate signed by the CA: $1 file name, $2 common name, $3 subjectAltName list,
# $4 extended key usage.
issue() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key.ec"
    # PKCS#8, which every TLS library reads.
    openssl pkcs8 -topk8 -nocrypt -in "$1.key.ec" -out "$1.key.new"
    rm -f "$1.key.ec"
    openssl req -new -key "$1.key.new" -subj "/CN=$2" -out "$1.csr"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        "$4" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile "$1.ext" -out "$1.crt.new"
    rm -f "$1.csr" "$1.ext"
    chmod 0644 "$1.key.new" "$1.crt.new"
    # Each file replaced whole by a rename, the key first: a node re-reading them mid-way finds
    # a key that does not match yet, logs it, keeps its old pair, and takes the new pair once
    # the certificate lands.
    mv "$1.key.new" "$1.key"
    mv "$1.crt.new" "$1.crt"
}

if [ -n "$client" ]; then
    issue "$client" "$client" "DNS:$client" "clientAuth"
    rm -f ca.srl
    echo "made in $dir: $client.crt and $client.key (principal User:$client)"
    exit 0
fi

for node in $nodes; do
    sans="DNS:$node,DNS:localhost,IP:127.0.0.1"
    [ -n "$extra_sans" ] && sans="$sans,$extra_sans"
    # A node's certificate serves its listeners and, as a client certificate, its links to the
    # other nodes (mTLS between nodes): both usages.
    issue "$node" "$node" "$sans" "serverAuth,clientAuth"
done
issue client "cairn-client" "DNS:cairn-client" "clientAuth"
rm -f ca.srl

echo "made in $dir: ca.crt (and ca.key), client.crt/.key, and for each node of: $nodes"
