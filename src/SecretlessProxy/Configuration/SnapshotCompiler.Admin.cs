using System.Net;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Configuration;

/// <summary>The <c>Admin</c> section: who can reach which admin endpoint.</summary>
internal sealed partial class SnapshotCompiler
{
    private const string AdminKey = Root + ":Admin";

    private AdminSettings? CompileAdmin(AdminOptions options, List<ConfigError> errors)
    {
        var start = errors.Count;
        var url = options.Url ?? AdminOptions.DefaultUrl;
        EndPoint? endPoint;
        if (url.StartsWith("unix:", StringComparison.Ordinal))
        {
            endPoint = ParseUnixUrl(url, AdminKey + ":Url", errors);
        }
        else
        {
            endPoint = ParseBindUrl(url, AdminKey + ":Url", errors);
            if (endPoint is IPEndPoint ip && !Loopback.IsLoopback(ip.Address))
            {
                // /decisions names hosts, paths and calling processes, /credentials shows credential
                // state; in a pod, an address other than loopback is reachable from every other pod.
                errors.Add(new(AdminKey + ":Url", "'" + url + "' is not a loopback address: the admin endpoint serves /decisions, /credentials, reload and revoke, " +
                    "which must not face the network; bind 127.0.0.1, [::1] or a unix: socket, and serve the kubelet's probes and /metrics on " + AdminKey + ":ProbeUrl"));
                endPoint = null;
            }
        }

        IPEndPoint? probe = null;
        if (options.ProbeUrl is not null)
        {
            probe = ParseBindUrl(options.ProbeUrl, AdminKey + ":ProbeUrl", errors);
            if (probe is not null && endPoint is IPEndPoint admin && admin.Port != 0 && admin.Port == probe.Port)
            {
                errors.Add(new(AdminKey + ":ProbeUrl", "port " + probe.Port + " is already used by " + AdminKey + ":Url"));
            }
        }

        string? tokenFile = null;
        if (options.TokenFile is not null)
        {
            if (string.IsNullOrWhiteSpace(options.TokenFile))
            {
                errors.Add(new(AdminKey + ":TokenFile", "is empty; name the file holding the admin token, or leave the key out"));
            }
            else
            {
                tokenFile = RequireSecretFile(options.TokenFile, AdminKey + ":TokenFile", errors);
            }
        }

        var uids = options.AllowedUids ?? [];
        for (var i = 0; i < uids.Length; i++)
        {
            if (uids[i] < 0)
            {
                errors.Add(new(AdminKey + ":AllowedUids:" + i, uids[i] + " is not a uid"));
            }
        }

        if (uids.Length > 0 && endPoint is not null && endPoint is not System.Net.Sockets.UnixDomainSocketEndPoint)
        {
            // Only a Unix socket's peer credentials come from the kernel at connect(2); over TCP the
            // admin endpoint names no caller it could check.
            errors.Add(new(AdminKey + ":AllowedUids", "applies only when " + AdminKey + ":Url is a unix: socket (the kernel names its peer's uid); over TCP use " + AdminKey + ":TokenFile"));
        }

        return errors.Count > start || endPoint is null ? null : new AdminSettings(endPoint, probe, tokenFile, uids.Distinct().ToArray());
    }

}
