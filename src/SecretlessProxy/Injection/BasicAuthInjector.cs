using System.Text;
using SecretlessProxy.Core;

namespace SecretlessProxy.Injection;

/// <summary>HTTP Basic (RFC 7617): the credential's user name and its secret as the password.</summary>
internal sealed class BasicAuthInjector : HttpRequestInjector
{
    public override string Kind => "basic";

    public override void Apply(HttpRequestMessage proxyRequest, Credential credential)
    {
        RemoveHeader(proxyRequest, "Authorization");
        proxyRequest.Headers.TryAddWithoutValidation("Authorization", "Basic " + Encode(credential));
    }

    /// <summary>
    /// The secret as it goes on the wire (Base64 of <c>user:password</c>), and the password itself,
    /// which an upstream that decodes the header (a debug page, an error naming the user) may show.
    /// </summary>
    internal override IEnumerable<string> WireForms(Credential credential) => [credential.Secret, Encode(credential)];

    private static string Encode(Credential credential) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes((credential.Username ?? string.Empty) + ":" + credential.Secret));
}
