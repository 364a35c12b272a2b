using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Injection;
using SecretlessProxy.Listeners;
using SecretlessProxy.Policy;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Configuration;

/// <summary>Database listeners (Postgres): a fixed upstream, its TLS, and the login credential.</summary>
public sealed partial class SnapshotCompiler
{
    private const int DefaultPostgresPort = 5432;

    private ListenerDefinition? CompileDatabaseListener(string name, string key, ListenerMode mode, ListenerOptions listener, UnmatchedBehavior globalUnmatched, Dictionary<string, CredentialOptions> credentials, List<ConfigError> errors)
    {
        var start = errors.Count;
        var bind = listener.Url?.StartsWith("unix:", StringComparison.OrdinalIgnoreCase) == true
            ? ParseUnixUrl(listener.Url, key + ":Url", errors)
            : ParseTcpBindUrl(listener.Url, key + ":Url", errors);

        // No policy, no connection: a database login cannot be "passed through" with nothing injected.
        if (listener.Unmatched is not null)
        {
            errors.Add(new(key + ":Unmatched", "does not apply to a Postgres listener: a connection no policy allows is always refused"));
        }

        if (listener.AllowedConnectPorts is not null)
        {
            errors.Add(new(key + ":AllowedConnectPorts", "applies to Forward listeners only"));
        }

        if (listener.RecordQuery is not null || listener.RedactQueryParameters is not null)
        {
            errors.Add(new(key + ":RecordQuery", "applies to HTTP listeners only"));
        }

        var upstream = ParseHostPort(listener.Upstream, key + ":Upstream", errors);

        if (string.IsNullOrWhiteSpace(listener.Credential))
        {
            errors.Add(new(key + ":Credential", "is required: the credential that logs in to the database"));
        }
        else if (!credentials.ContainsKey(listener.Credential))
        {
            errors.Add(new(key + ":Credential", "names unknown credential '" + listener.Credential + "'"));
        }
        else if (_declared[listener.Credential] is { Yields: var yields } declared && !yields.HasFlag(CredentialShape.UsernamePassword))
        {
            // A login needs a user name and a password. Some sources bring their own user name (a Vault
            // dynamic secret, with each lease); the others need one configured.
            errors.Add(new(key + ":Credential",
                yields.HasFlag(CredentialShape.Token) ? "credential '" + listener.Credential + "' has no user name: set Username or UsernameFile on it"
                : yields.HasFlag(CredentialShape.SigningKeys) ? "an " + declared.Source + " credential holds signing keys, not a database password"
                : "a " + declared.Source + " credential holds no database password"));
        }

        var tls = listener.Tls ?? new DatabaseTlsOptions();
        var tlsMode = DatabaseTlsMode.VerifyFull;
        if (tls.Mode is not null && (!Enum.TryParse(tls.Mode, ignoreCase: true, out tlsMode) || !Enum.IsDefined(tlsMode) || int.TryParse(tls.Mode, out _)))
        {
            errors.Add(new(key + ":Tls:Mode", "'" + tls.Mode + "' is not a TLS mode; expected VerifyFull, Require or Disable"));
        }

        X509Certificate2Collection? trust = null;
        if (tls.CaFile is not null)
        {
            if (tlsMode != DatabaseTlsMode.VerifyFull)
            {
                errors.Add(new(key + ":Tls:CaFile", "is used only with Mode VerifyFull"));
            }

            trust = LoadCaFile(RequireFile(tls.CaFile, key + ":Tls:CaFile", errors), key + ":Tls:CaFile", errors);
        }

        if (tls.ServerName is not null && (tls.ServerName.Length == 0 || Uri.CheckHostName(tls.ServerName) == UriHostNameType.Unknown))
        {
            errors.Add(new(key + ":Tls:ServerName", "'" + tls.ServerName + "' is not a host name"));
        }

        var limits = CompileListenerLimits(key, listener, errors);
        if (errors.Count > start || bind is null || upstream is not { } target)
        {
            return null;
        }

        var settings = new DatabaseListenerSettings(target.Host, target.Port, listener.Credential!, tlsMode, trust, tls.ServerName ?? target.Host, limits.HandshakeTimeout, listener.AcceptTls == true);
        return new ListenerDefinition(name, mode, bind, upstream: null, globalUnmatched, database: settings, limits: limits);
    }

    /// <summary>Keys only a database listener reads, so a Route or Forward listener that sets them is told so.</summary>
    private static void ReportDatabaseOnlyKeys(string key, ListenerOptions listener, List<ConfigError> errors)
    {
        if (listener.Credential is not null)
        {
            errors.Add(new(key + ":Credential", "applies to Postgres listeners only; an HTTP listener's policies name their credentials"));
        }

        if (listener.Tls is not null)
        {
            errors.Add(new(key + ":Tls", "applies to Postgres listeners only; HTTP upstreams use Upstreams:TrustedCaFile"));
        }

        if (listener.AcceptTls is not null)
        {
            errors.Add(new(key + ":AcceptTls", "applies to Postgres listeners only"));
        }
    }

    /// <summary><c>tcp://127.0.0.1:5432</c>: an address a raw TCP listener binds.</summary>
    private static IPEndPoint? ParseTcpBindUrl(string? url, string key, List<ConfigError> errors, string example = "tcp://127.0.0.1:5432")
    {
        if (url is null || !url.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase))
        {
            errors.Add(new(key, url is null ? "is required (for example " + example + ")" : "'" + WithoutUserInfo(url) + "' is not a tcp://address:port URL"));
            return null;
        }

        // The HTTP parser's rules (IP or localhost, explicit port, no path or user info) hold for tcp:// too.
        var inner = new List<ConfigError>();
        var endpoint = ParseBindUrl("http://" + url["tcp://".Length..], key, inner);
        foreach (var error in inner)
        {
            errors.Add(error with { Message = error.Message.Replace("http://", "tcp://", StringComparison.Ordinal) });
        }

        return endpoint;
    }

    /// <summary><c>db.internal:5432</c>, <c>[fd00::5]:5432</c>, or a host alone (port 5432).</summary>
    private static (string Host, int Port)? ParseHostPort(string? text, string key, List<ConfigError> errors)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            errors.Add(new(key, "is required: the database server as host:port (for example db.internal:5432)"));
            return null;
        }

        if (text.Contains("://", StringComparison.Ordinal) || text.Contains('@') || text.Contains('/'))
        {
            errors.Add(new(key, "'" + WithoutUserInfo(text) + "' must be host:port, without a scheme, user info or path"));
            return null;
        }

        if (!Uri.TryCreate("tcp://" + text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host) || uri.AbsolutePath != "/" || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
        {
            errors.Add(new(key, "'" + text + "' is not a host:port"));
            return null;
        }

        var port = uri.IsDefaultPort || uri.Port < 0 ? DefaultPostgresPort : uri.Port;
        if (port is < 1 or > 65535)
        {
            errors.Add(new(key, port + " is not a TCP port"));
            return null;
        }

        return (uri.IdnHost.Trim('[', ']'), port);
    }

    private static X509Certificate2Collection? LoadCaFile(string path, string key, List<ConfigError> errors)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            var collection = new X509Certificate2Collection();
            collection.ImportFromPemFile(path);
            if (collection.Count == 0)
            {
                errors.Add(new(key, "file '" + path + "' holds no PEM certificate"));
                return null;
            }

            return collection;
        }
        catch (CryptographicException)
        {
            errors.Add(new(key, "file '" + path + "' is not a PEM certificate bundle"));
            return null;
        }
    }
}
