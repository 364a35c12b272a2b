#!/bin/sh
# Certificates for the sidecar injector without cert-manager: a private CA and a serving certificate
# for the webhook's Service name, the TLS Secret the Deployment mounts, and the webhook's caBundle.
#
#   deploy/kubernetes/webhook/bootstrap-tls.sh DIR            # make or renew the files in DIR, then apply
#   deploy/kubernetes/webhook/bootstrap-tls.sh DIR --files-only
#
# DIR keeps the CA (ca.crt, ca.key: keep the key somewhere safe, or delete it and start over with a
# new CA). Run again before tls.crt expires (365 days): the same CA signs a new serving certificate,
# the Secret is replaced, the kubelet updates the mounted files, and the webhook presents the new
# certificate on its next handshake; the caBundle stays the same.
set -eu

NAMESPACE=secretless-proxy-system
SERVICE=secretless-proxy-webhook
SECRET=secretless-proxy-webhook-tls
WEBHOOK=secretless-proxy-injector

DIR=${1:?usage: bootstrap-tls.sh DIR [--files-only]}
MODE=${2:-apply}
mkdir -p "$DIR"
umask 077

if [ ! -f "$DIR/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=$SERVICE-ca" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

cat > "$DIR/tls.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$SERVICE.$NAMESPACE.svc,DNS:$SERVICE.$NAMESPACE.svc.cluster.local
EXT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=$SERVICE.$NAMESPACE.svc" -keyout "$DIR/tls.key" -out "$DIR/tls.csr" 2>/dev/null
openssl x509 -req -in "$DIR/tls.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
  -days 365 -extfile "$DIR/tls.ext" -out "$DIR/tls.crt" 2>/dev/null
rm -f "$DIR/tls.csr" "$DIR/tls.ext"
echo "bootstrap-tls: $DIR/tls.crt for $SERVICE.$NAMESPACE.svc, signed by $DIR/ca.crt"

if [ "$MODE" = "--files-only" ]; then
  exit 0
fi

HERE=$(dirname "$0")
kubectl apply -k "$HERE/base"
kubectl -n "$NAMESPACE" create secret tls "$SECRET" --cert="$DIR/tls.crt" --key="$DIR/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl patch mutatingwebhookconfiguration "$WEBHOOK" --type=json \
  -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$(base64 < "$DIR/ca.crt" | tr -d '\n')\"}]"
