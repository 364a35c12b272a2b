using SecretlessProxy.Credentials;
using SecretlessProxy.Injection;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Forwarding;

/// <summary>
/// One upstream client per client certificate. Connections are pooled per handler, so a policy
/// that presents a certificate cannot share the common client: its connections would carry the
/// certificate to requests of other policies (or carry none). Clients are keyed by the files, so
/// an unchanged policy keeps its client and its pooled connections across reloads; a client whose
/// files no policy names any more is disposed after a grace period that lets requests of the
/// previous version finish, and every client is disposed with the proxy.
/// </summary>
internal sealed class ClientCertificateClients : IDisposable
{
    /// <summary>Longer than a request's activity timeout, so a request of the dropped version is not cut.</summary>
    private static readonly TimeSpan RetireDelay = TimeSpan.FromMinutes(2);

    private readonly UpstreamClientFactory _factory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Client> _clients = new(StringComparer.Ordinal);
    private readonly List<(ITimer Timer, Client Client)> _retiring = [];
    private bool _disposed;

    public ClientCertificateClients(UpstreamClientFactory factory, TimeProvider time, ILoggerFactory loggers)
    {
        _factory = factory;
        _time = time;
        _logger = loggers.CreateLogger<ClientCertificateFiles>();
    }

    /// <summary>The client (and certificate files) for <paramref name="rule"/>, created on first use.</summary>
    public Client For(ClientCertificateInjector rule)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_clients.TryGetValue(rule.ClientKey, out var client))
            {
                var files = new ClientCertificateFiles(rule.CertFile, rule.KeyFile, _time, _logger);
                client = new Client(files, _factory.WithClientCertificate(files).CreateClient());
                _clients[rule.ClientKey] = client;
            }

            return client;
        }
    }

    /// <summary>After a reload: retires the clients of files that no policy of <paramref name="snapshot"/> names.</summary>
    public void Retain(ProxySnapshot snapshot)
    {
        var keep = snapshot.Policies.Policies.Select(p => p.Injection).OfType<ClientCertificateInjector>().Select(r => r.ClientKey).ToHashSet(StringComparer.Ordinal);
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            foreach (var key in _clients.Keys.Where(k => !keep.Contains(k)).ToArray())
            {
                var client = _clients[key];
                _clients.Remove(key);
                ITimer? timer = null;
                timer = _time.CreateTimer(_ => Retire(timer!, client), null, RetireDelay, Timeout.InfiniteTimeSpan);
                _retiring.Add((timer, client));
            }
        }
    }

    private void Retire(ITimer timer, Client client)
    {
        lock (_gate)
        {
            if (_retiring.RemoveAll(r => ReferenceEquals(r.Timer, timer)) == 0)
            {
                return;
            }
        }

        timer.Dispose();
        client.Dispose();
    }

    public void Dispose()
    {
        Client[] clients;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            clients = [.. _clients.Values, .. _retiring.Select(r => r.Client)];
            foreach (var (timer, _) in _retiring)
            {
                timer.Dispose();
            }

            _clients.Clear();
            _retiring.Clear();
        }

        foreach (var client in clients)
        {
            client.Dispose();
        }
    }

    /// <summary>The certificate files and the upstream client whose connections present them.</summary>
    internal sealed class Client : IDisposable
    {
        public Client(ClientCertificateFiles certificate, HttpMessageInvoker invoker)
        {
            Certificate = certificate;
            Invoker = invoker;
        }

        public ClientCertificateFiles Certificate { get; }

        public HttpMessageInvoker Invoker { get; }

        public void Dispose()
        {
            Invoker.Dispose();
            Certificate.Dispose();
        }
    }
}
