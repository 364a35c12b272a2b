using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SecretlessProxy.Attestation;

/// <summary>
/// Finds one TCP socket's owner uid and inode by asking the kernel for exactly that socket over
/// netlink (<c>NETLINK_SOCK_DIAG</c>, <c>SOCK_DIAG_BY_FAMILY</c> with the full 4-tuple: what
/// <c>ss</c> uses), instead of reading <c>/proc/net/tcp</c>.
/// </summary>
/// <remarks>
/// The kernel prints <c>/proc/net/tcp</c> by walking every TCP socket of the network namespace,
/// so reading it costs in proportion to all of them: measured at 5.8 ms with 956 rows (a host
/// with connections in TIME_WAIT), paid by the first request of every new connection. The
/// netlink request is one hash lookup in the kernel (<c>inet_diag_find_one_icsk</c>), a few
/// microseconds whatever the table holds. Same namespace (the reader's), same facts (uid,
/// inode). Null when the kernel has no such socket or no sock_diag (module absent, a seccomp
/// filter refusing netlink sockets): the caller then reads /proc/net/tcp as before.
/// </remarks>
internal static unsafe partial class SockDiag
{
    private const int AfNetlink = 16;
    private const int AfInet = 2;
    private const int AfInet6 = 10;
    private const int SockDgram = 2;
    private const int SockCloexec = 0x80000;
    private const int NetlinkSockDiag = 4;
    private const ushort SockDiagByFamily = 20;
    private const ushort NlmFRequest = 1;
    private const byte IpProtoTcp = 6;
    private const byte TcpListen = 10;
    private const int SolSocket = 1;
    private const int SoRcvTimeo = 20;

    // struct nlmsghdr (16 bytes) + struct inet_diag_req_v2 (56 bytes): linux/netlink.h, linux/inet_diag.h.
    private const int HeaderSize = 16;
    private const int RequestSize = HeaderSize + 56;

    // struct inet_diag_msg after the header: family, state, timer, retrans, then inet_diag_sockid
    // (48 bytes), expires, rqueue, wqueue, uid, inode.
    private const int MessageUidOffset = HeaderSize + 64;
    private const int MessageInodeOffset = HeaderSize + 68;

    /// <summary>
    /// The socket whose own address is <paramref name="socketLocal"/> and whose peer is
    /// <paramref name="socketRemote"/>, as <see cref="ProcNetTcp.Find"/> reports it; null when the
    /// kernel has none or cannot be asked.
    /// </summary>
    public static ProcNetTcp.SocketRow? Find(IPEndPoint socketLocal, IPEndPoint socketRemote)
    {
        var local = socketLocal.Address.IsIPv4MappedToIPv6 ? socketLocal.Address.MapToIPv4() : socketLocal.Address;
        var remote = socketRemote.Address.IsIPv4MappedToIPv6 ? socketRemote.Address.MapToIPv4() : socketRemote.Address;
        if (local.AddressFamily != remote.AddressFamily)
        {
            return null;
        }

        Span<byte> request = stackalloc byte[RequestSize];
        request.Clear();
        BitConverter.TryWriteBytes(request, (uint)RequestSize);
        BitConverter.TryWriteBytes(request[4..], SockDiagByFamily);
        BitConverter.TryWriteBytes(request[6..], NlmFRequest);
        BitConverter.TryWriteBytes(request[8..], 1u);
        var body = request[HeaderSize..];
        // An IPv4 conversation is looked up as AF_INET: the kernel's lookup finds the socket whether
        // it is AF_INET or an AF_INET6 socket with mapped addresses (both hash by the IPv4 pair).
        body[0] = local.AddressFamily == AddressFamily.InterNetworkV6 ? (byte)AfInet6 : (byte)AfInet;
        body[1] = IpProtoTcp;
        BitConverter.TryWriteBytes(body[4..], uint.MaxValue); // every state
        var id = body[8..];
        // Netlink's own fields are in host byte order; ports and addresses in network byte order,
        // the addresses in 16-byte fields.
        BinaryPrimitives.WriteUInt16BigEndian(id, (ushort)socketLocal.Port);
        BinaryPrimitives.WriteUInt16BigEndian(id[2..], (ushort)socketRemote.Port);
        if (!local.TryWriteBytes(id[4..20], out _) || !remote.TryWriteBytes(id[20..36], out _))
        {
            return null;
        }

        // idiag_if 0 (any), idiag_cookie INET_DIAG_NOCOOKIE (both words all ones): not checked.
        BinaryPrimitives.WriteUInt32LittleEndian(id[40..], uint.MaxValue);
        BinaryPrimitives.WriteUInt32LittleEndian(id[44..], uint.MaxValue);

        var fd = Socket(AfNetlink, SockDgram | SockCloexec, NetlinkSockDiag);
        if (fd < 0)
        {
            return null;
        }

        try
        {
            // The kernel answers at once; the timeout only bounds a kernel that never does.
            Span<long> timeout = [1, 0];
            fixed (long* tv = timeout)
            {
                _ = SetSockOpt(fd, SolSocket, SoRcvTimeo, tv, 2 * sizeof(long));
            }

            Span<byte> kernel = stackalloc byte[12];
            kernel.Clear();
            BitConverter.TryWriteBytes(kernel, (ushort)AfNetlink);
            fixed (byte* message = request)
            fixed (byte* address = kernel)
            {
                if (SendTo(fd, message, RequestSize, 0, address, 12) != RequestSize)
                {
                    return null;
                }
            }

            Span<byte> reply = stackalloc byte[4096];
            nint received;
            fixed (byte* buffer = reply)
            {
                received = Recv(fd, buffer, reply.Length, 0);
            }

            return Parse(reply[..(int)Math.Max(received, 0)], body[0], id[..36]);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>
    /// The uid and inode of a sock_diag reply about exactly the socket asked for (<paramref name="family"/>
    /// and the first 36 bytes of the request's <c>inet_diag_sockid</c>: ports, then addresses); null
    /// for an error (ENOENT: no such socket), a short reply, or a reply about another socket.
    /// </summary>
    /// <remarks>
    /// The kernel's lookup falls back to a listening socket when no connection matches (a client
    /// gone without TIME_WAIT): its owner is not the caller, so a listener, or any socket whose
    /// endpoints are not the ones asked for, is no answer.
    /// </remarks>
    internal static ProcNetTcp.SocketRow? Parse(ReadOnlySpan<byte> reply, byte family, ReadOnlySpan<byte> asked)
    {
        if (reply.Length < HeaderSize)
        {
            return null;
        }

        var length = BitConverter.ToUInt32(reply);
        var type = BitConverter.ToUInt16(reply[4..]);
        if (type != SockDiagByFamily || length > reply.Length || length < MessageInodeOffset + 4)
        {
            // NLMSG_ERROR carries the errno (ENOENT: no such socket, or no TCP diag handler); either
            // way the caller asks /proc/net/tcp instead.
            return null;
        }

        var message = reply[HeaderSize..];
        if (message[1] == TcpListen || !SameSocket(message[0], message[4..40], family, asked))
        {
            return null;
        }

        var uid = BitConverter.ToUInt32(reply[MessageUidOffset..]);
        var inode = BitConverter.ToUInt32(reply[MessageInodeOffset..]);
        return uid > int.MaxValue ? null : new ProcNetTcp.SocketRow((int)uid, inode);
    }

    /// <summary>
    /// Whether a reply's endpoints are the ones asked for: the same bytes when the families agree; an
    /// IPv4 question may be answered by an AF_INET6 socket with the IPv4-mapped addresses.
    /// </summary>
    private static bool SameSocket(byte repliedFamily, ReadOnlySpan<byte> replied, byte family, ReadOnlySpan<byte> asked)
    {
        if (!replied[..4].SequenceEqual(asked[..4]))
        {
            return false;
        }

        if (repliedFamily == family)
        {
            return replied[4..36].SequenceEqual(asked[4..36]);
        }

        if (family != AfInet || repliedFamily != AfInet6)
        {
            return false;
        }

        ReadOnlySpan<byte> mappedPrefix = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        return replied[4..16].SequenceEqual(mappedPrefix) && replied[16..20].SequenceEqual(asked[4..8]) &&
               replied[20..32].SequenceEqual(mappedPrefix) && replied[32..36].SequenceEqual(asked[20..24]);
    }

    [LibraryImport("libc", EntryPoint = "socket")]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "setsockopt")]
    private static partial int SetSockOpt(int fd, int level, int name, void* value, int length);

    [LibraryImport("libc", EntryPoint = "sendto")]
    private static partial nint SendTo(int fd, byte* buffer, nint length, int flags, byte* address, int addressLength);

    [LibraryImport("libc", EntryPoint = "recv")]
    private static partial nint Recv(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
