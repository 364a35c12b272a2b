namespace SecretlessProxy.Core;

/// <summary>
/// Where a request is really going, as established by the listener (the route's upstream, the
/// CONNECT authority, the original destination), never from a header the app controls. The path is
/// the one that goes on the wire, percent-escapes decoded except <c>%2F</c>.
/// </summary>
/// <param name="SchemeFromApp">
/// True where the app chose the scheme (Forward and Transparent listeners): a policy then matches
/// plain http only when its <c>Match:Schemes</c> says so. A Route upstream's scheme is the operator's.
/// </param>
internal readonly record struct RequestDestination(string Scheme, string Host, int Port, string Method, string Path, bool SchemeFromApp = false, bool IsDatabase = false);
