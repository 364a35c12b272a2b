using SecretlessProxy.Credentials;

namespace SecretlessProxy.Configuration;

public sealed partial class SnapshotCompiler
{
    // Placeholder until the source is built: the configuration is rejected with a clear reason.
    private ICredentialSource? CompileVault(string key, CredentialOptions c, string? usernameFile, bool identityConfigured, List<ConfigError> errors)
    {
        errors.Add(new(key + ":Source", "Vault is not available in this build yet"));
        return null;
    }
}
