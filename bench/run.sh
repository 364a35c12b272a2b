#!/usr/bin/env bash
# Measures the proxy side by side with the direct call and with its peers (nginx, HAProxy, Caddy, the floor), on loopback, interleaved.
#   bench/run.sh            route mode throughput/latency (p99.9)/CPU/RSS, fixed-rate latency (RATES), cold start and start-up, appended to RESULTS.md
#   bench/run.sh soak       bounded soak (SOAK_SECONDS, default 120): errors and RSS growth
#   bench/run.sh forward    forward mode: plain http via HTTP_PROXY, intercepted HTTPS vs mitmproxy, tunnel and leaf costs
#   bench/run.sh pg [direct] PostgreSQL with pgbench, direct vs the Postgres listener (bench/pgbench.sh; markdown on stdout)
#   bench/run.sh revoke      time to revoke: ConfigMap swap to the first refusal, credential revoke to a new token, Vault lease revoke, identity token expiry (bench/revoke.py)
#   bench/run.sh mysql|redis MariaDB (sysbench) or Redis (redis-benchmark), direct vs HAProxy TCP vs the listener (bench/dbbench.sh)
#   bench/run.sh fleet [--sidecars N --credentials M --hours H --seed S]
#                            refresh load of N simulated sidecars on the issuer (bench/fleet, virtual clock, ~1 min), appended to RESULTS.md
#   BENCH_LABEL="what changed" bench/run.sh   labels the run in RESULTS.md
#   BASELINE_REF=<git ref> bench/run.sh      route mode also runs the proxy built from that ref, side by side
#   PROXY_VARIANTS="aot=/path/secretless-proxy jit=/other/secretless-proxy" bench/run.sh
#                                            route mode also runs those builds, side by side, one variant each
#   PROXY_BIN=/path/secretless-proxy       measure that binary instead of publishing one; FLOOR_BIN likewise for bench/Floor
# Not a test: CI does not run it. Every process it starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode=${1:-route}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
# The JIT keeps recompiling hot code (tiered compilation with PGO) for well over 10 s under load;
# measuring before that measures the JIT. Every server gets this much load before the first round.
PRIME=${PRIME:-20}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
SOAK_SECONDS=${SOAK_SECONDS:-120}
label=${BENCH_LABEL:-unlabelled run}
source bench/lib.sh
if [ "$mode" = pg ]; then exec bash bench/pgbench.sh "${@:2}"; fi
if [ "$mode" = mysql ] || [ "$mode" = redis ]; then exec bash bench/dbbench.sh "$mode"; fi
if [ "$mode" = fleet ]; then
  # No servers: the real credential cache of every sidecar on one virtual clock, in one process.
  dotnet build bench/fleet/Fleet.csproj -c Release -nologo -v quiet >/dev/null
  section=$(mktemp /tmp/secretless-fleet.XXXXXX)
  status=0
  dotnet bench/fleet/bin/Release/net10.0/SecretlessProxy.Fleet.dll "${@:2}" > "$section" || status=$?
  { printf '\n## Refresh load at fleet scale (issue 19, %s): %s\n\n' "$(date -u +%F)" "$label"; cat "$section"
    args="${*:2}"; printf '\nCommand: `bench/run.sh fleet%s`\n' "${args:+ $args}"; } >> bench/RESULTS.md
  cat "$section"; rm -f "$section"
  exit "$status"
fi
if [ "$mode" = revoke ]; then
  exec python3 bench/revoke.py "$(proxy_binary "$(mktemp -d /tmp/secretless-revoke-bin.XXXXXX)")" "${TRIALS:-20}"
fi

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if [ "$mode" = route ]; then command -v haproxy >/dev/null || need+=(haproxy); command -v caddy >/dev/null || need+=(caddy); fi
if [ "$mode" = forward ]; then command -v mitmdump >/dev/null || need+=(mitmproxy); command -v openssl >/dev/null || need+=(openssl); fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/secretless-bench.XXXXXX)
chmod 755 "$work"  # nginx workers (nobody) read the static files under it
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/rp.pid" ] && kill "$(cat "$work/rp.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  sleep 0.3; rm -rf "$work"
  git -C "$root" worktree prune 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); RP=$(free_port); PX=$(free_port); ADM=$(free_port)

proxy_bin=$(proxy_binary "$work/app")
# The same code at another commit, for "what did this change cost" measured in the same run.
BASELINE_REF=${BASELINE_REF:-}
baseline_label=""
if [ -n "$BASELINE_REF" ] && [ "$mode" = route ]; then
  echo "publishing the baseline $BASELINE_REF"
  git worktree add --detach "$work/baseline-src" "$BASELINE_REF" >/dev/null 2>&1
  dotnet publish "$work/baseline-src/src/SecretlessProxy/SecretlessProxy.csproj" -c Release -o "$work/baseline" -nologo -v quiet >/dev/null
  baseline_label="$(git log -1 --format='%h %s' "$BASELINE_REF" | cut -c1-80)"
  git worktree remove --force "$work/baseline-src"
fi

# Upstream: nginx answering "ok", plus a static OAuth2 token endpoint whose calls are logged (to count them).
mkdir -p "$work/up" "$work/rp"
head -c 4096 /dev/zero | tr '\0' 'x' > "$work/up/kb4.txt"
cat > "$work/up/nginx.conf" <<NGX
worker_processes 1;
pid $work/up.pid;
error_log $work/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/up; proxy_temp_path $work/up; fastcgi_temp_path $work/up; uwsgi_temp_path $work/up; scgi_temp_path $work/up;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP;
    # The proxy reaches the token endpoint on this socket: a loopback port could be squatted.
    listen unix:$work/up/token.sock;
    location = /oauth/token {
      access_log $work/up/token.log;
      default_type application/json;
      return 200 '{"access_token":"bench-token-0123456789abcdef","token_type":"Bearer","expires_in":3600}';
    }
    # nginx caps a return string's length, so the 4 KB body is a file.
    location = /kb4/bench { default_type text/plain; alias $work/up/kb4.txt; }
    location / { default_type text/plain; return 200 "ok"; }
  }
}
NGX
# Peer: nginx as a reverse proxy adding the same static header, upstream keepalive on, access log off.
cat > "$work/rp/nginx.conf" <<NGX
worker_processes auto;
pid $work/rp.pid;
error_log $work/rp/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/rp; proxy_temp_path $work/rp; fastcgi_temp_path $work/rp; uwsgi_temp_path $work/rp; scgi_temp_path $work/rp;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$RP;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer bench-token-0123456789abcdef";
    }
  }
}
NGX
nginx -c "$work/up/nginx.conf"
nginx -c "$work/rp/nginx.conf"

printf 'bench-client-secret' > "$work/client-secret"
cat > "$work/proxy.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "SecretlessProxy": {
    "Admin": { "Url": "http://127.0.0.1:$ADM" },
    "Listeners": { "bench": { "Mode": "Route", "Url": "http://127.0.0.1:$PX", "Upstream": "http://127.0.0.1:$UP" } },
    "Credentials": {
      "bench-token": { "Source": "OAuth2ClientCredentials", "TokenUrl": "http://localhost/oauth/token", "UnixSocket": "$work/up/token.sock",
                       "ClientId": "bench", "ClientSecretFile": "$work/client-secret", "Scopes": [ "bench" ] }
    },
    "Policies": {
      "bench-read": { "Match": { "Hosts": [ "127.0.0.1" ], "Methods": [ "GET" ], "PathPrefix": "/" },
                      "Credential": "bench-token", "Inject": { "Header": "Authorization", "Format": "Bearer {token}" } }
    }
  }
}
JSON

# Further proxy builds measured side by side with the proxy, one variant each: the baseline
# (BASELINE_REF) and every PROXY_VARIANTS entry, each with its own copy of proxy.json (its own
# listener and admin ports).
declare -A xbin xport xadm xpid
extras=()
add_extra() { # name binary
  local name=$1 bin=$2
  [[ $name =~ ^[A-Za-z0-9_.]+$ ]] || { echo "PROXY_VARIANTS: bad name '$name' (letters, digits, _ and . only)"; exit 1; }
  case " direct proxy nginx haproxy caddy floor ${extras[*]} " in *" $name "*) echo "PROXY_VARIANTS: the name '$name' is taken"; exit 1 ;; esac
  [ -x "$bin" ] || { echo "PROXY_VARIANTS: $bin ($name) is not an executable"; exit 1; }
  xbin[$name]=$bin; xport[$name]=$(free_port); xadm[$name]=$(free_port); extras+=("$name")
  sed -e "s/127.0.0.1:$PX\"/127.0.0.1:${xport[$name]}\"/" -e "s/127.0.0.1:$ADM\"/127.0.0.1:${xadm[$name]}\"/" "$work/proxy.json" > "$work/$name.json"
  # A build from before issue 14 knows no UnixSocket key: it reaches the token endpoint over TCP.
  if ! "$bin" validate --config "$work/$name.json" >/dev/null 2>&1; then
    sed -i -e "s|\"TokenUrl\": \"http://localhost/oauth/token\", \"UnixSocket\": \"$work/up/token.sock\"|\"TokenUrl\": \"http://127.0.0.1:$UP/oauth/token\"|" "$work/$name.json"
  fi
}
start_extra() { # name
  local name=$1
  # shellcheck disable=SC2086 # PROXY_ENV is a list of NAME=value words
  env ${PROXY_ENV:-} "${xbin[$name]}" run --config "$work/$name.json" > "$work/$name.log" 2>&1 &
  xpid[$name]=$!; pids+=("${xpid[$name]}")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:${xadm[$name]}/readyz" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "proxy variant $name did not start"; cat "$work/$name.log"; exit 1
}
stop_extra() { kill "${xpid[$1]}" 2>/dev/null || true; wait "${xpid[$1]}" 2>/dev/null || true; }
if [ "$mode" = route ]; then
  [ -n "$BASELINE_REF" ] && add_extra baseline "$work/baseline/secretless-proxy"
  for entry in ${PROXY_VARIANTS:-}; do
    [[ $entry == *=* ]] || { echo "PROXY_VARIANTS: '$entry' is not name=/path/to/secretless-proxy"; exit 1; }
    add_extra "${entry%%=*}" "${entry#*=}"
  done
fi

proxy_pid=""
start_proxy() {
  : > "$work/up/token.log"
  # shellcheck disable=SC2086 # PROXY_ENV is a list of NAME=value words
  env ${PROXY_ENV:-} "$proxy_bin" run --config "$work/proxy.json" > "$work/proxy.log" 2>&1 &
  proxy_pid=$!; pids+=("$proxy_pid")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "proxy did not start"; cat "$work/proxy.log"; exit 1
}
stop_proxy() { kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }
# Milliseconds from starting a proxy to the first 200 through its listener (not /readyz): curl
# every 5 ms, clocked with date +%s%N. Prints "-" when no 200 came within 10 s.
first_200_ms() { # binary config listener-port
  local t0 code pid ms="-"
  t0=$(date +%s%N)
  # shellcheck disable=SC2086 # PROXY_ENV is a list of NAME=value words
  env ${PROXY_ENV:-} "$1" run --config "$2" > "$work/startup.log" 2>&1 &
  pid=$!; pids+=("$pid")
  while [ $(( $(date +%s%N) - t0 )) -lt 10000000000 ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$3/startup" 2>/dev/null || true)
    if [ "$code" = 200 ]; then ms=$(( ($(date +%s%N) - t0) / 1000000 )); break; fi
    sleep 0.005
  done
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  echo "$ms"
}
wait_200() { for _ in $(seq 1 200); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null || true)" = 200 ] && return 0; sleep 0.05; done; return 1; }

cpu_ticks() { local t=0; for p in "$@"; do read -r -a f < "/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo $t; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
nginx_rp_pids() { echo "$(cat "$work/rp.pid") $(pgrep -P "$(cat "$work/rp.pid")" | tr '\n' ' ')"; }
HZ=$(getconf CLK_TCK)

# One wrk run with bench/pace.lua: prints "rps p50_ms p99_ms p999_ms requests errors cpu_us_per_req
# max_rss_mb" for the given pids. With RATE set the run is paced at RATE req/s (exponential gaps per
# connection) and has no unpaced warm-up run before it.
measure() {
  local url=$1; shift; local pids_="$*"
  [ -z "${RATE:-}" ] && wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s bench/pace.lua "$url" >/dev/null 2>&1
  local before=0; [ -n "$pids_" ] && before=$(cpu_ticks $pids_)
  local max_rss=0 r
  ( env RATE="${RATE:-}" CONNECTIONS="$CONNECTIONS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/pace.lua "$url" > "$work/wrk.out" 2>&1 ) &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    if [ -n "$pids_" ]; then r=$(rss_kb $pids_); [ "$r" -gt "$max_rss" ] && max_rss=$r; fi
    sleep 0.5
  done
  local after=0; [ -n "$pids_" ] && after=$(cpu_ticks $pids_)
  local stats reqs errs
  stats=$(awk '$1 == "bench-stats"' "$work/wrk.out")
  [ -n "$stats" ] || { echo "wrk against $url printed no bench-stats line:" >&2; cat "$work/wrk.out" >&2; exit 1; }
  reqs=$(awk '{print $6}' <<< "$stats")
  errs=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(",",""); n+=$4+$6+$8+$10} END {print n+0}' "$work/wrk.out")
  local cpu_us="-"
  [ -n "$pids_" ] && cpu_us=$(awk -v d=$((after - before)) -v hz="$HZ" -v r="$reqs" 'BEGIN { if (r > 0) printf "%.1f", d * 1000000 / hz / r; else print "-" }')
  echo "$(awk '{ printf "%.0f %.3f %.3f %.3f %d", ($7 > 0 ? $6 * 1000000 / $7 : 0), $2/1000, $3/1000, $4/1000, $6 }' <<< "$stats") $errs $cpu_us $((max_rss / 1024))"
}
median() { sort -g | awk '{a[NR]=$1} END { if (NR == 0) print "-"; else print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'; }

# Adds this run's section at the top of the run list in RESULTS.md, keeping every earlier run.
append_results() {
  python3 - "$root/bench/RESULTS.md" "$work/section.md" <<'PY'
import sys, os
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n\n## Runs (newest first)\n"
marker = "## Runs (newest first)\n"
text = text.replace(marker, marker + section, 1) if marker in text else text + "\n" + marker + section
open(path, "w").write(text)
PY
}

machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), .NET runtime $(dotnet --list-runtimes | awk '/NETCore.App/ {v=$2} END {print v}'), nginx $(nginx -v 2>&1 | cut -d/ -f2), wrk 4.1.0"

if [ "$mode" = soak ]; then
  start_proxy
  idle=$(( $(rss_kb "$proxy_pid") / 1024 ))
  wrk -t1 -c"$CONNECTIONS" -d"${SOAK_SECONDS}s" "http://127.0.0.1:$PX/soak" > "$work/wrk.out" 2>&1 &
  wrk_pid=$!; samples=()
  while kill -0 "$wrk_pid" 2>/dev/null; do samples+=($(( $(rss_kb "$proxy_pid") / 1024 ))); sleep 5; done
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  errs=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(",",""); n+=$4+$6+$8+$10} END {print n+0}' "$work/wrk.out")
  first=${samples[1]:-${samples[0]}}; last=${samples[-1]}
  stop_proxy
  {
    echo; echo "### Soak $(date -u +%Y-%m-%dT%H:%MZ): $label"; echo
    echo "${SOAK_SECONDS} s at ${CONNECTIONS} connections: ${reqs} requests, ${errs} errors; RSS idle ${idle} MB, after 5 s ${first} MB, at end ${last} MB (growth $((last - first)) MB); samples every 5 s: ${samples[*]}"
    echo; echo "Command: \`SOAK_SECONDS=${SOAK_SECONDS} bench/run.sh soak\`"
  } | tee -a "$work/section.md"
  append_results
  exit 0
fi

if [ "$mode" = forward ]; then
  UPS=$(free_port); FX=$(free_port); MX=$(free_port)
  dotnet build bench/LoadGen -c Release -o "$work/loadgen" -nologo -v quiet >/dev/null
  LG="$work/loadgen/loadgen"
  # A test PKI for the HTTPS upstream, trusted by the proxy and by mitmproxy.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/upca.key" -out "$work/upca.pem" -subj /CN=bench-upstream-ca -days 2 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/srv.key" -out "$work/srv.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/srv.ext"
  openssl x509 -req -in "$work/srv.csr" -CA "$work/upca.pem" -CAkey "$work/upca.key" -CAcreateserial -out "$work/srv.pem" -days 2 -extfile "$work/srv.ext" 2>/dev/null
  kill "$(cat "$work/up.pid")"; sleep 0.3
  python3 - "$work/up/nginx.conf" "$UPS" "$work" <<'PY'
import sys
path, port, work = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read().rstrip().rstrip('}')
text += "  server {\n    listen 127.0.0.1:%s ssl;\n    ssl_certificate %s/srv.pem;\n    ssl_certificate_key %s/srv.key;\n    keepalive_requests 1000000;\n    location / { default_type text/plain; return 200 \"ok\"; }\n  }\n}\n" % (port, work, work)
open(path, "w").write(text)
PY
  nginx -c "$work/up/nginx.conf"
  cat > "$work/forward.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "SecretlessProxy": {
    "Admin": { "Url": "http://127.0.0.1:$ADM" },
    "Listeners": {
      "bench": { "Mode": "Route", "Url": "http://127.0.0.1:$PX", "Upstream": "http://127.0.0.1:$UP" },
      "egress": { "Mode": "Forward", "Url": "http://127.0.0.1:$FX", "AllowedConnectPorts": [ $UPS, 443 ] }
    },
    "LocalCa": { "Directory": "$work/localca" },
    "Upstreams": { "TrustedCaFile": "$work/upca.pem" },
    "Credentials": {
      "bench-token": { "Source": "OAuth2ClientCredentials", "TokenUrl": "http://localhost/oauth/token", "UnixSocket": "$work/up/token.sock",
                       "ClientId": "bench", "ClientSecretFile": "$work/client-secret" }
    },
    "Policies": {
      "bench-local": { "Match": { "Hosts": [ "localhost", "127.0.0.1", "*.bench.test" ] },
                       "Credential": "bench-token", "Inject": { "Header": "Authorization", "Format": "Bearer {token}" } }
    }
  }
}
JSON
  env ${PROXY_ENV:-} "$proxy_bin" run --config "$work/forward.json" > "$work/proxy.log" 2>&1 &
  proxy_pid=$!; pids+=("$proxy_pid")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
  mkdir -p "$work/mitm"
  cat > "$work/addon.py" <<'PY'
def request(flow):
    flow.request.headers["Authorization"] = "Bearer bench-token-0123456789abcdef"
PY
  mitmdump --listen-host 127.0.0.1 -p "$MX" --set confdir="$work/mitm" --set ssl_verify_upstream_trusted_ca="$work/upca.pem" -s "$work/addon.py" -q > "$work/mitm.log" 2>&1 &
  mitm_pid=$!; pids+=("$mitm_pid")
  for _ in $(seq 1 200); do [ -f "$work/mitm/mitmproxy-ca-cert.pem" ] && break; sleep 0.1; done
  sleep 1
  cat > "$work/absolute.lua" <<LUA
wrk.headers["Host"] = "localhost:$UP"
request = function() return wrk.format("GET", "http://localhost:$UP/forward") end
LUA
  https_url="https://localhost:$UPS/bench"
  # Prime every path (the JIT), then interleave.
  $LG load --url "$https_url" --proxy "http://127.0.0.1:$FX" --ca "$work/localca/ca.crt" --seconds "$PRIME" >/dev/null
  wrk -t1 -c"$CONNECTIONS" -d"${PRIME}s" "http://127.0.0.1:$PX/prime" >/dev/null 2>&1
  wrk -t1 -c"$CONNECTIONS" -d"${PRIME}s" -s "$work/absolute.lua" "http://127.0.0.1:$FX" >/dev/null 2>&1
  declare -A f
  for round in $(seq 1 "$ROUNDS"); do
    f[direct_https]+="$($LG load --url "$https_url" --ca "$work/upca.pem" --seconds "$DURATION" | cut -d' ' -f1-3) ;"
    f[proxy_https]+="$($LG load --url "$https_url" --proxy "http://127.0.0.1:$FX" --ca "$work/localca/ca.crt" --seconds "$DURATION" | cut -d' ' -f1-3) ;"
    f[mitm_https]+="$($LG load --url "$https_url" --proxy "http://127.0.0.1:$MX" --ca "$work/mitm/mitmproxy-ca-cert.pem" --seconds "$DURATION" | cut -d' ' -f1-3) ;"
    f[proxy_route]+="$($LG load --url "http://127.0.0.1:$PX/route" --seconds "$DURATION" | cut -d' ' -f1-3) ;"
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/absolute.lua" "http://127.0.0.1:$FX" > "$work/wrk.out" 2>&1
    f[forward_http]+="$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out") ;"
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PX/route" > "$work/wrk.out" 2>&1
    f[route_http]+="$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out") ;"
    echo "round $round: ${f[direct_https]##*;} | $(echo "${f[proxy_https]}" | awk -F';' '{print $(NF-1)}') | $(echo "${f[mitm_https]}" | awk -F';' '{print $(NF-1)}')"
  done
  cached=$($LG handshake --proxy "http://127.0.0.1:$FX" --ca "$work/localca/ca.crt" --host localhost --port "$UPS" --count 200)
  fresh=$($LG handshake --proxy "http://127.0.0.1:$FX" --ca "$work/localca/ca.crt" --host "h{i}.bench.test" --port 443 --count 200)
  first() { echo "$1" | tr ';' '\n' | awk 'NF {print $1}' | median; }
  col() { echo "$1" | tr ';' '\n' | awk -v c="$2" 'NF {print $c}' | median; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 == 0) print "-"; else printf "%.2f", a/b }'; }
  {
    echo
    echo "### Forward mode $(date -u +%Y-%m-%dT%H:%MZ): $label"
    echo
    echo "Machine: $machine. HTTPS load: \`bench/LoadGen\` (HttpClient, $CONNECTIONS kept-alive connections or tunnels, ${DURATION} s), plain HTTP load: wrk; ${PRIME} s priming, $ROUNDS interleaved rounds, medians. Upstream: nginx with TLS (test CA); mitmproxy ${MITM_VERSION:-$(mitmdump --version 2>/dev/null | awk '/Mitmproxy/ {print $2}')} adds the same static header through an addon."
    echo
    echo "| variant | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|"
    echo "| HTTPS direct (client to nginx) | $(first "${f[direct_https]}") | $(col "${f[direct_https]}" 2) | $(col "${f[direct_https]}" 3) |"
    echo "| HTTPS through the proxy, intercepted, credential injected | $(first "${f[proxy_https]}") | $(col "${f[proxy_https]}" 2) | $(col "${f[proxy_https]}" 3) |"
    echo "| HTTPS through mitmproxy, intercepted, header added | $(first "${f[mitm_https]}") | $(col "${f[mitm_https]}" 2) | $(col "${f[mitm_https]}" 3) |"
    echo "| route mode, same load generator | $(first "${f[proxy_route]}") | $(col "${f[proxy_route]}" 2) | $(col "${f[proxy_route]}" 3) |"
    echo "| plain HTTP through HTTP_PROXY (wrk, absolute-form) | $(first "${f[forward_http]}") | | |"
    echo "| route mode (wrk) | $(first "${f[route_http]}") | | |"
    echo
    echo "- intercepted HTTPS, proxy/mitmproxy req/s: **$(ratio "$(first "${f[proxy_https]}")" "$(first "${f[mitm_https]}")")**; proxy intercepted HTTPS / proxy route mode (same load generator): **$(ratio "$(first "${f[proxy_https]}")" "$(first "${f[proxy_route]}")")**"
    echo "- new tunnel (CONNECT + TLS handshake) to a host whose leaf is cached: mean/p50/p99 ms $(echo $cached | tr ' ' '/'); to a new host each time (leaf issued): $(echo $fresh | tr ' ' '/'); leaf issuance ≈ **$(awk -v a="$(echo $fresh | cut -d' ' -f2)" -v b="$(echo $cached | cut -d' ' -f2)" 'BEGIN { printf "%.2f", a-b }') ms** (p50 difference)"
    echo
    echo "Command: \`BENCH_LABEL=\"$label\" bench/run.sh forward\`"
  } | tee "$work/section.md"
  append_results
  exit 0
fi

# Route mode, interleaved A B C A B C after a warm-up of each. "-4k" variants fetch a 4 KB body
# (the response masker scans identity-encoded bodies; "ok" is shorter than any masked value).
# Peers beside nginx, each a reverse proxy to the same upstream adding the same static header (the
# app's own Authorization replaced): HAProxy (mode http, upstream connections reused, no logging)
# and Caddy (reverse_proxy with header_up, admin and access log off); and the floor (bench/Floor:
# Kestrel + YARP's forwarder + the header transform, Native AOT), the cost of this stack alone.
HP=$(free_port); CD=$(free_port); FL=$(free_port)
if [ -n "${FLOOR_BIN:-}" ]; then
  floor_bin=$FLOOR_BIN
else
  echo "publishing bench/Floor (Native AOT)"
  dotnet publish bench/Floor/Floor.csproj -c Release -o "$work/floor" -nologo -v quiet >/dev/null
  floor_bin="$work/floor/floor"
fi
cat > "$work/haproxy.cfg" <<CFG
global
  maxconn 8192
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$HP
  http-request set-header Authorization "Bearer bench-token-0123456789abcdef"
  default_backend up
backend up
  server up 127.0.0.1:$UP
CFG
haproxy -f "$work/haproxy.cfg" -db > "$work/haproxy.log" 2>&1 &
haproxy_pid=$!; pids+=("$haproxy_pid")
mkdir -p "$work/caddy"
cat > "$work/caddy/Caddyfile" <<CADDY
{
  admin off
  auto_https off
}
http://:$CD {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$UP {
    header_up Authorization "Bearer bench-token-0123456789abcdef"
  }
}
CADDY
XDG_CONFIG_HOME="$work/caddy" XDG_DATA_HOME="$work/caddy" caddy run --config "$work/caddy/Caddyfile" --adapter caddyfile > "$work/caddy.log" 2>&1 &
caddy_pid=$!; pids+=("$caddy_pid")
"$floor_bin" "http://127.0.0.1:$FL" "http://127.0.0.1:$UP" > "$work/floor.log" 2>&1 &
floor_pid=$!; pids+=("$floor_pid")
for peer in "haproxy $HP" "caddy $CD" "floor $FL"; do
  read -r name port <<< "$peer"
  wait_200 "http://127.0.0.1:$port/ready" || { echo "$name did not start"; cat "$work/$name.log"; exit 1; }
done

start_proxy
for x in "${extras[@]}"; do start_extra "$x"; done
servers="direct proxy ${extras[*]} nginx haproxy caddy floor"
variants="$servers direct-4k proxy-4k"
[ -n "$BASELINE_REF" ] && variants="$variants baseline-4k"
url_of() {
  case $1 in
    direct) echo "http://127.0.0.1:$UP/bench" ;;
    direct-4k) echo "http://127.0.0.1:$UP/kb4/bench" ;;
    proxy) echo "http://127.0.0.1:$PX/bench" ;;
    proxy-4k) echo "http://127.0.0.1:$PX/kb4/bench" ;;
    nginx) echo "http://127.0.0.1:$RP/bench" ;;
    haproxy) echo "http://127.0.0.1:$HP/bench" ;;
    caddy) echo "http://127.0.0.1:$CD/bench" ;;
    floor) echo "http://127.0.0.1:$FL/bench" ;;
    *-4k) echo "http://127.0.0.1:${xport[${1%-4k}]}/kb4/bench" ;;
    *) echo "http://127.0.0.1:${xport[$1]}/bench" ;;
  esac
}
watch_of() {
  case $1 in
    direct*) echo "" ;;
    proxy | proxy-4k) echo "$proxy_pid" ;;
    nginx) nginx_rp_pids ;;
    haproxy) echo "$haproxy_pid" ;;
    caddy) echo "$caddy_pid" ;;
    floor) echo "$floor_pid" ;;
    *) echo "${xpid[${1%-4k}]}" ;;
  esac
}
sleep 1
idle_rss=$(( $(rss_kb "$proxy_pid") / 1024 ))
curl -sf "http://127.0.0.1:$PX/warm" >/dev/null
for v in $servers; do
  wrk -t1 -c"$CONNECTIONS" -d"${PRIME}s" "$(url_of "$v" | sed 's|/bench$|/prime|')" >/dev/null 2>&1
done
declare -A rps p50 p99 p999 cpu rss errs
for round in $(seq 1 "$ROUNDS"); do
  for variant in $variants; do
    # shellcheck disable=SC2046 # a list of pids
    read -r r a b c _n e u mem <<< "$(measure "$(url_of "$variant")" $(watch_of "$variant"))"
    echo "round $round $variant: $r req/s, p50 $a ms, p99 $b ms, p99.9 $c ms, errors $e, cpu/req $u us, max rss $mem MB"
    rps[$variant]+="$r "; p50[$variant]+="$a "; p99[$variant]+="$b "; p999[$variant]+="$c "; cpu[$variant]+="$u "; rss[$variant]+="$mem "; errs[$variant]+="$e "
  done
done
tokens_after_load=$(wc -l < "$work/up/token.log")

m() { echo "$1" | tr ' ' '\n' | awk 'NF && $1 != "-"' | median; }
# Fixed-rate latency: each rate from RATES up to half of nginx's measured maximum, for the direct call
# and every server. Pacing is exponential per connection (bench/pace.lua), so the connections do not
# fire in step. Every wrk run opens CONNECTIONS new connections and the proxy attests the caller of
# each on its first request, so a run's first CONNECTIONS requests are slower; the run lasts DURATION
# so that they are a small share of its requests (the share is reported with the figures).
nginx_max=$(m "${rps[nginx]}")
rates=(); dropped=()
for r in ${RATES:-1000 2000 4000 8000}; do
  if awk -v r="$r" -v n="$nginx_max" 'BEGIN { exit !(r <= n / 2) }'; then rates+=("$r"); else dropped+=("$r"); fi
done
RATE_ROUNDS=${RATE_ROUNDS:-1}
declare -A frps f50 f99 f999 freq ferr
for round in $(seq 1 "$RATE_ROUNDS"); do
  for rate in "${rates[@]}"; do
    for v in $servers; do
      read -r r a b c n e _ <<< "$(RATE=$rate measure "$(url_of "$v")")"
      echo "round $round at $rate req/s, $v: achieved $r req/s, $n requests, p50 $a ms, p99 $b ms, p99.9 $c ms, errors $e"
      k="$rate,$v"; frps[$k]+="$r "; f50[$k]+="$a "; f99[$k]+="$b "; f999[$k]+="$c "; freq[$k]+="$n "; ferr[$k]=$(( ${ferr[$k]:-0} + e ))
    done
  done
done
for x in "${extras[@]}"; do stop_extra "$x"; done
stop_proxy

# Cold start: a fresh proxy, N concurrent first requests, count token endpoint calls.
COLD_N=${COLD_N:-200}
start_proxy
seq 1 "$COLD_N" | sed "s|.*|url = \"http://127.0.0.1:$PX/cold/&\"\noutput = /dev/null|" > "$work/cold.cfg"
cold_start=$(date +%s%N)
curl -s --parallel --parallel-immediate --parallel-max "$COLD_N" -K "$work/cold.cfg" -w '%{http_code}\n' > "$work/cold.codes"
cold_ms=$(( ($(date +%s%N) - cold_start) / 1000000 ))
cold_ok=$(grep -c '^200$' "$work/cold.codes" || true)
cold_tokens=$(wc -l < "$work/up/token.log")
stop_proxy

# Start-up to the first proxied 200, for the proxy and every other build: median of STARTUP_TRIALS.
STARTUP_TRIALS=${STARTUP_TRIALS:-5}
declare -A startup
for v in proxy "${extras[@]}"; do
  if [ "$v" = proxy ]; then b=$proxy_bin; c="$work/proxy.json"; p=$PX; else b=${xbin[$v]}; c="$work/$v.json"; p=${xport[$v]}; fi
  for _ in $(seq 1 "$STARTUP_TRIALS"); do startup[$v]+="$(first_200_ms "$b" "$c" "$p") "; done
  echo "start-up to first proxied 200, $v: ${startup[$v]}ms"
done

# The machine is shared: when the direct call's rounds disagree by more than 25%, something else was
# using the cores and the ratios are not comparable with other runs. Said in the results, not hidden.
spread() { echo ${1} | tr ' ' '\n' | awk 'NF { if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 } END { if (min > 0) printf "%.2f", max / min; else print "0" }'; }
direct_spread=$(spread "${rps[direct]}")
noisy=$(awk -v s="$direct_spread" 'BEGIN { print (s > 1.25) ? 1 : 0 }')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b+0 == 0) print "-"; else printf "%.2f", a/b }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%+.3f", a-b }'; }
sum() { echo "$1" | tr ' ' '\n' | awk '{n+=$1} END {print n+0}'; }
versions="HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'), Caddy $(caddy version | awk '{print $1}')"
{
  echo
  echo "### $(date -u +%Y-%m-%dT%H:%MZ): $label"
  echo
  if [ "$noisy" = 1 ]; then
    echo "**NOISY RUN, not comparable:** the direct call's req/s varied ${direct_spread}x between rounds (limit 1.25x): another load shared the cores. Only errors, token calls and RSS below are usable."
    echo
  fi
  echo "Machine: $machine, $versions. Load: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s -s bench/pace.lua\` after ${PRIME} s of priming load per server and a ${WARMUP} s warm-up per run, variants interleaved, $ROUNDS rounds, medians shown; wrk, upstream, proxy and peers share the cores. Peers, each adding the same static Authorization header in front of the same nginx upstream: nginx (proxy_pass, upstream keepalive), HAProxy (mode http, http-reuse always), Caddy (reverse_proxy, header_up), floor (bench/Floor: Kestrel + YARP forwarder + the header transform, Native AOT). Proxy: \`$proxy_bin\`${PROXY_BIN:+ (PROXY_BIN)}; environment: ${PROXY_ENV:-none}."
  echo
  echo "| variant | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req (server process) | RSS under load MB | errors |"
  echo "|---|---|---|---|---|---|---|---|"
  for v in $variants; do
    echo "| $v | $(m "${rps[$v]}") | $(m "${p50[$v]}") | $(m "${p99[$v]}") | $(m "${p999[$v]}") | $( [[ $v = direct* ]] && echo - || m "${cpu[$v]}") | $( [[ $v = direct* ]] && echo - || m "${rss[$v]}") | $(sum "${errs[$v]}") |"
  done
  echo
  P=$(m "${rps[proxy]}")
  echo "- proxy/direct req/s: **$(ratio "$P" "$(m "${rps[direct]}")")**; proxy/nginx **$(ratio "$P" "$(m "${rps[nginx]}")")**, proxy/haproxy **$(ratio "$P" "$(m "${rps[haproxy]}")")**, proxy/caddy **$(ratio "$P" "$(m "${rps[caddy]}")")**, proxy/floor **$(ratio "$P" "$(m "${rps[floor]}")")**"
  echo "- CPU per request proxy/nginx: **$(ratio "$(m "${cpu[proxy]}")" "$(m "${cpu[nginx]}")")**; proxy/haproxy $(ratio "$(m "${cpu[proxy]}")" "$(m "${cpu[haproxy]}")"), proxy/caddy $(ratio "$(m "${cpu[proxy]}")" "$(m "${cpu[caddy]}")"), proxy/floor $(ratio "$(m "${cpu[proxy]}")" "$(m "${cpu[floor]}")")"
  echo "- p99 proxy/nginx: **$(ratio "$(m "${p99[proxy]}")" "$(m "${p99[nginx]}")")**; p99.9 proxy/nginx: $(ratio "$(m "${p999[proxy]}")" "$(m "${p999[nginx]}")")"
  echo "- 4 KB body, proxy/direct req/s: **$(ratio "$(m "${rps[proxy-4k]}")" "$(m "${rps[direct-4k]}")")**"
  if [ -n "$BASELINE_REF" ]; then
    echo "- baseline = the same bench on \`$BASELINE_REF\` ($baseline_label). proxy/baseline req/s: **$(ratio "$(m "${rps[proxy]}")" "$(m "${rps[baseline]}")")**, p99 **$(ratio "$(m "${p99[proxy]}")" "$(m "${p99[baseline]}")")**, CPU per request **$(ratio "$(m "${cpu[proxy]}")" "$(m "${cpu[baseline]}")")**; 4 KB body: req/s **$(ratio "$(m "${rps[proxy-4k]}")" "$(m "${rps[baseline-4k]}")")**, p99 **$(ratio "$(m "${p99[proxy-4k]}")" "$(m "${p99[baseline-4k]}")")**, CPU per request **$(ratio "$(m "${cpu[proxy-4k]}")" "$(m "${cpu[baseline-4k]}")")**"
  fi
  for x in "${extras[@]}"; do
    [ "$x" = baseline ] && continue
    echo "- $x = \`${xbin[$x]}\`: $x/proxy req/s **$(ratio "$(m "${rps[$x]}")" "$P")**, p99 $(ratio "$(m "${p99[$x]}")" "$(m "${p99[proxy]}")"), CPU per request $(ratio "$(m "${cpu[$x]}")" "$(m "${cpu[proxy]}")")"
  done
  echo "- proxy RSS idle ${idle_rss} MB, under load $(m "${rss[proxy]}") MB"
  for v in proxy "${extras[@]}"; do
    echo "- start-up to first proxied 200 ($v): **$(m "${startup[$v]}") ms** (median of $STARTUP_TRIALS: ${startup[$v]% })"
  done
  echo "- token endpoint calls during the whole load: ${tokens_after_load} for $((1 + ${#extras[@]})) proxy process(es) (cached credential: one each)"
  echo "- cold start: ${COLD_N} concurrent first requests on a fresh proxy: ${cold_ok} answered 200 in ${cold_ms} ms, token endpoint calls: **${cold_tokens}**"
  echo
  if [ ${#rates[@]} -gt 0 ]; then
    lowest_reqs=$(m "${freq[${rates[0]},proxy]}")
    echo "Fixed rate: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s\`, paced by bench/pace.lua (exponential gaps per connection, mean $CONNECTIONS/rate s), rates up to half of nginx's maximum (${nginx_max} req/s)${dropped[0]:+; dropped as above that: ${dropped[*]}}; $RATE_ROUNDS round(s), medians. Each run opens $CONNECTIONS new connections, and the proxy attests the caller of each new loopback connection on its first request, so p99.9 includes those openings: at ${rates[0]} req/s they are $CONNECTIONS of ${lowest_reqs} requests ($(awk -v c="$CONNECTIONS" -v n="$lowest_reqs" 'BEGIN { if (n > 0) printf "%.2f", 100 * c / n; else print "-" }')%; p99.9 is the slowest 0.1%)."
    echo
    echo "| rate | server | achieved req/s | requests | p50 ms | p99 ms | p99.9 ms | added over direct p50 / p99 / p99.9 ms | errors |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for rate in "${rates[@]}"; do
      d50=$(m "${f50[$rate,direct]}"); d99=$(m "${f99[$rate,direct]}"); d999=$(m "${f999[$rate,direct]}")
      for v in $servers; do
        k="$rate,$v"; a=$(m "${f50[$k]}"); b=$(m "${f99[$k]}"); c=$(m "${f999[$k]}")
        added=$([ "$v" = direct ] && echo - || echo "$(minus "$a" "$d50") / $(minus "$b" "$d99") / $(minus "$c" "$d999")")
        echo "| $rate | $v | $(m "${frps[$k]}") | $(m "${freq[$k]}") | $a | $b | $c | $added | ${ferr[$k]:-0} |"
      done
    done
  else
    echo "Fixed rate: no rate in RATES (${RATES:-1000 2000 4000 8000}) is at or below half of nginx's maximum (${nginx_max} req/s); none run."
  fi
  echo
  echo "Command: \`${BASELINE_REF:+BASELINE_REF=$BASELINE_REF }${PROXY_VARIANTS:+PROXY_VARIANTS=\"$PROXY_VARIANTS\" }${RATES:+RATES=\"$RATES\" }BENCH_LABEL=\"$label\" bench/run.sh\`"
} | tee "$work/section.md"

append_results
