namespace SecretlessProxy.Core;

/// <summary>A file the configuration names that holds a secret, and the key that names it (for messages).</summary>
/// <param name="Key">The configuration key, e.g. <c>SecretlessProxy:Credentials:api-key:Path</c>.</param>
/// <param name="Path">The absolute path as configured (links not resolved).</param>
internal sealed record SecretFile(string Key, string Path);
