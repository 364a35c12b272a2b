using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace SecretlessProxy.Attestation;

/// <summary>
/// Finds one TCP socket's row in <c>/proc/net/tcp</c> or <c>/proc/net/tcp6</c> (the files of the
/// reader's network namespace, which a sidecar shares with its pod) by its exact local and remote
/// endpoints, and reads the row's owner uid and socket inode.
/// </summary>
/// <remarks>
/// Row format (<c>tcp4_seq_show</c>/<c>tcp6_seq_show</c> in the kernel):
/// <c>sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...</c>. An address is printed as
/// its 32-bit words, each with <c>%08X</c> of the word as the host reads it from memory, so
/// 127.0.0.1 is <c>0100007F</c> on a little-endian machine, <c>::1</c> is
/// <c>00000000000000000000000001000000</c> and <c>::ffff:127.0.0.1</c> is
/// <c>0000000000000000FFFF00000100007F</c>; a port is <c>%04X</c> of the port number.
/// </remarks>
internal static class ProcNetTcp
{
    private const int ChunkSize = 64 * 1024;

    /// <summary>A socket's row. <see cref="Inode"/> 0: the socket has no owner any more (TIME_WAIT, orphaned after close).</summary>
    internal readonly record struct SocketRow(int Uid, ulong Inode);

    /// <summary>
    /// The row of the socket whose own address is <paramref name="socketLocal"/> and whose peer is
    /// <paramref name="socketRemote"/>, or null when there is none. A row with an owner is preferred
    /// to an ownerless one with the same endpoints.
    /// </summary>
    public static SocketRow? Find(string procRoot, IPEndPoint socketLocal, IPEndPoint socketRemote)
    {
        var local = socketLocal.Address.IsIPv4MappedToIPv6 ? socketLocal.Address.MapToIPv4() : socketLocal.Address;
        var remote = socketRemote.Address.IsIPv4MappedToIPv6 ? socketRemote.Address.MapToIPv4() : socketRemote.Address;
        if (local.AddressFamily != remote.AddressFamily)
        {
            return null;
        }

        if (local.AddressFamily == AddressFamily.InterNetworkV6)
        {
            return Scan(procRoot + "/net/tcp6", Format(local, socketLocal.Port), Format(remote, socketRemote.Port));
        }

        // An IPv4 conversation: an AF_INET socket is in /proc/net/tcp; an AF_INET6 socket that
        // connected to (or was accepted from) an IPv4 address is in /proc/net/tcp6 with mapped
        // addresses. Most clients use AF_INET, so that file is read first.
        var found = Scan(procRoot + "/net/tcp", Format(local, socketLocal.Port), Format(remote, socketRemote.Port));
        if (found is { Inode: not 0 })
        {
            return found;
        }

        var mapped = Scan(procRoot + "/net/tcp6", Format(local.MapToIPv6(), socketLocal.Port), Format(remote.MapToIPv6(), socketRemote.Port));
        return mapped is { Inode: not 0 } ? mapped : found ?? mapped;
    }

    /// <summary>An endpoint as the kernel prints it in a row (<c>0100007F:1F90</c>).</summary>
    internal static byte[] Format(IPAddress address, int port)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var length);
        var text = new StringBuilder(length * 2 + 5);
        for (var word = 0; word < length; word += 4)
        {
            // The word as this machine reads it from memory: the kernel prints it the same way.
            text.Append(MemoryMarshal.Read<uint>(bytes.Slice(word, 4)).ToString("X8", CultureInfo.InvariantCulture));
        }

        text.Append(':').Append(port.ToString("X4", CultureInfo.InvariantCulture));
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    /// <summary>Whether one line is the row with these endpoints; if so, its uid and inode.</summary>
    internal static bool TryMatch(ReadOnlySpan<byte> line, ReadOnlySpan<byte> local, ReadOnlySpan<byte> remote, out SocketRow row)
    {
        row = default;
        var rest = line;
        _ = NextField(ref rest); // sl
        if (!NextField(ref rest).SequenceEqual(local) || !NextField(ref rest).SequenceEqual(remote))
        {
            return false;
        }

        _ = NextField(ref rest); // st
        _ = NextField(ref rest); // tx_queue:rx_queue
        _ = NextField(ref rest); // tr:tm->when
        _ = NextField(ref rest); // retrnsmt
        var uidField = NextField(ref rest);
        _ = NextField(ref rest); // timeout
        var inodeField = NextField(ref rest);
        if (!Utf8Parser.TryParse(uidField, out uint uid, out var uidLength) || uidLength != uidField.Length || uid > int.MaxValue
            || !Utf8Parser.TryParse(inodeField, out ulong inode, out var inodeLength) || inodeLength != inodeField.Length)
        {
            return false;
        }

        row = new SocketRow((int)uid, inode);
        return true;
    }

    private static ReadOnlySpan<byte> NextField(ref ReadOnlySpan<byte> rest)
    {
        var start = 0;
        while (start < rest.Length && rest[start] == (byte)' ')
        {
            start++;
        }

        var end = rest[start..].IndexOf((byte)' ');
        end = end < 0 ? rest.Length : start + end;
        var field = rest[start..end];
        rest = rest[end..];
        return field;
    }

    private static SocketRow? Scan(string path, byte[] local, byte[] remote)
    {
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // no IPv6 in this kernel (no tcp6), or /proc not mounted
        }

        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            using (file)
            {
                SocketRow? ownerless = null;
                long offset = 0;
                var kept = 0;
                while (true)
                {
                    var read = RandomAccess.Read(file, buffer.AsSpan(kept), offset);
                    offset += read;
                    var data = buffer.AsSpan(0, kept + read);
                    int newline;
                    while ((newline = data.IndexOf((byte)'\n')) >= 0)
                    {
                        if (TryMatch(data[..newline], local, remote, out var row))
                        {
                            if (row.Inode != 0)
                            {
                                return row; // a 4-tuple has one live socket; stop reading
                            }

                            ownerless = row;
                        }

                        data = data[(newline + 1)..];
                    }

                    if (read == 0)
                    {
                        return ownerless; // a last line without a newline is never a complete row
                    }

                    // Keep a partial line for the next read. Rows are ~150 bytes; a longer partial line
                    // than the buffer cannot be a row, so it is dropped.
                    kept = data.Length < buffer.Length / 2 ? data.Length : 0;
                    data[..kept].CopyTo(buffer);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
