namespace SecretlessProxy.Forwarding;

/// <summary>
/// The request line and Host as they will go on the wire, built before policy runs so that policy
/// decides on exactly what is sent.
/// </summary>
/// <param name="Uri">
/// Scheme, the address connected to, and the path and query byte-exact as the app sent them (made
/// with canonicalization off, so nothing is decoded, re-encoded or dot-resolved on the way out).
/// </param>
/// <param name="Host">
/// The Host header, TLS SNI and name the upstream certificate is checked against; null when that is
/// the authority of <paramref name="Uri"/>. Always the destination's, never the app's choice.
/// </param>
internal sealed record OutboundRequest(Uri Uri, string? Host)
{
    private static readonly UriCreationOptions Verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    /// <summary>Joins a destination prefix (scheme://authority[/base]) and a raw path and query, verbatim.</summary>
    public static bool TryMakeUri(string prefix, string pathAndQuery, out Uri uri)
    {
        if (Uri.TryCreate(prefix + pathAndQuery, in Verbatim, out var made))
        {
            uri = made;
            return true;
        }

        uri = null!;
        return false;
    }
}
