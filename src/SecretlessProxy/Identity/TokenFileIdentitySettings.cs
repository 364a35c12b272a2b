using SecretlessProxy.Core;

namespace SecretlessProxy.Identity;

/// <summary>
/// Validated <c>Identity</c> settings (Source = TokenFile). Verification is on when
/// <see cref="JwksUrl"/> or <see cref="Issuer"/> is set: keys come from <see cref="JwksUrl"/>, or
/// from the issuer's OpenID discovery document (<c>{Issuer}/.well-known/openid-configuration</c>).
/// </summary>
internal sealed class TokenFileIdentitySettings : IWorkloadIdentitySettings
{
    public TokenFileIdentitySettings(string path, string? issuer, string? audience, Uri? jwksUrl, TimeSpan clockSkew, IssuerEndpoint? keysEndpoint = null)
    {
        KeysEndpoint = keysEndpoint;
        Path = path;
        Issuer = issuer;
        Audience = audience;
        JwksUrl = jwksUrl;
        ClockSkew = clockSkew;
    }

    /// <summary>Absolute path of the token file (re-read when it changes, e.g. a projected volume's symlink swap).</summary>
    public string Path { get; }

    public string? Issuer { get; }

    public string? Audience { get; }

    public Uri? JwksUrl { get; }

    /// <summary>Tolerance for exp/nbf; small, because a sidecar and its issuer share a clock source.</summary>
    public TimeSpan ClockSkew { get; }

    /// <summary>How the key endpoint is reached (a Unix socket, a pinned certificate); null for the shared transport.</summary>
    public IssuerEndpoint? KeysEndpoint { get; }

    public bool Verifies => JwksUrl is not null || Issuer is not null;

    public bool SameAs(IWorkloadIdentitySettings? other) =>
        other is TokenFileIdentitySettings b && Path == b.Path && Issuer == b.Issuer && Audience == b.Audience && JwksUrl == b.JwksUrl && ClockSkew == b.ClockSkew &&
        IssuerEndpoint.SameReach(KeysEndpoint, b.KeysEndpoint);

    public IWorkloadIdentitySource Start(IdentityServices services) =>
        new TokenFileIdentity(this, services.Time, services.TokenClient, services.Loggers.CreateLogger<TokenFileIdentity>());
}
