using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary><c>Source: File</c>: the secret is read from a file and read again when it changes.</summary>
internal sealed class FileSourceKind : CredentialSourceKind<FileSourceOptions>
{
    public override string Name => "File";

    public override CredentialShape MayYield => CredentialShape.Token | CredentialShape.UsernamePassword;

    public override CredentialShape Yields(FileSourceOptions options, bool hasUsername) =>
        hasUsername ? CredentialShape.Token | CredentialShape.UsernamePassword : CredentialShape.Token;

    public override ICredentialSource? Compile(FileSourceOptions o, CredentialSourceContext context)
    {
        var key = context.Key;
        FileCredentialSource? source = null;
        if (string.IsNullOrWhiteSpace(o.Path))
        {
            context.Errors.Add(new(key + ":Path", "is required for a File credential"));
        }
        else
        {
            var path = context.RequireSecretFile(o.Path, key + ":Path");
            source = new FileCredentialSource(path, context.Username, context.UsernameFile, context.Time);
        }

        context.RejectIssuerEndpointKeys(o, "the value is read from a file, not fetched from an issuer");
        return source;
    }

    protected override FileSourceOptions BindOptions(IConfigurationSection section) => section.Get<FileSourceOptions>() ?? new();
}
