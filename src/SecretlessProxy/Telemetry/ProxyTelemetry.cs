using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SecretlessProxy.Core;

namespace SecretlessProxy.Telemetry;

/// <summary>
/// The proxy's spans. One per proxied request and one per credential fetch, from the
/// <c>SecretlessProxy</c> source. When no listener is attached (no exporter configured) starting
/// an activity costs a null check.
/// </summary>
internal static class ProxyTelemetry
{
    public const string SourceName = "SecretlessProxy";

    // An ActivitySource is thread-safe and never mutated after creation; one per process is the
    // .NET convention (YARP and ASP.NET Core do the same).
    private static readonly ActivitySource Source = new(SourceName);

    public static class Tags
    {
        public const string Listener = "secretless.listener";
        public const string Policy = "secretless.policy";
        public const string Decision = "secretless.decision";
        public const string Reason = "secretless.reason";
        public const string CredentialName = "secretless.credential.name";
        public const string CredentialSource = "secretless.credential.source";
        public const string CredentialCache = "secretless.credential.cache";
        public const string Injection = "secretless.injection";
        public const string Outcome = "secretless.outcome";
        public const string HttpMethod = "http.request.method";
        public const string ServerAddress = "server.address";
        public const string ServerPort = "server.port";
        public const string LocalPort = "network.local.port";
        public const string LocalAddress = "network.local.address";
        public const string UrlPath = "url.path";
        public const string UrlQuery = "url.query";
        public const string UrlScheme = "url.scheme";
        public const string StatusCode = "http.response.status_code";
        public const string CallerUid = "secretless.caller.uid";
        public const string CallerPid = "secretless.caller.pid";
        public const string CallerExecutable = "secretless.caller.executable";
        public const string CallerExecutableSha256 = "secretless.caller.executable.sha256";
        public const string IdentitySubject = "secretless.identity.subject";
        public const string DatabaseSystem = "db.system.name";
        public const string DatabaseNamespace = "db.namespace";
        public const string DatabaseUser = "secretless.database.user";
        public const string DatabaseAuthMethod = "secretless.database.auth_method";
        public const string HandshakeDuration = "secretless.handshake.duration_ms";

        /// <summary>The client certificate current when the request was sent (a pooled connection may have presented its predecessor).</summary>
        public const string ClientCertificateSubject = "secretless.client_certificate.subject";
        public const string ClientCertificateThumbprint = "secretless.client_certificate.thumbprint";
    }

    /// <summary>Who called: the attested process (absent when unknown) and the workload identity's subject.</summary>
    public static void TagCaller(Activity activity, Caller caller, WorkloadIdentity? identity)
    {
        if (caller.Uid is { } uid)
        {
            activity.SetTag(Tags.CallerUid, uid);
        }

        if (caller.Pid is { } pid)
        {
            activity.SetTag(Tags.CallerPid, pid);
        }

        if (caller.Executable is { } exe)
        {
            activity.SetTag(Tags.CallerExecutable, exe);
            activity.SetTag(Tags.CallerExecutableSha256, caller.ExecutableSha256);
        }

        if (identity?.Subject is { } subject)
        {
            activity.SetTag(Tags.IdentitySubject, subject);
        }
    }

    /// <summary>The decision as an event on the request or connection span (the same facts as its audit record).</summary>
    public static void AddDecisionEvent(Activity? activity, string decision, string reason, AccessOutcome outcome) =>
        activity?.AddEvent(new ActivityEvent("secretless.decision", tags: new ActivityTagsCollection
        {
            [Tags.Decision] = decision,
            [Tags.Reason] = reason,
            [Tags.Outcome] = outcome.ToWireName(),
        }));

    /// <summary>
    /// A request Kestrel parsed: its connection's local port, or the listener's bound socket when
    /// that is a Unix socket (HTTP's connection info has no path).
    /// </summary>
    public static Activity? StartRequest(string listener, int localPort, EndPoint bound)
    {
        var activity = Source.StartActivity("secretless.proxy", ActivityKind.Internal);
        if (activity is not null)
        {
            activity.SetTag(Tags.Listener, listener);
            if (localPort > 0)
            {
                activity.SetTag(Tags.LocalPort, localPort);
            }
            else
            {
                TagLocal(activity, bound);
            }
        }

        return activity;
    }

    /// <summary>
    /// One span per proxied request. <paramref name="local"/>: the listener socket's address (its
    /// port, or a Unix socket's path), which tells two listeners of one name apart (two proxies on one
    /// node, a test process running several).
    /// </summary>
    public static Activity? StartRequest(string listener, EndPoint? local)
    {
        var activity = Source.StartActivity("secretless.proxy", ActivityKind.Internal);
        if (activity is not null)
        {
            activity.SetTag(Tags.Listener, listener);
            TagLocal(activity, local);
        }

        return activity;
    }

    /// <summary>
    /// One span per database connection, from accept to the end of the login handshake.
    /// <paramref name="databaseSystem"/> is the OpenTelemetry <c>db.system</c> value the listener kind owns.
    /// </summary>
    public static Activity? StartDatabaseConnection(string listener, EndPoint? local, string databaseSystem, in RequestDestination destination, string database)
    {
        var activity = Source.StartActivity("secretless.database.connection", ActivityKind.Internal);
        if (activity is not null)
        {
            activity.SetTag(Tags.Listener, listener);
            TagLocal(activity, local);
            activity.SetTag(Tags.DatabaseSystem, databaseSystem);
            activity.SetTag(Tags.DatabaseNamespace, database);
            activity.SetTag(Tags.ServerAddress, destination.Host);
            activity.SetTag(Tags.ServerPort, destination.Port);
        }

        return activity;
    }

    public static Activity? StartCredentialFetch(string credentialName, string sourceKind)
    {
        var activity = Source.StartActivity("secretless.credential.fetch", ActivityKind.Client);
        if (activity is not null)
        {
            activity.SetTag(Tags.CredentialName, credentialName);
            activity.SetTag(Tags.CredentialSource, sourceKind);
        }

        return activity;
    }

    private static void TagLocal(Activity activity, EndPoint? local)
    {
        switch (local)
        {
            case IPEndPoint { Port: > 0 } ip:
                activity.SetTag(Tags.LocalPort, ip.Port);
                break;
            case UnixDomainSocketEndPoint unix:
                // OpenTelemetry's network.local.address is the socket's path for a Unix socket.
                activity.SetTag(Tags.LocalAddress, unix.ToString());
                break;
        }
    }
}
