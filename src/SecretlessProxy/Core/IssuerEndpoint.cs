namespace SecretlessProxy.Core;

/// <summary>
/// One endpoint the proxy sends a secret or a token to (an OAuth2 token URL, STS, Vault, the
/// Microsoft Entra authority) or takes the identity's signing keys from, and how it is reached.
/// A port on loopback belongs to whichever process binds it first, the app's included, so a
/// loopback endpoint is reached only over a Unix socket, over TLS pinned to a configured
/// certificate, or with <see cref="LoopbackSquattingAccepted"/> saying the risk is taken.
/// </summary>
internal sealed class IssuerEndpoint
{
    public IssuerEndpoint(string key, Uri url, string carries, string? unixSocket = null, IReadOnlyList<byte[]>? pinnedCertificates = null, bool loopbackSquattingAccepted = false)
    {
        ArgumentNullException.ThrowIfNull(url);
        Key = key;
        Url = url;
        Carries = carries;
        UnixSocket = unixSocket;
        PinnedCertificates = pinnedCertificates ?? [];
        LoopbackSquattingAccepted = loopbackSquattingAccepted;
    }

    /// <summary>The configuration key of the URL (<c>SecretlessProxy:Credentials:orders:TokenUrl</c>), for messages.</summary>
    public string Key { get; }

    public Uri Url { get; }

    /// <summary>What a process that answered in the issuer's place would get ("the client secret"), for warnings.</summary>
    public string Carries { get; }

    /// <summary>When set, every connection goes to this socket path; the URL gives only the scheme, Host and path.</summary>
    public string? UnixSocket { get; }

    /// <summary>SHA-256 fingerprints of the DER certificates the server may present; empty for normal chain validation.</summary>
    public IReadOnlyList<byte[]> PinnedCertificates { get; }

    /// <summary><c>AllowLoopbackSquatting: true</c>: the operator accepts that whoever binds the port first gets the request.</summary>
    public bool LoopbackSquattingAccepted { get; }

    public bool IsLoopback => Loopback.IsLoopbackHost(Url);

    /// <summary>Whether requests need a transport of their own rather than the shared one (which refuses loopback).</summary>
    public bool NeedsOwnTransport => UnixSocket is not null || PinnedCertificates.Count > 0 || LoopbackSquattingAccepted;

    /// <summary>Plain http over the network: what is sent can be read and answered by anyone on the path.</summary>
    public bool IsPlainHttpOverNetwork => Url.Scheme == Uri.UriSchemeHttp && UnixSocket is null && !IsLoopback;

    /// <summary>Whether two endpoints are reached the same way (URL, socket, pins, opt-in): a reload that changes none keeps what was built on them.</summary>
    public static bool SameReach(IssuerEndpoint? a, IssuerEndpoint? b) =>
        a is null ? b is null :
        b is not null && a.Url == b.Url && a.UnixSocket == b.UnixSocket && a.LoopbackSquattingAccepted == b.LoopbackSquattingAccepted &&
        a.PinnedCertificates.Count == b.PinnedCertificates.Count && a.PinnedCertificates.Zip(b.PinnedCertificates).All(p => p.First.AsSpan().SequenceEqual(p.Second));

    public override string ToString() => Key;
}
