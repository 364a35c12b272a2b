#!/usr/bin/env bash
# Measures the proxy side by side with the direct call and with nginx, on loopback, interleaved.
#   bench/run.sh            route mode throughput/latency/CPU/RSS + cold start, appended to RESULTS.md
#   bench/run.sh soak       bounded soak (SOAK_SECONDS, default 120): errors and RSS growth
#   bench/run.sh forward    forward mode: plain http via HTTP_PROXY, intercepted HTTPS vs mitmproxy, tunnel and leaf costs
#   bench/run.sh pg [direct] PostgreSQL with pgbench, direct vs the Postgres listener (bench/pgbench.sh; markdown on stdout)
#   bench/run.sh revoke      time to revoke: ConfigMap swap to the first refusal, credential revoke to a new token (bench/revoke.py)
#   bench/run.sh mysql|redis MariaDB (sysbench) or Redis (redis-benchmark), direct vs HAProxy TCP vs the listener (bench/dbbench.sh)
#   BENCH_LABEL="what changed" bench/run.sh   labels the run in RESULTS.md
#   BASELINE_REF=<git ref> bench/run.sh      route mode also runs the proxy built from that ref, side by side
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
if [ "$mode" = pg ]; then exec bash bench/pgbench.sh "${@:2}"; fi
if [ "$mode" = mysql ] || [ "$mode" = redis ]; then exec bash bench/dbbench.sh "$mode"; fi
if [ "$mode" = revoke ]; then
  source bench/lib.sh
  exec python3 bench/revoke.py "$(proxy_binary "$(mktemp -d /tmp/secretless-revoke-bin.XXXXXX)")" "${TRIALS:-20}"
fi

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
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
  sleep 0.3; rm -rf "$work"
  git -C "$root" worktree prune 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); RP=$(free_port); PX=$(free_port); ADM=$(free_port)

echo "publishing Release build"
dotnet publish src/SecretlessProxy/SecretlessProxy.csproj -c Release -o "$work/app" -nologo -v quiet >/dev/null
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

UPB=$(free_port); ADMB=$(free_port)
sed -e "s/127.0.0.1:$PX\"/127.0.0.1:$UPB\"/" -e "s/127.0.0.1:$ADM\"/127.0.0.1:$ADMB\"/" "$work/proxy.json" > "$work/baseline.json"
# A baseline from before issue 14 knows no UnixSocket key: it reaches the token endpoint over TCP.
if [ -n "$BASELINE_REF" ] && ! "$work/baseline/secretless-proxy" validate --config "$work/baseline.json" >/dev/null 2>&1; then
  sed -i -e "s|\"TokenUrl\": \"http://localhost/oauth/token\", \"UnixSocket\": \"$work/up/token.sock\"|\"TokenUrl\": \"http://127.0.0.1:$UP/oauth/token\"|" "$work/baseline.json"
fi
baseline_pid=""
start_baseline() {
  env ${PROXY_ENV:-} "$work/baseline/secretless-proxy" run --config "$work/baseline.json" > "$work/baseline.log" 2>&1 &
  baseline_pid=$!; pids+=("$baseline_pid")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ADMB/readyz" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "baseline proxy did not start"; cat "$work/baseline.log"; exit 1
}

proxy_pid=""
start_proxy() {
  : > "$work/up/token.log"
  env ${PROXY_ENV:-} "$work/app/secretless-proxy" run --config "$work/proxy.json" > "$work/proxy.log" 2>&1 &
  proxy_pid=$!; pids+=("$proxy_pid")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "proxy did not start"; cat "$work/proxy.log"; exit 1
}
stop_proxy() { kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }

cpu_ticks() { local t=0; for p in "$@"; do read -r -a f < "/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo $t; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
nginx_rp_pids() { echo "$(cat "$work/rp.pid") $(pgrep -P "$(cat "$work/rp.pid")" | tr '\n' ' ')"; }
HZ=$(getconf CLK_TCK)

# One wrk run: prints "rps p50_ms p99_ms requests errors cpu_us_per_req max_rss_mb" for the given pids.
measure() {
  local url=$1; shift; local script=${SCRIPT:-}; local pids_="$*"
  wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" ${script:+-s "$script"} "$url" >/dev/null 2>&1
  local before=0; [ -n "$pids_" ] && before=$(cpu_ticks $pids_)
  local max_rss=0
  ( wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency ${script:+-s "$script"} "$url" > "$work/wrk.out" 2>&1 ) &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    if [ -n "$pids_" ]; then r=$(rss_kb $pids_); [ "$r" -gt "$max_rss" ] && max_rss=$r; fi
    sleep 0.5
  done
  local after=0; [ -n "$pids_" ] && after=$(cpu_ticks $pids_)
  local rps p50 p99 reqs errs
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p50=$(awk '$1=="50%" {print $2}' "$work/wrk.out"); p99=$(awk '$1=="99%" {print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  errs=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(",",""); n+=$4+$6+$8+$10} END {print n+0}' "$work/wrk.out")
  local cpu_us="-"
  [ -n "$pids_" ] && cpu_us=$(awk -v d=$((after - before)) -v hz="$HZ" -v r="$reqs" 'BEGIN { printf "%.1f", d * 1000000 / hz / r }')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $reqs $errs $cpu_us $((max_rss / 1024))"
}
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub("us","",v); printf "%.3f", v/1000 } else if (v ~ /ms$/) { sub("ms","",v); printf "%.3f", v } else if (v ~ /s$/) { sub("s","",v); printf "%.3f", v*1000 } else print v }'; }
median() { sort -g | awk '{a[NR]=$1} END { print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'; }

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
  env ${PROXY_ENV:-} "$work/app/secretless-proxy" run --config "$work/forward.json" > "$work/proxy.log" 2>&1 &
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
start_proxy
variants="direct proxy nginx direct-4k proxy-4k"
primes="http://127.0.0.1:$UP/prime http://127.0.0.1:$PX/prime http://127.0.0.1:$RP/prime"
if [ -n "$BASELINE_REF" ]; then
  start_baseline
  variants="direct proxy baseline nginx direct-4k proxy-4k baseline-4k"
  primes="$primes http://127.0.0.1:$UPB/prime"
fi
sleep 1
idle_rss=$(( $(rss_kb "$proxy_pid") / 1024 ))
curl -sf "http://127.0.0.1:$PX/warm" >/dev/null
for url in $primes; do
  wrk -t1 -c"$CONNECTIONS" -d"${PRIME}s" "$url" >/dev/null 2>&1
done
declare -A rps p50 p99 cpu rss errs
for round in $(seq 1 "$ROUNDS"); do
  for variant in $variants; do
    case $variant in
      direct) url="http://127.0.0.1:$UP/bench"; watch="" ;;
      proxy)  url="http://127.0.0.1:$PX/bench"; watch="$proxy_pid" ;;
      baseline) url="http://127.0.0.1:$UPB/bench"; watch="$baseline_pid" ;;
      nginx)  url="http://127.0.0.1:$RP/bench"; watch="$(nginx_rp_pids)" ;;
      direct-4k) url="http://127.0.0.1:$UP/kb4/bench"; watch="" ;;
      proxy-4k) url="http://127.0.0.1:$PX/kb4/bench"; watch="$proxy_pid" ;;
      baseline-4k) url="http://127.0.0.1:$UPB/kb4/bench"; watch="$baseline_pid" ;;
    esac
    read -r r a b _n e c m <<< "$(measure "$url" $watch)"
    echo "round $round $variant: $r req/s, p50 $a ms, p99 $b ms, errors $e, cpu/req $c us, max rss $m MB"
    rps[$variant]+="$r "; p50[$variant]+="$a "; p99[$variant]+="$b "; cpu[$variant]+="$c "; rss[$variant]+="$m "; errs[$variant]+="$e "
  done
done
tokens_after_load=$(wc -l < "$work/up/token.log")
[ -n "$baseline_pid" ] && { kill "$baseline_pid" 2>/dev/null || true; wait "$baseline_pid" 2>/dev/null || true; }

# p99 at half of the proxy's maximum rate: wrk's delay() paces each connection.
max_proxy=$(echo ${rps[proxy]} | tr ' ' '\n' | median)
half=$(awk -v m="$max_proxy" 'BEGIN { printf "%d", m/2 }')
cat > "$work/pace.lua" <<LUA
function delay() return math.floor(${CONNECTIONS} * 1000 / ${half}) end
LUA
declare -A hp99 hrps
for round in $(seq 1 "$ROUNDS"); do
  for variant in direct proxy; do
    case $variant in direct) url="http://127.0.0.1:$UP/half" ;; proxy) url="http://127.0.0.1:$PX/half" ;; esac
    read -r r _a b _rest <<< "$(SCRIPT="$work/pace.lua" measure "$url")"
    hp99[$variant]+="$b "; hrps[$variant]+="$r "
  done
done
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

m() { echo ${1} | tr ' ' '\n' | median; }
# The machine is shared: when the direct call's rounds disagree by more than 25%, something else was
# using the cores and the ratios are not comparable with other runs. Said in the results, not hidden.
spread() { echo ${1} | tr ' ' '\n' | awk 'NF { if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 } END { if (min > 0) printf "%.2f", max / min; else print "0" }'; }
direct_spread=$(spread "${rps[direct]}")
noisy=$(awk -v s="$direct_spread" 'BEGIN { print (s > 1.25) ? 1 : 0 }')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 == 0) print "-"; else printf "%.2f", a/b }'; }
{
  echo
  echo "### $(date -u +%Y-%m-%dT%H:%MZ): $label"
  echo
  if [ "$noisy" = 1 ]; then
    echo "**NOISY RUN, not comparable:** the direct call's req/s varied ${direct_spread}x between rounds (limit 1.25x): another load shared the cores. Only errors, token calls and RSS below are usable."
    echo
  fi
  echo "Machine: $machine. Load: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` after ${PRIME} s of priming load per server and a ${WARMUP} s warm-up per run, variants interleaved, $ROUNDS rounds, medians shown; wrk, upstream, proxy and peer share the cores. Proxy environment: ${PROXY_ENV:-none}."
  echo
  echo "| variant | req/s | p50 ms | p99 ms | CPU µs/req (proxy process) | RSS under load MB | errors |"
  echo "|---|---|---|---|---|---|---|"
  for v in $variants; do
    echo "| $v | $(m "${rps[$v]}") | $(m "${p50[$v]}") | $(m "${p99[$v]}") | $( [[ $v = direct* ]] && echo - || m "${cpu[$v]}") | $( [[ $v = direct* ]] && echo - || m "${rss[$v]}") | $(echo ${errs[$v]} | tr ' ' '\n' | awk '{n+=$1} END {print n}') |"
  done
  echo
  if [ -n "$BASELINE_REF" ]; then
    echo "- baseline = the same bench on \`$BASELINE_REF\` ($baseline_label). proxy/baseline req/s: **$(ratio "$(m "${rps[proxy]}")" "$(m "${rps[baseline]}")")**, p99 **$(ratio "$(m "${p99[proxy]}")" "$(m "${p99[baseline]}")")**, CPU per request **$(ratio "$(m "${cpu[proxy]}")" "$(m "${cpu[baseline]}")")**; 4 KB body: req/s **$(ratio "$(m "${rps[proxy-4k]}")" "$(m "${rps[baseline-4k]}")")**, p99 **$(ratio "$(m "${p99[proxy-4k]}")" "$(m "${p99[baseline-4k]}")")**, CPU per request **$(ratio "$(m "${cpu[proxy-4k]}")" "$(m "${cpu[baseline-4k]}")")**"
  fi
  echo "- 4 KB body, proxy/direct req/s: **$(ratio "$(m "${rps[proxy-4k]}")" "$(m "${rps[direct-4k]}")")**"
  echo "- proxy/direct req/s: **$(ratio "$(m "${rps[proxy]}")" "$(m "${rps[direct]}")")**; proxy/nginx req/s: **$(ratio "$(m "${rps[proxy]}")" "$(m "${rps[nginx]}")")**; proxy/nginx CPU per request: **$(ratio "$(m "${cpu[proxy]}")" "$(m "${cpu[nginx]}")")**"
  echo "- proxy RSS idle ${idle_rss} MB, under load $(m "${rss[proxy]}") MB"
  echo "- at half the proxy's maximum rate (~${half} req/s paced): p99 direct $(m "${hp99[direct]}") ms, proxy $(m "${hp99[proxy]}") ms, added $(awk -v a="$(m "${hp99[proxy]}")" -v b="$(m "${hp99[direct]}")" 'BEGIN { printf "%.3f", a-b }') ms"
  echo "- token endpoint calls during the whole load: ${tokens_after_load} (cached credential)"
  echo "- cold start: ${COLD_N} concurrent first requests on a fresh proxy: ${cold_ok} answered 200 in ${cold_ms} ms, token endpoint calls: **${cold_tokens}**"
  echo
  echo "Command: \`${BASELINE_REF:+BASELINE_REF=$BASELINE_REF }BENCH_LABEL=\"$label\" bench/run.sh\`"
} | tee "$work/section.md"

append_results
