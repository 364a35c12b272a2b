namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// Where the SPIFFE Workload API listens: the <c>SPIFFE_ENDPOINT_SOCKET</c> convention of the
/// Workload Endpoint specification (section 4: <c>unix:///path</c>, or <c>unix:/path</c>) or an
/// absolute path. Only Unix sockets: over one, the agent attests the calling process by its
/// kernel-reported credentials, which a TCP endpoint cannot do.
/// </summary>
internal static class SpiffeEndpoint
{
    /// <summary>The environment variable SPIRE, spiffe-helper and the SPIFFE libraries read.</summary>
    public const string EnvironmentVariable = "SPIFFE_ENDPOINT_SOCKET";

    /// <summary>The socket path of <paramref name="value"/>, or false with what is wrong with it.</summary>
    public static bool TryParse(string value, out string socketPath, out string error)
    {
        socketPath = string.Empty;
        var text = value.Trim();
        if (text.StartsWith("unix://", StringComparison.Ordinal))
        {
            // unix:///run/spire/agent.sock: an empty authority and an absolute path. unix://host/...
            // names a host, which a Unix socket cannot have.
            text = text["unix://".Length..];
            if (!text.StartsWith('/'))
            {
                error = "'" + value + "' names a host; a Unix socket address is unix:///absolute/path";
                return false;
            }
        }
        else if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            text = text["unix:".Length..];
        }
        else if (text.Contains("://", StringComparison.Ordinal) || text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            error = "'" + value + "' is not a Unix socket: only unix:///path is supported (the agent attests the proxy by its socket peer credentials)";
            return false;
        }

        if (!System.IO.Path.IsPathFullyQualified(text) || text.Contains('?') || text.Contains('#'))
        {
            error = "'" + value + "' is not an absolute socket path (unix:///run/spire/sockets/agent.sock or /run/spire/sockets/agent.sock)";
            return false;
        }

        socketPath = text;
        error = string.Empty;
        return true;
    }

    /// <summary>The address as messages show it.</summary>
    public static string Display(string socketPath) => "unix://" + socketPath;
}
