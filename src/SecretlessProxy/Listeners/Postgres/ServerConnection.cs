using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Listeners.Postgres;

/// <summary>The proxy's connection to the database server, and its certificate when TLS is on (for SCRAM channel binding).</summary>
internal readonly record struct ServerConnection(Stream Stream, X509Certificate? ServerCertificate);
