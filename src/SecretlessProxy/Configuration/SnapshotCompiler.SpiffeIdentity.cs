using SecretlessProxy.Core;
using SecretlessProxy.Identity.Spiffe;

namespace SecretlessProxy.Configuration;

internal sealed partial class SnapshotCompiler
{
    /// <summary>
    /// <c>Identity</c> with <c>Source: SpiffeWorkloadApi</c>: a JWT-SVID for <c>Audience</c> from the
    /// agent at <c>Socket</c> (or <c>SPIFFE_ENDPOINT_SOCKET</c>). The socket may appear after start
    /// (the agent starts beside the proxy): a missing one is "no identity yet", per request.
    /// </summary>
    private SpiffeJwtIdentitySettings? CompileSpiffeIdentity(string key, IdentityOptions identity, List<ConfigError> errors)
    {
        var start = errors.Count;
        foreach (var (name, given) in new[] { ("Path", identity.Path is not null), ("Issuer", identity.Issuer is not null), ("JwksUrl", identity.JwksUrl is not null), ("UnixSocket", identity.UnixSocket is not null), ("PinnedCertificateSha256", identity.PinnedCertificateSha256 is not null), ("AllowLoopbackSquatting", identity.AllowLoopbackSquatting is not null) })
        {
            if (given)
            {
                errors.Add(new(key + ":" + name, "does not apply to Source SpiffeWorkloadApi: the JWT-SVID and the keys that verify it come from the agent's socket (Socket)"));
            }
        }

        var socketPath = SpiffeSocket(key + ":Socket", identity.Socket, errors);
        if (string.IsNullOrWhiteSpace(identity.Audience))
        {
            errors.Add(new(key + ":Audience", "is required: the audience the JWT-SVID is issued for (what the token endpoints it is presented to expect)"));
        }

        if (identity.SpiffeId is not null && !SpiffeId.TryParse(identity.SpiffeId, out _, out var idError))
        {
            errors.Add(new(key + ":SpiffeId", "'" + identity.SpiffeId + "' " + idError));
        }

        var skew = NonNegative(identity.ClockSkew, TimeSpan.FromSeconds(30), key + ":ClockSkew", errors);
        return errors.Count > start ? null : new SpiffeJwtIdentitySettings(socketPath!, identity.Audience!, identity.SpiffeId, skew);
    }

    /// <summary>A Workload API socket from its key, else from <c>SPIFFE_ENDPOINT_SOCKET</c>; null (with an error) when neither names one.</summary>
    internal static string? SpiffeSocket(string key, string? configured, List<ConfigError> errors)
    {
        var value = configured ?? Environment.GetEnvironmentVariable(SpiffeEndpoint.EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(value))
        {
            errors.Add(new(key, "is required when " + SpiffeEndpoint.EnvironmentVariable + " is not set: the SPIFFE Workload API socket (unix:///run/spire/sockets/agent.sock)"));
            return null;
        }

        if (!SpiffeEndpoint.TryParse(value, out var path, out var error))
        {
            errors.Add(new(key, configured is null ? SpiffeEndpoint.EnvironmentVariable + " " + error : error));
            return null;
        }

        return path;
    }
}
