using System.Net;

namespace SecretlessProxy.Attestation;

/// <summary>
/// A TCP socket's owner uid and inode by its two endpoints: asked of the kernel for that one
/// socket (<see cref="SockDiag"/>, a hash lookup), and read from <c>/proc/net/tcp</c>
/// (<see cref="ProcNetTcp"/>, every socket of the namespace) only when the kernel gives no answer
/// with an owner, or when the /proc root is not the real one (tests' fake tables).
/// </summary>
internal static class TcpSocketLookup
{
    private const string RealProcRoot = "/proc";

    public static ProcNetTcp.SocketRow? Find(string procRoot, IPEndPoint socketLocal, IPEndPoint socketRemote)
    {
        if (procRoot == RealProcRoot && SockDiag.Find(socketLocal, socketRemote) is { Inode: not 0 } row)
        {
            return row;
        }

        return ProcNetTcp.Find(procRoot, socketLocal, socketRemote);
    }
}
