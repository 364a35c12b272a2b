using SecretlessProxy.Core;
using SecretlessProxy.Identity.Spiffe;

namespace SecretlessProxy.Configuration;

internal sealed partial class SnapshotCompiler
{
    /// <summary>
    /// <c>Upstreams:SpiffeTrust</c>: hosts whose certificates are verified by SPIFFE bundle and ID.
    /// Each entry needs hosts, a socket (or <c>SPIFFE_ENDPOINT_SOCKET</c>) and at least one allowed
    /// ID or prefix: a bundle alone would accept any workload of the trust domain.
    /// </summary>
    private SpiffeUpstreamTrust? CompileSpiffeTrust(Dictionary<string, SpiffeTrustOptions> entries, List<ConfigError> errors)
    {
        if (entries.Count == 0)
        {
            return null;
        }

        var start = errors.Count;
        var upstreams = new List<SpiffeUpstream>();
        var claimed = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var fingerprint = new List<string>();
        foreach (var (name, entry) in entries.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            var key = Root + ":Upstreams:SpiffeTrust:" + name;
            var entryStart = errors.Count;
            var hosts = new List<string>();
            if (entry.Hosts is not { Length: > 0 })
            {
                errors.Add(new(key + ":Hosts", "is required: the upstream host names verified by SPIFFE ID"));
            }
            else
            {
                for (var i = 0; i < entry.Hosts.Length; i++)
                {
                    if (!HostName.TryNormalize(entry.Hosts[i], out var host))
                    {
                        errors.Add(new(key + ":Hosts:" + i, "'" + entry.Hosts[i] + "' is not a DNS name or IP literal"));
                    }
                    else if (!claimed.TryAdd(host, name))
                    {
                        errors.Add(new(key + ":Hosts:" + i, "'" + host + "' is already verified by SpiffeTrust entry '" + claimed[host] + "'"));
                    }
                    else
                    {
                        hosts.Add(host);
                    }
                }
            }

            var socketPath = SpiffeSocket(key + ":Socket", entry.Socket, errors);
            var ids = CheckSpiffeIds(key + ":SpiffeIds", entry.SpiffeIds, errors);
            var prefixes = CheckSpiffeIds(key + ":SpiffeIdPrefixes", entry.SpiffeIdPrefixes?.Select(p => p.TrimEnd('/')).ToArray(), errors);
            if (ids.Count + prefixes.Count == 0 && errors.Count == entryStart)
            {
                errors.Add(new(key, "give SpiffeIds or SpiffeIdPrefixes: the SPIFFE IDs the upstream may present (the bundle alone would accept any workload of its trust domain)"));
            }

            if (errors.Count > entryStart)
            {
                continue;
            }

            var allowed = new SpiffeIdMatcher(ids, prefixes);
            var watcher = new X509SvidWatcher(socketPath!, null, _time, _loggerFactory.CreateLogger<X509SvidWatcher>());
            upstreams.Add(new SpiffeUpstream(name, hosts, allowed, watcher, _time));
            fingerprint.Add(name + "=" + string.Join(",", hosts.Order(StringComparer.Ordinal)) + "@" + socketPath + ":" + allowed.Describe());
        }

        if (errors.Count > start)
        {
            // The entries compiled before an error are not used: release their agent clients.
            foreach (var upstream in upstreams)
            {
                upstream.Bundles.Dispose();
            }

            return null;
        }

        return new SpiffeUpstreamTrust(upstreams, string.Join(";", fingerprint));
    }

    private static List<string> CheckSpiffeIds(string key, string[]? values, List<ConfigError> errors)
    {
        var valid = new List<string>();
        for (var i = 0; i < (values?.Length ?? 0); i++)
        {
            if (!SpiffeId.TryParse(values![i], out var id, out var error))
            {
                errors.Add(new(key + ":" + i, "'" + values[i] + "' " + error));
            }
            else
            {
                valid.Add(id!.Value);
            }
        }

        return valid;
    }
}
