using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>
/// <c>Mode: Postgres</c>: PostgreSQL connections, never handed to HTTP. <see cref="PostgresConnectionHandler"/>
/// speaks the v3 protocol toward the app and logs in at the listener's <c>Upstream</c> with its
/// <c>Credential</c>; the compiled <see cref="DatabaseListenerSettings"/> hold the server, its TLS and the login.
/// </summary>
internal sealed class PostgresListenerKind : IListenerKind
{
    private const int DefaultPostgresPort = 5432;

    public string Mode => "Postgres";

    public IReadOnlyList<InjectionTarget> Injects { get; } = [InjectionTarget.DatabaseLogin];

    // AcceptTls needs the local CA, but only when asked for: checked with the listener.
    public bool InterceptsTls => false;

    public bool ClientSpeaksHttpFirst => false;

    public ListenerDefinition? Compile(ListenerCompilation listener)
    {
        var start = listener.Errors.Count;
        var options = listener.Options;
        var key = listener.Key;
        var bind = options.Url?.StartsWith("unix:", StringComparison.OrdinalIgnoreCase) == true
            ? listener.ParseUnixUrl(options.Url, key + ":Url")
            : listener.ParseTcpBindUrl(options.Url, key + ":Url");

        // No policy, no connection: a database login cannot be "passed through" with nothing injected.
        if (options.Unmatched is not null)
        {
            listener.Add("Unmatched", "does not apply to a Postgres listener: a connection no policy allows is always refused");
        }

        if (options.RecordQuery is not null || options.RedactQueryParameters is not null)
        {
            listener.Add("RecordQuery", "applies to HTTP listeners only");
        }

        var upstream = ParseHostPort(listener, options.Upstream, key + ":Upstream");

        if (string.IsNullOrWhiteSpace(options.Credential))
        {
            listener.Add("Credential", "is required: the credential that logs in to the database");
        }
        else if (listener.DatabaseLoginProblem(options.Credential) is { } problem)
        {
            listener.Add("Credential", problem);
        }

        var tls = options.Tls ?? new DatabaseTlsOptions();
        var tlsMode = DatabaseTlsMode.VerifyFull;
        if (tls.Mode is not null && (!Enum.TryParse(tls.Mode, ignoreCase: true, out tlsMode) || !Enum.IsDefined(tlsMode) || int.TryParse(tls.Mode, out _)))
        {
            listener.Add("Tls:Mode", "'" + tls.Mode + "' is not a TLS mode; expected VerifyFull, Require or Disable");
        }

        X509Certificate2Collection? trust = null;
        if (tls.CaFile is not null)
        {
            if (tlsMode != DatabaseTlsMode.VerifyFull)
            {
                listener.Add("Tls:CaFile", "is used only with Mode VerifyFull");
            }

            trust = LoadCaFile(listener, listener.RequireFile(tls.CaFile, key + ":Tls:CaFile"), key + ":Tls:CaFile");
        }

        if (tls.ServerName is not null && (tls.ServerName.Length == 0 || Uri.CheckHostName(tls.ServerName) == UriHostNameType.Unknown))
        {
            listener.Add("Tls:ServerName", "'" + tls.ServerName + "' is not a host name");
        }

        var limits = listener.Limits();
        if (listener.Errors.Count > start || bind is null || upstream is not { } target)
        {
            return null;
        }

        var settings = new DatabaseListenerSettings(target.Host, target.Port, options.Credential!, tlsMode, trust, tls.ServerName ?? target.Host, limits.HandshakeTimeout, options.AcceptTls == true);
        if (settings.AcceptTls && !listener.HasLocalCa)
        {
            listener.Add("AcceptTls", "needs LocalCa: the app's TLS certificate is issued by the local CA");
        }

        return new ListenerDefinition(listener.Name, Mode, bind, listener.GlobalUnmatched, http: null, settings: settings, limits: limits);
    }

    /// <summary>Keys only a database listener reads, so a listener of another kind that sets them is told so.</summary>
    public void ReportOwnKeys(ListenerCompilation other)
    {
        var options = other.Options;
        if (options.Credential is not null)
        {
            other.Add("Credential", "applies to Postgres listeners only; an HTTP listener's policies name their credentials");
        }

        if (options.Tls is not null)
        {
            other.Add("Tls", "applies to Postgres listeners only; HTTP upstreams use Upstreams:TrustedCaFile");
        }

        if (options.AcceptTls is not null)
        {
            other.Add("AcceptTls", "applies to Postgres listeners only");
        }
    }

    public void AddServices(IServiceCollection services, TimeProvider time)
    {
        services.AddSingleton<PostgresCancelRegistry>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<PostgresConnectionHandler>(sp, time));
    }

    public void Configure(ListenOptions listen, ListenerDefinition listener) =>
        // A raw TCP protocol: the handler owns the connection and never hands it to HTTP.
        listen.Use(_ =>
        {
            var handler = listen.ApplicationServices.GetRequiredService<PostgresConnectionHandler>();
            return connection => handler.OnConnectionAsync(connection, listener.Name);
        });

    public string DescribeDestination(ListenerDefinition listener) =>
        listener.Settings is DatabaseListenerSettings db ? db.Host + ":" + db.Port : "the database server";

    /// <summary><c>db.internal:5432</c>, <c>[fd00::5]:5432</c>, or a host alone (port 5432).</summary>
    private static (string Host, int Port)? ParseHostPort(ListenerCompilation listener, string? text, string key)
    {
        var errors = listener.Errors;
        if (string.IsNullOrWhiteSpace(text))
        {
            errors.Add(new(key, "is required: the database server as host:port (for example db.internal:5432)"));
            return null;
        }

        if (text.Contains("://", StringComparison.Ordinal) || text.Contains('@') || text.Contains('/'))
        {
            errors.Add(new(key, "'" + listener.WithoutUserInfo(text) + "' must be host:port, without a scheme, user info or path"));
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

    private static X509Certificate2Collection? LoadCaFile(ListenerCompilation listener, string path, string key)
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
                listener.Errors.Add(new(key, "file '" + path + "' holds no PEM certificate"));
                return null;
            }

            return collection;
        }
        catch (CryptographicException)
        {
            listener.Errors.Add(new(key, "file '" + path + "' is not a PEM certificate bundle"));
            return null;
        }
    }
}
