using SecretlessProxy.Core;

namespace SecretlessProxy.Credentials;

/// <summary>A credential's user name: inline (it is not a secret) or from a file read at each fetch.</summary>
internal static class UsernameResolver
{
    public static async Task<string?> ResolveAsync(string? username, string? usernameFile, CancellationToken cancellationToken)
    {
        if (usernameFile is null)
        {
            return username;
        }

        var value = await SecretFileReader.ReadAsync(usernameFile, "user name", cancellationToken).ConfigureAwait(false);
        SecretFileReader.EnsurePrintable(value, "the user name in '" + usernameFile + "'");
        return value;
    }
}
