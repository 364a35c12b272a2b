namespace SecretlessProxy.Policy;

/// <summary>
/// Where a request is really going, as established by the listener (the route's upstream, later the
/// CONNECT authority or original destination), never from a header the app controls.
/// </summary>
public readonly record struct RequestDestination(string Scheme, string Host, int Port, string Method, string Path);
