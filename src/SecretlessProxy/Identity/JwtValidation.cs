using Microsoft.IdentityModel.Tokens;

namespace SecretlessProxy.Identity;

/// <summary>
/// How a workload identity token is verified, for every identity kind (a token file, a JWT-SVID):
/// the accepted algorithms, IdentityModel's parameters, and the lifetime judged on the proxy's clock.
/// </summary>
internal static class JwtValidation
{
    // Only asymmetric algorithms: keys come from a public JWKS or bundle, and "none" or HMAC with a
    // public key as the secret are the classic algorithm-confusion attacks (RFC 8725 section 2.1).
    // The JWT-SVID profile allows the same RS, PS and ES families.
    private static readonly string[] AcceptedAlgorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    /// <summary>
    /// Parameters that check the signature against <paramref name="keys"/>, the issuer and audience
    /// when given, and the lifetime by <see cref="LifetimeHolds"/> on <paramref name="time"/>. Nothing
    /// of the token is logged or kept.
    /// </summary>
    public static TokenValidationParameters Parameters(IReadOnlyList<SecurityKey> keys, string? issuer, string? audience, TimeSpan clockSkew, TimeProvider time) => new()
    {
        IssuerSigningKeys = keys,
        TryAllIssuerSigningKeys = true,
        RequireSignedTokens = true,
        ValidAlgorithms = AcceptedAlgorithms,
        ValidateIssuer = issuer is not null,
        ValidIssuer = issuer,
        ValidateAudience = audience is not null,
        ValidAudience = audience,
        ValidateLifetime = true,
        RequireExpirationTime = true,
        ClockSkew = clockSkew,

        // TokenValidationParameters.TimeProvider is internal in IdentityModel 8.x, so the default
        // lifetime check would read the system clock: this one reads ours.
        LifetimeValidator = (notBefore, expires, _, _) => LifetimeHolds(notBefore, expires, time.GetUtcNow(), clockSkew),
        ValidateIssuerSigningKey = false,
        ValidateTokenReplay = false,
        LogValidationExceptions = false,
        LogTokenId = false,
        IncludeTokenOnFailedValidation = false,
        SaveSigninToken = false,
    };

    /// <summary>
    /// The skew applies to nbf only: exp is judged exactly, so an expired token is never sent on;
    /// an nbf after exp is never valid.
    /// </summary>
    public static bool LifetimeHolds(DateTime? notBefore, DateTime? expires, DateTimeOffset now, TimeSpan skew) =>
        expires is { } exp
        && now < new DateTimeOffset(DateTime.SpecifyKind(exp, DateTimeKind.Utc))
        && (notBefore is not { } nbf || (new DateTimeOffset(DateTime.SpecifyKind(nbf, DateTimeKind.Utc)) <= now + skew && nbf <= exp));
}
