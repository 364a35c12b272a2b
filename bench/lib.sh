# Shared by the bench scripts (sourced, not run).

# proxy_binary DIR: prints the proxy to measure: $PROXY_BIN when set, else a Release publish into DIR.
proxy_binary() {
  if [ -n "${PROXY_BIN:-}" ]; then
    printf '%s\n' "$PROXY_BIN"
    return
  fi
  printf 'publishing Release build\n' >&2
  dotnet publish src/SecretlessProxy/SecretlessProxy.csproj -c Release -o "$1" -nologo -v quiet >/dev/null
  printf '%s\n' "$1/secretless-proxy"
}

# haproxy_tcp_config LISTEN_PORT SERVER_PORT: prints an HAProxy configuration that splices TCP from
# 127.0.0.1:LISTEN_PORT to 127.0.0.1:SERVER_PORT (bytes only: the database peer of the listeners).
haproxy_tcp_config() {
  cat <<CFG
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen db
  bind 127.0.0.1:$1
  server s1 127.0.0.1:$2
CFG
}
