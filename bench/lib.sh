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
