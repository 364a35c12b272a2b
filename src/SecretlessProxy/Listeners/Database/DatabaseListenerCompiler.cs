using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Core;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Database;

/// <summary>
/// The keys every database listener kind shares (<c>Url</c>, <c>Upstream</c>, <c>Credential</c>,
/// <c>Tls</c>, <c>AcceptTls</c>), compiled into <see cref="DatabaseListenerSettings"/>, so a new
/// database kind validates its server, login and TLS exactly as the others do.
/// </summary>
internal static class DatabaseListenerCompiler
{
    /// <summary>What a database kind injects: the credential goes into the login, nowhere else.</summary>
    public static IReadOnlyList<InjectionTarget> DatabaseInjects { get; } = [InjectionTarget.DatabaseLogin];

    /// <summary>The listener keys a database kind reads besides the common ones (for <see cref="IListenerKind.OwnKeys"/>).</summary>
    public static IReadOnlyCollection<string> Keys { get; } = ["Upstream", "Credential", "Tls", "AcceptTls"];

    /// <summary>
    /// Compiles a database listener of <paramref name="mode"/> whose server listens on
    /// <paramref name="defaultPort"/> unless <c>Upstream</c> names one. <paramref name="acceptsTls"/>:
    /// whether the kind can answer the app's own TLS request (<c>AcceptTls</c>) with a local-CA leaf.
    /// </summary>
    public static ListenerDefinition? Compile(ListenerCompilation listener, string mode, int defaultPort, bool acceptsTls)
    {
        var start = listener.Errors.Count;
        var options = listener.Options;
        var key = listener.Key;
        var bind = options.Url?.StartsWith("unix:", StringComparison.OrdinalIgnoreCase) == true
            ? listener.ParseUnixUrl(options.Url, key + ":Url")
            : listener.ParseTcpBindUrl(options.Url, key + ":Url", "tcp://127.0.0.1:" + defaultPort);

        // No policy, no connection: a database login cannot be "passed through" with nothing injected.
        if (options.Unmatched is not null)
        {
            listener.Add("Unmatched", "does not apply to a " + mode + " listener: a connection no policy allows is always refused");
        }

        if (options.RecordQuery is not null || options.RedactQueryParameters is not null)
        {
            listener.Add("RecordQuery", "applies to HTTP listeners only");
        }

        var upstream = ParseHostPort(listener, options.Upstream, key + ":Upstream", defaultPort);

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

        if (!string.IsNullOrWhiteSpace(options.Credential) && listener.DeclaredCredential(options.Credential) is { } declared)
        {
            CheckMintedCredential(listener, options.Credential, declared.Yields, declared.Audience, tlsMode, upstream);
        }

        if (options.AcceptTls is not null && !acceptsTls)
        {
            listener.Add("AcceptTls", "is not supported by a " + mode + " listener: the app's side is loopback");
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

        return new ListenerDefinition(listener.Name, mode, bind, listener.GlobalUnmatched, http: null, settings: settings, limits: limits, injects: DatabaseInjects);
    }

    /// <summary>
    /// A token minted for the workload (an RDS auth token, an Entra or OAuth2 access token) is a
    /// bearer password any server trusting its issuer accepts: it goes only to a server whose
    /// certificate is verified. One minted for a single endpoint must be sent there.
    /// </summary>
    private static void CheckMintedCredential(ListenerCompilation listener, string credential, CredentialShape yields, Credentials.CredentialAudience? audience, DatabaseTlsMode tlsMode, (string Host, int Port)? upstream)
    {
        if (yields.HasFlag(CredentialShape.IssuedToken) && tlsMode != DatabaseTlsMode.VerifyFull && !listener.Reported("Tls:Mode"))
        {
            listener.Add("Tls:Mode", "must be VerifyFull with credential '" + credential + "': its password is a token minted for this workload, which goes only to a server whose certificate is verified (" + tlsMode + " would give it to whoever answers the address)");
        }

        if (audience is not null && upstream is { } target && !audience.Matches(target.Host, target.Port))
        {
            listener.Add("Upstream", "'" + new Credentials.CredentialAudience(target.Host, target.Port) + "' is not the endpoint credential '" + credential + "' is minted for (" + audience + "): the server would reject its token");
        }
    }

    /// <summary><c>db.internal:5432</c>, <c>[fd00::5]:5432</c>, or a host alone (the kind's default port).</summary>
    private static (string Host, int Port)? ParseHostPort(ListenerCompilation listener, string? text, string key, int defaultPort)
    {
        var errors = listener.Errors;
        if (string.IsNullOrWhiteSpace(text))
        {
            errors.Add(new(key, "is required: the database server as host:port (for example db.internal:" + defaultPort + ")"));
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

        var port = uri.IsDefaultPort || uri.Port < 0 ? defaultPort : uri.Port;
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
