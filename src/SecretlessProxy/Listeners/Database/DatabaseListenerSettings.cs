using System.Security.Cryptography.X509Certificates;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.Database;

/// <summary>
/// A database listener's fixed upstream: where the server is, how to reach it securely, and which
/// credential logs in. The destination comes from here, never from the app's startup message.
/// </summary>
internal sealed class DatabaseListenerSettings : ListenerSettings
{
    public DatabaseListenerSettings(string host, int port, string credentialName, DatabaseTlsMode tlsMode, X509Certificate2Collection? trustedCas, string serverName, TimeSpan handshakeTimeout, bool acceptTls = false)
    {
        AcceptTls = acceptTls;
        Host = host;
        Port = port;
        CredentialName = credentialName;
        TlsMode = tlsMode;
        TrustedCas = trustedCas;
        ServerName = serverName;
        HandshakeTimeout = handshakeTimeout;
    }

    public string Host { get; }

    public int Port { get; }

    public string CredentialName { get; }

    public DatabaseTlsMode TlsMode { get; }

    /// <summary>The CAs the server's chain must end at, instead of the system store (the listener's <c>Tls:CaFile</c>).</summary>
    public X509Certificate2Collection? TrustedCas { get; }

    /// <summary>The name the server's certificate must carry (and the SNI sent).</summary>
    public string ServerName { get; }

    /// <summary>Bounds connecting, TLS and login at the server, so a stalled server cannot hold the app's connection forever.</summary>
    public TimeSpan HandshakeTimeout { get; }

    /// <summary>Whether the app's SSLRequest is answered with TLS from the local CA.</summary>
    public bool AcceptTls { get; }
}
