using System.Collections.Frozen;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// Request headers with which an app could make an upstream act on another path, method, host or
/// client than the one policy matched: rewrite headers honoured by IIS, Symfony and Laravel
/// (<c>X-Original-URL</c>, <c>X-Rewrite-URL</c>), method overrides honoured by many frameworks, and
/// the forwarding headers a proxy is supposed to write, not relay (RFC 7239 <c>Forwarded</c>,
/// <c>X-Forwarded-*</c>). They are removed from every request that carries a credential unless the
/// policy lists them under <c>PassRoutingHeaders</c>.
/// </summary>
internal static class RoutingOverrideHeaders
{
    public static readonly FrozenSet<string> Names = new[]
    {
        "X-Original-URL",
        "X-Original-URI",
        "X-Rewrite-URL",
        "X-Override-URL",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "X-Original-Method",
        "X-Forwarded-Host",
        "X-Forwarded-Server",
        "X-Forwarded-Proto",
        "X-Forwarded-Scheme",
        "X-Forwarded-Ssl",
        "X-Forwarded-Port",
        "X-Forwarded-Prefix",
        "X-Forwarded-Path",
        "X-Forwarded-Uri",
        "X-Forwarded-For",
        "X-Original-Host",
        "X-Host",
        "X-HTTP-Host-Override",
        "X-Real-IP",
        "Forwarded",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>Removes every routing-override header the policy does not pass.</summary>
    public static void Remove(HttpRequestMessage request, IReadOnlyList<string> passed)
    {
        foreach (var name in Names)
        {
            if (passed.Count == 0 || !Passed(passed, name))
            {
                request.Headers.Remove(name);
            }
        }
    }

    private static bool Passed(IReadOnlyList<string> passed, string name)
    {
        foreach (var p in passed)
        {
            if (string.Equals(p, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
