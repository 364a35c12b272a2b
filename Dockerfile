# syntax=docker/dockerfile:1

# ---- build ------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
# Native AOT links with the platform toolchain.
RUN apt-get update && apt-get install -y --no-install-recommends clang zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1

# Restore first, from the project files only, so the layer is cached across source edits.
# appsettings.schema.json is embedded into the assembly by the csproj (../../appsettings.schema.json).
COPY Directory.Build.props appsettings.schema.json ./
COPY src/SecretlessProxy/SecretlessProxy.csproj src/SecretlessProxy/
RUN dotnet restore src/SecretlessProxy/SecretlessProxy.csproj

COPY src/ src/
# The same publish command as tests/run.sh (which CI runs), so the image holds the binary the tests checked.
RUN dotnet publish src/SecretlessProxy/SecretlessProxy.csproj -c Release -o /app \
    && rm -f /app/*.dbg

# ---- runtime ----------------------------------------------------------------
# The binary is self-contained (Native AOT): only the native dependencies are needed.
FROM mcr.microsoft.com/dotnet/runtime-deps:10.0 AS runtime
# `secretless-proxy iptables --apply` (the transparent overlay's init container, same image) runs
# the iptables/ip6tables tools; the nf_tables backend needs only NET_ADMIN.
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app ./

# Read-only root filesystem friendly: anything that wants a home or temp dir gets /tmp
# (mount an emptyDir there). The image's default ASPNETCORE_HTTP_PORTS=8080 is cleared:
# the proxy binds only the listener and admin URLs from its configuration.
ENV HOME=/tmp \
    TMPDIR=/tmp \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1 \
    ASPNETCORE_HTTP_PORTS=

# Non-root (same UID the Kubernetes manifests pin with runAsUser).
USER 65532:65532

# The probe endpoint (/healthz, /readyz, /metrics) where Admin:ProbeUrl puts it, as the Kubernetes
# manifests do; the admin endpoint (9901) is loopback only, and listener ports come from the configuration.
EXPOSE 9902

ENTRYPOINT ["/app/secretless-proxy"]
CMD ["run", "--config", "/etc/secretless-proxy/appsettings.json"]
