#!/usr/bin/env bash
# MariaDB and Redis through the proxy's MySql and Redis listeners, side by side with the direct
# connection and with HAProxy in TCP mode (the splice floor: a proxy that only copies bytes).
#   bench/dbbench.sh mysql     sysbench oltp_read_only (persistent connections) and a point select
#                              on a new connection per transaction (bench/sysbench-connect.lua)
#   bench/dbbench.sh redis     redis-benchmark GET/SET, without and with pipelining (-P 16)
#   bench/run.sh mysql|redis   the same, through bench/run.sh
# The app's side is plaintext on loopback in every row; the proxy and HAProxy reach the server in
# plaintext too (Tls Mode Disable), so the rows compare the splice and the login, not TLS.
# Prints a markdown section on stdout; progress on stderr. Rounds are interleaved (direct, haproxy,
# proxy, direct, ...). Variables: DURATION (15), ROUNDS (2), PRIME (5), THREADS (8, sysbench),
# CLIENTS (32, redis-benchmark), REQUESTS (200000, redis-benchmark per round), PROXY_BIN (an existing
# secretless-proxy; else a Release publish), TARGETS ("direct haproxy proxy"), BENCH_LABEL.
# Not a test: CI does not run it. Every process it starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
what=${1:-}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
PRIME=${PRIME:-5}
THREADS=${THREADS:-8}
CLIENTS=${CLIENTS:-32}
REQUESTS=${REQUESTS:-200000}
label=${BENCH_LABEL:-unlabelled run}
case $what in mysql | redis) ;; *) echo "usage: bench/dbbench.sh mysql|redis" >&2; exit 2 ;; esac

say() { printf '%s\n' "$*" >&2; }
need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v curl >/dev/null || need+=(curl)
if [ "$what" = mysql ]; then
  command -v mariadbd >/dev/null || need+=(mariadb-server)
  command -v mariadb >/dev/null || need+=(mariadb-client)
  command -v sysbench >/dev/null || need+=(sysbench)
else
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v redis-benchmark >/dev/null || need+=(redis-tools)
fi
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "needs ${need[*]} (install them as root)"; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/secretless-dbbench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secret() { openssl rand -hex 12; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

user=bench
password="bench-$(secret)"
SERVER=$(free_port)
if [ "$what" = mysql ]; then
  mkdir -p "$work/mysql" "$work/run"
  mariadb-install-db --no-defaults --datadir="$work/mysql" --user=root --auth-root-authentication-method=normal --skip-test-db >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; exit 1; }
  mariadbd --no-defaults --user=root --datadir="$work/mysql" --bind-address=127.0.0.1 --port="$SERVER" --socket="$work/run/mysqld.sock" \
    --skip-name-resolve --max-connections=500 --innodb-flush-log-at-trx-commit=0 --skip-log-bin --log-error="$work/mysqld.err" &
  pids+=($!)
  wait_port "$SERVER" || { say "MariaDB did not start"; tail -n 30 "$work/mysqld.err" >&2; exit 1; }
  mariadb --no-defaults -uroot --socket="$work/run/mysqld.sock" -e "CREATE DATABASE sbtest; CREATE USER '$user'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('$password'); GRANT ALL ON sbtest.* TO '$user'@'%';"
  say "MariaDB $(mariadbd --version | awk '{print $3}') on 127.0.0.1:$SERVER; sysbench prepare"
  sysbench oltp_read_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$SERVER" --mysql-user="$user" --mysql-password="$password" --mysql-db=sbtest --tables=4 --table-size=100000 prepare >"$work/prepare.log" 2>&1 || { cat "$work/prepare.log" >&2; exit 1; }
  mode=MySql
else
  redis-server --bind 127.0.0.1 --port "$SERVER" --save "" --appendonly no --dir "$work" --daemonize no \
    --user default off --user "$user" on ">$password" '~*' '&*' +@all >"$work/redis.log" 2>&1 &
  pids+=($!)
  wait_port "$SERVER" || { say "Redis did not start"; cat "$work/redis.log" >&2; exit 1; }
  say "Redis $(redis-server --version | awk '{print $3}') on 127.0.0.1:$SERVER"
  mode=Redis
fi

# HAProxy in TCP mode: bytes only, the app sends its own password.
HAP=$(free_port)
haproxy_tcp_config "$HAP" "$SERVER" >"$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
wait_port "$HAP" || { say "HAProxy did not start"; cat "$work/haproxy.log" >&2; exit 1; }

# The proxy: the app connects with no password; the proxy logs in with the credential it holds.
PX=$(free_port); ADM=$(free_port)
read -r -a targets <<<"${TARGETS:-direct haproxy proxy}"
if [[ " ${targets[*]} " == *" proxy "* ]]; then
proxy=$(proxy_binary "$work/app")
printf '%s' "$password" >"$work/password"; chmod 600 "$work/password"
cat >"$work/proxy.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "SecretlessProxy": {
    "Admin": { "Url": "http://127.0.0.1:$ADM" },
    "Listeners": {
      "db": { "Mode": "$mode", "Url": "tcp://127.0.0.1:$PX", "Upstream": "127.0.0.1:$SERVER", "Credential": "db-login", "Tls": { "Mode": "Disable" } }
    },
    "Credentials": { "db-login": { "Source": "File", "Path": "$work/password", "Username": "$user" } },
    "Policies": { "db": { "Match": { "Hosts": [ "127.0.0.1" ], "Ports": [ $SERVER ] }, "Inject": { "DatabaseLogin": true } } }
  }
}
JSON
if ! "$proxy" validate --config "$work/proxy.json" >"$work/validate.txt" 2>&1; then
  say "the proxy rejects the $mode listener configuration:"; cat "$work/validate.txt" >&2; exit 1
fi
"$proxy" run --config "$work/proxy.json" >"$work/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$ADM/readyz" >/dev/null || { say "proxy did not become ready"; cat "$work/proxy.log" >&2; exit 1; }
fi

declare -A port=([direct]=$SERVER [haproxy]=$HAP [proxy]=$PX)
declare -A results
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 == 0 || a == "n/a" || b == "n/a") print "n/a"; else printf "%.2fx", a/b }'; }
add() { results["$1"]="${results[$1]:-} $2"; }

if [ "$what" = mysql ]; then
  sb() { # target workload seconds
    local t=$1 w=$2 s=$3 pw=$password
    [ "$t" = proxy ] && pw=""
    local args=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="${port[$t]}" --mysql-user="$user" --mysql-db=sbtest --tables=4 --table-size=100000 --threads="$THREADS" --time="$s" --report-interval=0 --percentile=99)
    [ -n "$pw" ] && args+=(--mysql-password="$pw")
    if [ "$w" = ro ]; then sysbench oltp_read_only "${args[@]}" run; else sysbench bench/sysbench-connect.lua "${args[@]}" run; fi
  }
  for t in "${targets[@]}"; do
    say "priming $t"; sb "$t" ro "$PRIME" >/dev/null 2>&1 || { say "sysbench through $t failed:"; sb "$t" ro 2 >&2 || true; [ "$t" = proxy ] && tail -n 30 "$work/proxy.log" >&2; exit 1; }
  done
  for r in $(seq 1 "$ROUNDS"); do
    for w in ro connect; do
      for t in "${targets[@]}"; do
        out=$(sb "$t" "$w" "$DURATION" 2>&1) || { say "$t $w failed: $out"; exit 1; }
        tps=$(awk '/transactions:/ {gsub(/\(/,"",$3); print $3}' <<<"$out")
        p99=$(awk '/99th percentile:/ {print $3}' <<<"$out")
        add "$w-$t-tps" "$tps"; add "$w-$t-p99" "$p99"
        say "round $r $w $t: $tps tx/s, p99 $p99 ms"
      done
    done
  done
  echo
  echo "### MariaDB: direct vs HAProxy TCP vs the proxy ($(date -u +%Y-%m-%d), $label)"
  echo
  echo "sysbench $(sysbench --version | awk '{print $2}'), MariaDB $(mariadbd --version | awk '{print $3}'), $THREADS threads, $ROUNDS interleaved rounds of $DURATION s after $PRIME s priming each; medians. Plaintext on every hop; the proxy logs in with mysql_native_password."
  echo
  echo "| workload | direct tx/s | HAProxy tx/s | proxy tx/s | proxy / HAProxy | proxy / direct | p99 ms direct / HAProxy / proxy |"
  echo "|---|---|---|---|---|---|---|"
  for w in ro connect; do
    d=$(median <<<"${results[$w-direct-tps]:-}"); h=$(median <<<"${results[$w-haproxy-tps]:-}"); p=$(median <<<"${results[$w-proxy-tps]:-}")
    name=$([ "$w" = ro ] && echo "oltp_read_only, persistent connections" || echo "point select, new connection per transaction")
    echo "| $name | $d | $h | $p | $(ratio "$p" "$h") | $(ratio "$p" "$d") | $(median <<<"${results[$w-direct-p99]:-}") / $(median <<<"${results[$w-haproxy-p99]:-}") / $(median <<<"${results[$w-proxy-p99]:-}") |"
  done
else
  rb() { # target pipeline
    local t=$1 p=$2 auth=()
    [ "$t" = proxy ] || auth=(--user "$user" -a "$password")
    redis-benchmark -h 127.0.0.1 -p "${port[$t]}" "${auth[@]}" -t get,set -n "$REQUESTS" -c "$CLIENTS" -P "$p" -q --csv 2>/dev/null
  }
  for t in "${targets[@]}"; do
    say "priming $t"; out=$(rb "$t" 1) && grep -q '"GET"' <<<"$out" || { say "redis-benchmark through $t failed: $out"; [ "$t" = proxy ] && tail -n 30 "$work/proxy.log" >&2; exit 1; }
  done
  for r in $(seq 1 "$ROUNDS"); do
    for p in 1 16; do
      for t in "${targets[@]}"; do
        out=$(rb "$t" "$p")
        for op in GET SET; do
          rps=$(awk -F'","' -v op="$op" '$1 == "\"" op {print $2}' <<<"$out")
          p99=$(awk -F'","' -v op="$op" '$1 == "\"" op {print $6}' <<<"$out")
          add "$op-$p-$t-rps" "$rps"; add "$op-$p-$t-p99" "$p99"
          say "round $r $op -P $p $t: $rps req/s, p99 $p99 ms"
        done
      done
    done
  done
  echo
  echo "### Redis: direct vs HAProxy TCP vs the proxy ($(date -u +%Y-%m-%d), $label)"
  echo
  echo "redis-benchmark, Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2), $CLIENTS clients, $REQUESTS requests per round, $ROUNDS interleaved rounds; medians. Plaintext on every hop; direct and HAProxy send AUTH themselves, the proxy logs in for the app."
  echo
  echo "| command | direct req/s | HAProxy req/s | proxy req/s | proxy / HAProxy | proxy / direct | p99 ms direct / HAProxy / proxy |"
  echo "|---|---|---|---|---|---|---|"
  for p in 1 16; do
    for op in GET SET; do
      d=$(median <<<"${results[$op-$p-direct-rps]:-}"); h=$(median <<<"${results[$op-$p-haproxy-rps]:-}"); x=$(median <<<"${results[$op-$p-proxy-rps]:-}")
      echo "| $op -P $p | $d | $h | $x | $(ratio "$x" "$h") | $(ratio "$x" "$d") | $(median <<<"${results[$op-$p-direct-p99]:-}") / $(median <<<"${results[$op-$p-haproxy-p99]:-}") / $(median <<<"${results[$op-$p-proxy-p99]:-}") |"
    done
  done
fi
echo
echo "Command: \`bench/run.sh $what\`"
