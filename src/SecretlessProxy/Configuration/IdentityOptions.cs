namespace SecretlessProxy.Configuration;

/// <summary>The workload's own identity token (<c>Identity</c> section).</summary>
internal sealed class IdentityOptions
{
    /// <summary><c>TokenFile</c>: a projected service-account token, a SPIFFE JWT-SVID, a CI OIDC token; <c>SpiffeWorkloadApi</c>: a JWT-SVID from the agent.</summary>
    public string? Source { get; set; }

    public string? Path { get; set; }

    /// <summary>Expected <c>iss</c>; also where keys are discovered when <see cref="JwksUrl"/> is not given.</summary>
    public string? Issuer { get; set; }

    /// <summary>Expected <c>aud</c> (one of the token's audiences).</summary>
    public string? Audience { get; set; }

    public string? JwksUrl { get; set; }

    public TimeSpan? ClockSkew { get; set; }

    /// <summary>Fetch the signing keys over this Unix socket (as a credential's <c>UnixSocket</c>).</summary>
    public string? UnixSocket { get; set; }

    /// <summary>SHA-256 fingerprints of the certificates the key endpoint may present.</summary>
    public string[]? PinnedCertificateSha256 { get; set; }

    /// <summary>Fetch keys from a loopback URL over plain TCP anyway: whoever binds the port first decides which tokens verify.</summary>
    public bool? AllowLoopbackSquatting { get; set; }

    /// <summary>SpiffeWorkloadApi: the agent's socket (<c>unix:///path</c> or a path); default <c>SPIFFE_ENDPOINT_SOCKET</c>.</summary>
    public string? Socket { get; set; }

    /// <summary>SpiffeWorkloadApi: which of the workload's SPIFFE IDs to use when it has several.</summary>
    public string? SpiffeId { get; set; }
}
