using SecretlessProxy.Injection;

namespace SecretlessProxy.Configuration;

public sealed partial class SnapshotCompiler
{
    // Placeholder until the signer is built: the configuration is rejected with a clear reason.
    private static InjectionRule? CompileAwsSigV4(string key, AwsSigV4Options options, CredentialOptions? credential, List<ConfigError> errors)
    {
        errors.Add(new(key + ":AwsSigV4", "AwsSigV4 injection is not available in this build yet"));
        return null;
    }
}
