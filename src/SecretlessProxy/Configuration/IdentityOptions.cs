namespace SecretlessProxy.Configuration;

/// <summary>The workload's own identity token (<c>Identity</c> section).</summary>
public sealed class IdentityOptions
{
    /// <summary><c>TokenFile</c>: a projected service-account token, a SPIFFE JWT-SVID, a CI OIDC token.</summary>
    public string? Source { get; set; }

    public string? Path { get; set; }

    /// <summary>Expected <c>iss</c>; also where keys are discovered when <see cref="JwksUrl"/> is not given.</summary>
    public string? Issuer { get; set; }

    /// <summary>Expected <c>aud</c> (one of the token's audiences).</summary>
    public string? Audience { get; set; }

    public string? JwksUrl { get; set; }

    public TimeSpan? ClockSkew { get; set; }
}
