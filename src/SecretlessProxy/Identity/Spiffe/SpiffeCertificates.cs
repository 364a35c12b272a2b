using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SecretlessProxy.Identity.Spiffe;

/// <summary>The X.509 pieces of the Workload API: concatenated DER certificates, PKCS#8 keys, URI SANs.</summary>
internal static class SpiffeCertificates
{
    private const string SubjectAltNameOid = "2.5.29.17";

    /// <summary>Certificates given as concatenated ASN.1 DER (X509-SVID profile section 5).</summary>
    public static X509Certificate2Collection ParseDer(ReadOnlySpan<byte> der)
    {
        var certificates = new X509Certificate2Collection();
        while (!der.IsEmpty)
        {
            AsnDecoder.ReadEncodedValue(der, AsnEncodingRules.DER, out _, out _, out var consumed);
            certificates.Add(X509CertificateLoader.LoadCertificate(der[..consumed]));
            der = der[consumed..];
        }

        return certificates;
    }

    /// <summary>
    /// The leaf with its PKCS#8 key, through PKCS#12 so SslStream can use the key on every
    /// platform. Throws <see cref="CryptographicException"/> when the key is not the leaf's.
    /// </summary>
    public static X509Certificate2 WithKey(X509Certificate2 leaf, ReadOnlySpan<byte> pkcs8)
    {
        X509Certificate2 withKey;
        switch (leaf.GetKeyAlgorithm())
        {
            case "1.2.840.113549.1.1.1":
                using (var rsa = RSA.Create())
                {
                    rsa.ImportPkcs8PrivateKey(pkcs8, out _);
                    withKey = leaf.CopyWithPrivateKey(rsa);
                }

                break;
            case "1.2.840.10045.2.1":
                using (var ec = ECDsa.Create())
                {
                    ec.ImportPkcs8PrivateKey(pkcs8, out _);
                    withKey = leaf.CopyWithPrivateKey(ec);
                }

                break;
            default:
                throw new CryptographicException("the X.509-SVID has a key type the proxy cannot use (RSA or ECDSA)");
        }

        using (withKey)
        {
            return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        }
    }

    /// <summary>The URI SANs of <paramref name="certificate"/> (an SVID has exactly one: its SPIFFE ID).</summary>
    public static List<string> UriSans(X509Certificate2 certificate)
    {
        var uris = new List<string>();
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != SubjectAltNameOid)
            {
                continue;
            }

            try
            {
                // RFC 5280 section 4.2.1.6: GeneralNames, uniformResourceIdentifier is [6] IA5String.
                var names = new AsnReader(extension.RawData, AsnEncodingRules.DER).ReadSequence();
                var uriTag = new Asn1Tag(TagClass.ContextSpecific, 6);
                while (names.HasData)
                {
                    if (names.PeekTag() == uriTag)
                    {
                        uris.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, uriTag));
                    }
                    else
                    {
                        names.ReadEncodedValue();
                    }
                }
            }
            catch (AsnContentException)
            {
                // A malformed SAN names no SPIFFE ID.
            }
        }

        return uris;
    }

    /// <summary>The SPIFFE ID of an X.509-SVID: its one URI SAN, when that is a valid SPIFFE ID.</summary>
    public static SpiffeId? IdOf(X509Certificate2 certificate)
    {
        var uris = UriSans(certificate);
        return uris.Count == 1 && SpiffeId.TryParse(uris[0], out var id, out _) ? id : null;
    }
}
