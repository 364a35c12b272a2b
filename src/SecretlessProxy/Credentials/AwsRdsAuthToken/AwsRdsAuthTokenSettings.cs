namespace SecretlessProxy.Credentials;

/// <summary>The validated settings of an <c>AwsRdsAuthToken</c> source: what the token is signed for.</summary>
internal sealed record AwsRdsAuthTokenSettings(CredentialAudience Endpoint, string Region, string Username);
