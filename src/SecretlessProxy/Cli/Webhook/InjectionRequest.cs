using System.Globalization;
using System.Text.RegularExpressions;

namespace SecretlessProxy.Cli.Webhook;

/// <summary>What a pod's annotations ask for, validated: the mode, the config's ConfigMap and the mode's settings.</summary>
internal sealed partial record InjectionRequest(
    InjectionMode Mode,
    string ConfigMap,
    int ListenerPort,
    IReadOnlyList<int> RedirectPorts,
    IReadOnlyList<(string Volume, string MountPath)> ProxyVolumeMounts)
{
    public const int DefaultTransparentPort = 15001;
    public const int DefaultForwardPort = 3128;

    /// <summary>
    /// Null with no reason when the annotations do not ask for the proxy; null with the reason when they
    /// ask for something the webhook cannot do (the reason names the annotation and what is wrong).
    /// </summary>
    public static InjectionRequest? Parse(IDictionary<string, string>? annotations, out string? reason)
    {
        reason = null;
        if (annotations is null || !annotations.TryGetValue(InjectionAnnotations.Inject, out var modeText) || modeText is null
            || string.Equals(modeText.Trim(), "false", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        InjectionMode mode;
        switch (modeText.Trim().ToLowerInvariant())
        {
            case "transparent": mode = InjectionMode.Transparent; break;
            case "explicit": mode = InjectionMode.Explicit; break;
            case "route": mode = InjectionMode.Route; break;
            default:
                reason = "annotation " + InjectionAnnotations.Inject + ": '" + Shorten(modeText) + "' is not a mode (transparent, explicit, route, or false)";
                return null;
        }

        if (!annotations.TryGetValue(InjectionAnnotations.Config, out var configMap) || string.IsNullOrWhiteSpace(configMap))
        {
            reason = "annotation " + InjectionAnnotations.Config + " is missing: name the ConfigMap that holds the proxy's appsettings.json";
            return null;
        }

        configMap = configMap.Trim();
        if (configMap.Length > 253 || !DnsSubdomain().IsMatch(configMap))
        {
            reason = "annotation " + InjectionAnnotations.Config + ": '" + Shorten(configMap) + "' is not a ConfigMap name (a DNS subdomain: lower-case letters, digits, '-' and '.')";
            return null;
        }

        var port = mode == InjectionMode.Transparent ? DefaultTransparentPort : DefaultForwardPort;
        if (annotations.TryGetValue(InjectionAnnotations.Port, out var portText) && portText is not null)
        {
            if (mode == InjectionMode.Route)
            {
                reason = "annotation " + InjectionAnnotations.Port + " applies to the transparent and explicit modes only (a Route listener's address is in its config)";
                return null;
            }

            if (!int.TryParse(portText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
            {
                reason = "annotation " + InjectionAnnotations.Port + ": '" + Shorten(portText) + "' is not a TCP port";
                return null;
            }
        }

        IReadOnlyList<int> redirectPorts = [80, 443];
        if (annotations.TryGetValue(InjectionAnnotations.RedirectPorts, out var redirectText) && redirectText is not null)
        {
            if (mode != InjectionMode.Transparent)
            {
                reason = "annotation " + InjectionAnnotations.RedirectPorts + " applies to the transparent mode only";
                return null;
            }

            if (IptablesRules.ParsePorts(redirectText, out var portsError) is not { } parsed)
            {
                reason = "annotation " + InjectionAnnotations.RedirectPorts + ": " + Shorten(portsError ?? string.Empty);
                return null;
            }

            redirectPorts = parsed;
        }

        if (mode == InjectionMode.Transparent && redirectPorts.Contains(port))
        {
            reason = "annotation " + InjectionAnnotations.RedirectPorts + " includes the listener's own port " + port.ToString(CultureInfo.InvariantCulture);
            return null;
        }

        var mounts = new List<(string, string)>();
        if (annotations.TryGetValue(InjectionAnnotations.ProxyVolumeMounts, out var mountsText) && mountsText is not null)
        {
            foreach (var part in mountsText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var colon = part.IndexOf(':', StringComparison.Ordinal);
                var volume = colon > 0 ? part[..colon] : string.Empty;
                var path = colon > 0 ? part[(colon + 1)..] : string.Empty;
                if (volume.Length == 0 || !path.StartsWith('/') || path.Contains(':', StringComparison.Ordinal))
                {
                    reason = "annotation " + InjectionAnnotations.ProxyVolumeMounts + ": '" + Shorten(part) + "' is not volume:/absolute/path";
                    return null;
                }

                // Compared segment-wise with the proxy's own folders, so only one spelling of a path
                // is accepted: /etc//x, /etc/./x or /tmp/../etc/x would slip past the comparison.
                if (NormalizedMountPath(path) is not { } normalized)
                {
                    reason = "annotation " + InjectionAnnotations.ProxyVolumeMounts + ": '" + Shorten(path) + "' has an empty, '.' or '..' segment (write the path plainly)";
                    return null;
                }

                mounts.Add((volume, normalized));
            }
        }

        return new InjectionRequest(mode, configMap, port, redirectPorts, mounts);
    }

    /// <summary>The absolute path without a trailing slash, or null when a segment is empty, <c>.</c> or <c>..</c>.</summary>
    private static string? NormalizedMountPath(string path)
    {
        if (path == "/")
        {
            return path;
        }

        var trimmed = path.EndsWith('/') ? path[..^1] : path;
        var segments = trimmed.Split('/');
        return segments[0].Length == 0 && segments.Skip(1).All(s => s.Length > 0 && s != "." && s != "..") ? trimmed : null;
    }

    /// <summary>Reasons quote what the pod said, but never more than a line of it.</summary>
    private static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "...";

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant)]
    private static partial Regex DnsSubdomain();
}
