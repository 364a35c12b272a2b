using System.Text.Json;
using Google.Protobuf;
using Microsoft.IdentityModel.Tokens;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>
/// The JWT bundles the Workload API handed out: per trust domain ID (<c>spiffe://example.org</c>)
/// the public keys JWT-SVIDs of that domain are signed with (a JWKS document, SPIFFE Trust Domain
/// and Bundle specification section 4). Only asymmetric keys are kept, for signatures: a symmetric
/// key published in a bundle would let anyone who reads the bundle mint SVIDs.
/// </summary>
internal sealed class JwtBundleSet
{
    private readonly Dictionary<string, IReadOnlyList<SecurityKey>> _keys;

    private JwtBundleSet(Dictionary<string, IReadOnlyList<SecurityKey>> keys)
    {
        _keys = keys;
    }

    public IReadOnlyList<SecurityKey>? KeysOf(string trustDomainId) => _keys.GetValueOrDefault(trustDomainId);

    /// <summary>Parses every bundle; a bundle that is not a usable JWKS is left out (its domain verifies nothing).</summary>
    public static JwtBundleSet Parse(IDictionary<string, ByteString> bundles)
    {
        var keys = new Dictionary<string, IReadOnlyList<SecurityKey>>(StringComparer.Ordinal);
        foreach (var (trustDomain, document) in bundles)
        {
            if (ParseKeys(document.Span) is { Count: > 0 } parsed)
            {
                keys[trustDomain] = parsed;
            }
        }

        return new JwtBundleSet(keys);
    }

    private static List<SecurityKey>? ParseKeys(ReadOnlySpan<byte> document)
    {
        JsonWebKeySet set;
        try
        {
            // Checked with JsonDocument first: JsonWebKeySet's own exceptions can quote the input.
            using (var doc = JsonDocument.Parse(document.ToArray()))
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("keys", out var array) || array.ValueKind != JsonValueKind.Array)
                {
                    return null;
                }
            }

            set = new JsonWebKeySet(System.Text.Encoding.UTF8.GetString(document));
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException)
        {
            return null;
        }

        var keys = new List<SecurityKey>(set.Keys.Count);
        foreach (var key in set.Keys)
        {
            var asymmetric = key.Kty is JsonWebAlgorithmsKeyTypes.RSA or JsonWebAlgorithmsKeyTypes.EllipticCurve;

            // SPIFFE bundles mark JWT authorities "jwt-svid" (and X.509 ones "x509-svid").
            var forJwt = key.Use is null or "jwt-svid" or JsonWebKeyUseNames.Sig;
            if (asymmetric && forJwt)
            {
                keys.Add(key);
            }
        }

        return keys;
    }
}
