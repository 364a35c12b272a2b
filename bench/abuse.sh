#!/usr/bin/env bash
# Bounded abuse runs (issue 14): what a hostile app in the pod can do to the proxy, and whether the
# proxy keeps serving a victim caller with its memory within a stated bound.
#   bench/abuse.sh                         every scenario against this checkout's Release build
#   SCENARIOS="hosts bodies" LEAVES=64 bench/abuse.sh   some rows only; LEAVES sets LocalCa:MaxLeafCertificates
#   BASELINE_REF=<git ref> bench/abuse.sh  the same scenarios against that ref too, side by side
# Scenarios (a fresh proxy each, RSS sampled every 100 ms, a victim making sequential GETs throughout):
#   hosts    CONNECT + TLS handshake to HOSTS distinct names under a wildcard policy (leaf certificates)
#   garbage  CONNECT with names that are not DNS names, then the victim must still be served
#   bodies   BODIES concurrent PUTs of BODY_MB MB each, SigV4 with the payload signed (each body held and hashed)
#   squat    an app process binds the loopback token endpoint's port first (needs a pinned endpoint)
# Not a test: CI does not run it. Everything listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
HOSTS=${HOSTS:-2000}
HOST_CONCURRENCY=${HOST_CONCURRENCY:-8}
BODIES=${BODIES:-30}
BODY_MB=${BODY_MB:-10}
SCENARIOS=${SCENARIOS:-hosts garbage bodies squat}
LEAVES=${LEAVES:-}   # LocalCa:MaxLeafCertificates for the current build (its default when empty)
label=${BENCH_LABEL:-unlabelled run}

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/secretless-abuse.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  sleep 0.3; [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
  git -C "$root" worktree prune 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PX=$(free_port); FX=$(free_port); ADM=$(free_port); SQ=$(free_port)

echo "publishing Release build"
dotnet publish src/SecretlessProxy/SecretlessProxy.csproj -c Release -o "$work/current" -nologo -v quiet >/dev/null
builds=(current)
BASELINE_REF=${BASELINE_REF:-}
baseline_label=""
if [ -n "$BASELINE_REF" ]; then
  echo "publishing the baseline $BASELINE_REF"
  git worktree add --detach "$work/baseline-src" "$BASELINE_REF" >/dev/null 2>&1
  dotnet publish "$work/baseline-src/src/SecretlessProxy/SecretlessProxy.csproj" -c Release -o "$work/baseline" -nologo -v quiet >/dev/null
  baseline_label="$(git log -1 --format='%h %s' "$BASELINE_REF" | cut -c1-80)"
  git worktree remove --force "$work/baseline-src"
  builds+=(baseline)
fi

# Upstream: nginx answering "ok" to anything (bodies discarded, no size limit) and a static STS.
mkdir -p "$work/up"
expires=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
cat > "$work/up/sts.xml" <<XML
<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/bench/secretless-proxy</Arn><AssumedRoleId>AROABENCH:secretless-proxy</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzEBenchSessionToken0123456789</SessionToken>
      <SecretAccessKey>benchSecretAccessKey0123456789abcdefghij</SecretAccessKey>
      <Expiration>$expires</Expiration>
      <AccessKeyId>ASIABENCH0123456789X</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
XML
cat > "$work/up/nginx.conf" <<NGX
worker_processes 1;
pid $work/up.pid;
error_log $work/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/up; proxy_temp_path $work/up; fastcgi_temp_path $work/up; uwsgi_temp_path $work/up; scgi_temp_path $work/up;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$UP;
    # STS is called with POST to /sts/ (the SDK adds the slash), and nginx refuses POST for a static file.
    location /sts { default_type text/xml; return 200 '$(tr -d '\n' < "$work/up/sts.xml")'; }
    location / { default_type text/plain; return 200 "ok"; }
  }
}
NGX
nginx -c "$work/up/nginx.conf"

printf 'abuse-bench-token-0123456789' > "$work/api-token"
# A JWT-shaped workload token that expires in two hours (TokenFile without keys checks shape and
# expiry only; a token that is not a JWT would make every credential 503 identity-unavailable).
python3 -c 'import base64, json, time, sys
b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
n = int(time.time())
sys.stdout.write(b({"alg": "RS256", "typ": "JWT"}) + "." + b({"iss": "https://bench.invalid", "sub": "system:serviceaccount:bench:app", "aud": "sts.amazonaws.com", "iat": n, "exp": n + 7200}) + ".c2ln")' > "$work/web-identity-token"
printf 'abuse-idp-client-secret-0123456789' > "$work/idp-secret"
chmod 600 "$work/api-token" "$work/web-identity-token" "$work/idp-secret"
# The loopback issuer's real certificate (pinned; its server never runs) and the squatter's own.
for c in issuer squatter; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=127.0.0.1" \
    -keyout "$work/$c.key" -out "$work/$c.crt" >/dev/null 2>&1
done
pin=$(openssl x509 -noout -fingerprint -sha256 -in "$work/issuer.crt" | cut -d= -f2)
head -c $((BODY_MB * 1024 * 1024)) /dev/zero > "$work/body.bin"

# $1 = build. The current build needs the loopback STS (nginx here) opted in by name, and gets the
# squatted issuer; the baseline knows neither key.
write_config() {
  local extra_sts="" idp_cred="" idp_policy="" leaves=""
  if [ "$1" = current ]; then
    extra_sts=', "AllowLoopbackSquatting": true'
    [ -n "$LEAVES" ] && leaves=', "MaxLeafCertificates": '$LEAVES
    idp_cred=',
      "idp": { "Source": "OAuth2ClientCredentials", "TokenUrl": "https://127.0.0.1:'$SQ'/oauth/token", "ClientId": "abuse",
               "ClientSecretFile": "'$work'/idp-secret", "PinnedCertificateSha256": [ "'$pin'" ] }'
    idp_policy=',
      "squatted": { "Match": { "Hosts": [ "127.0.0.1" ], "Methods": [ "GET" ], "PathPrefix": "/idp/" },
                    "Credential": "idp", "Inject": { "Header": "Authorization", "Format": "Bearer {token}" } }'
  fi
  cat > "$work/proxy.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "SecretlessProxy": {
    "Admin": { "Url": "http://127.0.0.1:$ADM" },
    "Identity": { "Source": "TokenFile", "Path": "$work/web-identity-token" },
    "Listeners": {
      "api": { "Mode": "Route", "Url": "http://127.0.0.1:$PX", "Upstream": "http://127.0.0.1:$UP" },
      "egress": { "Mode": "Forward", "Url": "http://127.0.0.1:$FX", "AllowedConnectPorts": [ 443 ] }
    },
    "LocalCa": { "Directory": "$work/localca"$leaves },
    "Credentials": {
      "api-token": { "Source": "File", "Path": "$work/api-token" },
      "aws": { "Source": "AwsWebIdentity", "RoleArn": "arn:aws:iam::123456789012:role/bench", "Region": "eu-west-1",
               "StsUrl": "http://127.0.0.1:$UP/sts"$extra_sts }$idp_cred
    },
    "Policies": {
      "victim": { "Match": { "Hosts": [ "127.0.0.1" ], "Methods": [ "GET" ], "PathPrefix": "/api/" },
                  "Credential": "api-token", "Inject": { "Header": "Authorization", "Format": "Bearer {token}" } },
      "signed": { "Match": { "Hosts": [ "127.0.0.1" ], "Methods": [ "PUT" ], "PathPrefix": "/bucket/" },
                  "Credential": "aws", "Inject": { "AwsSigV4": { "Service": "s3", "Region": "eu-west-1", "SignPayload": true, "MaxBodyBytes": 16777216 } } },
      "wildcard": { "Match": { "Hosts": [ "*.abuse.test" ] },
                    "Credential": "api-token", "Inject": { "Header": "Authorization", "Format": "Bearer {token}" } }$idp_policy
    }
  }
}
JSON
}

proxy_pid=""
start_proxy() {
  local build=$1
  "$work/$build/secretless-proxy" run --config "$work/proxy.json" > "$work/proxy-$build.log" 2>&1 &
  proxy_pid=$!; pids+=("$proxy_pid")
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "proxy ($build) did not start"; cat "$work/proxy-$build.log"; exit 1
}
stop_proxy() { kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }
rss_mb() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Samples the proxy's RSS every 100 ms into $work/peak until the sampler is killed.
sample_rss() { local max=0 v; while kill -0 "$proxy_pid" 2>/dev/null; do v=$(rss_mb "$proxy_pid"); [ "$v" -gt "$max" ] && max=$v && echo "$max" > "$work/peak"; sleep 0.1; done; }
# An app process holds the pinned issuer's port first; the app then calls through the policy that
# needs that issuer. The squatter must never see a decrypted byte, let alone the client secret.
squat_scenario() {
  python3 bench/abuse.py squat "$SQ" "$work/squatter.crt" "$work/squatter.key" "$work/squat.log" & local sq=$!
  sleep 0.5
  local codes=""
  for i in $(seq 1 20); do codes+="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PX/idp/x$i") "; sleep 0.1; done
  sleep 1; kill "$sq" 2>/dev/null; wait "$sq" 2>/dev/null || true
  local conns bytes seen=no
  conns=$(grep -c '^\[connection\]' "$work/squat.log" 2>/dev/null || true)
  bytes=$(grep -v '^\[' "$work/squat.log" 2>/dev/null | wc -c)
  grep -q "abuse-idp-client-secret" "$work/squat.log" 2>/dev/null && seen=YES
  echo "20 GETs needing the squatted issuer: $(echo $codes | tr ' ' '\n' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}'); squatter: $conns connections, $bytes request bytes, client secret seen: $seen"
}
alive() { kill -0 "$proxy_pid" 2>/dev/null && echo "alive" || echo "DIED"; }

# One scenario: fresh proxy, idle RSS, victim + sampler around the abuse, RSS after.
# Prints "idle peak after victim_ok victim_fail victim_p50 victim_p99 victim_max | abuse summary | alive".
run_scenario() {
  local build=$1 scenario=$2 victim_seconds=$3
  start_proxy "$build"
  for _ in 1 2 3 4 5; do curl -s -o /dev/null "http://127.0.0.1:$PX/api/warm"; done
  local idle; idle=$(rss_mb "$proxy_pid"); echo "$idle" > "$work/peak"
  sample_rss & local sampler=$!
  python3 bench/abuse.py victim "http://127.0.0.1:$PX/api/victim" "$victim_seconds" "$work/victim" & local victim=$!
  local summary
  case $scenario in
    hosts) summary=$(python3 bench/abuse.py hosts "$FX" "$work/localca/ca.crt" "$HOSTS" "$HOST_CONCURRENCY") ;;
    garbage) summary=$(python3 bench/abuse.py garbage "$FX") ;;
    bodies)
      local puts=()
      for i in $(seq 1 "$BODIES"); do
        curl -s -o /dev/null -w '%{http_code}\n' -X PUT -T "$work/body.bin" "http://127.0.0.1:$PX/bucket/obj$i" >> "$work/codes-$build" &
        puts+=($!)
      done
      wait "${puts[@]}" 2>/dev/null || true
      summary="$BODIES PUTs of $BODY_MB MB: $(sort "$work/codes-$build" | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')"
      rm -f "$work/codes-$build" ;;
    squat) summary=$(squat_scenario) ;;
  esac
  wait "$victim" || true
  local state; state=$(alive)
  sleep 1
  local after; after=$(rss_mb "$proxy_pid")
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  stop_proxy
  echo "$idle $(cat "$work/peak") $after $(cat "$work/victim") | $summary | $state"
}

machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), .NET runtime $(dotnet --list-runtimes | awk '/NETCore.App/ {v=$2} END {print v}')"
{
  echo; echo "### Abuse $(date -u +%Y-%m-%dT%H:%MZ): $label"; echo
  echo "Machine: $machine. A fresh proxy (Release publish) per row; RSS sampled every 100 ms; a victim caller makes sequential GETs through the Route listener (20 ms apart) for the whole row."
  [ -n "$baseline_label" ] && echo "baseline = \`$BASELINE_REF\` ($baseline_label)."
  echo
  echo "| build | scenario | RSS idle MB | RSS peak MB | RSS after MB | victim ok / failed | victim p50 / p99 / max ms | abuse outcome | proxy |"
  echo "|---|---|---|---|---|---|---|---|---|"
} > "$work/section.md"

row() {
  local build=$1 scenario=$2 seconds=$3
  local r; r=$(run_scenario "$build" "$scenario" "$seconds")
  read -r idle peak after ok fail p50 p99 max _ <<< "$r"
  local rest=${r#*| }
  local outcome=${rest% | *} state=${rest##* | }
  echo "| $build | $scenario | $idle | $peak | $after | $ok / $fail | $p50 / $p99 / $max | $outcome | $state |" | tee -a "$work/section.md"
}

for build in "${builds[@]}"; do
  write_config "$build"
  for scenario in $SCENARIOS; do
    case $scenario in
      hosts) row "$build" hosts 30 ;;
      garbage) row "$build" garbage 5 ;;
      bodies) row "$build" bodies 15 ;;
      squat) [ "$build" = current ] && row "$build" squat 5 ;;
    esac
  done
done

{ echo; echo "Command: \`HOSTS=$HOSTS BODIES=$BODIES BODY_MB=$BODY_MB${SCENARIOS:+ SCENARIOS=\"$SCENARIOS\"}${LEAVES:+ LEAVES=$LEAVES}${BASELINE_REF:+ BASELINE_REF=$BASELINE_REF} bench/abuse.sh\`"; } >> "$work/section.md"
python3 - "$root/bench/RESULTS.md" "$work/section.md" <<'PY'
import sys, os
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
marker = "## Runs (newest first)\n"
text = text.replace(marker, marker + section, 1) if marker in text else text + "\n" + marker + section
open(path, "w").write(text)
PY
cat "$work/section.md"
