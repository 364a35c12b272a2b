namespace SecretlessProxy.Identity.Spiffe;

/// <summary>The compiled <c>Upstreams:SpiffeTrust</c> entries, found by upstream host name.</summary>
internal sealed class SpiffeUpstreamTrust : IDisposable
{
    private readonly Dictionary<string, SpiffeUpstream> _byHost;

    public SpiffeUpstreamTrust(IReadOnlyList<SpiffeUpstream> upstreams, string fingerprint)
    {
        Upstreams = upstreams;
        Fingerprint = fingerprint;
        _byHost = new Dictionary<string, SpiffeUpstream>(StringComparer.OrdinalIgnoreCase);
        foreach (var upstream in upstreams)
        {
            foreach (var host in upstream.Hosts)
            {
                _byHost[host] = upstream;
            }
        }
    }

    public IReadOnlyList<SpiffeUpstream> Upstreams { get; }

    /// <summary>The settings as text: two versions with the same fingerprint verify alike.</summary>
    public string Fingerprint { get; }

    public SpiffeUpstream? Find(string host) => _byHost.GetValueOrDefault(host);

    /// <summary>Stops the bundle streams (the proxy is stopping).</summary>
    public void Dispose()
    {
        foreach (var upstream in Upstreams)
        {
            upstream.Bundles.Dispose();
        }
    }
}
