using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using SecretlessProxy.Telemetry;
using SecretlessProxy.Tests.Infrastructure;

namespace SecretlessProxy.Tests.Hosting;

/// <summary>
/// Stopping, as a Job's app (<c>POST /quitquitquit</c>) or the kubelet (SIGTERM) asks for it:
/// readiness goes first, then the listeners stop accepting, and the requests in flight finish
/// within <c>Shutdown:DrainTimeout</c>. Upstreams hold requests until the test releases them, so
/// nothing here depends on how long anything takes; waits are bounded only to fail instead of hang.
/// </summary>
public sealed class GracefulShutdownTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private readonly TestConfig _config = new();
    private readonly string _key = "shutdown-key-" + Guid.NewGuid().ToString("N");

    private void Route(string upstream) =>
        _config.RouteListener("api", upstream)
            .Credential("key", new JsonObject { ["Source"] = "File", ["Path"] = _config.SecretFile("key", _key) })
            .Policy("p", TestConfig.HeaderPolicy(TestConfig.Match(["127.0.0.1"], "/v1/"), "key"));

    [Fact]
    public async Task Post_quitquitquit_from_loopback_answers_200_and_the_proxy_stops()
    {
        Route("http://127.0.0.1:9");
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key);
        using var admin = AdminClient();

        var response = await admin.PostAsync(new Uri(proxy.App.AdminUri, "/quitquitquit"), null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("stopping", body.GetProperty("status").GetString());
        Assert.Equal("00:00:25", body.GetProperty("drainTimeout").GetString());
        // What `run` waits on: it returns (exit code 0) once this completes.
        await proxy.App.WaitForShutdownAsync().WaitAsync(Bound);
        Assert.True(proxy.App.Stopping.IsCancellationRequested);
        Assert.False(proxy.App.State.IsReady);
        var ids = proxy.Logs.Entries.Select(e => e.EventId.Id).ToArray();
        Assert.Contains(EventIds.ShutdownRequested, ids);
        Assert.Contains(EventIds.Draining, ids);
        Assert.Contains(EventIds.Stopped, ids);
    }

    [Fact]
    public async Task Get_quitquitquit_is_405_and_the_proxy_keeps_running()
    {
        Route("http://127.0.0.1:9");
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        using var admin = AdminClient();

        var response = await admin.GetAsync(new Uri(proxy.App.AdminUri, "/quitquitquit"));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("POST", string.Join(",", response.Content.Headers.Allow));
        Assert.False(proxy.App.Stopping.IsCancellationRequested);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri(proxy.App.AdminUri, "/readyz"))).StatusCode);
    }

    [Fact]
    public async Task A_request_in_flight_completes_while_new_connections_are_refused_and_readiness_is_off()
    {
        await using var upstream = await HeldUpstream.StartAsync();
        Route(upstream.Url);
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        proxy.NeverEmit(_key);
        var listener = proxy.App.GetListenerEndPoint("api");
        using var admin = AdminClient();
        var inFlight = proxy.Client.GetAsync(proxy.Listener("api", "/v1/slow"));
        await upstream.Received.WaitAsync(Bound);

        var quit = await admin.PostAsync(new Uri(proxy.App.AdminUri, "/quitquitquit"), null);
        Assert.Equal(HttpStatusCode.OK, quit.StatusCode);
        await WhenCancelled(proxy.App.Stopping).WaitAsync(Bound);
        var stopped = proxy.App.WaitForShutdownAsync();

        // Readiness is off before the listeners close, and stays off while the request drains.
        Assert.False(proxy.App.State.IsReady);
        Assert.Equal("draining", proxy.App.State.NotReadyReason);
        await EventuallyRefusedAsync(listener);
        Assert.False(inFlight.IsCompleted);
        Assert.False(stopped.IsCompleted);
        Assert.NotEqual(HttpStatusCode.OK, await TryReadyzAsync(proxy.App.AdminUri));

        upstream.Release();
        var response = await inFlight.WaitAsync(Bound);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HeldUpstream.Body, await response.Content.ReadAsStringAsync());
        await stopped.WaitAsync(Bound);
    }

    [Fact]
    public async Task A_request_still_running_at_the_drain_timeout_is_aborted_and_the_proxy_stops()
    {
        await using var upstream = await HeldUpstream.StartAsync();
        Route(upstream.Url);
        _config.Set("Shutdown", new JsonObject { ["DrainTimeout"] = "00:00:01" });
        await using var proxy = await ProxyHarness.StartAsync(_config.Write());
        using var admin = AdminClient();
        var inFlight = proxy.Client.GetAsync(proxy.Listener("api", "/v1/never"));
        await upstream.Received.WaitAsync(Bound);

        var quit = await admin.PostAsync(new Uri(proxy.App.AdminUri, "/quitquitquit"), null);
        Assert.Equal("00:00:01", JsonDocument.Parse(await quit.Content.ReadAsStringAsync()).RootElement.GetProperty("drainTimeout").GetString());

        // The upstream never answers: stopping ends with the drain timeout, not with the request.
        await proxy.App.WaitForShutdownAsync().WaitAsync(Bound);
        var outcome = await Outcome(inFlight).WaitAsync(Bound);
        Assert.NotEqual("200 " + HeldUpstream.Body, outcome);
    }

    [Fact]
    public async Task Sigterm_to_the_real_process_drains_the_request_in_flight_and_exits_0()
    {
        await using var upstream = await HeldUpstream.StartAsync();
        Route(upstream.Url);
        var listenerPort = WireMockFactory.FreePort();
        var adminPort = WireMockFactory.FreePort();
        _config.Set("Admin", new JsonObject { ["Url"] = "http://127.0.0.1:" + adminPort });
        _config.Section["Listeners"]!["api"]!["Url"] = "http://127.0.0.1:" + listenerPort;
        var output = new StringBuilder();
        using var process = ProxyProcess.Start(["run", "--config", _config.Write()], new Dictionary<string, string>(), "SecretlessProxy", "OTEL_");
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var client = AdminClient();
            var adminUri = new Uri("http://127.0.0.1:" + adminPort + "/");
            await Eventually(async () => await TryReadyzAsync(adminUri) == HttpStatusCode.OK, "the child proxy to become ready");
            var inFlight = client.GetAsync("http://127.0.0.1:" + listenerPort + "/v1/slow");
            await upstream.Received.WaitAsync(Bound);

            var kill = await ExternalClient.RunAsync("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            Assert.True(kill.ExitCode == 0, kill.ToString());

            await EventuallyRefusedAsync(new IPEndPoint(IPAddress.Loopback, listenerPort));
            Assert.False(process.HasExited, "the proxy exited before the request in flight was answered\n" + Snapshot(output));
            upstream.Release();
            var response = await inFlight.WaitAsync(Bound);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HeldUpstream.Body, await response.Content.ReadAsStringAsync());
            await process.WaitForExitAsync().WaitAsync(Bound);
            Assert.True(process.ExitCode == 0, "exit " + process.ExitCode + "\n" + Snapshot(output));
            Assert.Contains("draining requests in flight", Snapshot(output), StringComparison.Ordinal);
            Assert.DoesNotContain(_key, Snapshot(output), StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
    }

    [Fact]
    public async Task Sigterm_with_an_idle_kept_alive_connection_closes_it_and_exits_without_waiting_out_the_drain()
    {
        // The drain is far longer than the bound the test waits: an exit within the bound shows
        // that an idle keep-alive connection (a pooled client's) is not counted as work in flight.
        await using var upstream = await HeldUpstream.StartAsync();
        Route(upstream.Url);
        var listenerPort = WireMockFactory.FreePort();
        var adminPort = WireMockFactory.FreePort();
        _config.Set("Admin", new JsonObject { ["Url"] = "http://127.0.0.1:" + adminPort });
        _config.Set("Shutdown", new JsonObject { ["DrainTimeout"] = "00:10:00" });
        _config.Section["Listeners"]!["api"]!["Url"] = "http://127.0.0.1:" + listenerPort;
        var output = new StringBuilder();
        using var process = ProxyProcess.Start(["run", "--config", _config.Write()], new Dictionary<string, string>(), "SecretlessProxy", "OTEL_");
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var adminUri = new Uri("http://127.0.0.1:" + adminPort + "/");
            await Eventually(async () => await TryReadyzAsync(adminUri) == HttpStatusCode.OK, "the child proxy to become ready");

            using var idle = new TcpClient();
            await idle.ConnectAsync(IPAddress.Loopback, listenerPort);
            var stream = idle.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /v1/kept HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
            await upstream.Received.WaitAsync(Bound);
            upstream.Release();
            var answer = await ReadResponseHeadAsync(stream);
            Assert.StartsWith("HTTP/1.1 200", answer, StringComparison.Ordinal);

            var kill = await ExternalClient.RunAsync("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            Assert.True(kill.ExitCode == 0, kill.ToString());

            await process.WaitForExitAsync().WaitAsync(Bound);
            Assert.True(process.ExitCode == 0, "exit " + process.ExitCode + "\n" + Snapshot(output));

            // The kept-alive connection was closed by the proxy, not left half-open.
            var buffer = new byte[4096];
            int read;
            do
            {
                read = await stream.ReadAsync(buffer).AsTask().WaitAsync(Bound);
            }
            while (read > 0);
            Assert.DoesNotContain(_key, Snapshot(output), StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
    }

    /// <summary>Reads through the blank line that ends a response's head, plus whatever body came with it.</summary>
    private static async Task<string> ReadResponseHeadAsync(NetworkStream stream)
    {
        var received = new StringBuilder();
        var buffer = new byte[4096];
        while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer).AsTask().WaitAsync(Bound);
            if (read == 0)
            {
                break;
            }

            received.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return received.ToString();
    }

    private static HttpClient AdminClient() => new(new SocketsHttpHandler { UseProxy = false }) { Timeout = Bound };

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static Task WhenCancelled(CancellationToken token)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.Register(() => done.TrySetResult());
        return done.Task;
    }

    private static async Task<string> Outcome(Task<HttpResponseMessage> request)
    {
        try
        {
            var response = await request;
            return (int)response.StatusCode + " " + await response.Content.ReadAsStringAsync();
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return "aborted: " + ex.GetType().Name;
        }
    }

    /// <summary>On a new connection each time (a pooled one could predate the stop).</summary>
    private static async Task<HttpStatusCode?> TryReadyzAsync(Uri admin)
    {
        using var client = AdminClient();
        try
        {
            return (await client.GetAsync(new Uri(admin, "/readyz"))).StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>Stopping closes the listening socket shortly after it begins: poll, bounded, until a connect is refused.</summary>
    private static Task EventuallyRefusedAsync(IPEndPoint endPoint) => Eventually(async () =>
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(endPoint);
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Caught in the listen backlog as the listener closed: reset, not yet refused; look again.
            return false;
        }
    }, "new connections to " + endPoint + " to be refused");

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < Bound)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail("timed out waiting for " + what);
    }

    public void Dispose() => _config.Dispose();
}
