#!/usr/bin/env bash
# A pod simulated on this machine: the acceptance test of the Transparent listener.
#
#   "pod" netns  10.250.0.1/30 ──veth── 10.250.0.2/30  "internet" netns
#     app (curl, python3; root, no proxy settings)        upstream.py: HTTPS :443 (test CA), HTTP :80
#     secretless-proxy (uid 1337) on 127.0.0.1:15001
#     nat rules from `secretless-proxy iptables --apply`
#
# The app calls https://api.test and http://plain.test (names from /etc/netns/pod/hosts) as if no
# proxy existed; the rules redirect its connections to the proxy, which injects the credential.
# Prints PASS/FAIL per assertion; exits non-zero on any failure. Skips (a "SKIP" line, exit 0) where
# network namespaces or iptables are unavailable, except under CI=true, where that is a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
# The Release build by default; SECRETLESS_PROXY_BIN may name another (a Native AOT publish), readable by uid 1337.
bin="${SECRETLESS_PROXY_BIN:-$root/src/SecretlessProxy/bin/Release/net10.0/secretless-proxy}"
pod=pod
inet=internet
proxy_uid=1337
listener_port=15001
admin_port=15000
secret="sl-pod-secret-$RANDOM$RANDOM"
app_header="app-supplied-$RANDOM"

skip() {
  if [ "${CI:-}" = "true" ]; then echo "FAIL transparent pod test cannot run under CI: $*"; exit 1; fi
  echo "SKIP transparent pod test: $*"; exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, iptables)"
command -v ip >/dev/null || skip "no ip command (iproute2)"
command -v iptables >/dev/null || skip "no iptables"
command -v setpriv >/dev/null || skip "no setpriv"
command -v openssl >/dev/null || skip "no openssl"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
[ -x "$bin" ] || { echo "FAIL $bin is missing: build with dotnet build -c Release first"; exit 1; }
for ns in "$pod" "$inet"; do
  if ip netns list | grep -qw "$ns"; then echo "FAIL network namespace '$ns' already exists (another run?); not touching it"; exit 1; fi
done

netns_dir_existed=false
[ -d /etc/netns ] && netns_dir_existed=true
work=$(mktemp -d /tmp/secretless-pod.XXXXXX)
chmod 755 "$work"
# The proxy runs as uid 1337, which cannot reach a build inside a private checkout (a 0700 mktemp
# folder, as a fresh-clone CI run uses): run a copy from the world-readable work folder then.
if ! setpriv --reuid=$proxy_uid --regid=$proxy_uid --clear-groups test -x "$bin" 2>/dev/null; then
  cp -r "$(dirname "$bin")" "$work/app" && chmod -R a+rX "$work/app"
  bin="$work/app/$(basename "$bin")"
fi
pids=()
created_netns=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "${created_netns[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "/etc/netns/$pod" "$work"
  [ "$netns_dir_existed" = true ] || rmdir /etc/netns 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# --- network: two namespaces joined by a veth pair, addresses from a /30 of our own -------------
ip netns add "$pod" 2>/dev/null || skip "cannot create network namespaces here"
created_netns+=("$pod")
ip netns add "$inet" || { echo "FAIL cannot create netns $inet"; exit 1; }
created_netns+=("$inet")
ip link add sl-pod0 netns "$pod" type veth peer name sl-inet0 netns "$inet" || { echo "FAIL veth"; exit 1; }
ip -n "$pod" addr add 10.250.0.1/30 dev sl-pod0
ip -n "$inet" addr add 10.250.0.2/30 dev sl-inet0
# A second upstream address no policy host resolves to: the "address the app picks" of the
# plaintext-to-chosen-address attack.
ip -n "$inet" addr add 10.250.0.5/32 dev sl-inet0
# IPv6 too (unique-local addresses of our own), without duplicate address detection's delay.
ip -n "$pod" addr add fd00:250::1/126 dev sl-pod0 nodad
ip -n "$inet" addr add fd00:250::2/126 dev sl-inet0 nodad
for ns in "$pod" "$inet"; do ip -n "$ns" link set lo up; done
ip -n "$pod" link set sl-pod0 up
ip -n "$inet" link set sl-inet0 up
ip -n "$pod" route add 10.250.0.5/32 dev sl-pod0
ip netns exec "$pod" iptables -t nat -S >/dev/null 2>&1 || skip "iptables' nat table is unavailable in a network namespace"
ipv6=true
# Not a reason to skip the whole test, but reported as a skip (tests/run.sh lists it, and fails under CI=true).
ip netns exec "$pod" ip6tables -t nat -S >/dev/null 2>&1 || { ipv6=false; echo "SKIP IPv6 assertions of the transparent pod test: ip6tables' nat table is unavailable in a network namespace"; }
v6flag=$([ "$ipv6" = true ] && echo --ipv6)
mkdir -p "/etc/netns/$pod"
printf '127.0.0.1 localhost\n10.250.0.2 api.test plain.test blind.test wrongcert.test corpus.test\nfd00:250::2 api6.test\n' > "/etc/netns/$pod/hosts"
in_pod() { ip netns exec "$pod" "$@"; }
as_proxy() { ip netns exec "$pod" setpriv --reuid=$proxy_uid --regid=$proxy_uid --clear-groups env HOME="$work/home" DOTNET_CLI_TELEMETRY_OPTOUT=1 "$@"; }

# --- the upstream: a test CA, a certificate for its names, HTTPS and HTTP ------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=Pod Test Upstream CA" -keyout "$work/upstream-ca.key" -out "$work/upstream-ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=api.test" -keyout "$work/upstream.key" -out "$work/upstream.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test,DNS:api6.test,DNS:plain.test,DNS:blind.test\n' > "$work/san.ext"
openssl x509 -req -in "$work/upstream.csr" -CA "$work/upstream-ca.pem" -CAkey "$work/upstream-ca.key" -CAcreateserial -days 1 -extfile "$work/san.ext" -out "$work/upstream.pem" 2>/dev/null
record="$work/upstream-requests.jsonl"
: > "$record"
ip netns exec "$inet" /usr/bin/python3 "$root/tests/transparent/upstream.py" "$record" "$work/upstream.pem" "$work/upstream.key" 443 80 2525 > "$work/upstream.log" 2>&1 &
pids+=($!)

# --- the proxy's files, readable by its uid ------------------------------------------------------
mkdir -p "$work/home" "$work/ca"
printf '%s\n' "$secret" > "$work/api-key"
chown -R $proxy_uid:$proxy_uid "$work/home" "$work/ca" "$work/api-key"
chmod 600 "$work/api-key"
chmod 644 "$work/upstream-ca.pem"
write_config() { # $1 = Unmatched
  cat > "$work/proxy.json" <<EOF
{
  "SecretlessProxy": {
    "Admin": { "Url": "http://127.0.0.1:$admin_port" },
    "Listeners": { "outbound": { "Mode": "Transparent", "Url": "tcp://[::]:$listener_port", "HandshakeTimeout": "00:00:03" } },
    "LocalCa": { "Directory": "$work/ca" },
    "Upstreams": { "TrustedCaFile": "$work/upstream-ca.pem" },
    "Credentials": { "api-key": { "Source": "File", "Path": "$work/api-key" } },
    "Policies": {
      "api-https": { "Match": { "Hosts": [ "api.test", "api6.test" ], "Ports": [ 443 ] }, "Credential": "api-key", "Inject": { "Header": "Authorization", "Format": "Bearer {token}" } },
      "wrongcert": { "Match": { "Hosts": [ "wrongcert.test" ], "Ports": [ 443 ] }, "Credential": "api-key", "Inject": { "Header": "Authorization", "Format": "Bearer {token}" } },
      "api-http": { "Match": { "Hosts": [ "plain.test" ], "Ports": [ 80 ], "Schemes": [ "http" ] }, "Credential": "api-key", "Inject": { "Header": "X-Api-Key", "Format": "{token}" } },
      "corpus-api": { "Match": { "Hosts": [ "corpus.test" ], "Ports": [ 80 ], "Schemes": [ "http" ], "PathPrefix": "/v1/" }, "Credential": "api-key", "Inject": { "Header": "X-Api-Key", "Format": "{token}" } },
      "corpus-files": { "Match": { "Hosts": [ "corpus.test" ], "Ports": [ 80 ], "Schemes": [ "http" ], "PathPrefix": "/files/", "AllowEncodedSlashes": true }, "Credential": "api-key", "Inject": { "Header": "X-Api-Key", "Format": "{token}" } }
    },
    "Unmatched": "$1"
  }
}
EOF
  chmod 644 "$work/proxy.json"
}
proxy_pid=
start_proxy() { # $1 = Unmatched
  write_config "$1"
  # Not through as_proxy: a backgrounded function is a subshell, and $! must be the proxy itself.
  ip netns exec "$pod" setpriv --reuid=$proxy_uid --regid=$proxy_uid --clear-groups env HOME="$work/home" DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    "$bin" run --config "$work/proxy.json" >> "$work/proxy.log" 2>&1 &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 1 100); do
    in_pod curl -s -o /dev/null "http://127.0.0.1:$admin_port/readyz" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "FAIL the proxy did not become ready"; tail -n 30 "$work/proxy.log"; exit 1
}
stop_proxy() { kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; }

for _ in $(seq 1 50); do
  ip netns exec "$inet" curl -sk -o /dev/null https://127.0.0.1/ready && break
  sleep 0.1
done

# The app trusts the local CA exported by the proxy (as its CA bundle), nothing else about it.
write_config PassThrough
as_proxy "$bin" ca export --config "$work/proxy.json" > "$work/local-ca.pem"
grep -q "BEGIN CERTIFICATE" "$work/local-ca.pem" || { echo "FAIL ca export printed no certificate"; exit 1; }

# What the upstream recorded for a path: a field of the last request with that path.
seen() { /usr/bin/python3 - "$record" "$1" "$2" <<'PY'
import json, sys
value = None
for line in open(sys.argv[1]):
    entry = json.loads(line)
    if entry["path"] == sys.argv[2]:
        value = entry.get(sys.argv[3])
print("" if value is None else value)
PY
}
count_path() { grep -c "\"path\": \"$1\"" "$record"; }
# A client of the banner service (neither TLS nor HTTP): $1 = "first" to speak first, "wait" to
# wait for the server's banner as an SMTP client does. Prints what it received.
banner_client() { in_pod /usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("10.250.0.2", 2525), timeout=5)
received = b""
try:
    if sys.argv[1] == "first":
        s.sendall(b"PING\n")
    while b"220" not in received:
        chunk = s.recv(100)
        if not chunk:
            break
        received += chunk
    s.sendall(b"QUIT\n")
    while b"echo QUIT" not in received:
        chunk = s.recv(100)
        if not chunk:
            break
        received += chunk
except OSError as e:
    received += ("error " + type(e).__name__).encode()
print(received.decode(errors="replace").replace("\n", "|"))
PY
}
# An app request: curl in the pod, as root (so redirected), no proxy settings at all.
app_curl() { in_pod env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY curl -s --max-time 10 "$@"; }

# The listener binds [::] (dual-stack): ip6tables' REDIRECT sends to ::1, iptables' to 127.0.0.1.
apply_rules() { in_pod "$bin" iptables --apply --proxy-uid "$1" --port $listener_port --redirect-ports 80,443,2525 $v6flag > "$work/iptables-apply.log" 2>&1; }

# === phase 1: rules applied, Unmatched PassThrough ===============================================
start_proxy PassThrough
# First, before the proxy has pooled any upstream connection: rules that forget the proxy's uid
# send its upstream connection back to it, which it refuses instead of looping.
check "iptables --apply succeeds" apply_rules 4242
status=$(app_curl -o /dev/null -w '%{http_code}' --cacert "$work/local-ca.pem" https://api.test/looped)
check "without the uid exemption the proxy refuses its own redirected connection (app gets $status, upstream nothing)" \
  [ "$status" = 502 -a "$(count_path /looped)" = 0 ]
check "the loop refusal names the missing exemption" bash -c "grep -q 'redirected back to it' '$work/proxy.log'"
check "iptables --apply with the right uid replaces the rules" apply_rules $proxy_uid
loops_before=$(grep -c 'would loop' "$work/proxy.log")
in_pod "$bin" iptables --apply --proxy-uid $proxy_uid --port $listener_port --redirect-ports 80,443,2525 $v6flag > /dev/null 2>&1
jumps=$(in_pod iptables -t nat -S OUTPUT | grep -c SECRETLESS_OUTPUT)
redirects=$(in_pod iptables -t nat -S SECRETLESS_OUTPUT | grep -c REDIRECT)
check "iptables --apply twice leaves one OUTPUT jump ($jumps) and one REDIRECT ($redirects)" [ "$jumps" = 1 -a "$redirects" = 1 ]

status=$(app_curl -o "$work/body1" -w '%{http_code}' --cacert "$work/local-ca.pem" -H "Authorization: Bearer $app_header" https://api.test/curl-https)
check "curl https://api.test through SNI interception: 200 ($status)" [ "$status" = 200 ]
check "upstream received the injected credential over HTTPS (curl)" [ "$(seen /curl-https authorization)" = "Bearer $secret" ]
check "upstream received the SNI/Host api.test from the proxy" [ "$(seen /curl-https host)" = "api.test" ]

# A half-open client: its ClientHello for an intercepted host, then silence. The proxy closes it
# after the listener's HandshakeTimeout (3 s here) while serving the others.
in_pod /usr/bin/python3 - > "$work/stalled.out" 2>&1 <<'PY' &
import socket, ssl
ctx = ssl.create_default_context()
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="api.test")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
s = socket.create_connection(("10.250.0.2", 443), timeout=30)
s.sendall(outgoing.read())
try:
    while s.recv(4096):
        pass
    print("closed")
except ConnectionResetError:
    print("closed")
except socket.timeout:
    print("still open after 30 s")
PY
stalled_pid=$!
in_pod env SSL_CERT_FILE="$work/local-ca.pem" /usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("https://api.test/python-https", timeout=10).status)' > "$work/py.out" 2>&1
check "python3 urllib https://api.test through SNI interception: 200" grep -qx 200 "$work/py.out"
check "upstream received the injected credential over HTTPS (python3)" [ "$(seen /python-https authorization)" = "Bearer $secret" ]
wait "$stalled_pid"
check "a ClientHello followed by silence is closed ($(cat "$work/stalled.out"))" grep -qx closed "$work/stalled.out"
check "the closed half-open handshake is logged" bash -c "grep -q 'the TLS handshake for api.test did not complete' '$work/proxy.log'"

if [ "$ipv6" = true ]; then
  status=$(app_curl -6 -o /dev/null -w '%{http_code}' --cacert "$work/local-ca.pem" https://api6.test/curl-https6)
  check "IPv6: curl https://api6.test through ip6tables and IP6T_SO_ORIGINAL_DST: 200 ($status)" [ "$status" = 200 ]
  check "IPv6: upstream received the injected credential from the pod's IPv6 address" \
    [ "$(seen /curl-https6 authorization)" = "Bearer $secret" -a "$(seen /curl-https6 peer)" = "fd00:250::1" ]
fi

# The upstream's certificate does not name wrongcert.test: the proxy verifies it against the SNI, so an
# app cannot send a credential to an address of its choosing by naming a host a policy covers.
status=$(app_curl -o /dev/null -w '%{http_code}' --cacert "$work/local-ca.pem" https://wrongcert.test/wrong-cert)
check "the upstream certificate is verified against the SNI name: wrongcert.test gets $status, upstream nothing" [ "$status" = 502 -a "$(count_path /wrong-cert)" = 0 ]

status=$(app_curl -o /dev/null -w '%{http_code}' -H "X-Api-Key: $app_header" http://plain.test/curl-http)
check "curl http://plain.test by its Host: 200 ($status)" [ "$status" = 200 ]
check "upstream received the injected credential over plain HTTP (Host plain.test)" [ "$(seen /curl-http x-api-key)" = "$secret" ]
in_pod /usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://plain.test/python-http", timeout=10).status)' > "$work/py2.out" 2>&1
check "upstream received the injected credential over plain HTTP (python3)" [ "$(seen /python-http x-api-key)" = "$secret" ]

# Plaintext to an address the app picks: the Host names a policy's host, the connection goes to an
# address that name does not resolve to. The credential is not sent (the destination is the address).
status=$(app_curl -o /dev/null -w '%{http_code}' -H "Host: plain.test" http://10.250.0.5/chosen-v4)
check "plain HTTP to an address plain.test does not resolve to: no credential ($status)" [ "$status" = 200 -a "$(count_path /chosen-v4)" = 1 -a -z "$(seen /chosen-v4 x-api-key)" ]
if [ "$ipv6" = true ]; then
  status=$(app_curl -6 -o /dev/null -w '%{http_code}' -H "Host: plain.test" "http://[fd00:250::2]/chosen-v6")
  check "IPv6: plain HTTP to an address plain.test does not resolve to: no credential ($status)" [ "$status" = 200 -a "$(count_path /chosen-v6)" = 1 -a -z "$(seen /chosen-v6 x-api-key)" ]
fi

status=$(app_curl -o /dev/null -w '%{http_code}' --cacert "$work/upstream-ca.pem" https://blind.test/blind-tls)
check "unmatched TLS (blind.test) passes blind: curl trusting only the upstream's CA gets 200 ($status)" [ "$status" = 200 ]
issuer=$(in_pod openssl s_client -connect blind.test:443 -servername blind.test -CAfile "$work/upstream-ca.pem" </dev/null 2>/dev/null | openssl x509 -noout -issuer 2>/dev/null)
check "unmatched TLS: the certificate the client received is the upstream's own ($issuer)" grep -q "Pod Test Upstream CA" <<<"$issuer"
check "unmatched TLS: nothing injected" [ -z "$(seen /blind-tls authorization)" ]
status=$(app_curl -o /dev/null -w '%{http_code}' http://blind.test/blind-http)
check "unmatched plain HTTP passes through with nothing injected ($status)" [ "$status" = 200 -a -z "$(seen /blind-http x-api-key)" ]

out=$(banner_client first)
check "neither TLS nor HTTP, client speaks first: relayed blind ($out)" grep -q "220 pod-test banner|echo PING|echo QUIT" <<<"$out"
out=$(banner_client wait)
check "neither TLS nor HTTP, server speaks first: relayed blind after the client's silence ($out)" grep -q "220 pod-test banner|echo QUIT" <<<"$out"

check "the proxy's own upstream connections were not redirected back (one upstream request per app request)" \
  [ "$(count_path /curl-https)" = 1 -a "$(count_path /curl-http)" = 1 ]
check "no further loop was refused once the rules exempt the proxy's uid" [ "$(grep -c 'would loop' "$work/proxy.log")" = "$loops_before" ]
in_pod curl -s --max-time 5 -o /dev/null http://127.0.0.1:$listener_port/direct 2>/dev/null
check "a connection made to the listener itself is refused (loop guard)" bash -c "grep -q 'would loop.*made to the listener itself' '$work/proxy.log'"

apply_rules $proxy_uid
stop_proxy

# === phase 2: Unmatched Deny =====================================================================
start_proxy Deny
app_curl -o /dev/null --cacert "$work/upstream-ca.pem" https://blind.test/deny-tls 2>/dev/null
code=$?
check "Deny: unmatched TLS is refused (curl exit $code) and never reaches the upstream" [ "$code" != 0 -a "$(count_path /deny-tls)" = 0 ]
out=$(banner_client first)
check "Deny: neither TLS nor HTTP is closed, nothing relayed ($out)" bash -c "! grep -q 220 <<<'$out'"
status=$(app_curl -o /dev/null -w '%{http_code}' http://blind.test/deny-http)
check "Deny: unmatched plain HTTP gets 403 ($status) and never reaches the upstream" [ "$status" = 403 -a "$(count_path /deny-http)" = 0 ]
status=$(app_curl -o /dev/null -w '%{http_code}' --cacert "$work/local-ca.pem" https://api.test/deny-matched)
check "Deny: a matched host is still intercepted and injected ($status)" [ "$status" = 200 -a "$(seen /deny-matched authorization)" = "Bearer $secret" ]

# The hostile-request corpus of the unit tests, through the Transparent listener (plain HTTP).
corpus_failures=0
while IFS=$'\t' read -r expect target what; do
  case "$expect" in ''|'#'*) continue ;; esac
  before=$(grep -c . "$record")
  status=$(app_curl --path-as-is -o /dev/null -w '%{http_code}' --request-target "$target" http://corpus.test/)
  after=$(grep -c . "$record")
  leaked=$(tail -n +$((before + 1)) "$record" | grep -cF "$secret")
  case "$expect" in
    ok) [ "$status" = 200 ] && [ $((after - before)) = 1 ] && [ "$(tail -n 1 "$record" | /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["path"] + " " + str(e["x-api-key"]))')" = "$target $secret" ] || { corpus_failures=$((corpus_failures + 1)); echo "corpus: $target ($what): expected 200 with the credential, got $status"; } ;;
    *) [ "$status" = "$expect" ] && [ "$after" = "$before" ] || { corpus_failures=$((corpus_failures + 1)); echo "corpus: $target ($what): expected $expect and nothing upstream, got $status, $((after - before)) upstream request(s), $leaked with the credential"; } ;;
  esac
done < "$root/tests/SecretlessProxy.Tests/Forwarding/hostile-requests.tsv"
check "the hostile-request corpus through the Transparent listener: every case as expected ($corpus_failures failed)" [ "$corpus_failures" = 0 ]

# === phase 3: rules removed: direct traffic ======================================================
in_pod "$bin" iptables --remove --apply $v6flag > /dev/null 2>&1
check "iptables --remove deletes the chain and the jump" bash -c "! ip netns exec $pod iptables -t nat -S | grep -q SECRETLESS_OUTPUT && ! ip netns exec $pod ip6tables -t nat -S 2>/dev/null | grep -q SECRETLESS_OUTPUT"
status=$(app_curl -o /dev/null -w '%{http_code}' --cacert "$work/upstream-ca.pem" https://api.test/direct-https)
check "after --remove the app reaches the upstream directly with its real certificate ($status)" [ "$status" = 200 ]
check "after --remove nothing is injected (HTTPS)" [ -z "$(seen /direct-https authorization)" ]
status=$(app_curl -o /dev/null -w '%{http_code}' http://plain.test/direct-http)
check "after --remove nothing is injected (plain HTTP, $status)" [ "$status" = 200 -a -z "$(seen /direct-http x-api-key)" ]
in_pod "$bin" iptables --remove --apply $v6flag > /dev/null 2>&1
check "iptables --remove twice is harmless" [ $? = 0 ]
stop_proxy

check "the secret appears in no proxy output" bash -c "! grep -qF '$secret' '$work/proxy.log'"

if [ "$failures" != 0 ]; then
  echo "--- proxy log (last 40 lines)"; tail -n 40 "$work/proxy.log"
  echo "--- upstream records"; cat "$record"
  echo "transparent pod test: $failures assertion(s) FAILED"
  exit 1
fi
echo "transparent pod test: all assertions passed"
