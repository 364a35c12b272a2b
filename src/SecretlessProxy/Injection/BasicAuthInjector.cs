using System.Text;
using SecretlessProxy.Credentials;

namespace SecretlessProxy.Injection;

/// <summary>HTTP Basic (RFC 7617): the credential's user name and its secret as the password.</summary>
public sealed class BasicAuthInjector : InjectionRule
{
    public override string Kind => "basic";

    public override void Apply(HttpRequestMessage proxyRequest, Credential credential)
    {
        RemoveHeader(proxyRequest, "Authorization");
        var pair = (credential.Username ?? string.Empty) + ":" + credential.Secret;
        proxyRequest.Headers.TryAddWithoutValidation("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(pair)));
    }
}
