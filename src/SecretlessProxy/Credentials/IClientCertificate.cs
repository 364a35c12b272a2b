using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Credentials;

/// <summary>
/// A TLS client certificate that changes over time (files that rotate, an X.509-SVID the agent
/// streams). Asked during each new upstream connection's handshake, so the next connection
/// presents the current one.
/// </summary>
internal interface IClientCertificate
{
    /// <summary>
    /// The certificate (with its private key) to present on a new connection, or false with a
    /// reason that names where it comes from, never key material, when none is valid now.
    /// </summary>
    bool TryGetCurrent(out X509Certificate2? certificate, out string reason);

    /// <summary>Completes once there is a first answer (a certificate or a failure); files answer at once.</summary>
    Task WhenLoadedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
