#!/usr/bin/env bash
# PostgreSQL through the proxy's Postgres listener vs direct, with pgbench, on loopback.
#   bench/pgbench.sh           direct and proxy, interleaved A B A B; prints a markdown section on stdout
#   bench/pgbench.sh direct    the direct half only (proves the server and pgbench set-up)
#   bench/run.sh pg [direct]   the same, through bench/run.sh
# Direct: pgbench does TLS (verify-full against the test CA) and SCRAM itself. Through the proxy:
# pgbench connects in plaintext with no password; the proxy logs in upstream over verified TLS with
# the credential it holds. Workloads: persistent connections (-c 8 -j 2) select-only (-S) and the
# default TPC-B-like script, and a new connection per transaction (-C, select-only).
# Variables: DURATION (20), ROUNDS (2), PRIME (10, seconds of load per target before the rounds),
# CLIENTS (8), THREADS (2), SCALE (10), PROXY_BIN (an existing secretless-proxy; else a Release
# publish), PROXY_ENV (NAME=value words for the proxy's environment), BENCH_LABEL. Progress goes to stderr. Not a test: CI does not run it. Every process it
# starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
mode=${1:-compare}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
PRIME=${PRIME:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
label=${BENCH_LABEL:-unlabelled run}
case $mode in compare | direct) ;; *) echo "usage: bench/pgbench.sh [compare|direct]" >&2; exit 2 ;; esac

say() { printf '%s\n' "$*" >&2; }

if ! compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || ! command -v curl >/dev/null || ! command -v openssl >/dev/null; then
  [ "$(id -u)" = 0 ] || { say "needs Debian's postgresql, curl and openssl (install them as root)"; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client curl openssl >/dev/null
fi
bin=$(find /usr/lib/postgresql/*/bin -maxdepth 0 -type d | sort -V | tail -n 1)

work=$(mktemp -d /tmp/secretless-pgbench.XXXXXX)
chmod 755 "$work"
proxy_pid=""
cleanup() {
  # shellcheck disable=SC2086 # a list of pids
  if [ -n "$proxy_pid" ]; then kill $proxy_pid 2>/dev/null || true; wait $proxy_pid 2>/dev/null || true; fi
  if [ -f "$work/data/postmaster.pid" ]; then as_pg "$bin/pg_ctl" -D "$work/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# initdb and postgres refuse to run as root: as root they run as the postgres user, in a folder it owns.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
own() { if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secret() { openssl rand -hex 12; }

# A test CA and the server's certificate for localhost and 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -subj /CN=pgbench-test-ca -days 2 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/server.key" -out "$work/server.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -out "$work/server.crt" -days 2 -extfile "$work/server.ext" 2>/dev/null
chmod 644 "$work/ca.pem"

# The server, as the tests' PostgresServer fixture makes it: SCRAM, TLS, a free port on 127.0.0.1.
super_pw="pgbench-super-$(secret)"; bench_pw="pgbench-bench-$(secret)"
mkdir -p "$work/data" "$work/sock"; chmod 700 "$work/data"
printf '%s\n' "$super_pw" > "$work/superuser.pw"; chmod 600 "$work/superuser.pw"
own "$work"
as_pg "$bin/initdb" -D "$work/data" -U postgres --pwfile="$work/superuser.pw" -A scram-sha-256 --auth-local=trust -E UTF8 --locale=C --no-sync --no-instructions >/dev/null
rm -f "$work/superuser.pw"
install -m 600 "$work/server.key" "$work/data/server.key"; install -m 644 "$work/server.crt" "$work/data/server.crt"
cat >> "$work/data/postgresql.conf" <<CONF

# secretless-proxy pgbench server
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work/sock'
ssl = on
password_encryption = 'scram-sha-256'
max_connections = 100
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
include 'port.conf'
CONF
cat > "$work/data/pg_hba.conf" <<HBA
local     all all                 trust
hostssl   all all   127.0.0.1/32  scram-sha-256
hostnossl all all   127.0.0.1/32  scram-sha-256
HBA
started=""
for _ in 1 2 3 4 5; do
  PG=$(free_port)
  echo "port = $PG" > "$work/data/port.conf"
  own "$work"
  if as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 30 start >/dev/null; then started=1; break; fi
  grep -q "could not bind\|Address already in use" "$work/postgres.log" || break
done
if [ -z "$started" ]; then say "PostgreSQL did not start; log tail:"; tail -n 40 "$work/postgres.log" >&2; exit 1; fi
psql_super() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -p "$PG" -U postgres "$@"; }
psql_super -d postgres -c "CREATE ROLE bench LOGIN PASSWORD '$bench_pw'" -c "CREATE DATABASE bench OWNER bench"
say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG; pgbench -i -s $SCALE"
# TLS settings for the direct runs: verify the name localhost, connect to 127.0.0.1 only.
direct_env=(PGHOST=localhost PGHOSTADDR=127.0.0.1 PGPORT="$PG" PGUSER=bench PGDATABASE=bench PGPASSWORD="$bench_pw" PGSSLMODE=verify-full PGSSLROOTCERT="$work/ca.pem")
env "${direct_env[@]}" "$bin/pgbench" -i -s "$SCALE" --quiet >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }

if [ "$mode" = compare ]; then
  PX=$(free_port); ADM=$(free_port)
  proxy=$(proxy_binary "$work/app")
  printf '%s' "$bench_pw" > "$work/password"; chmod 600 "$work/password"
  cat > "$work/proxy.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "SecretlessProxy": {
    "Admin": { "Url": "http://127.0.0.1:$ADM" },
    "Listeners": {
      "db": { "Mode": "Postgres", "Url": "tcp://127.0.0.1:$PX", "Upstream": "localhost:$PG", "Credential": "db-login",
              "Tls": { "Mode": "VerifyFull", "CaFile": "$work/ca.pem" } }
    },
    "Credentials": { "db-login": { "Source": "File", "Path": "$work/password", "Username": "bench" } },
    "Policies": { "db": { "Match": { "Hosts": [ "localhost" ], "Ports": [ $PG ] }, "Inject": { "DatabaseLogin": true } } }
  }
}
JSON
  if ! "$proxy" validate --config "$work/proxy.json" > "$work/validate.txt" 2>&1; then
    say "the proxy ($proxy) rejects the Postgres listener configuration (is the Postgres listener mode implemented in this build?):"
    cat "$work/validate.txt" >&2
    say "run 'bench/pgbench.sh direct' for the direct half only"
    exit 1
  fi
  # Two proxies from the same binary and config, side by side: the default (a database-only proxy
  # turns on the runtime's inline socket completions), and the same with them forced off (socket
  # continuations through the thread pool, as every proxy with an HTTP listener runs).
  start_proxy() { # name port admin-port env...
    local name=$1 port=$2 adm=$3; shift 3
    sed "s/127.0.0.1:$PX\"/127.0.0.1:$port\"/; s/127.0.0.1:$ADM\"/127.0.0.1:$adm\"/" "$work/proxy.json" > "$work/proxy-$name.json"
    # shellcheck disable=SC2086 # PROXY_ENV is a list of NAME=value words
    env ${PROXY_ENV:-} "$@" "$proxy" run --config "$work/proxy-$name.json" > "$work/proxy-$name.log" 2>&1 &
    echo $! > "$work/proxy-$name.pid"
  }
  PX2=$(free_port); ADM2=$(free_port)
  start_proxy proxy "$PX" "$ADM"
  start_proxy pooled "$PX2" "$ADM2" DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0
  proxy_pid="$(cat "$work/proxy-proxy.pid") $(cat "$work/proxy-pooled.pid")"
  for adm in "$ADM" "$ADM2"; do
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$adm/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
    if ! curl -sf "http://127.0.0.1:$adm/readyz" >/dev/null 2>&1; then say "proxy did not become ready:"; cat "$work"/proxy-*.log >&2; exit 1; fi
  done
  # Through the proxy: plaintext, no password; the proxy holds the credential.
  proxy_env=(-u PGPASSWORD -u PGHOSTADDR PGPASSFILE=/dev/null PGHOST=127.0.0.1 PGPORT="$PX" PGUSER=bench PGDATABASE=bench PGSSLMODE=disable)
  pooled_env=(-u PGPASSWORD -u PGHOSTADDR PGPASSFILE=/dev/null PGHOST=127.0.0.1 PGPORT="$PX2" PGUSER=bench PGDATABASE=bench PGSSLMODE=disable)
  probe=$(env "${proxy_env[@]}" "$bin/psql" -X -Atc "select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())" 2>&1) \
    || { say "psql through the proxy failed: $probe"; cat "$work/proxy-proxy.log" >&2; exit 1; }
  say "through the proxy, upstream session user|ssl: $probe"
  targets=(direct proxy pooled)
else
  targets=(direct)
fi

# One pgbench run: prints "tps latency_ms failed".
run_pgbench() {
  local target=$1 seconds=$2; shift 2
  local envs=("${direct_env[@]}")
  if [ "$target" = proxy ]; then envs=("${proxy_env[@]}"); fi
  if [ "$target" = pooled ]; then envs=("${pooled_env[@]}"); fi
  local before=0
  if [ "$target" != direct ]; then before=$(awk '{print $14+$15}' "/proc/$(cat "$work/proxy-$target.pid")/stat"); fi
  if ! env "${envs[@]}" "$bin/pgbench" -n -c "$CLIENTS" -j "$THREADS" -T "$seconds" "$@" > "$work/pgbench.out" 2>&1; then
    say "pgbench against $target failed:"; tail -n 20 "$work/pgbench.out" >&2
    if [ "$target" != direct ]; then tail -n 40 "$work/proxy-$target.log" >&2; fi
    exit 1
  fi
  local tps lat failed tx cpu=- t1=0 pid=""
  if [ "$target" != direct ]; then pid=$(cat "$work/proxy-$target.pid"); fi
  tps=$(awk '/^tps = / {print $3}' "$work/pgbench.out")
  lat=$(awk '/^latency average = / {print $4}' "$work/pgbench.out")
  failed=$(awk -F'[: ]+' '/^number of failed transactions/ {print $5}' "$work/pgbench.out")
  tx=$(awk -F': ' '/number of transactions actually processed/ {split($2, a, "/"); print a[1]}' "$work/pgbench.out")
  if [ -n "$pid" ]; then
    t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    # Clock ticks (1/100 s) of the proxy process per transaction, in microseconds.
    cpu=$(awk -v t=$((t1 - before)) -v n="$tx" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "-" }')
  fi
  echo "$tps $lat ${failed:-0} $cpu"
}

declare -A workload=([select]="-S" [tpcb]="" [connect]="-S -C")
names=(select tpcb connect)
for t in "${targets[@]}"; do
  say "priming $t for ${PRIME}s"
  run_pgbench "$t" "$PRIME" -S >/dev/null
done
declare -A tps lat fail cpu
for round in $(seq 1 "$ROUNDS"); do
  for w in "${names[@]}"; do
    for t in "${targets[@]}"; do
      # shellcheck disable=SC2086 # the workload flags are word lists
      out=$(run_pgbench "$t" "$DURATION" ${workload[$w]})
      read -r a b c e <<< "$out"
      say "round $round $w $t: $a tps, latency $b ms, failed $c, proxy cpu $e us/tx"
      tps[$w,$t]+="$a "; lat[$w,$t]+="$b "; fail[$w,$t]=$(( ${fail[$w,$t]:-0} + c )); cpu[$w,$t]+="$e "
    done
  done
done

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR]=$1} END { if (NR == 0) print "-"; else print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b+0 == 0) print "-"; else printf "%.2f", a/b }'; }
m() { echo "${1:-}" | median; }
fmt() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.0f", v }'; }
declare -A desc=([select]="persistent connections, select-only (\`-S\`)" [tpcb]="persistent connections, TPC-B-like (default script)" [connect]="new connection per transaction, select-only (\`-S -C\`)")
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), PostgreSQL $("$bin/postgres" --version | awk '{print $3}')"
{
  echo
  echo "### PostgreSQL (pgbench) $(date -u +%Y-%m-%dT%H:%MZ): $label"
  echo
  echo "Machine: $machine. \`pgbench -c $CLIENTS -j $THREADS -T $DURATION\` on a scale $SCALE database (\`pgbench -i -s $SCALE\`), fsync off; ${PRIME} s select-only priming per target, direct and proxy interleaved, $ROUNDS rounds, medians. Direct: pgbench with TLS verify-full and SCRAM itself. Proxy: pgbench in plaintext with no password to the proxy's Postgres listener, which logs in upstream over verified TLS (SCRAM). pgbench, proxy and server share the cores."
  echo
  if [ "$mode" = compare ]; then
    echo "Proxy: the published binary as it runs by default (a database-only proxy turns on inline socket completions) and the same binary with \`DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0\` (pooled: continuations through the thread pool), side by side. Proxy CPU is the proxy process's user+system time per transaction (from /proc)."
    echo
    echo "| workload | direct tps | proxy tps | proxy/direct | pooled tps | pooled/direct | latency ms direct / proxy / pooled | proxy CPU µs/tx (default / pooled) | failed |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for w in "${names[@]}"; do
      d=$(m "${tps[$w,direct]:-}"); p=$(m "${tps[$w,proxy]:-}"); i=$(m "${tps[$w,pooled]:-}")
      echo "| ${desc[$w]} | $(fmt "$d") | $(fmt "$p") | **$(ratio "$p" "$d")** | $(fmt "$i") | **$(ratio "$i" "$d")** | $(m "${lat[$w,direct]:-}") / $(m "${lat[$w,proxy]:-}") / $(m "${lat[$w,pooled]:-}") | $(m "${cpu[$w,proxy]:-}") / $(m "${cpu[$w,pooled]:-}") | ${fail[$w,direct]:-0}/${fail[$w,proxy]:-0}/${fail[$w,pooled]:-0} |"
    done
  else
    echo "| workload | direct tps | direct latency ms | failed |"
    echo "|---|---|---|---|"
    for w in "${names[@]}"; do
      echo "| ${desc[$w]} | $(fmt "$(m "${tps[$w,direct]:-}")") | $(m "${lat[$w,direct]:-}") | ${fail[$w,direct]:-0} |"
    done
  fi
  echo
  echo "Command: \`BENCH_LABEL=\"$label\" bench/pgbench.sh${1:+ $1}\`"
}
