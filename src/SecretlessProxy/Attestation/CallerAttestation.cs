using SecretlessProxy.Core;

namespace SecretlessProxy.Attestation;

/// <summary>
/// A caller as the kernel reported it at one moment, with what a later check compares against:
/// the socket and every process that held it. Immutable; a check that finds a change yields a new one.
/// </summary>
internal sealed class CallerAttestation
{
    public CallerAttestation(Caller caller, int uid, ulong socketInode, IReadOnlyList<SocketHolder>? holders)
    {
        Caller = caller;
        Uid = uid;
        SocketInode = socketInode;
        Holders = holders;
    }

    public Caller Caller { get; }

    /// <summary>The socket's owner uid (TCP) or the peer's uid (SO_PEERCRED).</summary>
    public int Uid { get; }

    /// <summary>The client socket's inode (TCP); 0 for a Unix socket peer, whose holders cannot be scanned for.</summary>
    public ulong SocketInode { get; }

    /// <summary>
    /// Every process that held the socket, all running one executable; null when the caller was not
    /// resolved to a process (unknown, or its uid alone): then there is nothing to re-check, and
    /// the answer stays what it was for the connection's life.
    /// </summary>
    public IReadOnlyList<SocketHolder>? Holders { get; }

    /// <summary>An answer with nothing to re-check.</summary>
    public static CallerAttestation Fixed(Caller caller) => new(caller, caller.Uid ?? -1, 0, null);
}
