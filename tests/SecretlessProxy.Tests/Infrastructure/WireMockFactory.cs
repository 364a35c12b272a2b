using System.Net;
using System.Net.Sockets;
using WireMock.Server;
using WireMock.Settings;

namespace SecretlessProxy.Tests.Infrastructure;

/// <summary>Starts WireMock bound to 127.0.0.1 only, on a free port.</summary>
public static class WireMockFactory
{
    public static WireMockServer Start()
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort();
            try
            {
                return WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:" + port] });
            }
            catch (Exception) when (attempt < 5)
            {
                // Another test took the port between probing and binding; try another.
            }
        }
    }

    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}

/// <summary>WireMock reports its URL as localhost; tests address it by the loopback IP it is bound to.</summary>
public static class WireMockServerExtensions
{
    public static string LoopbackUrl(this WireMockServer server) => "http://127.0.0.1:" + server.Ports[0];
}
