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

    /// <summary>
    /// The client (and certificate files) for <paramref name="rule"/>, created on first use. A rule
    /// that presents a credential's certificate passes that credential's <paramref name="source"/>
    /// (the one the current version's cache holds); when a reload replaced it, the client of the
    /// old one is retired and a new one made.
    /// </summary>
    public Client For(ClientCertificateInjector rule, IClientCertificate? source = null)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_clients.TryGetValue(rule.ClientKey, out var client) && (source is null || ReferenceEquals(client.Certificate, source)))
            {
                return client;
            }

            if (client is not null)
            {
                _clients.Remove(rule.ClientKey);
                RetireLater(client);
            }

            if (source is not null)
            {
                // The credential's source is the cache's: the client never disposes it.
                client = new Client(source, _factory.WithClientCertificate(source).CreateClient(), ownsCertificate: false);
            }
            else
            {
                var files = new ClientCertificateFiles(rule.CertFile!, rule.KeyFile!, _time, _logger);
                client = new Client(files, _factory.WithClientCertificate(files).CreateClient(), ownsCertificate: true);
            }

            _clients[rule.ClientKey] = client;
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
                RetireLater(client);
            }
        }
    }

    /// <summary>Disposes <paramref name="client"/> after the grace period (called under the lock).</summary>
    private void RetireLater(Client client)
    {
        ITimer? timer = null;
        timer = _time.CreateTimer(_ => Retire(timer!, client), null, RetireDelay, Timeout.InfiniteTimeSpan);
        _retiring.Add((timer, client));
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

    /// <summary>The certificate and the upstream client whose connections present it.</summary>
    internal sealed class Client : IDisposable
    {
        private readonly bool _ownsCertificate;

        public Client(IClientCertificate certificate, HttpMessageInvoker invoker, bool ownsCertificate)
        {
            Certificate = certificate;
            Invoker = invoker;
            _ownsCertificate = ownsCertificate;
        }

        public IClientCertificate Certificate { get; }

        public HttpMessageInvoker Invoker { get; }

        public void Dispose()
        {
            Invoker.Dispose();
            if (_ownsCertificate && Certificate is IDisposable owned)
            {
                owned.Dispose();
            }
        }
    }
}
