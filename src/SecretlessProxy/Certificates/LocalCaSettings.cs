namespace SecretlessProxy.Certificates;

/// <summary>Validated local CA settings: a directory, or a certificate and key pair.</summary>
internal sealed record LocalCaSettings(string? Directory, string? CertFile, string? KeyFile, TimeSpan LeafLifetime, int MaxLeafCertificates = Certificates.LeafCertificateCache.DefaultMaxCertificates);
