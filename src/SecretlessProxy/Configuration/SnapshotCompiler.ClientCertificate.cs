using SecretlessProxy.Core;
using SecretlessProxy.Credentials;
using SecretlessProxy.Injection;

namespace SecretlessProxy.Configuration;

internal sealed partial class SnapshotCompiler
{
    /// <summary>Source kind of a client-certificate policy, for spans and audit records.</summary>
    internal const string ClientCertificateSource = "ClientCertificate";

    /// <summary>
    /// <c>Inject:ClientCertificate</c>: its own kind of injection. The certificate is the credential,
    /// so the policy names no <c>Credential</c> and no other injection. The files must exist and hold
    /// a PEM certificate and its matching private key (checked now, so a typo fails the start).
    /// </summary>
    private ClientCertificateInjector? CompileClientCertificate(string policyKey, PolicyOptions p, List<ConfigError> errors)
    {
        var key = policyKey + ":Inject:ClientCertificate";
        var options = p.Inject.ClientCertificate!;
        var start = errors.Count;
        if (p.Credential is not null)
        {
            errors.Add(new(policyKey + ":Credential", "is not used with Inject:ClientCertificate: the certificate is the credential"));
        }

        if (p.Inject.Header is not null || p.Inject.Format is not null || p.Inject.Basic is not null || p.Inject.Query is not null || p.Inject.AwsSigV4 is not null || p.Inject.DatabaseLogin is not null)
        {
            errors.Add(new(policyKey + ":Inject", "ClientCertificate is its own kind of injection: give no Header, Format, Basic, Query, AwsSigV4 or DatabaseLogin with it"));
        }

        if (options.Credential is not null)
        {
            return CompileCertificateCredential(key, options, errors);
        }

        string? certFile = null;
        string? keyFile = null;
        if (string.IsNullOrWhiteSpace(options.CertFile))
        {
            errors.Add(new(key + ":CertFile", "is required: the PEM certificate file"));
        }
        else
        {
            certFile = RequireFile(options.CertFile, key + ":CertFile", errors);
        }

        if (string.IsNullOrWhiteSpace(options.KeyFile))
        {
            errors.Add(new(key + ":KeyFile", "is required: the PEM private key file"));
        }
        else
        {
            keyFile = RequireSecretFile(options.KeyFile, key + ":KeyFile", errors);
        }

        if (errors.Count > start)
        {
            return null;
        }

        if (_checkFiles)
        {
            if (!ClientCertificateFiles.TryLoad(certFile!, keyFile!, out var certificate, out var failedFile, out var error))
            {
                errors.Add(new(key + ":" + failedFile, error!));
                return null;
            }

            certificate!.Dispose();
        }

        return new ClientCertificateInjector(certFile!, keyFile!);
    }

    /// <summary><c>Inject:ClientCertificate:Credential</c>: the certificate of a credential that yields one (an X.509-SVID).</summary>
    private ClientCertificateInjector? CompileCertificateCredential(string key, ClientCertificateOptions options, List<ConfigError> errors)
    {
        var start = errors.Count;
        if (options.CertFile is not null || options.KeyFile is not null)
        {
            errors.Add(new(key + ":Credential", "give either Credential or CertFile and KeyFile, not both"));
        }

        if (!_declared.TryGetValue(options.Credential!, out var declared))
        {
            errors.Add(new(key + ":Credential", "names unknown credential '" + options.Credential + "'"));
        }
        else if (!declared.Yields.HasFlag(CredentialShape.Certificate))
        {
            errors.Add(new(key + ":Credential", "a " + declared.Source + " credential yields no certificate: name one whose source is SpiffeX509Svid"));
        }

        return errors.Count > start ? null : new ClientCertificateInjector(_declared.Keys.First(k => string.Equals(k, options.Credential, StringComparison.OrdinalIgnoreCase)));
    }
}
