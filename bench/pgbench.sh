#!/usr/bin/env bash
# PostgreSQL through the proxy's Postgres listener vs direct, with pgbench, on loopback.
#   bench/pgbench.sh           direct, the proxy and its peers, interleaved A B C A B C; prints a markdown section on stdout
#   bench/pgbench.sh direct    the direct half only (proves the server and pgbench set-up)
#   bench/run.sh pg [direct]   the same, through bench/run.sh
# Direct: pgbench does TLS (verify-full against the test CA) and SCRAM itself. Through the proxy:
# pgbench connects in plaintext with no password; the proxy logs in upstream over verified TLS with
# the credential it holds. Workloads: persistent connections (-c 8 -j 2) select-only (-S) and the
# default TPC-B-like script, and a new connection per transaction (-C, select-only).
# Peers in the same rounds and workloads: PgBouncer (session pooling; pgbench sends the password in
# plaintext to it, SCRAM; it logs in upstream over verified TLS with the password it holds, as the
# proxy does) and HAProxy in TCP mode (bytes only: pgbench does TLS verify-full and SCRAM end to end
# through it). "pooled" is the proxy again with the runtime's inline socket completions off.
# Variables: DURATION (20), ROUNDS (2), PRIME (10, seconds of load per target before the rounds),
# CLIENTS (8), THREADS (2), SCALE (10), TARGETS (direct proxy pooled pgbouncer haproxy; direct and
# proxy are required), PROXY_BIN (an existing secretless-proxy; else a Release
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

need=()
compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || need+=(postgresql postgresql-client)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ "$mode" = compare ]; then command -v pgbouncer >/dev/null || need+=(pgbouncer); command -v haproxy >/dev/null || need+=(haproxy); fi
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "needs Debian's ${need[*]} (install them as root)"; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bin=$(find /usr/lib/postgresql/*/bin -maxdepth 0 -type d | sort -V | tail -n 1)

work=$(mktemp -d /tmp/secretless-pgbench.XXXXXX)
chmod 755 "$work"
peer_pids=""
cleanup() {
  # shellcheck disable=SC2086 # a list of pids
  if [ -n "$peer_pids" ]; then kill $peer_pids 2>/dev/null || true; wait $peer_pids 2>/dev/null || true; fi
  if [ -f "$work/data/postmaster.pid" ]; then as_pg "$bin/pg_ctl" -D "$work/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# initdb and postgres refuse to run as root: as root they run as the postgres user, in a folder it owns.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
own() { if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$@"; fi; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
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
    echo $! > "$work/pid-$name"; peer_pids+=" $!"
  }
  read -r -a targets <<< "${TARGETS:-direct proxy pooled pgbouncer haproxy}"
  has() { [[ " ${targets[*]} " == *" $1 "* ]]; }
  if ! has direct || ! has proxy; then say "TARGETS must include direct and proxy"; exit 2; fi
  for t in "${targets[@]}"; do case $t in direct | proxy | pooled | pgbouncer | haproxy) ;; *) say "unknown target $t"; exit 2 ;; esac; done
  PX2=$(free_port); ADM2=$(free_port)
  start_proxy proxy "$PX" "$ADM"
  adms=("$ADM")
  if has pooled; then start_proxy pooled "$PX2" "$ADM2" DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0; adms+=("$ADM2"); fi
  for adm in "${adms[@]}"; do
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$adm/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
    if ! curl -sf "http://127.0.0.1:$adm/readyz" >/dev/null 2>&1; then say "proxy did not become ready:"; cat "$work"/proxy-*.log >&2; exit 1; fi
  done
  # PgBouncer, session pooling: plaintext SCRAM from pgbench (the password from userlist.txt), verified
  # TLS and SCRAM upstream. It refuses to run as root: as root it runs as the postgres user.
  PGB=$(free_port)
  if has pgbouncer; then
    mkdir -p "$work/pgbouncer"
    printf '"bench" "%s"\n' "$bench_pw" > "$work/pgbouncer/userlist.txt"; chmod 600 "$work/pgbouncer/userlist.txt"
    cat > "$work/pgbouncer/pgbouncer.ini" <<INI
[databases]
bench = host=localhost port=$PG dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB
unix_socket_dir =
logfile = $work/pgbouncer/pgbouncer.log
auth_type = scram-sha-256
auth_file = $work/pgbouncer/userlist.txt
pool_mode = session
default_pool_size = $((CLIENTS * 2))
max_client_conn = $((CLIENTS * 4 + 50))
server_tls_sslmode = verify-full
server_tls_ca_file = $work/ca.pem
client_tls_sslmode = disable
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
INI
    own "$work/pgbouncer"
    if [ "$(id -u)" = 0 ]; then
      setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer -q "$work/pgbouncer/pgbouncer.ini" > "$work/pgbouncer.out" 2>&1 &
    else
      pgbouncer -q "$work/pgbouncer/pgbouncer.ini" > "$work/pgbouncer.out" 2>&1 &
    fi
    echo $! > "$work/pid-pgbouncer"; peer_pids+=" $!"
    wait_port "$PGB" || { say "PgBouncer did not start:"; cat "$work/pgbouncer.out" "$work/pgbouncer/pgbouncer.log" >&2 2>/dev/null; exit 1; }
  fi
  # HAProxy in TCP mode: bytes only; pgbench does TLS and SCRAM end to end through it.
  HAP=$(free_port)
  if has haproxy; then
    haproxy_tcp_config "$HAP" "$PG" > "$work/haproxy.cfg"
    haproxy -f "$work/haproxy.cfg" -db > "$work/haproxy.log" 2>&1 &
    echo $! > "$work/pid-haproxy"; peer_pids+=" $!"
    wait_port "$HAP" || { say "HAProxy did not start:"; cat "$work/haproxy.log" >&2; exit 1; }
  fi
  # Through the proxy: plaintext, no password; the proxy holds the credential.
  proxy_env=(-u PGPASSWORD -u PGHOSTADDR PGPASSFILE=/dev/null PGHOST=127.0.0.1 PGPORT="$PX" PGUSER=bench PGDATABASE=bench PGSSLMODE=disable)
  pooled_env=(-u PGPASSWORD -u PGHOSTADDR PGPASSFILE=/dev/null PGHOST=127.0.0.1 PGPORT="$PX2" PGUSER=bench PGDATABASE=bench PGSSLMODE=disable)
  probe=$(env "${proxy_env[@]}" "$bin/psql" -X -Atc "select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())" 2>&1) \
    || { say "psql through the proxy failed: $probe"; cat "$work/proxy-proxy.log" >&2; exit 1; }
  say "through the proxy, upstream session user|ssl: $probe"
  pgbouncer_env=(-u PGHOSTADDR PGPASSFILE=/dev/null PGHOST=127.0.0.1 PGPORT="$PGB" PGUSER=bench PGDATABASE=bench PGPASSWORD="$bench_pw" PGSSLMODE=disable)
  haproxy_env=(PGHOST=localhost PGHOSTADDR=127.0.0.1 PGPORT="$HAP" PGUSER=bench PGDATABASE=bench PGPASSWORD="$bench_pw" PGSSLMODE=verify-full PGSSLROOTCERT="$work/ca.pem")
  if has pgbouncer; then
    probe=$(env "${pgbouncer_env[@]}" "$bin/psql" -X -Atc "select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())" 2>&1) \
      || { say "psql through PgBouncer failed: $probe"; cat "$work/pgbouncer/pgbouncer.log" >&2; exit 1; }
    say "through PgBouncer, upstream session user|ssl: $probe"
  fi
  if has haproxy; then
    probe=$(env "${haproxy_env[@]}" "$bin/psql" -X -Atc "select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())" 2>&1) \
      || { say "psql through HAProxy failed: $probe"; exit 1; }
    say "through HAProxy (TLS end to end), session user|ssl: $probe"
  fi
else
  targets=(direct)
fi

# One pgbench run: prints "tps latency_ms failed".
run_pgbench() {
  local target=$1 seconds=$2; shift 2
  local envs=("${direct_env[@]}")
  if [ "$target" = proxy ]; then envs=("${proxy_env[@]}"); fi
  if [ "$target" = pooled ]; then envs=("${pooled_env[@]}"); fi
  if [ "$target" = pgbouncer ]; then envs=("${pgbouncer_env[@]}"); fi
  if [ "$target" = haproxy ]; then envs=("${haproxy_env[@]}"); fi
  local before=0
  if [ "$target" != direct ]; then before=$(awk '{print $14+$15}' "/proc/$(cat "$work/pid-$target")/stat"); fi
  if ! env "${envs[@]}" "$bin/pgbench" -n -c "$CLIENTS" -j "$THREADS" -T "$seconds" "$@" > "$work/pgbench.out" 2>&1; then
    say "pgbench against $target failed:"; tail -n 20 "$work/pgbench.out" >&2
    if [ "$target" = proxy ] || [ "$target" = pooled ]; then tail -n 40 "$work/proxy-$target.log" >&2; fi
    if [ "$target" = pgbouncer ]; then tail -n 40 "$work/pgbouncer/pgbouncer.log" >&2; fi
    exit 1
  fi
  local tps lat failed tx cpu=- t1=0 pid=""
  if [ "$target" != direct ]; then pid=$(cat "$work/pid-$target"); fi
  tps=$(awk '/^tps = / {print $3}' "$work/pgbench.out")
  lat=$(awk '/^latency average = / {print $4}' "$work/pgbench.out")
  failed=$(awk -F'[: ]+' '/^number of failed transactions/ {print $5}' "$work/pgbench.out")
  tx=$(awk -F': ' '/number of transactions actually processed/ {split($2, a, "/"); print a[1]}' "$work/pgbench.out")
  if [ -n "$pid" ]; then
    t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    # Clock ticks of the proxy's (or the peer's) process per transaction, in microseconds.
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
      say "round $round $w $t: $a tps, latency $b ms, failed $c, cpu $e us/tx"
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
  echo "Machine: $machine. \`pgbench -c $CLIENTS -j $THREADS -T $DURATION\` on a scale $SCALE database (\`pgbench -i -s $SCALE\`), fsync off; ${PRIME} s select-only priming per target, targets interleaved, $ROUNDS rounds, medians. Direct: pgbench with TLS verify-full and SCRAM itself. Proxy: pgbench in plaintext with no password to the proxy's Postgres listener, which logs in upstream over verified TLS (SCRAM). pgbench, proxy, peers and server share the cores."
  echo
  if [ "$mode" = compare ]; then
    echo "Peers in the same interleaved rounds: PgBouncer $(pgbouncer --version | awk 'NR == 1 {print $2}') in session pooling mode (pgbench sends the password over plaintext to it, SCRAM; PgBouncer logs in upstream over TLS verify-full against the test CA with the password it holds, as the proxy does with its credential) and HAProxy $(haproxy -v | awk 'NR == 1 {print $3}') in TCP mode (bytes only; pgbench does TLS verify-full and SCRAM end to end through it, as direct). PgBouncer keeps its server connections across client connections, so in the new-connection row the server starts no backend and no TLS session per transaction behind it; behind the proxy and HAProxy it does. CPU is the user+system time per transaction of the process in the middle (from /proc): the proxy, PgBouncer, HAProxy."
    if has pooled; then
      echo
      echo "pooled: the same proxy binary with \`DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0\` (continuations through the thread pool, as every proxy with an HTTP listener runs; the default, a database-only proxy, turns on inline socket completions)."
    fi
    echo
    declare -A tname=([direct]=direct [proxy]=proxy [pooled]=pooled [pgbouncer]=PgBouncer [haproxy]=HAProxy)
    mids=(); for t in "${targets[@]}"; do [ "$t" != direct ] && mids+=("$t"); done
    head="| workload |"; rule="|---|"
    for t in "${targets[@]}"; do head+=" ${tname[$t]} tps |"; rule+="---|"; done
    head+=" proxy/direct |"; rule+="---|"
    has pooled && { head+=" pooled/direct |"; rule+="---|"; }
    has pgbouncer && { head+=" proxy/PgBouncer |"; rule+="---|"; }
    has haproxy && { head+=" proxy/HAProxy |"; rule+="---|"; }
    lat_names=$(for t in "${targets[@]}"; do printf '%s / ' "${tname[$t]}"; done); cpu_names=$(for t in "${mids[@]}"; do printf '%s / ' "${tname[$t]}"; done)
    head+=" latency ms ${lat_names% / } | CPU µs/tx ${cpu_names% / } | failed |"; rule+="---|---|---|"
    echo "$head"; echo "$rule"
    for w in "${names[@]}"; do
      row="| ${desc[$w]} |"
      for t in "${targets[@]}"; do row+=" $(fmt "$(m "${tps[$w,$t]:-}")") |"; done
      p=$(m "${tps[$w,proxy]:-}")
      row+=" **$(ratio "$p" "$(m "${tps[$w,direct]:-}")")** |"
      has pooled && row+=" **$(ratio "$(m "${tps[$w,pooled]:-}")" "$(m "${tps[$w,direct]:-}")")** |"
      has pgbouncer && row+=" **$(ratio "$p" "$(m "${tps[$w,pgbouncer]:-}")")** |"
      has haproxy && row+=" **$(ratio "$p" "$(m "${tps[$w,haproxy]:-}")")** |"
      lats=$(for t in "${targets[@]}"; do printf '%s / ' "$(m "${lat[$w,$t]:-}")"; done)
      cpus=$(for t in "${mids[@]}"; do printf '%s / ' "$(m "${cpu[$w,$t]:-}")"; done)
      fails=$(for t in "${targets[@]}"; do printf '%s/' "${fail[$w,$t]:-0}"; done)
      row+=" ${lats% / } | ${cpus% / } | ${fails%/} |"
      echo "$row"
    done
  else
    echo "| workload | direct tps | direct latency ms | failed |"
    echo "|---|---|---|---|"
    for w in "${names[@]}"; do
      echo "| ${desc[$w]} | $(fmt "$(m "${tps[$w,direct]:-}")") | $(m "${lat[$w,direct]:-}") | ${fail[$w,direct]:-0} |"
    done
  fi
  echo
  echo "Command: \`${TARGETS:+TARGETS=\"$TARGETS\" }BENCH_LABEL=\"$label\" bench/pgbench.sh${1:+ $1}\`"
}
